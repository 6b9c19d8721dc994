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

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// UpdateMachineTags sets and removes tags on a VM, keeping every other tag.
// A VM PATCH replaces the whole tag map, so the tags are merged into the VM
// as this process last read it, and the write carries that read's ETag in
// If-Match: another process (another configuration's policy, a person)
// that wrote the VM since makes ARM refuse with 412, and the VM is read
// again and merged again instead of that write being lost. This process's
// own writers queue on the VM's lock. Tags already as wanted make no call.
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
	var written *armcompute.VirtualMachine
	err = withRetry(ctx, func(ctx context.Context) error {
		written = nil
		vm, err := c.virtualMachine(ctx, vmID)
		if err != nil {
			return err
		}
		tags, changed := mergeTags(vm.Tags, set, remove)
		if !changed {
			return nil
		}
		tflog.Info(ctx, "writing virtual machine tags", map[string]any{"vm": vmID, "set": set, "if_match": vm.ETag})
		var opts *armcompute.VirtualMachinesClientBeginUpdateOptions
		if vm.ETag != "" {
			opts = &armcompute.VirtualMachinesClientBeginUpdateOptions{IfMatch: to.Ptr(vm.ETag)}
		}
		var initial *http.Response
		poller, err := vms.BeginUpdate(policy.WithCaptureResponse(ctx, &initial), id.ResourceGroupName, id.Name, armcompute.VirtualMachineUpdate{Tags: tags}, opts)
		var refused *azcore.ResponseError
		switch {
		case errors.As(err, &refused) && refused.StatusCode != http.StatusPreconditionFailed:
			return err // refused as it came (throttled, busy): the VM is as read
		case err == nil:
			err = await(ctx, poller, initial)
		}
		if err != nil {
			// Changed by another writer (412), or what the write did is
			// not known: the next attempt reads the VM again.
			c.vms.Forget(vmID)
			return err
		}
		if vm, ok := answer[armcompute.VirtualMachine](initial); ok {
			written = &vm
		}
		return nil
	})
	switch {
	case err != nil:
		c.vms.Forget(vmID)
		return fmt.Errorf("writing the tags of virtual machine %s: %w", vmID, notFound(err))
	case written != nil:
		c.vms.Put(vmID, recordOf(*written))
	}
	return nil
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

// VirtualMachines lists the VMs of the configured subscription, or of one
// of its resource groups, with their names, locations and tags but not
// their network paths: what an audit needs, one list call per page.
func (c *Client) VirtualMachines(ctx context.Context, resourceGroup string) ([]*jit.Machine, error) {
	scope, err := c.scanScope(resourceGroup)
	if err != nil {
		return nil, err
	}
	compute, err := c.computeClients(c.SubscriptionID)
	if err != nil {
		return nil, err
	}
	client := compute.NewVirtualMachinesClient()
	var out []*jit.Machine
	add := func(values []*armcompute.VirtualMachine) {
		for _, vm := range values {
			if vm != nil && vm.ID != nil {
				out = append(out, &jit.Machine{Cloud: name, ID: *vm.ID, Name: deref(vm.Name), Location: deref(vm.Location), Tags: tags(vm.Tags)})
			}
		}
	}
	if resourceGroup == "" {
		err = list(ctx, func() *runtime.Pager[armcompute.VirtualMachinesClientListAllResponse] {
			return client.NewListAllPager(nil)
		}, func(page armcompute.VirtualMachinesClientListAllResponse) { add(page.Value) })
	} else {
		err = list(ctx, func() *runtime.Pager[armcompute.VirtualMachinesClientListResponse] {
			return client.NewListPager(resourceGroup, nil)
		}, func(page armcompute.VirtualMachinesClientListResponse) { add(page.Value) })
	}
	if err != nil {
		return nil, fmt.Errorf("listing virtual machines of %s: %w", scope, notFound(err))
	}
	return out, nil
}
