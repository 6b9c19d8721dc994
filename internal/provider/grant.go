package provider

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Opening, observing and closing the grants of one access request: what
// jit_access_request and the ephemeral jit_access share.

// grantPort is one port of a request as granted.
type grantPort struct {
	Port   jit.PortProtocol
	Source string
	End    time.Time
}

// grantRequest is what the cloud records of a request.
type grantRequest struct {
	ID            string
	Justification string
	Requestor     string
	Ports         []grantPort
}

// grantRule is one rule a request owns in the cloud.
type grantRule struct {
	TargetID string `tfsdk:"target_id"`
	Name     string `tfsdk:"name"`
	Priority int64  `tfsdk:"priority"`
	Port     int64  `tfsdk:"port"`
	Protocol string `tfsdk:"protocol"`
}

// machinePolicy reads the policy covering a machine from its tags.
func machinePolicy(m *jit.Machine) (name string, ports []jit.Port, ok bool, err error) {
	name, ports, ok, err = jit.PolicyFromTags(m.Tags)
	if err != nil {
		return "", nil, false, fmt.Errorf("%s carries a JIT policy whose tags cannot be read: %w", m.ID, err)
	}
	return name, ports, ok, nil
}

// openGrant writes the request's grant of every port in each NSG on the
// machine's path, with precedence over the JIT deny, and removes the
// grants of older requests for the same machine and port, which it
// supersedes. It is idempotent: a grant already in place is left alone.
// The NSGs stay locked from their read to their last write, so concurrent
// requests in this process never pick the same priority.
func (c *clients) openGrant(ctx context.Context, m *jit.Machine, policy string, req grantRequest) ([]grantRule, error) {
	if m.Cloud != jit.CloudAzure {
		return nil, fmt.Errorf("%s: access requests for EC2 instances are not supported yet", m.ID)
	}
	nsgs := m.FilterIDs()
	defer c.azure.Lock(nsgs...)()
	var owned []grantRule
	for _, nsg := range nsgs {
		rules, err := c.azure.SecurityRules(ctx, nsg)
		if err != nil {
			return owned, err
		}
		var plan jit.NSGPlan
		for _, gp := range req.Ports {
			name := jit.GrantRuleName(req.ID, m.ID, gp.Port)
			rules = slices.DeleteFunc(rules, func(r jit.NSGRule) bool {
				if r.Name != name && grantsSame(r, m, gp.Port) {
					plan.Remove = append(plan.Remove, r)
					return true
				}
				return false
			})
			rule, err := jit.PlanNSGGrant(jit.NSGGrant{
				NSG: nsg, Rules: rules, Policy: policy, Request: req.ID, Machine: m.ID, PrivateIPs: m.PrivateIPs(),
				Port: gp.Port, Source: gp.Source, End: gp.End, Requestor: req.Requestor, Justification: req.Justification,
			})
			if err != nil {
				return owned, err
			}
			i := slices.IndexFunc(rules, func(r jit.NSGRule) bool { return r.Name == name })
			switch {
			case i < 0:
				rules = append(rules, rule)
				plan.Add = append(plan.Add, rule)
			case rules[i].Priority != rule.Priority || !rules[i].Equivalent(rule):
				rules[i] = rule
				plan.Add = append(plan.Add, rule)
			}
			owned = append(owned, grantRule{TargetID: nsg, Name: rule.Name, Priority: int64(rule.Priority), Port: int64(gp.Port.Number), Protocol: string(gp.Port.Protocol)})
		}
		if err := c.azure.ApplyNSGPlan(ctx, nsg, plan); err != nil {
			return owned, err
		}
	}
	return owned, nil
}

// grantsSame tells whether r is a JIT grant of port to machine m: the kind
// of rule a newer request for that port supersedes.
func grantsSame(r jit.NSGRule, m *jit.Machine, port jit.PortProtocol) bool {
	mk, ok := jit.ParseMarker(r.Description)
	if !ok || mk.Kind != jit.MarkerGrant || !strings.EqualFold(string(r.Direction), string(jit.NSGInbound)) {
		return false
	}
	if !slices.Equal(r.DestinationPortRanges, []string{strconv.Itoa(port.Number)}) || !strings.EqualFold(string(r.Protocol), string(jit.NSGProtocolOf(port.Protocol))) {
		return false
	}
	got, want := slices.Clone(r.DestinationPrefixes), m.PrivateIPs()
	slices.Sort(got)
	slices.Sort(want)
	return slices.Equal(got, want)
}

// observedGrant is a request's grants as the cloud shows them.
type observedGrant struct {
	rules []grantRule
	// superseded ports have lost their grants to a newer request's.
	superseded map[jit.PortProtocol]bool
}

// observeGrant finds the request's rules in each NSG on the machine's path
// (m may be nil when the machine is gone) and in the NSGs it held rules in.
func (c *clients) observeGrant(ctx context.Context, m *jit.Machine, machineID, requestID string, ports []jit.PortProtocol, targets []string) (*observedGrant, error) {
	o := &observedGrant{superseded: map[jit.PortProtocol]bool{}}
	for _, nsg := range grantTargets(m, targets) {
		az, err := c.azureClient(nsg)
		if err != nil {
			return nil, err
		}
		rules, err := az.SecurityRules(ctx, nsg)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, port := range ports {
			name := jit.GrantRuleName(requestID, machineID, port)
			i := slices.IndexFunc(rules, func(r jit.NSGRule) bool { return r.Name == name })
			if i >= 0 {
				o.rules = append(o.rules, grantRule{TargetID: nsg, Name: name, Priority: int64(rules[i].Priority), Port: int64(port.Number), Protocol: string(port.Protocol)})
				continue
			}
			if m != nil && slices.ContainsFunc(rules, func(r jit.NSGRule) bool { return grantsSame(r, m, port) }) {
				o.superseded[port] = true
			}
		}
	}
	return o, nil
}

// closeGrant removes the request's rules for ports from each NSG on the
// machine's path (m may be nil) and from the NSGs it held rules in.
func (c *clients) closeGrant(ctx context.Context, m *jit.Machine, machineID, requestID string, ports []jit.PortProtocol, targets []string) error {
	nsgs := grantTargets(m, targets)
	if len(nsgs) == 0 {
		return nil
	}
	az, err := c.azureClient(nsgs[0])
	if err != nil {
		return err
	}
	defer az.Lock(nsgs...)()
	for _, nsg := range nsgs {
		var plan jit.NSGPlan
		for _, port := range ports {
			plan.Remove = append(plan.Remove, jit.NSGRule{Name: jit.GrantRuleName(requestID, machineID, port)})
		}
		if err := az.ApplyNSGPlan(ctx, nsg, plan); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// grantTargets is every NSG a request may hold rules in, once each.
func grantTargets(m *jit.Machine, targets []string) []string {
	var all []string
	if m != nil {
		all = append(all, m.FilterIDs()...)
	}
	all = append(all, targets...)
	seen := map[string]bool{}
	return slices.DeleteFunc(all, func(id string) bool {
		key := strings.ToLower(id)
		if seen[key] {
			return true
		}
		seen[key] = true
		return false
	})
}
