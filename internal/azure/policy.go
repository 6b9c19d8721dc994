package azure

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
	"github.com/jitaccess/terraform-provider-jit/internal/locks"
)

// The Azure side of a policy: one inbound Deny per locked port in every NSG
// on each VM's path, and with a firewall a network rule collection there.

var (
	pathMachines = []any{"virtual_machine_ids"}
	pathFirewall = []any{"azure_firewall_id"}
)

// policyTargets are the NSGs and firewalls a policy plans or observes:
// those on its VMs' paths and those its prior state holds rules in.
type policyTargets struct {
	nsgs      []string // sorted case-insensitively, caller's spelling
	firewalls []string
	// behind are the policy's VMs behind each NSG, by lowercased ID.
	behind map[string][]jit.LockedMachine
	locked []jit.LockedMachine // every VM, for the firewall in front
	// owner maps a deny rule's name to its VM and port.
	owner map[string]engine.OwnedRule
}

// targetsOf is the one way plan and observe find a policy's NSGs and
// firewalls.
func targetsOf(in engine.PolicyInput) policyTargets {
	t := policyTargets{behind: map[string][]jit.LockedMachine{}, owner: map[string]engine.OwnedRule{}}
	nsgs, firewalls := map[string]string{}, map[string]string{}
	add := func(set map[string]string, id string) string {
		key := strings.ToLower(id)
		if _, ok := set[key]; !ok {
			set[key] = id
		}
		return key
	}
	locked := portProtocols(in.Ports)
	for _, m := range in.Machines {
		lm := jit.LockedMachine{Key: m.ID, PrivateIPs: m.PrivateIPs(), Ports: locked}
		t.locked = append(t.locked, lm)
		for _, nsg := range m.FilterIDs() {
			key := add(nsgs, nsg)
			t.behind[key] = append(t.behind[key], lm)
		}
		for _, port := range locked {
			t.owner[jit.DenyRuleName(in.Name, m.ID, port)] = engine.OwnedRule{MachineIDs: []string{m.ID}, Port: port}
		}
	}
	if in.FirewallID != "" {
		add(firewalls, in.FirewallID)
	}
	if in.Prior != nil {
		for _, r := range in.Prior.Rules {
			if isFirewallID(r.TargetID) {
				add(firewalls, r.TargetID)
			} else {
				add(nsgs, r.TargetID)
			}
		}
		if in.Prior.FirewallID != "" {
			add(firewalls, in.Prior.FirewallID)
		}
	}
	t.nsgs = sortedValues(nsgs)
	t.firewalls = sortedValues(firewalls)
	return t
}

func sortedValues(set map[string]string) []string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = set[k]
	}
	return out
}

func portProtocols(ports []jit.Port) []jit.PortProtocol {
	out := make([]jit.PortProtocol, len(ports))
	for i, p := range ports {
		out[i] = p.PortProtocol()
	}
	return out
}

// rule records a rule the policy owns in a target.
func (t policyTargets) rule(target string, name string, priority int) engine.OwnedRule {
	r := t.owner[name]
	r.TargetID, r.Name, r.Priority = target, name, priority
	return r
}

