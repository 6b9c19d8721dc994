package azure

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// FirewallRuleDescriptions is what a scan for grants needs of an Azure
// Firewall: for each name of a classic NAT or network rule collection, the
// descriptions of its rules (both kinds together, as one grant writes a
// NAT and a network collection of the same name), and its NAT rules.
type FirewallRuleDescriptions struct {
	ID string
	// Collections maps a collection name to its rules' descriptions.
	Collections map[string][]string
	// NAT are the classic NAT rule collections.
	NAT []jit.FirewallNATCollection
}

// FirewallsRuleDescriptions lists the Azure Firewalls of the configured
// subscription, or of one of its resource groups, with the descriptions of
// their classic rule collections' rules. Firewalls managed by a Firewall
// Policy have no classic collections, so no grants, and come back empty.
func (c *Client) FirewallsRuleDescriptions(ctx context.Context, resourceGroup string) ([]FirewallRuleDescriptions, error) {
	scope, err := c.scanScope(resourceGroup)
	if err != nil {
		return nil, err
	}
	network, err := c.networkClients(c.SubscriptionID)
	if err != nil {
		return nil, err
	}
	client := network.NewAzureFirewallsClient()
	var out []FirewallRuleDescriptions
	add := func(values []*armnetwork.AzureFirewall) {
		for _, fw := range values {
			if fw == nil || fw.ID == nil {
				continue
			}
			f := FirewallRuleDescriptions{ID: *fw.ID, Collections: collectionDescriptions(fw)}
			if fw.Properties != nil {
				for _, col := range fw.Properties.NatRuleCollections {
					if col != nil {
						f.NAT = append(f.NAT, fromNATCollection(col))
					}
				}
			}
			out = append(out, f)
		}
	}
	if resourceGroup == "" {
		err = list(ctx, func() *runtime.Pager[armnetwork.AzureFirewallsClientListAllResponse] {
			return client.NewListAllPager(nil)
		},
			func(page armnetwork.AzureFirewallsClientListAllResponse) { add(page.Value) })
	} else {
		err = list(ctx, func() *runtime.Pager[armnetwork.AzureFirewallsClientListResponse] {
			return client.NewListPager(resourceGroup, nil)
		},
			func(page armnetwork.AzureFirewallsClientListResponse) { add(page.Value) })
	}
	if err != nil {
		return nil, fmt.Errorf("listing Azure Firewalls of %s: %w", scope, notFound(err))
	}
	return out, nil
}

// RemoveFirewallCollections removes, in one read-modify-write of the
// firewall, the NAT and network rule collections of every name that remove
// selects from its rules' descriptions (see FirewallRuleDescriptions). As
// with UpdateFirewall, each attempt reads the firewall right
// before writing it back, and remove decides on that fresh read: a grant
// renewed since the scan is kept, collections others wrote meanwhile are
// kept, and a grant already gone is simply not there. Nothing is written
// when nothing is selected. It returns, sorted, the names removed and the
// names of the collections the firewall keeps; a firewall that is gone
// keeps none. The caller holds the firewall's lock.
func (c *Client) RemoveFirewallCollections(ctx context.Context, firewallID string, remove func(name string, descriptions []string) bool) (removed, remaining []string, err error) {
	err = c.editFirewall(ctx, firewallID, func(fw *armnetwork.AzureFirewall) (bool, error) {
		removed, remaining = nil, nil
		for name, descriptions := range collectionDescriptions(fw) {
			if remove(name, descriptions) {
				removed = append(removed, name)
			} else {
				remaining = append(remaining, name)
			}
		}
		slices.Sort(remaining)
		if len(removed) == 0 {
			return false, nil
		}
		slices.Sort(removed)
		selected := func(name *string) bool {
			return slices.ContainsFunc(removed, func(n string) bool { return strings.EqualFold(n, deref(name)) })
		}
		p := fw.Properties
		p.NatRuleCollections = slices.DeleteFunc(p.NatRuleCollections, func(col *armnetwork.AzureFirewallNatRuleCollection) bool {
			return col != nil && selected(col.Name)
		})
		p.NetworkRuleCollections = slices.DeleteFunc(p.NetworkRuleCollections, func(col *armnetwork.AzureFirewallNetworkRuleCollection) bool {
			return col != nil && selected(col.Name)
		})
		return true, nil
	})
	switch {
	case isNotFound(err):
		return nil, nil, nil
	case err != nil && len(removed) == 0:
		return nil, nil, fmt.Errorf("removing grant rule collections from Azure Firewall %s: %w", firewallID, err)
	case err != nil:
		return nil, nil, fmt.Errorf("removing rule collections %s from Azure Firewall %s: %w", strings.Join(removed, ", "), firewallID, err)
	}
	return removed, remaining, nil
}

// collectionDescriptions maps each classic NAT and network rule collection
// name of a firewall to its rules' descriptions. ARM compares collection
// names without case; a grant's names are lower-case, so the first
// spelling seen is kept.
func collectionDescriptions(fw *armnetwork.AzureFirewall) map[string][]string {
	out := map[string][]string{}
	p := fw.Properties
	if p == nil {
		return out
	}
	add := func(name *string, descriptions []string) {
		key := deref(name)
		for existing := range out {
			if strings.EqualFold(existing, key) {
				key = existing
			}
		}
		out[key] = append(out[key], descriptions...)
	}
	for _, col := range p.NatRuleCollections {
		if col == nil {
			continue
		}
		var descriptions []string
		if col.Properties != nil {
			for _, r := range col.Properties.Rules {
				if r != nil {
					descriptions = append(descriptions, deref(r.Description))
				}
			}
		}
		add(col.Name, descriptions)
	}
	for _, col := range p.NetworkRuleCollections {
		if col == nil {
			continue
		}
		var descriptions []string
		if col.Properties != nil {
			for _, r := range col.Properties.Rules {
				if r != nil {
					descriptions = append(descriptions, deref(r.Description))
				}
			}
		}
		add(col.Name, descriptions)
	}
	return out
}
