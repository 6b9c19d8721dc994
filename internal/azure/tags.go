package azure

import (
	"context"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/hashicorp/terraform-plugin-log/tflog"
)

// UpdateMachineTags sets and removes tags on a VM, keeping every other tag.
// A VM PATCH replaces the whole tag map, so the tags are read and merged
// right before the write, and the write carries the read's ETag in
// If-Match: another process (another configuration's policy, a person)
// that wrote the VM in between makes ARM refuse with 412, and the tags are
// read and merged again instead of that write being lost. This process's
// own writers queue on the VM's lock.
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
	return withRetry(ctx, func(ctx context.Context) error {
		vm, err := vms.Get(ctx, id.ResourceGroupName, id.Name, nil)
		if err != nil {
			return fmt.Errorf("reading virtual machine %s: %w", vmID, notFound(err))
		}
		tags := map[string]*string{}
		changed := false
		for k, v := range vm.Tags {
			if remove != nil && remove(k) {
				if _, keep := set[k]; !keep {
					changed = true
					continue
				}
			}
			tags[k] = v
		}
		for k, v := range set {
			if cur, ok := tags[k]; !ok || deref(cur) != v {
				changed = true
			}
			tags[k] = to.Ptr(v)
		}
		if !changed {
			return nil
		}
		tflog.Info(ctx, "writing virtual machine tags", map[string]any{"vm": vmID, "set": set, "if_match": deref(vm.Etag)})
		writeCtx := ctx
		if vm.Etag != nil {
			writeCtx = policy.WithHTTPHeader(ctx, http.Header{"If-Match": {*vm.Etag}})
		}
		poller, err := vms.BeginUpdate(writeCtx, id.ResourceGroupName, id.Name, armcompute.VirtualMachineUpdate{Tags: tags}, nil)
		if err != nil {
			return err
		}
		_, err = await(ctx, poller)
		return err
	})
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
			if vm != nil && vm.ID != nil && deref(vm.Tags[tag]) == value {
				ids = append(ids, *vm.ID)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("listing virtual machines of subscription %s: %w", c.SubscriptionID, err)
	}
	return ids, nil
}
