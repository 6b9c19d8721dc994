package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/hashicorp/terraform-plugin-log/tflog"
)

// UpdateMachineTags sets and removes tags on a VM, keeping every other tag.
// A VM PATCH replaces the whole tag map, so the tags are merged, under the
// VM's lock, into the VM as this process read it, and written only if that
// read is still current: the PATCH carries its ETag (If-Match). When
// another writer changed the VM since, ARM refuses it (412
// PreconditionFailed), and the VM is read again and merged again. Tags
// already as wanted make no call.
func (c *Client) UpdateMachineTags(ctx context.Context, vmID string, set map[string]string, remove func(name string) bool) error {
	unlock := c.locks.Lock(ctx, vmID)
	defer unlock()
	id, err := arm.ParseResourceID(vmID)
	if err != nil {
		return err
	}
	compute, err := c.computeClients(id.SubscriptionID)
	if err != nil {
		return err
	}
	vms := compute.NewVirtualMachinesClient()
	for attempt := 1; ; attempt++ {
		vm, err := c.virtualMachine(ctx, vmID)
		if err != nil {
			return err
		}
		tags, changed := mergeTags(vm.Tags, set, remove)
		if !changed {
			return nil
		}
		tflog.Info(ctx, "writing virtual machine tags", map[string]any{"vm": vmID, "set": set})
		var initial *http.Response
		err = withRetry(ctx, func(ctx context.Context) error {
			var opts *armcompute.VirtualMachinesClientBeginUpdateOptions
			if vm.ETag != "" {
				opts = &armcompute.VirtualMachinesClientBeginUpdateOptions{IfMatch: to.Ptr(vm.ETag)}
			}
			poller, err := vms.BeginUpdate(policy.WithCaptureResponse(ctx, &initial), id.ResourceGroupName, id.Name, armcompute.VirtualMachineUpdate{Tags: tags}, opts)
			if err != nil {
				return err
			}
			return await(ctx, poller, initial)
		})
		c.vms.Forget(vmID)
		switch {
		case isPreconditionFailed(err) && attempt < maxPlacements:
			tflog.Warn(ctx, "the virtual machine changed since it was read; reading it again", map[string]any{"vm": vmID, "attempt": attempt})
			continue
		case err != nil:
			return fmt.Errorf("writing the tags of virtual machine %s: %w", vmID, notFound(err))
		}
		if written, ok := answer[armcompute.VirtualMachine](initial); ok {
			c.vms.Put(vmID, recordOf(written))
		}
		return nil
	}
}

// mergeTags sets and removes tags, keeping the others, and tells whether
// that changes anything.
func mergeTags(have map[string]string, set map[string]string, remove func(string) bool) (map[string]*string, bool) {
	tags := map[string]*string{}
	changed := false
	for k, v := range have {
		if remove != nil && remove(k) {
			if _, keep := set[k]; !keep {
				changed = true
				continue
			}
		}
		tags[k] = to.Ptr(v)
	}
	for k, v := range set {
		if cur, ok := tags[k]; !ok || deref(cur) != v {
			changed = true
		}
		tags[k] = to.Ptr(v)
	}
	return tags, changed
}

// isPreconditionFailed tells whether ARM refused a write whose If-Match
// ETag is no longer the resource's.
func isPreconditionFailed(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusPreconditionFailed
}

// TaggedMachines lists the VMs of the configured subscription carrying tag=value.
func (c *Client) TaggedMachines(ctx context.Context, tag, value string) ([]string, error) {
	if c.SubscriptionID == "" {
		return nil, fmt.Errorf("finding VMs tagged %s=%s needs a subscription: set subscription_id in the azure block or ARM_SUBSCRIPTION_ID", tag, value)
	}
	compute, err := c.computeClients(c.SubscriptionID)
	if err != nil {
		return nil, err
	}
	var ids []string
	err = list(ctx, func() *runtime.Pager[armcompute.VirtualMachinesClientListAllResponse] {
		return compute.NewVirtualMachinesClient().NewListAllPager(nil)
	}, func(page armcompute.VirtualMachinesClientListAllResponse) {
		for _, vm := range page.Value {
			if vm == nil || vm.ID == nil {
				continue
			}
			c.vms.Put(*vm.ID, recordOf(*vm))
			if deref(vm.Tags[tag]) == value {
				ids = append(ids, *vm.ID)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("listing virtual machines of subscription %s: %w", c.SubscriptionID, err)
	}
	return ids, nil
}
