package azure

import (
	"context"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// SecurityRules reads an NSG's security rules (not its default rules,
// which sit at 65000+ and never decide before a JIT rule).
func (c *Client) SecurityRules(ctx context.Context, nsgID string) ([]jit.NSGRule, error) {
	id, network, err := c.parseNetworkID(nsgID)
	if err != nil {
		return nil, err
	}
	var nsg armnetwork.SecurityGroupsClientGetResponse
	err = withRetry(ctx, func(ctx context.Context) (err error) {
		nsg, err = network.NewSecurityGroupsClient().Get(ctx, id.ResourceGroupName, id.Name, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading network security group %s: %w", nsgID, notFound(err))
	}
	var rules []jit.NSGRule
	if nsg.Properties != nil {
		for _, r := range nsg.Properties.SecurityRules {
			if r != nil {
				rules = append(rules, fromSecurityRule(r))
			}
		}
	}
	return rules, nil
}

// ApplyNSGPlan writes one NSG's plan rule by rule through the security-rules
// API — never a whole-NSG PUT, which ignores ETags and would drop rules
// others wrote meanwhile. Removals go first so a moved deny's old priority
// is free; the caller holds the NSG's lock.
func (c *Client) ApplyNSGPlan(ctx context.Context, nsgID string, plan jit.NSGPlan) error {
	id, network, err := c.parseNetworkID(nsgID)
	if err != nil {
		return err
	}
	rules := network.NewSecurityRulesClient()
	for _, r := range plan.Remove {
		tflog.Info(ctx, "deleting NSG security rule", map[string]any{"nsg": nsgID, "rule": r.Name})
		err := withRetry(ctx, func(ctx context.Context) error {
			poller, err := rules.BeginDelete(ctx, id.ResourceGroupName, id.Name, r.Name, nil)
			if err != nil {
				return err
			}
			_, err = await(ctx, poller)
			return err
		})
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("deleting rule %s from network security group %s: %w", r.Name, nsgID, err)
		}
	}
	for _, r := range plan.Add {
		tflog.Info(ctx, "writing NSG security rule", map[string]any{
			"nsg": nsgID, "rule": r.Name, "priority": r.Priority, "access": string(r.Access),
			"ports": r.DestinationPortRanges, "sources": r.SourcePrefixes, "destinations": r.DestinationPrefixes,
		})
		err := withRetry(ctx, func(ctx context.Context) error {
			poller, err := rules.BeginCreateOrUpdate(ctx, id.ResourceGroupName, id.Name, r.Name, toSecurityRule(r), nil)
			if err != nil {
				return err
			}
			_, err = await(ctx, poller)
			return err
		})
		if err != nil {
			return fmt.Errorf("writing rule %s (priority %d) to network security group %s: %w", r.Name, r.Priority, nsgID, err)
		}
	}
	return nil
}

// Lock serialises this process's writes to the given NSGs and firewalls.
func (c *Client) Lock(ctx context.Context, ids ...string) (unlock func()) {
	return c.locks.Lock(ctx, ids...)
}

func (c *Client) parseNetworkID(resourceID string) (*arm.ResourceID, *armnetwork.ClientFactory, error) {
	id, err := arm.ParseResourceID(resourceID)
	if err != nil {
		return nil, nil, fmt.Errorf("%q is not an Azure resource ID: %w", resourceID, err)
	}
	network, err := c.networkClients(id.SubscriptionID)
	return id, network, err
}

func fromSecurityRule(r *armnetwork.SecurityRule) jit.NSGRule {
	out := jit.NSGRule{Name: deref(r.Name)}
	p := r.Properties
	if p == nil {
		return out
	}
	out.Priority = int(deref(p.Priority))
	out.Direction = jit.NSGDirection(deref(p.Direction))
	out.Access = jit.NSGAccess(deref(p.Access))
	out.Protocol = jit.NSGProtocol(deref(p.Protocol))
	out.Description = deref(p.Description)
	out.SourcePrefixes = merge(p.SourceAddressPrefix, p.SourceAddressPrefixes)
	out.DestinationPrefixes = merge(p.DestinationAddressPrefix, p.DestinationAddressPrefixes)
	out.SourcePortRanges = merge(p.SourcePortRange, p.SourcePortRanges)
	out.DestinationPortRanges = merge(p.DestinationPortRange, p.DestinationPortRanges)
	return out
}

// toSecurityRule uses ARM's singular properties for one value and the
// plural ones for several, as the portal and azurerm do.
func toSecurityRule(r jit.NSGRule) armnetwork.SecurityRule {
	p := &armnetwork.SecurityRulePropertiesFormat{
		Priority:    to.Ptr(int32(r.Priority)),
		Direction:   to.Ptr(armnetwork.SecurityRuleDirection(r.Direction)),
		Access:      to.Ptr(armnetwork.SecurityRuleAccess(r.Access)),
		Protocol:    to.Ptr(armnetwork.SecurityRuleProtocol(r.Protocol)),
		Description: to.Ptr(r.Description),
	}
	p.SourceAddressPrefix, p.SourceAddressPrefixes = split(r.SourcePrefixes)
	p.DestinationAddressPrefix, p.DestinationAddressPrefixes = split(r.DestinationPrefixes)
	p.SourcePortRange, p.SourcePortRanges = split(r.SourcePortRanges)
	p.DestinationPortRange, p.DestinationPortRanges = split(r.DestinationPortRanges)
	return armnetwork.SecurityRule{Name: to.Ptr(r.Name), Properties: p}
}

func merge(one *string, many []*string) []string {
	var out []string
	if s := deref(one); s != "" {
		out = append(out, s)
	}
	for _, s := range many {
		if v := deref(s); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func split(values []string) (*string, []*string) {
	switch len(values) {
	case 0:
		return to.Ptr("*"), nil
	case 1:
		return to.Ptr(values[0]), nil
	}
	many := make([]*string, len(values))
	for i := range values {
		many[i] = to.Ptr(values[i])
	}
	return nil, many
}

func isNotFound(err error) bool { return errors.Is(notFound(err), ErrNotFound) }
