package azure

import (
	"context"
	"fmt"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Backend is Azure as the engine drives it.
type Backend struct {
	client *Client
	// resourceGroup narrows scans for grants to one resource group.
	resourceGroup string
}

var _ engine.Backend = (*Backend)(nil)

// NewBackend serves the engine through client; scans for grants cover the
// client's subscription, or resourceGroup of it when set.
func NewBackend(client *Client, resourceGroup string) *Backend {
	return &Backend{client: client, resourceGroup: resourceGroup}
}

// Client is the backend's ARM client.
func (b *Backend) Client() *Client { return b.client }

func (b *Backend) Name() string { return name }

// Owns tells ARM resource IDs from anything else.
func (b *Backend) Owns(id string) bool { return ownsID(id) }

func (b *Backend) Machine(ctx context.Context, id string) (*jit.Machine, error) {
	return b.client.Machine(ctx, id)
}

// PrefetchMachines lists the VMs and NICs of resource groups a policy
// names many machines of.
func (b *Backend) PrefetchMachines(ctx context.Context, ids []string) {
	b.client.PrefetchMachines(ctx, ids)
}

// Unsupported names each NIC with no NSG on it or its subnet: nothing a
// deny could be written in.
func (b *Backend) Unsupported(m *jit.Machine) []string {
	var reasons []string
	for _, nic := range m.Interfaces {
		if nic.NetworkSecurityGroupID == "" && nic.SubnetNetworkSecurityGroupID == "" {
			reasons = append(reasons, fmt.Sprintf("no network security group on the VM's path (network interface %s and its subnet have none)", nic.ID))
		}
	}
	return reasons
}

func (b *Backend) Requestor(ctx context.Context) (string, error) { return b.client.Requestor(ctx) }

func (b *Backend) SetMachineTags(ctx context.Context, m *jit.Machine, set map[string]string, remove func(string) bool) error {
	return b.client.UpdateMachineTags(ctx, m.ID, set, remove)
}

func (b *Backend) TaggedMachines(ctx context.Context, tag, value string) ([]string, error) {
	return b.client.TaggedMachines(ctx, tag, value)
}
