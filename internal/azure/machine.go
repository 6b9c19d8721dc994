package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
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
// its subnet's NSG.
func (c *Client) Machine(ctx context.Context, vmID string) (*jit.Machine, error) {
	id, err := arm.ParseResourceID(vmID)
	if err != nil {
		return nil, fmt.Errorf("%q is not an Azure resource ID: %w", vmID, err)
	}
	if strings.EqualFold(id.ResourceType.Namespace, "Microsoft.ClassicCompute") {
		return &jit.Machine{Cloud: jit.CloudAzure, ID: vmID, Name: id.Name, Classic: true}, nil
	}
	if !strings.EqualFold(id.ResourceType.String(), "Microsoft.Compute/virtualMachines") {
		return nil, fmt.Errorf("%q is a %s, not a virtual machine (Microsoft.Compute/virtualMachines)", vmID, id.ResourceType)
	}
	compute, err := c.computeClients(id.SubscriptionID)
	if err != nil {
		return nil, err
	}
	var vm armcompute.VirtualMachinesClientGetResponse
	err = withRetry(ctx, func(ctx context.Context) (err error) {
		vm, err = compute.NewVirtualMachinesClient().Get(ctx, id.ResourceGroupName, id.Name, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading virtual machine %s: %w", vmID, notFound(err))
	}
	m, nicIDs := machineFromARM(vm.VirtualMachine)
	for _, nicID := range nicIDs {
		nic, err := c.networkInterface(ctx, nicID)
		if err != nil {
			return nil, err
		}
		m.Interfaces = append(m.Interfaces, nic)
	}
	return m, nil
}

// machineFromARM is a VM without its interfaces, and the IDs of its
// interfaces, primary first.
func machineFromARM(vm armcompute.VirtualMachine) (*jit.Machine, []string) {
	m := &jit.Machine{Cloud: jit.CloudAzure, ID: deref(vm.ID), Name: deref(vm.Name), Location: deref(vm.Location), Tags: tags(vm.Tags)}
	if vm.Properties == nil || vm.Properties.NetworkProfile == nil {
		return m, nil
	}
	var nics []string
	for _, ref := range vm.Properties.NetworkProfile.NetworkInterfaces {
		if ref != nil && ref.ID != nil {
			nics = append(nics, *ref.ID)
		}
	}
	return m, nics
}

func (c *Client) networkInterface(ctx context.Context, nicID string) (jit.NetworkInterface, error) {
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
	out = interfaceFromARM(nicID, nic.Interface)
	if out.SubnetID != "" {
		if out.SubnetNetworkSecurityGroupID, err = c.subnetNSG(ctx, out.SubnetID); err != nil {
			return out, err
		}
	}
	return out, nil
}

// interfaceFromARM is a NIC's addresses, subnet and own NSG; its subnet's
// NSG is read apart.
func interfaceFromARM(nicID string, nic armnetwork.Interface) jit.NetworkInterface {
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

func (c *Client) subnetNSG(ctx context.Context, subnetID string) (string, error) {
	subnet, err := c.subnet(ctx, subnetID)
	if err != nil || subnet.Properties == nil || subnet.Properties.NetworkSecurityGroup == nil {
		return "", err
	}
	return deref(subnet.Properties.NetworkSecurityGroup.ID), nil
}

func (c *Client) subnet(ctx context.Context, subnetID string) (armnetwork.Subnet, error) {
	id, err := arm.ParseResourceID(subnetID)
	if err != nil || id.Parent == nil {
		return armnetwork.Subnet{}, fmt.Errorf("subnet ID %q is malformed", subnetID)
	}
	network, err := c.networkClients(id.SubscriptionID)
	if err != nil {
		return armnetwork.Subnet{}, err
	}
	var resp armnetwork.SubnetsClientGetResponse
	err = withRetry(ctx, func(ctx context.Context) (err error) {
		resp, err = network.NewSubnetsClient().Get(ctx, id.ResourceGroupName, id.Parent.Name, id.Name, nil)
		return err
	})
	if err != nil {
		return armnetwork.Subnet{}, fmt.Errorf("reading subnet %s: %w", subnetID, notFound(err))
	}
	return resp.Subnet, nil
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
