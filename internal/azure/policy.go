package azure

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
	"github.com/jitaccess/terraform-provider-jit/internal/locks"
)

// The Azure side of a policy: in every NSG on its VMs' paths, one inbound
// Deny per locked port and address family covering every VM of the policy
// behind that NSG, and with a firewall a network rule collection there.
// The core's PlanPolicyPaths places them on the whole path; this file
// reads what it needs, writes what it plans, and places again when
// another writer takes a chosen priority first.

var (
	pathMachines = []any{"virtual_machine_ids"}
	pathFirewall = []any{"azure_firewall_id"}
)

// policyTargets are the NSGs and firewalls a policy plans or observes:
// those on its VMs' paths and those its prior state holds rules in.
type policyTargets struct {
	nsgs      []string // sorted case-insensitively, caller's spelling
	firewalls []string
}

// targetsOf is the one way plan and observe find a policy's NSGs and
// firewalls.
func targetsOf(in engine.PolicyInput) policyTargets {
	nsgs, firewalls := map[string]string{}, map[string]string{}
	add := func(set map[string]string, id string) {
		if key := strings.ToLower(id); set[key] == "" {
			set[key] = id
		}
	}
	for _, m := range in.Machines {
		for _, nsg := range m.FilterIDs() {
			add(nsgs, nsg)
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
	return policyTargets{nsgs: sortedValues(nsgs), firewalls: sortedValues(firewalls)}
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

// pathsPlan is a policy planned on its machines' paths from what the cloud
// holds now: what PlanPolicy writes and ObservePolicy compares with.
type pathsPlan struct {
	jit.PolicyPathPlan
	// read are the rules of each NSG that exists, as read.
	read map[string][]jit.NSGRule
	// dropped are the policy's grants the plan removes before placing its
	// denies, by NSG: those that ended and those that no longer fit it.
	dropped map[string][]jit.NSGRule
	// left plans the removal of the policy's collection from each firewall
	// it no longer denies through.
	left map[string]jit.FirewallDenyPlan
	// expired names, by firewall, the grant collections that ended.
	expired map[string][]string
}

// planPaths reads the policy's NSGs and firewalls and plans it on its
// machines' paths. Errors that are the configuration's are findings.
func (b *Backend) planPaths(ctx context.Context, in engine.PolicyInput, t policyTargets) (*pathsPlan, error) {
	pp := &pathsPlan{read: map[string][]jit.NSGRule{}, dropped: map[string][]jit.NSGRule{}, left: map[string]jit.FirewallDenyPlan{}, expired: map[string][]string{}}
	input := jit.PolicyPathInput{Policy: in.Name, NSGs: map[string][]jit.NSGRule{}}
	var fw *Firewall
	var grantSources []string // where grants through the firewall come from
	if in.FirewallID != "" {
		var f jit.Finding
		if fw, f = b.configuredFirewall(ctx, in.FirewallID); fw == nil {
			pp.Findings = append(pp.Findings, f)
			return pp, nil
		}
		if snat := b.client.SNATSource(ctx, fw); snat != "" {
			grantSources = append(grantSources, snat)
		}
	}
	honoured := map[string]bool{}
	for _, nsg := range t.nsgs {
		rules, err := b.client.SecurityRules(ctx, nsg)
		if errors.Is(err, ErrNotFound) {
			continue // gone with whatever rules it held
		}
		if err != nil {
			return nil, err
		}
		pp.read[strings.ToLower(nsg)] = rules
		kept := make([]jit.NSGRule, 0, len(rules))
		for _, r := range rules {
			switch keep, why := judgeGrant(r, in, grantSources); {
			case why != "":
				tflog.Info(ctx, "the policy removes a grant of its own", map[string]any{"nsg": nsg, "rule": r.Name, "reason": why})
				pp.dropped[nsg] = append(pp.dropped[nsg], r)
				if !strings.HasPrefix(why, "it ended") {
					pp.Findings = append(pp.Findings, jit.Warning("A grant that does not fit the policy is removed",
						fmt.Sprintf("Rule %s of network security group %s is marked as a grant of policy %q, but %s. The policy does not honour it: the apply removes it.", r.Name, nsg, in.Name, why),
						pathMachines...))
				}
				continue
			case keep:
				honoured[strings.ToLower(nsg)+"|"+r.Name] = true
			}
			kept = append(kept, r)
		}
		input.NSGs[nsg] = kept
	}
	input.HonouredGrant = func(nsg string, r jit.NSGRule) bool { return honoured[strings.ToLower(nsg)+"|"+r.Name] }
	locked := portProtocols(in.Ports)
	for _, m := range in.Machines {
		pm := jit.PathMachine{Key: m.ID, Ports: locked}
		for _, nic := range m.Interfaces {
			pi := jit.PathInterface{IPs: nic.PrivateIPs}
			if _, ok := pp.read[strings.ToLower(nic.SubnetNetworkSecurityGroupID)]; ok {
				pi.SubnetNSG = nic.SubnetNetworkSecurityGroupID
			}
			if _, ok := pp.read[strings.ToLower(nic.NetworkSecurityGroupID)]; ok {
				pi.NICNSG = nic.NetworkSecurityGroupID
			}
			pm.Interfaces = append(pm.Interfaces, pi)
		}
		input.Machines = append(input.Machines, pm)
	}
	if fw != nil {
		expired := expiredGrantCollections(fw, in.Name, in.Clock)
		pp.expired[fw.ID] = expired
		input.Firewall = &jit.FirewallPathInput{
			ID: in.FirewallID,
			Collections: slices.DeleteFunc(slices.Clone(fw.NetworkCollections), func(c jit.FirewallNetworkCollection) bool {
				return slices.Contains(expired, c.Name)
			}),
			HonouredGrant: func(c jit.FirewallNetworkCollection) bool {
				// Only an Allow collection can grant: a Deny copying a
				// grant's marker is someone else's Deny.
				allow := strings.EqualFold(string(c.Action), string(jit.FirewallAllow))
				return allow && jit.IsFirewallGrantCollection(c.Name) && len(c.Rules) > 0 && !slices.ContainsFunc(c.Rules, func(r jit.FirewallNetworkRule) bool {
					v := jit.JudgeGrant(r.Description, allow, in.Name, in.Clock)
					return !v.OfPolicy || v.Expired
				})
			},
		}
	}
	for _, id := range t.firewalls {
		if strings.EqualFold(id, in.FirewallID) {
			continue
		}
		plan, expired, err := b.leaveFirewall(ctx, in, id)
		if err != nil {
			return nil, err
		}
		if plan != nil {
			pp.left[id], pp.expired[id] = *plan, expired
		}
	}
	plan := jit.PlanPolicyPaths(input)
	plan.Findings = append(pp.Findings, plan.Findings...)
	pp.PolicyPathPlan = plan
	return pp, nil
}

// judgeGrant tells whether the policy honours a rule as one of its grants
// (keep), or removes it, and why: it ended, or it does not fit the policy
// (anyone who can write a rule can write a grant's marker). Other rules
// are neither.
func judgeGrant(r jit.NSGRule, in engine.PolicyInput, extraSources []string) (keep bool, why string) {
	v := jit.JudgeNSGGrant(r, in.Name, in.Clock)
	switch {
	case !v.OfPolicy:
		return false, ""
	case v.Expired:
		return false, "it ended at " + v.Marker.End.Format(time.RFC3339)
	case in.Ports == nil:
		return true, "" // the policy goes: its live grants go with their requests
	}
	if fits, why := jit.NSGGrantClaim(r, v.Marker).FitsPolicy(in.Name, in.Ports, extraSources...); !fits {
		return false, why
	}
	return true, ""
}

// configuredFirewall reads the firewall the policy denies through, or
// says why it cannot.
func (b *Backend) configuredFirewall(ctx context.Context, id string) (*Firewall, jit.Finding) {
	fw, err := b.client.Firewall(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, jit.Error("Azure Firewall not found", err.Error(), pathFirewall...)
	case err != nil:
		return nil, jit.Error("Cannot read Azure Firewall", err.Error(), pathFirewall...)
	case fw.PolicyID != "":
		return nil, jit.Error("Azure Firewall is managed by a Firewall Policy",
			fmt.Sprintf("%s takes its rules from Firewall Policy %s; jit_policy writes classic network rule collections only. "+
				"Use a firewall with classic rules, or leave azure_firewall_id unset and rely on the NSG denies.", id, fw.PolicyID), pathFirewall...)
	}
	return fw, jit.Finding{}
}

// leaveFirewall plans the removal of the policy's collection from a
// firewall it no longer denies through; nil when there is nothing there.
func (b *Backend) leaveFirewall(ctx context.Context, in engine.PolicyInput, id string) (*jit.FirewallDenyPlan, []string, error) {
	fw, err := b.client.Firewall(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil, nil // gone, with the collection
	case err != nil:
		return nil, nil, err
	case fw.PolicyID != "":
		return nil, nil, nil // no classic collections to remove
	}
	plan, err := jit.PlanFirewallDenyRemoval(id, fw.NetworkCollections, in.Name)
	if err != nil {
		return nil, nil, err
	}
	return &plan, expiredGrantCollections(fw, in.Name, in.Clock), nil
}

// ownedRules are the denies the plan leaves the policy owning. A priority
// is known (non-zero) only where the rule already sits there: a new or
// moved deny is placed at apply, against the NSG as it is then, so that
// other writers (other policies of the same apply among them) never make
// the apply differ from what the plan showed.
func (pp *pathsPlan) ownedRules(known bool) []engine.OwnedRule {
	var out []engine.OwnedRule
	for _, d := range pp.Denies {
		r := engine.OwnedRule{MachineIDs: d.MachineKeys, TargetID: d.Target, Name: d.Name, Priority: d.Priority, Port: d.Port}
		if !known && !pp.sitsThere(d) {
			r.Priority = 0
		}
		out = append(out, r)
	}
	return out
}

// sitsThere tells whether a planned deny is already in the cloud at its
// planned priority.
func (pp *pathsPlan) sitsThere(d jit.PlannedDeny) bool {
	if isFirewallID(d.Target) {
		return pp.Firewall != nil && pp.Firewall.Have != nil && pp.Firewall.Have.Priority == d.Priority
	}
	return slices.ContainsFunc(pp.read[strings.ToLower(d.Target)], func(r jit.NSGRule) bool {
		return r.Name == d.Name && r.Priority == d.Priority
	})
}

// nsgPlan is what the apply writes in one NSG: the planner's plan and the
// removal of the grants dropped there.
func (pp *pathsPlan) nsgPlan(nsg string) jit.NSGPlan {
	np := pp.NSGs[nsg]
	np.Remove = append(slices.Clone(np.Remove), pp.dropped[nsg]...)
	return np
}

// PlanPolicy plans the policy's denies on its machines' paths, the removal
// of its grants that ended or no longer fit it, and of its denies where no
// machine of it is behind any more.
func (b *Backend) PlanPolicy(ctx context.Context, in engine.PolicyInput) (*engine.PolicyChange, error) {
	t := targetsOf(in)
	change := &engine.PolicyChange{}
	var held *locks.Held
	if in.Lock && len(t.nsgs)+len(t.firewalls) > 0 {
		held = b.client.LockAll(ctx, slices.Concat(t.nsgs, t.firewalls)...)
		change.Unlock = held.ReleaseAll
	}
	b.client.ReadNSGs(ctx, t.nsgs)
	pp, err := b.planPaths(ctx, in, t)
	if err != nil {
		return change, err
	}
	change.Findings = pp.Findings
	if jit.HasError(pp.Findings) {
		return change, nil
	}
	change.Rules = pp.ownedRules(false)
	writes := 0
	for _, nsg := range t.nsgs {
		np := pp.nsgPlan(nsg)
		writes += len(np.Add) + len(np.Remove)
	}
	if pp.Firewall != nil && (pp.Firewall.Changed || len(pp.expired[in.FirewallID]) > 0) {
		writes++
	}
	for id, plan := range pp.left {
		if plan.Changed || len(pp.expired[id]) > 0 {
			writes++
		}
	}
	if writes > 0 {
		change.Write = func(ctx context.Context) error {
			err := b.writePolicy(ctx, in, t, pp, held)
			change.Rules = pp.ownedRules(true)
			return err
		}
	}
	return change, nil
}

// writePolicy writes each NSG's plan and each firewall's collections, all
// in parallel, one write at a time within each; each object's lock is
// released as soon as its own writes end. A deny whose priority another
// writer took since the read is placed again in that NSG, read anew.
//
// When ARM refuses a write outright (HTTP 400: a limit reached since the
// plan, which the plan could not know), nothing of that write exists, and
// what this apply wrote elsewhere is rolled back, so that the policy is
// never left half-written.
func (b *Backend) writePolicy(ctx context.Context, in engine.PolicyInput, t policyTargets, pp *pathsPlan, held *locks.Held) error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	undo := newUndoLog()
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
	for _, nsg := range t.nsgs {
		np := pp.nsgPlan(nsg)
		if len(np.Add) == 0 && len(np.Remove) == 0 {
			held.Release(nsg) // nothing to write there: free for others now
			continue
		}
		undo.nsgBefore(nsg, pp.read[strings.ToLower(nsg)])
		write(nsg, func() error {
			placed := false
			err := placeAgainOnConflict(ctx, nsg, func(ctx context.Context) error {
				if placed {
					var err error
					if np, err = b.placeAgain(ctx, in, t, pp, nsg, &mu); err != nil {
						return err
					}
				}
				placed = true
				undo.nsgWrites(nsg, np)
				return b.client.ApplyNSGPlan(ctx, nsg, np)
			})
			if IsPriorityConflict(err) {
				err = fmt.Errorf("%w. Other writers kept taking the priorities chosen for the denies; nothing of theirs was changed. Run the apply again", err)
			}
			return engine.Fail("Cannot write JIT deny rules", err)
		})
	}
	firewalls := map[string]*jit.FirewallDenyPlan{}
	if pp.Firewall != nil {
		firewalls[in.FirewallID] = pp.Firewall
	}
	for id, plan := range pp.left {
		firewalls[id] = &plan
	}
	for fw, fp := range firewalls {
		change := FirewallChange{Network: map[string]*jit.FirewallNetworkCollection{}, NAT: map[string]*jit.FirewallNATCollection{}}
		if fp.Changed {
			change.Network[jit.FirewallDenyCollectionName(in.Name)] = fp.Want
		}
		for _, name := range pp.expired[fw] {
			change.Network[name], change.NAT[name] = nil, nil
		}
		if len(change.Network) == 0 {
			held.Release(fw)
			continue
		}
		if have, err := b.client.Firewall(ctx, fw); err == nil {
			undo.firewallBefore(fw, have, change)
		}
		write(fw, func() error {
			return engine.Fail("Cannot write the JIT deny collection", b.client.UpdateFirewall(ctx, fw, change))
		})
	}
	wg.Wait()
	if slices.ContainsFunc(errs, isRefusal) {
		errs = append(errs, b.rollBack(ctx, undo))
	}
	return errors.Join(errs...)
}

// placeAgain plans the policy again after another writer took a priority
// in nsg: that NSG is read anew (the others are as this process last saw
// them), and its new plan replaces the old one in pp. The denies there
// must cover the same machines as reviewed; otherwise the apply stops.
func (b *Backend) placeAgain(ctx context.Context, in engine.PolicyInput, t policyTargets, pp *pathsPlan, nsg string, mu *sync.Mutex) (jit.NSGPlan, error) {
	b.client.nsgs.Forget(nsg)
	again, err := b.planPaths(ctx, in, t)
	if err != nil {
		return jit.NSGPlan{}, err
	}
	if jit.HasError(again.Findings) {
		return jit.NSGPlan{}, fmt.Errorf("placing the denies again in network security group %s after another writer changed it: %s", nsg, firstError(again.Findings))
	}
	mu.Lock()
	defer mu.Unlock()
	mine := func(d jit.PlannedDeny) bool { return strings.EqualFold(d.Target, nsg) }
	before, after := slices.Clone(pp.Denies), slices.Clone(again.Denies)
	before, after = slices.DeleteFunc(before, func(d jit.PlannedDeny) bool { return !mine(d) }), slices.DeleteFunc(after, func(d jit.PlannedDeny) bool { return !mine(d) })
	same := slices.EqualFunc(before, after, func(a, b jit.PlannedDeny) bool {
		return a.Name == b.Name && a.Port == b.Port && a.Family == b.Family && slices.Equal(a.MachineKeys, b.MachineKeys)
	})
	if !same {
		return jit.NSGPlan{}, fmt.Errorf("another writer changed network security group %s since the plan, so the denies there would no longer cover the machines the plan showed; nothing of theirs was changed. Run plan again", nsg)
	}
	pp.Denies = append(slices.DeleteFunc(pp.Denies, mine), after...)
	pp.NSGs[nsg] = again.NSGs[nsg]
	pp.read[strings.ToLower(nsg)] = again.read[strings.ToLower(nsg)]
	pp.dropped[nsg] = again.dropped[nsg]
	return pp.nsgPlan(nsg), nil
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

// ObservePolicy reads what the policy holds on its machines' paths: its
// denies that are as the policy wants them, so that a deny someone edited,
// moved out of place or deleted shows in the next plan as written again;
// its rules no longer wanted, so their removal shows; and its grants that
// ended or no longer fit it.
func (b *Backend) ObservePolicy(ctx context.Context, in engine.PolicyInput) (*engine.PolicyObservation, error) {
	t := targetsOf(in)
	o := &engine.PolicyObservation{}
	b.client.ReadNSGs(ctx, t.nsgs)
	pp, err := b.planPaths(ctx, in, t)
	if err != nil {
		return nil, err
	}
	for fw, names := range pp.expired {
		for _, c := range names {
			o.Expired = append(o.Expired, fw+"/natRuleCollections/"+c)
		}
	}
	for nsg, rules := range pp.dropped {
		for _, r := range rules {
			o.Expired = append(o.Expired, nsg+"/securityRules/"+r.Name)
		}
	}
	if jit.HasError(pp.Findings) {
		// Nothing can be placed as things are: every rule the policy owns
		// is reported as it is.
		for _, nsg := range t.nsgs {
			for _, r := range pp.read[strings.ToLower(nsg)] {
				if jit.IsDenyOf(r.Description, in.Name) {
					o.Rules = append(o.Rules, ownedRuleOf(nsg, r, in.Machines))
				}
			}
		}
		return o, nil
	}
	for _, d := range pp.Denies {
		keep := slices.ContainsFunc(pp.NSGs[d.Target].Keep, func(r jit.NSGRule) bool { return r.Name == d.Name })
		if isFirewallID(d.Target) {
			keep = pp.Firewall != nil && !pp.Firewall.Changed
		}
		if keep {
			o.Rules = append(o.Rules, engine.OwnedRule{MachineIDs: d.MachineKeys, TargetID: d.Target, Name: d.Name, Priority: d.Priority, Port: d.Port})
		}
	}
	for nsg, np := range pp.NSGs {
		for _, r := range np.Remove {
			o.Rules = append(o.Rules, ownedRuleOf(nsg, r, in.Machines))
		}
	}
	for id, plan := range pp.left {
		if plan.Have != nil {
			for _, r := range plan.Have.Rules {
				o.Rules = append(o.Rules, engine.OwnedRule{MachineIDs: []string{}, TargetID: id, Name: r.Name, Priority: plan.Have.Priority})
			}
		}
	}
	return o, nil
}

// ownedRuleOf is a rule of the policy as found in an NSG: its port, and
// the machines whose addresses it names.
func ownedRuleOf(nsg string, r jit.NSGRule, machines []*jit.Machine) engine.OwnedRule {
	o := engine.OwnedRule{MachineIDs: []string{}, TargetID: nsg, Name: r.Name, Priority: r.Priority}
	o.Port, _ = jit.RulePort(r)
	for _, m := range machines {
		if slices.ContainsFunc(m.PrivateIPs(), func(ip string) bool { return namesAddress(r.DestinationPrefixes, ip) }) {
			o.MachineIDs = append(o.MachineIDs, m.ID)
		}
	}
	return o
}

// namesAddress tells whether a rule's address list names ip itself.
func namesAddress(list []string, ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(list, func(s string) bool {
		if p, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil {
			return p.IsSingleIP() && p.Addr().Unmap() == a.Unmap()
		}
		b, err := netip.ParseAddr(strings.TrimSpace(s))
		return err == nil && b.Unmap() == a.Unmap()
	})
}

// firstError is the first error finding's summary and detail.
func firstError(findings []jit.Finding) string {
	for _, f := range findings {
		if f.Severity == jit.SeverityError {
			return f.Summary + ": " + f.Detail
		}
	}
	return ""
}

func isFirewallID(id string) bool {
	return strings.Contains(strings.ToLower(id), "/providers/microsoft.network/azurefirewalls/")
}
