package azure

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// ErrNotFound marks a resource that does not exist (HTTP 404 from ARM).
var ErrNotFound = engine.ErrNotFound

// notFound wraps a 404 so callers can test with errors.Is(err, ErrNotFound).
func notFound(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// Machine resolves a VM and its network path: every NIC, the NIC's NSG and
// its subnet's NSG. The VM, its NICs and their subnets are read once per
// provider process (see internal/readcache), the NICs in parallel.
func (c *Client) Machine(ctx context.Context, vmID string) (*jit.Machine, error) {
	id, err := arm.ParseResourceID(vmID)
	if err != nil {
		return nil, fmt.Errorf("%q is not an Azure resource ID: %w", vmID, err)
	}
	if strings.EqualFold(id.ResourceType.Namespace, "Microsoft.ClassicCompute") {
		return &jit.Machine{Cloud: name, ID: vmID, Name: id.Name, Classic: true}, nil
	}
	if !strings.EqualFold(id.ResourceType.String(), "Microsoft.Compute/virtualMachines") {
		return nil, fmt.Errorf("%q is a %s, not a virtual machine (Microsoft.Compute/virtualMachines)", vmID, id.ResourceType)
	}
	vm, err := c.virtualMachine(ctx, vmID)
	if err != nil {
		return nil, err
	}
	m, _ := vm.machine()
	if len(vm.NICs) == 0 {
		return m, nil
	}
	m.Interfaces = make([]jit.NetworkInterface, len(vm.NICs))
	errs := make([]error, len(vm.NICs))
	var wg sync.WaitGroup
	for i, nicID := range vm.NICs {
		wg.Go(func() { m.Interfaces[i], errs[i] = c.networkInterface(ctx, nicID) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// vmRecord is what is kept of a VM: its identity, tags, NICs and ETag,
// which guards the read-modify-write of its tags.
type vmRecord struct {
	ID, Name, Location string
	Tags               map[string]string
	NICs               []string
	ETag               string
}

func (r vmRecord) clone() vmRecord {
	r.Tags = maps.Clone(r.Tags)
	r.NICs = slices.Clone(r.NICs)
	return r
}

// machine is the VM without its interfaces, and the IDs of its
// interfaces, primary first.
func (r vmRecord) machine() (*jit.Machine, []string) {
	m := &jit.Machine{Cloud: name, ID: r.ID, Name: r.Name, Location: r.Location, Tags: maps.Clone(r.Tags)}
	if m.Tags == nil {
		m.Tags = map[string]string{}
	}
	return m, slices.Clone(r.NICs)
}

// machineFromARM is a VM an ARM listing returned, without its interfaces.
func machineFromARM(vm armcompute.VirtualMachine) (*jit.Machine, []string) {
	return recordOf(vm).machine()
}

// interfaceFromARM is a NIC an ARM listing returned; its subnet's NSG is
// read apart.
func interfaceFromARM(nicID string, nic armnetwork.Interface) jit.NetworkInterface {
	return interfaceOf(nicID, &nic)
}

// subnetNSG is the NSG of a subnet, "" when none.
func (c *Client) subnetNSG(ctx context.Context, subnetID string) (string, error) {
	s, err := c.subnet(ctx, subnetID)
	return s.NSG, err
}

func recordOf(vm armcompute.VirtualMachine) vmRecord {
	r := vmRecord{ID: deref(vm.ID), Name: deref(vm.Name), Location: deref(vm.Location), Tags: tags(vm.Tags), ETag: deref(vm.Etag)}
	if vm.Properties != nil && vm.Properties.NetworkProfile != nil {
		for _, ref := range vm.Properties.NetworkProfile.NetworkInterfaces {
			if ref != nil && ref.ID != nil {
				r.NICs = append(r.NICs, *ref.ID)
			}
		}
	}
	return r
}

// virtualMachine reads a VM, once per process.
func (c *Client) virtualMachine(ctx context.Context, vmID string) (vmRecord, error) {
	return c.vms.Get(ctx, vmID, func(ctx context.Context) (vmRecord, error) {
		id, err := arm.ParseResourceID(vmID)
		if err != nil {
			return vmRecord{}, fmt.Errorf("%q is not an Azure resource ID: %w", vmID, err)
		}
		compute, err := c.computeClients(id.SubscriptionID)
		if err != nil {
			return vmRecord{}, err
		}
		var vm armcompute.VirtualMachinesClientGetResponse
		err = withRetry(ctx, func(ctx context.Context) (err error) {
			vm, err = compute.NewVirtualMachinesClient().Get(ctx, id.ResourceGroupName, id.Name, nil)
			return err
		})
		if err != nil {
			return vmRecord{}, fmt.Errorf("reading virtual machine %s: %w", vmID, notFound(err))
		}
		return recordOf(vm.VirtualMachine), nil
	})
}

func cloneInterface(n jit.NetworkInterface) jit.NetworkInterface {
	n.PrivateIPs = slices.Clone(n.PrivateIPs)
	n.SecurityGroupIDs = slices.Clone(n.SecurityGroupIDs)
	return n
}

// networkInterface reads a NIC, once per process, and its subnet's NSG.
func (c *Client) networkInterface(ctx context.Context, nicID string) (jit.NetworkInterface, error) {
	out, err := c.nics.Get(ctx, nicID, func(ctx context.Context) (jit.NetworkInterface, error) {
		return c.readNetworkInterface(ctx, nicID)
	})
	if err != nil || out.SubnetID == "" {
		return out, err
	}
	subnet, err := c.subnet(ctx, out.SubnetID)
	out.SubnetNetworkSecurityGroupID = subnet.NSG
	return out, err
}

func (c *Client) readNetworkInterface(ctx context.Context, nicID string) (jit.NetworkInterface, error) {
	out := jit.NetworkInterface{ID: nicID}
	id, err := arm.ParseResourceID(nicID)
	if err != nil {
		return out, fmt.Errorf("network interface ID %q: %w", nicID, err)
	}
	network, err := c.networkClients(id.SubscriptionID)
	if err != nil {
		return out, err
	}
	var nic armnetwork.InterfacesClientGetResponse
	err = withRetry(ctx, func(ctx context.Context) (err error) {
		nic, err = network.NewInterfacesClient().Get(ctx, id.ResourceGroupName, id.Name, nil)
		return err
	})
	if err != nil {
		return out, fmt.Errorf("reading network interface %s: %w", nicID, notFound(err))
	}
	return interfaceOf(nicID, &nic.Interface), nil
}

func interfaceOf(nicID string, nic *armnetwork.Interface) jit.NetworkInterface {
	out := jit.NetworkInterface{ID: nicID}
	if nic.Properties == nil {
		return out
	}
	if nsg := nic.Properties.NetworkSecurityGroup; nsg != nil {
		out.NetworkSecurityGroupID = deref(nsg.ID)
	}
	for _, ipc := range nic.Properties.IPConfigurations {
		if ipc == nil || ipc.Properties == nil {
			continue
		}
		if ip := deref(ipc.Properties.PrivateIPAddress); ip != "" {
			out.PrivateIPs = append(out.PrivateIPs, ip)
		}
		if ipc.Properties.Subnet != nil && out.SubnetID == "" {
			out.SubnetID = deref(ipc.Properties.Subnet.ID)
		}
	}
	return out
}

// subnetRecord is what is kept of a subnet.
type subnetRecord struct {
	NSG           string
	AddressPrefix string
}

// subnet reads a subnet, once per process.
func (c *Client) subnet(ctx context.Context, subnetID string) (subnetRecord, error) {
	return c.subnets.Get(ctx, subnetID, func(ctx context.Context) (subnetRecord, error) {
		id, err := arm.ParseResourceID(subnetID)
		if err != nil || id.Parent == nil {
			return subnetRecord{}, fmt.Errorf("subnet ID %q is malformed", subnetID)
		}
		network, err := c.networkClients(id.SubscriptionID)
		if err != nil {
			return subnetRecord{}, err
		}
		var resp armnetwork.SubnetsClientGetResponse
		err = withRetry(ctx, func(ctx context.Context) (err error) {
			resp, err = network.NewSubnetsClient().Get(ctx, id.ResourceGroupName, id.Parent.Name, id.Name, nil)
			return err
		})
		if err != nil {
			return subnetRecord{}, fmt.Errorf("reading subnet %s: %w", subnetID, notFound(err))
		}
		var r subnetRecord
		if p := resp.Properties; p != nil {
			r.AddressPrefix = deref(p.AddressPrefix)
			if p.NetworkSecurityGroup != nil {
				r.NSG = deref(p.NetworkSecurityGroup.ID)
			}
		}
		return r, nil
	})
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func tags(in map[string]*string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = deref(v)
	}
	return out
}

// listThreshold is how many VMs (or NICs) of one resource group a policy
// must name for them to be listed rather than read one by one. A list page
// holds about a hundred, so from a hundred on a listing costs no more calls
// than the reads it replaces unless the group holds a hundred times more
// than the policy names; and ARM's read throttling (about 250 reads, then
// 25 a second) makes hundreds of single reads wait for seconds.
const listThreshold = 100

// PrefetchMachines reads, in list calls, the VMs of every resource group
// the IDs name at least listThreshold of, and then their NICs likewise,
// into the process's reads: resolving each machine afterwards reads only
// what the lists left out. Failures are left for those reads to report.
func (c *Client) PrefetchMachines(ctx context.Context, vmIDs []string) {
	var nics, unread []string
	wanted := map[string]bool{}
	for _, id := range vmIDs {
		wanted[strings.ToLower(id)] = true
		if !c.vms.Has(id) {
			unread = append(unread, id)
		}
	}
	for group := range crowdedGroups(unread) {
		compute, err := c.computeClients(group.subscription)
		if err != nil {
			continue
		}
		_ = list(ctx, func() *runtime.Pager[armcompute.VirtualMachinesClientListResponse] {
			return compute.NewVirtualMachinesClient().NewListPager(group.name, nil)
		}, func(page armcompute.VirtualMachinesClientListResponse) {
			for _, vm := range page.Value {
				if vm == nil || vm.ID == nil {
					continue
				}
				r := recordOf(*vm)
				c.vms.Put(r.ID, r)
				if wanted[strings.ToLower(r.ID)] {
					for _, nic := range r.NICs {
						if !c.nics.Has(nic) {
							nics = append(nics, nic)
						}
					}
				}
			}
		})
	}
	for group := range crowdedGroups(nics) {
		network, err := c.networkClients(group.subscription)
		if err != nil {
			continue
		}
		_ = list(ctx, func() *runtime.Pager[armnetwork.InterfacesClientListResponse] {
			return network.NewInterfacesClient().NewListPager(group.name, nil)
		}, func(page armnetwork.InterfacesClientListResponse) {
			for _, nic := range page.Value {
				if nic != nil && nic.ID != nil {
					c.nics.Put(*nic.ID, interfaceOf(*nic.ID, nic))
				}
			}
		})
	}
}

type resourceGroup struct{ subscription, name string }

// crowdedGroups are the resource groups at least listThreshold of ids are in.
func crowdedGroups(ids []string) map[resourceGroup]bool {
	count := map[resourceGroup]int{}
	for _, raw := range ids {
		if id, err := arm.ParseResourceID(raw); err == nil && id.ResourceGroupName != "" {
			count[resourceGroup{strings.ToLower(id.SubscriptionID), strings.ToLower(id.ResourceGroupName)}]++
		}
	}
	out := map[resourceGroup]bool{}
	for g, n := range count {
		if n >= listThreshold {
			out[g] = true
		}
	}
	return out
}