// PlanPolicy plans the policy's denies in each NSG and firewall, the
// removal of its expired grants there, and of its denies where no VM of it
// is behind any more.
func (b *Backend) PlanPolicy(ctx context.Context, in engine.PolicyInput) (*engine.PolicyChange, error) {
	t := targetsOf(in)
	change := &engine.PolicyChange{}
	var held *locks.Held
	if in.Lock && len(t.nsgs)+len(t.firewalls) > 0 {
		held = b.client.LockAll(ctx, slices.Concat(t.nsgs, t.firewalls)...)
		change.Unlock = held.ReleaseAll
	}
	b.client.ReadNSGs(ctx, t.nsgs)
	nsgPlans := map[string]jit.NSGPlan{}
	firewallPlans := map[string]jit.FirewallDenyPlan{}
	expiredCollections := map[string][]string{}
	writes := 0
	for _, fw := range t.firewalls {
		machines := t.locked
		if !strings.EqualFold(fw, in.FirewallID) {
			machines = nil // the policy left this firewall: remove its collection
		}
		plan, expired, findings := b.planFirewall(ctx, in, fw, machines)
		change.Findings = append(change.Findings, findings...)
		if jit.HasError(findings) {
			return change, nil
		}
		if plan == nil {
			continue
		}
		firewallPlans[fw], expiredCollections[fw] = *plan, expired
		if plan.Want != nil {
			for _, rule := range plan.Want.Rules {
				change.Rules = append(change.Rules, t.rule(fw, rule.Name, plan.Want.Priority))
			}
		}
		if plan.Changed || len(expired) > 0 {
			writes++
		}
	}
	for _, nsg := range t.nsgs {
		current, err := b.client.SecurityRules(ctx, nsg)
		if errors.Is(err, ErrNotFound) {
			continue // gone with whatever rules it held
		}
		if err != nil {
			return change, err
		}
		if f := defenderFinding(nsg, current, t.behind[strings.ToLower(nsg)]); f != nil {
			change.Findings = append(change.Findings, *f)
			return change, nil
		}
		var expired []jit.NSGRule
		current = slices.DeleteFunc(current, func(rule jit.NSGRule) bool {
			if v := jit.JudgeNSGGrant(rule, in.Name, in.Clock); v.OfPolicy && v.Expired {
				tflog.Info(ctx, "the policy removes an expired grant", map[string]any{"nsg": nsg, "rule": rule.Name, "end": v.Marker.End.Format(time.RFC3339)})
				expired = append(expired, rule)
				return true
			}
			return false
		})
		np, err := jit.PlanNSG(nsg, current, in.Name, t.behind[strings.ToLower(nsg)])
		if err != nil {
			change.Findings = append(change.Findings, jit.Error("No room for the JIT deny rules", err.Error(), pathMachines...))
			return change, nil
		}
		np.Remove = append(np.Remove, expired...)
		for _, w := range np.Warnings {
			change.Findings = append(change.Findings, jit.Warning("An existing rule keeps a locked port open", w, pathMachines...))
		}
		nsgPlans[nsg] = np
		writes += len(np.Add) + len(np.Remove)
		for _, rule := range slices.Concat(np.Keep, np.Add) {
			change.Rules = append(change.Rules, t.rule(nsg, rule.Name, rule.Priority))
		}
	}
	if writes > 0 {
		change.Write = func(ctx context.Context) error {
			return b.writePolicy(ctx, in.Name, nsgPlans, firewallPlans, expiredCollections, held)
		}
	}
	return change, nil
}

