package azure

import (
	"context"
	"errors"
	"slices"
	"strings"

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

func (b *Backend) Name() string { return "azure" }

// Owns tells ARM resource IDs from anything else.
func (b *Backend) Owns(id string) bool {
	return len(id) > 15 && strings.EqualFold(id[:15], "/subscriptions/")
}

func (b *Backend) Machine(ctx context.Context, id string) (*jit.Machine, error) {
	return b.client.Machine(ctx, id)
}

// PrefetchMachines lists the VMs and NICs of resource groups a policy
// names many machines of.
func (b *Backend) PrefetchMachines(ctx context.Context, ids []string) {
	b.client.PrefetchMachines(ctx, ids)
}

func (b *Backend) Requestor(ctx context.Context) (string, error) { return b.client.Requestor(ctx) }

func (b *Backend) SetMachineTags(ctx context.Context, m *jit.Machine, set map[string]string, remove func(string) bool) error {
	return b.client.UpdateMachineTags(ctx, m.ID, set, remove)
}

func (b *Backend) TaggedMachines(ctx context.Context, tag, value string) ([]string, error) {
	return b.client.TaggedMachines(ctx, tag, value)
}

// ScanGrants lists the grant rules of every NSG and the grant collections
// of every firewall in the subscription (or resource group).
func (b *Backend) ScanGrants(ctx context.Context) (engine.Scope, []engine.FoundGrant, error) {
	scope := engine.Scope{Cloud: b.Name(), Subscription: b.client.SubscriptionID, ResourceGroup: b.resourceGroup}
	// An unlistable kind of target does not stop the scan of the other.
	nsgs, nsgErr := b.client.NetworkSecurityGroups(ctx, b.resourceGroup)
	var found []engine.FoundGrant
	for _, nsg := range nsgs {
		for _, rule := range nsg.Rules {
			if v := jit.JudgeNSGGrant(rule, "", nil); v.IsGrant {
				found = append(found, engine.FoundGrant{Kind: engine.KindNSGRule, Target: nsg.ID, Name: rule.Name, Marker: v.Marker, Vouched: true})
			}
		}
	}
	firewalls, fwErr := b.client.FirewallsRuleDescriptions(ctx, b.resourceGroup)
	for _, fw := range firewalls {
		for name, descriptions := range fw.Collections {
			if !jit.IsFirewallGrantCollection(name) {
				continue
			}
			end, requestor, ok := jit.FirewallGrantEnd(descriptions)
			found = append(found, engine.FoundGrant{Kind: engine.KindFirewallGrant, Target: fw.ID, Name: name, Vouched: ok,
				Marker: jit.Marker{Kind: jit.MarkerGrant, End: end, Requestor: requestor}})
		}
	}
	return scope, found, errors.Join(nsgErr, fwErr)
}

// RevokeGrant removes one found grant if, read again under its target's
// lock, it still satisfies still.
func (b *Backend) RevokeGrant(ctx context.Context, g engine.FoundGrant, still func(jit.Marker) bool) (bool, error) {
	defer b.client.Lock(ctx, g.Target)()
	if g.Kind == engine.KindNSGRule {
		return b.client.RevokeSecurityRule(ctx, g.Target, g.Name, func(current jit.NSGRule) bool {
			v := jit.JudgeNSGGrant(current, "", nil)
			return v.IsGrant && still(v.Marker)
		})
	}
	removed, remaining, err := b.client.RemoveFirewallCollections(ctx, g.Target, func(name string, descriptions []string) bool {
		end, requestor, ok := jit.FirewallGrantEnd(descriptions)
		return strings.EqualFold(name, g.Name) && ok && still(jit.Marker{Kind: jit.MarkerGrant, End: end, Requestor: requestor})
	})
	if err != nil {
		return false, err
	}
	// Removed now, or already gone.
	return slices.Contains(removed, g.Name) || !slices.ContainsFunc(remaining, func(n string) bool { return strings.EqualFold(n, g.Name) }), nil
}
