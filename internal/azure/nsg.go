package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
	"github.com/jitaccess/terraform-provider-jit/internal/locks"
)

// SecurityRules reads an NSG's security rules (not its default rules,
// which sit at 65000+ and never decide before a JIT rule), once per
// provider process: the rules written since by this process are in what
// it returns, those of other writers are not (see ApplyNSGPlan).
func (c *Client) SecurityRules(ctx context.Context, nsgID string) ([]jit.NSGRule, error) {
	return c.nsgs.Get(ctx, nsgID, func(ctx context.Context) ([]jit.NSGRule, error) {
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
		return rulesOf(&nsg.SecurityGroup), nil
	})
}

// ReadNSGs reads the NSGs not read yet, at most readParallelism at a time,
// so that planning many NSGs waits for one read, not one per NSG. Errors
// are left for the reads that follow to report.
func (c *Client) ReadNSGs(ctx context.Context, ids []string) {
	_ = parallel(ids, func(id string) error {
		_, err := c.SecurityRules(ctx, id)
		return err
	})
}

func rulesOf(nsg *armnetwork.SecurityGroup) []jit.NSGRule {
	var rules []jit.NSGRule
	if nsg.Properties != nil {
		for _, r := range nsg.Properties.SecurityRules {
			if r != nil {
				rules = append(rules, fromSecurityRule(r))
			}
		}
	}
	return rules
}

func cloneRules(rules []jit.NSGRule) []jit.NSGRule {
	out := slices.Clone(rules)
	for i := range out {
		r := &out[i]
		r.SourcePrefixes, r.DestinationPrefixes = slices.Clone(r.SourcePrefixes), slices.Clone(r.DestinationPrefixes)
		r.SourcePortRanges, r.DestinationPortRanges = slices.Clone(r.SourcePortRanges), slices.Clone(r.DestinationPortRanges)
	}
	return out
}

// ApplyNSGPlan writes one NSG's plan rule by rule through the security-rules
// API — never a whole-NSG PUT, which ignores ETags and would drop rules
// others wrote meanwhile. The new rules go first, so that old denies being
// replaced (per-machine denies of earlier versions, a superseded grant)
// keep their ports closed until the new ones stand; removals go first only
// when a new rule takes the priority of one removed, or adding first would
// pass the NSG's limits. The caller holds the NSG's lock. Each write that
// ends is applied to the process's read of the NSG, from ARM's answer to
// it; a write that fails (a priority another writer took:
// SecurityRuleConflict) makes the NSG be read again next time.
func (c *Client) ApplyNSGPlan(ctx context.Context, nsgID string, plan jit.NSGPlan) error {
	id, network, err := c.parseNetworkID(nsgID)
	if err != nil {
		return err
	}
	rules := network.NewSecurityRulesClient()
	remove := func() error {
		for _, r := range plan.Remove {
			tflog.Info(ctx, "deleting NSG security rule", map[string]any{"nsg": nsgID, "rule": r.Name})
			err := withRetry(ctx, func(ctx context.Context) error {
				var initial *http.Response
				poller, err := rules.BeginDelete(policy.WithCaptureResponse(ctx, &initial), id.ResourceGroupName, id.Name, r.Name, nil)
				if err != nil {
					return err
				}
				return await(ctx, poller, initial)
			})
			if err != nil && !isNotFound(err) {
				c.nsgs.Forget(nsgID)
				return fmt.Errorf("deleting rule %s from network security group %s: %w", r.Name, nsgID, err)
			}
			c.nsgs.Update(nsgID, func(have []jit.NSGRule) []jit.NSGRule { return withoutRule(have, r.Name) })
		}
		return nil
	}
	add := func() error {
		for _, r := range plan.Add {
			tflog.Info(ctx, "writing NSG security rule", map[string]any{
				"nsg": nsgID, "rule": r.Name, "priority": r.Priority, "access": string(r.Access),
				"ports": r.DestinationPortRanges, "sources": r.SourcePrefixes, "destinations": r.DestinationPrefixes,
			})
			var initial *http.Response
			err := withRetry(ctx, func(ctx context.Context) error {
				poller, err := rules.BeginCreateOrUpdate(policy.WithCaptureResponse(ctx, &initial), id.ResourceGroupName, id.Name, r.Name, toSecurityRule(r), nil)
				if err != nil {
					return err
				}
				return await(ctx, poller, initial)
			})
			if err != nil {
				c.nsgs.Forget(nsgID)
				return fmt.Errorf("writing rule %s (priority %d) to network security group %s: %w", r.Name, r.Priority, nsgID, err)
			}
			written, ok := answer[armnetwork.SecurityRule](initial)
			if !ok {
				c.nsgs.Forget(nsgID)
				continue
			}
			c.nsgs.Update(nsgID, func(have []jit.NSGRule) []jit.NSGRule {
				return append(withoutRule(have, r.Name), fromSecurityRule(&written))
			})
		}
		return nil
	}
	if len(plan.Add) > 0 && len(plan.Remove) > 0 && !c.roomToAddFirst(ctx, nsgID, plan) {
		if err := remove(); err != nil {
			return err
		}
		return add()
	}
	if err := add(); err != nil {
		return err
	}
	return remove()
}

// roomToAddFirst tells whether a plan's new rules can be written before
// its removals: none takes the priority of a rule removed, and the NSG
// holding both stays within ARM's limits.
func (c *Client) roomToAddFirst(ctx context.Context, nsgID string, plan jit.NSGPlan) bool {
	for _, a := range plan.Add {
		if slices.ContainsFunc(plan.Remove, func(r jit.NSGRule) bool {
			return r.Priority == a.Priority && strings.EqualFold(string(r.Direction), string(a.Direction))
		}) {
			return false
		}
	}
	have, err := c.SecurityRules(ctx, nsgID)
	if err != nil {
		return false
	}
	both := slices.Clone(have)
	for _, a := range plan.Add {
		both = append(withoutRule(both, a.Name), a)
	}
	return len(both) <= jit.NSGMaxRules && jit.NSGAddressCount(both) <= jit.NSGMaxAddresses
}

// withoutRule drops the rule named name (ARM compares names without case).
func withoutRule(rules []jit.NSGRule, name string) []jit.NSGRule {
	return slices.DeleteFunc(rules, func(r jit.NSGRule) bool { return strings.EqualFold(r.Name, name) })
}

// Lock serialises this process's writes to the given NSGs and firewalls.
func (c *Client) Lock(ctx context.Context, ids ...string) (unlock func()) {
	return c.locks.Lock(ctx, ids...)
}

// LockAll locks the given NSGs and firewalls, to be released one by one
// as the writes to each end.
func (c *Client) LockAll(ctx context.Context, ids ...string) *locks.Held {
	return c.locks.LockAll(ctx, ids...)
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