// writePolicy writes each NSG's plan and each firewall's collections, all
// in parallel, one write at a time within each; each object's lock is
// released as soon as its own writes end.
func (b *Backend) writePolicy(ctx context.Context, policy string, nsgs map[string]jit.NSGPlan, firewalls map[string]jit.FirewallDenyPlan, expired map[string][]string, held *locks.Held) error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	write := func(target string, w func() error) {
		wg.Go(func() {
			err := w()
			held.Release(target)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	for nsg, np := range nsgs {
		if len(np.Add) == 0 && len(np.Remove) == 0 {
			held.Release(nsg) // nothing to write there: free for others now
			continue
		}
		write(nsg, func() error {
			err := b.client.ApplyNSGPlan(ctx, nsg, np)
			if IsPriorityConflict(err) {
				err = fmt.Errorf("%w. Another writer took a priority the plan chose since the plan was made; nothing of theirs was changed. Run plan again to place the denies anew", err)
			}
			return engine.Fail("Cannot write JIT deny rules", err)
		})
	}
	for fw, fp := range firewalls {
		change := FirewallChange{Network: map[string]*jit.FirewallNetworkCollection{}, NAT: map[string]*jit.FirewallNATCollection{}}
		if fp.Changed {
			change.Network[jit.FirewallDenyCollectionName(policy)] = fp.Want
		}
		for _, name := range expired[fw] {
			change.Network[name], change.NAT[name] = nil, nil
		}
		if len(change.Network) == 0 {
			held.Release(fw)
			continue
		}
		write(fw, func() error {
			return engine.Fail("Cannot write the JIT deny collection", b.client.UpdateFirewall(ctx, fw, change))
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// planFirewall plans the policy's deny collection on one firewall; with
// no machines, its removal. A nil plan means nothing to do there.
func (b *Backend) planFirewall(ctx context.Context, in engine.PolicyInput, firewall string, machines []jit.LockedMachine) (*jit.FirewallDenyPlan, []string, []jit.Finding) {
	fw, err := b.client.Firewall(ctx, firewall)
	switch {
	case errors.Is(err, ErrNotFound) && machines == nil:
		return nil, nil, nil // gone, with the collection
	case errors.Is(err, ErrNotFound):
		return nil, nil, []jit.Finding{jit.Error("Azure Firewall not found", err.Error(), pathFirewall...)}
	case err != nil:
		return nil, nil, []jit.Finding{jit.Error("Cannot read Azure Firewall", err.Error(), pathFirewall...)}
	case fw.PolicyID != "" && machines != nil:
		return nil, nil, []jit.Finding{jit.Error("Azure Firewall is managed by a Firewall Policy",
			fmt.Sprintf("%s takes its rules from Firewall Policy %s; jit_policy writes classic network rule collections only. "+
				"Use a firewall with classic rules, or leave azure_firewall_id unset and rely on the NSG denies.", firewall, fw.PolicyID), pathFirewall...)}
	case fw.PolicyID != "":
		return nil, nil, nil // no classic collections to remove
	}
	plan, err := jit.PlanFirewallDeny(firewall, fw.NetworkCollections, in.Name, machines)
	if err != nil {
		return nil, nil, []jit.Finding{jit.Error("No room for the JIT deny collection", err.Error(), pathFirewall...)}
	}
	var findings []jit.Finding
	for _, w := range plan.Warnings {
		findings = append(findings, jit.Warning("An existing rule keeps a locked port open", w, pathFirewall...))
	}
	return &plan, expiredGrantCollections(fw, in.Name, in.Clock), findings
}

// expiredGrantCollections names the NAT collections on a firewall holding
// only expired grants of the policy; each has a network collection of the
// same name.
func expiredGrantCollections(fw *Firewall, policy string, clock jit.Clock) []string {
	var names []string
	for _, c := range fw.NATCollections {
		if len(c.Rules) == 0 {
			continue
		}
		expired := !slices.ContainsFunc(c.Rules, func(r jit.FirewallNATRule) bool {
			v := jit.JudgeGrant(r.Description, true, policy, clock)
			return !v.OfPolicy || !v.Expired
		})
		if expired {
			names = append(names, c.Name)
		}
	}
	return names
}

// ObservePolicy reads the policy's denies and its expired grants in the
// NSGs on its VMs' paths, those its state names, and its firewall.
func (b *Backend) ObservePolicy(ctx context.Context, in engine.PolicyInput) (*engine.PolicyObservation, error) {
	t := targetsOf(in)
	o := &engine.PolicyObservation{}
	b.client.ReadNSGs(ctx, t.nsgs)
	for _, fwID := range t.firewalls {
		fw, err := b.client.Firewall(ctx, fwID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, c := range expiredGrantCollections(fw, in.Name, in.Clock) {
			o.Expired = append(o.Expired, fwID+"/natRuleCollections/"+c)
		}
		for _, c := range fw.NetworkCollections {
			if c.Name != jit.FirewallDenyCollectionName(in.Name) {
				continue
			}
			for _, rule := range c.Rules {
				if jit.IsDenyOf(rule.Description, in.Name) {
					o.Rules = append(o.Rules, t.rule(fwID, rule.Name, c.Priority))
				}
			}
		}
	}
	for _, nsg := range t.nsgs {
		current, err := b.client.SecurityRules(ctx, nsg)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, rule := range current {
			if v := jit.JudgeNSGGrant(rule, in.Name, in.Clock); v.OfPolicy && v.Expired {
				o.Expired = append(o.Expired, nsg+"/securityRules/"+rule.Name)
			}
			if jit.IsDenyOf(rule.Description, in.Name) {
				o.Rules = append(o.Rules, t.rule(nsg, rule.Name, rule.Priority))
			}
		}
	}
	return o, nil
}

func isFirewallID(id string) bool {
	return strings.Contains(strings.ToLower(id), "/providers/microsoft.network/azurefirewalls/")
}
