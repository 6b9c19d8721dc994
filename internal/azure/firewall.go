package azure

import (
	"context"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Firewall is what a policy needs to know of an Azure Firewall.
type Firewall struct {
	ID string
	// PolicyID is the Firewall Policy managing the firewall's rules, if
	// any: such a firewall has no classic rule collections to write.
	PolicyID           string
	NetworkCollections []jit.FirewallNetworkCollection
}

// Firewall reads a firewall's classic network rule collections.
func (c *Client) Firewall(ctx context.Context, firewallID string) (*Firewall, error) {
	fw, err := c.getFirewall(ctx, firewallID)
	if err != nil {
		return nil, err
	}
	out := &Firewall{ID: firewallID}
	if p := fw.Properties; p != nil {
		if p.FirewallPolicy != nil {
			out.PolicyID = deref(p.FirewallPolicy.ID)
		}
		for _, col := range p.NetworkRuleCollections {
			if col != nil {
				out.NetworkCollections = append(out.NetworkCollections, fromNetworkCollection(col))
			}
		}
	}
	return out, nil
}

// PutFirewallNetworkCollection sets the network rule collection named name
// to want, or removes it when want is nil. A firewall is written whole, so
// each attempt reads it right before writing it back with only that
// collection changed: collections others wrote meanwhile are kept. The
// caller holds the firewall's lock, which serialises this process's writes.
func (c *Client) PutFirewallNetworkCollection(ctx context.Context, firewallID, name string, want *jit.FirewallNetworkCollection) error {
	id, network, err := c.parseNetworkID(firewallID)
	if err != nil {
		return err
	}
	client := network.NewAzureFirewallsClient()
	err = withRetry(ctx, func(ctx context.Context) error {
		fw, err := c.getFirewall(ctx, firewallID)
		if err != nil {
			return err
		}
		if fw.Properties == nil {
			fw.Properties = &armnetwork.AzureFirewallPropertiesFormat{}
		}
		if fw.Properties.FirewallPolicy != nil {
			return fmt.Errorf("Azure Firewall %s is managed by Firewall Policy %s; jit writes classic rule collections only", firewallID, deref(fw.Properties.FirewallPolicy.ID))
		}
		var cols []*armnetwork.AzureFirewallNetworkRuleCollection
		for _, col := range fw.Properties.NetworkRuleCollections {
			if col != nil && !strings.EqualFold(deref(col.Name), name) {
				cols = append(cols, col)
			}
		}
		if want != nil {
			cols = append(cols, toNetworkCollection(*want))
		}
		fw.Properties.NetworkRuleCollections = cols
		poller, err := client.BeginCreateOrUpdate(ctx, id.ResourceGroupName, id.Name, fw, nil)
		if err != nil {
			return err
		}
		_, err = poller.PollUntilDone(ctx, pollOptions)
		return err
	})
	if err != nil {
		return fmt.Errorf("writing network rule collection %s to Azure Firewall %s: %w", name, firewallID, err)
	}
	return nil
}

func (c *Client) getFirewall(ctx context.Context, firewallID string) (armnetwork.AzureFirewall, error) {
	id, network, err := c.parseNetworkID(firewallID)
	if err != nil {
		return armnetwork.AzureFirewall{}, err
	}
	resp, err := network.NewAzureFirewallsClient().Get(ctx, id.ResourceGroupName, id.Name, nil)
	if err != nil {
		return armnetwork.AzureFirewall{}, fmt.Errorf("reading Azure Firewall %s: %w", firewallID, notFound(err))
	}
	return resp.AzureFirewall, nil
}

func fromNetworkCollection(col *armnetwork.AzureFirewallNetworkRuleCollection) jit.FirewallNetworkCollection {
	out := jit.FirewallNetworkCollection{Name: deref(col.Name)}
	p := col.Properties
	if p == nil {
		return out
	}
	out.Priority = int(deref(p.Priority))
	if p.Action != nil {
		out.Action = jit.FirewallAction(deref(p.Action.Type))
	}
	for _, r := range p.Rules {
		if r == nil {
			continue
		}
		rule := jit.FirewallNetworkRule{
			Name: deref(r.Name), Description: deref(r.Description),
			SourceAddresses: derefAll(r.SourceAddresses), DestinationAddresses: derefAll(r.DestinationAddresses),
			DestinationPorts: derefAll(r.DestinationPorts),
		}
		for _, proto := range r.Protocols {
			rule.Protocols = append(rule.Protocols, string(deref(proto)))
		}
		out.Rules = append(out.Rules, rule)
	}
	return out
}

func toNetworkCollection(col jit.FirewallNetworkCollection) *armnetwork.AzureFirewallNetworkRuleCollection {
	rules := make([]*armnetwork.AzureFirewallNetworkRule, len(col.Rules))
	for i, r := range col.Rules {
		rule := &armnetwork.AzureFirewallNetworkRule{
			Name: to.Ptr(r.Name), Description: to.Ptr(r.Description),
			SourceAddresses: to.SliceOfPtrs(r.SourceAddresses...), DestinationAddresses: to.SliceOfPtrs(r.DestinationAddresses...),
			DestinationPorts: to.SliceOfPtrs(r.DestinationPorts...),
		}
		for _, proto := range r.Protocols {
			rule.Protocols = append(rule.Protocols, to.Ptr(armnetwork.AzureFirewallNetworkRuleProtocol(proto)))
		}
		rules[i] = rule
	}
	return &armnetwork.AzureFirewallNetworkRuleCollection{
		Name: to.Ptr(col.Name),
		Properties: &armnetwork.AzureFirewallNetworkRuleCollectionPropertiesFormat{
			Priority: to.Ptr(int32(col.Priority)),
			Action:   &armnetwork.AzureFirewallRCAction{Type: to.Ptr(armnetwork.AzureFirewallRCActionType(col.Action))},
			Rules:    rules,
		},
	}
}

func derefAll(values []*string) []string {
	var out []string
	for _, v := range values {
		if v != nil {
			out = append(out, *v)
		}
	}
	return out
}
