package azure

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
	"github.com/jitaccess/terraform-provider-jit/internal/readcache"
)

// An Azure grant is an inbound Allow per port in each NSG on the VM's path,
// ahead of the JIT deny, and, when the policy denies through an Azure
// Firewall, a DNAT rule there from a mapped port of its public address.

// GrantTargets counts each NSG on the path, and the policy's firewall.
func (b *Backend) GrantTargets(m *jit.Machine) int {
	n := len(m.FilterIDs())
	if m.Tags[jit.TagFirewall] != "" {
		n++
	}
	return n
}

// CheckGrant places the grants in each NSG on the path as they are now,
// without writing, so that a grant that could not work (a rule of others
// denies the requester, or no priority is free before the JIT deny) fails
// the plan, naming that rule. Through a firewall the source the VM sees is
// the firewall's, which apply reads.
func (b *Backend) CheckGrant(ctx context.Context, m *jit.Machine, g engine.Grant) []jit.Finding {
	var findings []jit.Finding
	// The record may take up to three more of the VM's tags (the
	// requestor, known at apply, may take one more than counted here).
	need := len(recordTags(g))
	if others, ok := b.client.seats.take(m.ID, requestKey(g), len(m.Tags), need); !ok {
		planned := ""
		if others > 0 {
			planned = fmt.Sprintf(" and other requests planned with this one take %d more", others)
		}
		findings = append(findings, jit.Error("No room for the request's record",
			fmt.Sprintf("Virtual machine %s carries %d tags%s; a request records who asked and why in %d more (jit-record-<request>-…), and Azure allows %d per resource. "+
				"Remove tags the VM does not need, or let older requests end: revoke-expired removes their records.", m.ID, len(m.Tags), planned, need, maxTags),
			"virtual_machine_id"))
	}
	if id := m.Tags[jit.TagFirewall]; id != "" {
		fw, err := b.client.Firewall(ctx, id)
		if err != nil {
			return append(findings, jit.Error("Cannot read the policy's Azure Firewall", err.Error(), "virtual_machine_id"))
		}
		own := jit.FirewallGrantCollectionName(g.ID, m.ID)
		if err := fw.dnatRoom(len(g.Ports), func(name string) bool { return name != own }); err != nil {
			findings = append(findings, jit.Error("No room for the grant's DNAT rules", err.Error(), "port"))
		}
		return findings
	}
	for _, nsg := range m.FilterIDs() {
		rules, err := b.client.SecurityRules(ctx, nsg)
		if err != nil {
			return append(findings, jit.Error("Cannot read network security group", err.Error(), "virtual_machine_id"))
		}
		for i, gp := range g.Ports {
			if _, err := jit.PlanNSGGrants(nsgGrant(nsg, rules, m, g, gp, gp.Source)); err != nil {
				findings = append(findings, jit.Error("The grant could not be placed", err.Error(), "port", i))
			}
		}
	}
	return findings
}

func nsgGrant(nsg string, rules []jit.NSGRule, m *jit.Machine, g engine.Grant, gp engine.GrantPort, source string) jit.NSGGrant {
	return jit.NSGGrant{
		NSG: nsg, Rules: rules, Policy: g.Policy, Request: g.ID, Machine: m.ID, PrivateIPs: m.PrivateIPs(),
		Port: gp.Port, Source: source, End: gp.End, Requestor: g.Requestor, Justification: g.Justification,
		// The source is the requester's, which the policy allows, or the
		// firewall's, which every grant through it has.
		HonouredGrant: honouredGrants(m, g.Policy, source),
	}
}

// honouredGrants tells the grants of the machine's policy that fit its
// settings: those a new grant may sit beside. Any other rule, whatever
// its description claims, is someone else's.
func honouredGrants(m *jit.Machine, policy string, extraSources ...string) func(jit.NSGRule) bool {
	_, ports, _, _ := jit.PolicyFromTags(m.Tags)
	return func(r jit.NSGRule) bool {
		v := jit.JudgeNSGGrant(r, policy, nil)
		if !v.OfPolicy {
			return false
		}
		fits, _ := jit.NSGGrantClaim(r, v.Marker).FitsPolicy(policy, ports, extraSources...)
		return fits
	}
}

// OpenGrant writes the request's grants and removes the same requester's
// grants of older requests for the same machine and port, which it
// supersedes. It is
// idempotent: a grant already in place is left alone. Each NSG and the
// firewall is locked only for its own read-place-write, so concurrent
// requests in this process never pick the same priority or mapped port,
// and never wait for each other's other objects: the firewall first (the
// NSGs allow what it forwards), then the NSGs in parallel.
func (b *Backend) OpenGrant(ctx context.Context, m *jit.Machine, g engine.Grant) (engine.OpenedGrant, error) {
	opened := engine.OpenedGrant{Connect: map[jit.PortProtocol]string{}}
	nsgs := m.FilterIDs()
	firewall := m.Tags[jit.TagFirewall]
	// The record first: no rule of this provider is ever without one.
	if err := b.client.writeRecord(ctx, m, g); err != nil {
		return opened, err
	}
	source := func(gp engine.GrantPort) string { return gp.Source }
	if firewall != "" {
		unlock := b.client.Lock(ctx, firewall)
		addrs, err := b.openFirewallGrant(ctx, m, firewall, g, &opened)
		unlock()
		if err != nil {
			return opened, err
		}
		// The DNAT rule enforces the requester's source; the VM sees the firewall's.
		source = func(engine.GrantPort) string { return addrs.SNATSource }
	} else {
		for _, gp := range g.Ports {
			opened.Connect[gp.Port] = engine.ConnectionDetails(m, gp.Port)
		}
	}
	placed := make([][]engine.GrantRule, len(nsgs))
	errs := make([]error, len(nsgs))
	var wg sync.WaitGroup
	for i, nsg := range nsgs {
		wg.Go(func() {
			defer b.client.Lock(ctx, nsg)()
			// Another process (a parallel pipeline) may take the priority
			// chosen between the read and the write: ARM refuses the write
			// with SecurityRuleConflict, and the NSG is read and placed again.
			errs[i] = placeAgainOnConflict(ctx, nsg, func(ctx context.Context) error {
				var err error
				placed[i], err = b.grantInNSG(ctx, m, nsg, g, source)
				return err
			})
		})
	}
	wg.Wait()
	for _, rules := range placed {
		opened.Rules = append(opened.Rules, rules...)
	}
	return opened, errors.Join(errs...)
}

// grantInNSG places the request's grants in one NSG, superseding the
// older grants of the same requester for the same machine and ports, and
// writes them. Other people's grants stay beside it.
func (b *Backend) grantInNSG(ctx context.Context, m *jit.Machine, nsg string, g engine.Grant, source func(engine.GrantPort) string) ([]engine.GrantRule, error) {
	rules, err := b.client.SecurityRules(ctx, nsg)
	if err != nil {
		return nil, err
	}
	// Who other grants are for is in the VM's records, which requests
	// opened since m was read may have added (this process keeps its own
	// record writes in what it read of the VM).
	recorded := m
	if vm, err := b.client.virtualMachine(ctx, m.ID); err == nil {
		recorded, _ = vm.machine()
	}
	// supersedes tells an older grant of the same requester for gp's port,
	// judged by who the records say it is for.
	supersedes := func(r jit.NSGRule, gp engine.GrantPort) bool {
		return !g.Again && !slices.Contains(grantRuleNames(g.ID, m.ID, m, gp.Port), r.Name) && grantsSame(r, m, gp.Port) && sameRequester(r.Name, r.Description, recorded, g)
	}
	// A grant this would supersede may have a record written after that
	// read was made (another request of the process, opened at once, for
	// someone else): before removing anything, the VM is read anew.
	if slices.ContainsFunc(rules, func(r jit.NSGRule) bool {
		return slices.ContainsFunc(g.Ports, func(gp engine.GrantPort) bool { return supersedes(r, gp) })
	}) {
		recorded = b.freshRecords(ctx, m)
	}
	var plan jit.NSGPlan
	var owned []engine.GrantRule
	for _, gp := range g.Ports {
		rules = slices.DeleteFunc(rules, func(r jit.NSGRule) bool {
			if supersedes(r, gp) {
				plan.Remove = append(plan.Remove, r)
				return true
			}
			return false
		})
		placed, err := jit.PlanNSGGrants(nsgGrant(nsg, rules, m, g, gp, source(gp)))
		if err != nil {
			return nil, err
		}
		for _, rule := range placed {
			i := slices.IndexFunc(rules, func(r jit.NSGRule) bool { return r.Name == rule.Name })
			switch {
			case i < 0:
				rules = append(rules, rule)
				plan.Add = append(plan.Add, rule)
			case !rules[i].Equivalent(rule):
				rules[i] = rule
				plan.Add = append(plan.Add, rule)
			}
			owned = append(owned, engine.GrantRule{TargetID: nsg, Name: rule.Name, Priority: rule.Priority, Port: gp.Port})
		}
	}
	for _, r := range plan.Remove {
		tflog.Info(ctx, "superseding an older grant", map[string]any{"nsg": nsg, "rule": r.Name})
	}
	if err := b.client.ApplyNSGPlan(ctx, nsg, plan); err != nil {
		return nil, err
	}
	return owned, nil
}

// maxPlacements bounds how often a grant or a policy's deny is placed
// again after losing its priority to another writer.
const maxPlacements = 10

// placeAgainOnConflict runs place until it does not lose its priority to
// another writer (SecurityRuleConflict), at most maxPlacements times.
func placeAgainOnConflict(ctx context.Context, nsg string, place func(context.Context) error) error {
	var err error
	for attempt := 1; attempt <= maxPlacements; attempt++ {
		if err = place(ctx); err == nil || !IsPriorityConflict(err) {
			return err
		}
		tflog.Warn(ctx, "another writer took the chosen priority; reading the NSG and placing again",
			map[string]any{"nsg": nsg, "attempt": attempt, "error": err.Error()})
	}
	return err
}

// openFirewallGrant writes the request's DNAT and network Allow collections
// on the policy's firewall, removing the same requester's older
// collections for the same machine and ports. The caller holds the
// firewall's lock.
func (b *Backend) openFirewallGrant(ctx context.Context, m *jit.Machine, firewall string, g engine.Grant, opened *engine.OpenedGrant) (FirewallAddresses, error) {
	fw, err := b.client.Firewall(ctx, firewall)
	if err != nil {
		return FirewallAddresses{}, err
	}
	addrs, err := b.client.Addresses(ctx, fw)
	if err != nil {
		return addrs, err
	}
	name := jit.FirewallGrantCollectionName(g.ID, m.ID)
	change := FirewallChange{NAT: map[string]*jit.FirewallNATCollection{}, Network: map[string]*jit.FirewallNetworkCollection{}}
	fg := jit.FirewallGrant{
		Firewall: firewall, PublicIP: addrs.PublicIP, Policy: g.Policy, Request: g.ID, Machine: m.ID, PrivateIP: m.PrivateIPs()[0],
		Requestor: g.Requestor, Justification: g.Justification,
	}
	ports := map[string]bool{}
	for i, gp := range g.Ports {
		fg.Ports = append(fg.Ports, jit.FirewallGrantPort{Port: gp.Port, Source: gp.Source})
		// One collection holds every port: it ends with the first to end.
		if i == 0 || gp.End.Before(fg.End) {
			fg.End = gp.End
		}
		ports[strconv.Itoa(gp.Port.Number)] = true
	}
	var have *jit.FirewallNATCollection
	if !g.Again && slices.ContainsFunc(fw.NATCollections, func(col jit.FirewallNATCollection) bool { return supersededNAT(col, m, g, ports) }) {
		m = b.freshRecords(ctx, m) // as in grantInNSG
	}
	for i, col := range fw.NATCollections {
		switch {
		case col.Name == name:
			have = &fw.NATCollections[i]
			fg.NAT = append(fg.NAT, col)
		case !g.Again && supersededNAT(col, m, g, ports):
			change.NAT[col.Name], change.Network[col.Name] = nil, nil
		default:
			fg.NAT = append(fg.NAT, col)
		}
	}
	for _, col := range fw.NetworkCollections {
		if _, gone := change.Network[col.Name]; !gone {
			fg.Network = append(fg.Network, col)
		}
	}
	if err := fw.dnatRoom(len(g.Ports), func(c string) bool {
		_, replaced := change.NAT[c]
		return c != name && !replaced
	}); err != nil {
		return addrs, err
	}
	plan, err := jit.PlanFirewallGrants(fg)
	if err != nil {
		return addrs, err
	}
	var haveAllow *jit.FirewallNetworkCollection
	for i, col := range fw.NetworkCollections {
		if col.Name == name {
			haveAllow = &fw.NetworkCollections[i]
		}
	}
	if have == nil || haveAllow == nil || !reflect.DeepEqual(*have, plan.NAT) || !reflect.DeepEqual(*haveAllow, plan.Allow) {
		change.NAT[name], change.Network[name] = &plan.NAT, &plan.Allow
	}
	if len(change.NAT) > 0 {
		if err := b.client.UpdateFirewall(ctx, firewall, change); err != nil {
			return addrs, err
		}
	}
	for i, gp := range g.Ports {
		opened.Connect[gp.Port] = fmt.Sprintf("%s:%d", addrs.PublicIP, plan.MappedPorts[i])
		opened.Rules = append(opened.Rules, engine.GrantRule{TargetID: firewall, Name: plan.NAT.Rules[i].Name, Priority: plan.NAT.Priority, Port: gp.Port})
	}
	return addrs, nil
}

// freshRecords is m with the tags (the records) its VM holds now, read
// from the cloud; m itself when the VM cannot be read.
func (b *Backend) freshRecords(ctx context.Context, m *jit.Machine) *jit.Machine {
	vm, err := b.client.virtualMachine(readcache.Fresh(ctx), m.ID)
	if err != nil {
		return m
	}
	fresh := *m
	fresh.Tags = maps.Clone(vm.Tags)
	return &fresh
}

// supersededNAT tells whether a NAT collection is the same requester's
// grant, by another request, forwarding only to m and only ports among
// those being granted.
func supersededNAT(col jit.FirewallNATCollection, m *jit.Machine, g engine.Grant, ports map[string]bool) bool {
	if !jit.IsFirewallGrantCollection(col.Name) || len(col.Rules) == 0 || col.Name == jit.FirewallGrantCollectionName(g.ID, m.ID) {
		return false
	}
	machineIP := m.PrivateIPs()[0]
	for _, r := range col.Rules {
		if !jit.JudgeGrant(r.Description, true, "", nil).IsGrant || r.TranslatedAddress != machineIP || !ports[r.TranslatedPort] ||
			!sameRequester(r.Name, r.Description, m, g) {
			return false
		}
	}
	return true
}

// sameRequester tells whether a grant rule of m (its name and marker) was
// asked for by g's requester: the same authenticated identity on behalf of
// the same person, read from the request's record on the VM, or from the
// marker for a grant older than records. Only then does g supersede it.
func sameRequester(name, description string, m *jit.Machine, g engine.Grant) bool {
	marker, ok := jit.ParseMarker(description)
	if !ok {
		return false
	}
	request, _, _ := jit.GrantRuleOf(name, m.ID)
	return jit.SameRequesterOf(wholeRecord(m, request, description), marker, g.Requestor, g.OnBehalfOf)
}

// grantsSame tells whether r is a JIT grant of port to machine m: the kind
// of rule a newer request for that port supersedes. A grant is one rule
// per address family, to the machine's addresses of that family.
func grantsSame(r jit.NSGRule, m *jit.Machine, port jit.PortProtocol) bool {
	if !jit.JudgeNSGGrant(r, "", nil).IsGrant {
		return false
	}
	if !slices.Equal(r.DestinationPortRanges, []string{strconv.Itoa(port.Number)}) || !strings.EqualFold(string(r.Protocol), string(jit.NSGProtocolOf(port.Protocol))) {
		return false
	}
	got := slices.Clone(r.DestinationPrefixes)
	slices.Sort(got)
	for _, fam := range []jit.AddressFamily{jit.IPv4, jit.IPv6} {
		if want := familyIPs(m, fam); len(want) > 0 && slices.Equal(got, want) {
			return true
		}
	}
	return false
}

// familyIPs are the machine's private addresses of one family, sorted.
func familyIPs(m *jit.Machine, fam jit.AddressFamily) []string {
	var out []string
	for _, ip := range m.PrivateIPs() {
		if a, err := netip.ParseAddr(ip); err == nil && jit.FamilyOf(a) == fam {
			out = append(out, ip)
		}
	}
	slices.Sort(out)
	return out
}

// grantRuleNames are the names a request's grant of port to m may have in
// an NSG: one per address family of the machine (both when it is gone).
func grantRuleNames(request, machineID string, m *jit.Machine, port jit.PortProtocol) []string {
	var names []string
	for _, fam := range []jit.AddressFamily{jit.IPv4, jit.IPv6} {
		if m == nil || len(familyIPs(m, fam)) > 0 {
			names = append(names, jit.GrantRuleNameFamily(request, machineID, port, fam))
		}
	}
	return names
}

// ObserveGrant finds the request's rules in each NSG on the machine's path
// and on its policy's firewall, and in the NSGs and firewall it held rules
// in (the machine may be gone).
func (b *Backend) ObserveGrant(ctx context.Context, ref engine.GrantRef) (engine.ObservedGrant, error) {
	o := engine.ObservedGrant{Superseded: map[jit.PortProtocol]bool{}}
	m := ref.Machine
	for _, target := range grantTargets(m, ref.Targets) {
		if isFirewallID(target) {
			fw, err := b.client.Firewall(ctx, target)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return o, err
			}
			name := jit.FirewallGrantCollectionName(ref.RequestID, ref.MachineID)
			for _, col := range fw.NATCollections {
				for _, port := range ref.Ports {
					rule := jit.GrantRuleName(ref.RequestID, ref.MachineID, port)
					if i := slices.IndexFunc(col.Rules, func(r jit.FirewallNATRule) bool { return r.Name == rule }); col.Name == name && i >= 0 {
						o.Rules = append(o.Rules, engine.GrantRule{TargetID: target, Name: rule, Priority: col.Priority, Port: port})
						if o.Record == nil {
							o.Record = wholeRecord(m, ref.RequestID, col.Rules[i].Description)
						}
					}
				}
			}
			continue
		}
		rules, err := b.client.SecurityRules(ctx, target)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return o, err
		}
		for _, port := range ref.Ports {
			found := false
			for _, name := range grantRuleNames(ref.RequestID, ref.MachineID, m, port) {
				if i := slices.IndexFunc(rules, func(r jit.NSGRule) bool { return r.Name == name }); i >= 0 {
					found = true
					o.Rules = append(o.Rules, engine.GrantRule{TargetID: target, Name: name, Priority: rules[i].Priority, Port: port})
					if o.Record == nil {
						o.Record = wholeRecord(m, ref.RequestID, rules[i].Description)
					}
				}
			}
			if found {
				continue
			}
			if m != nil && slices.ContainsFunc(rules, func(r jit.NSGRule) bool {
				return grantsSame(r, m, port) && sameRequester(r.Name, r.Description, m, engine.Grant{Requestor: ref.Requestor, OnBehalfOf: ref.OnBehalfOf})
			}) {
				o.Superseded[port] = true
			}
		}
	}
	return o, nil
}

// CloseGrant removes the request's rules for ref.Ports from each NSG on the
// machine's path and from its policy's firewall, and from the NSGs and
// firewall it held rules in: each locked for its own write only, all in
// parallel.
func (b *Backend) CloseGrant(ctx context.Context, ref engine.GrantRef) error {
	all := grantTargets(ref.Machine, ref.Targets)
	if len(all) == 0 || len(ref.Ports) == 0 {
		return nil
	}
	names := map[string]bool{}
	for _, port := range ref.Ports {
		for _, name := range grantRuleNames(ref.RequestID, ref.MachineID, ref.Machine, port) {
			names[name] = true
		}
	}
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, target := range all {
		wg.Go(func() {
			defer b.client.Lock(ctx, target)()
			if isFirewallID(target) {
				errs[i] = b.closeFirewallGrant(ctx, target, jit.FirewallGrantCollectionName(ref.RequestID, ref.MachineID), names)
				return
			}
			var plan jit.NSGPlan
			for _, name := range slices.Sorted(maps.Keys(names)) {
				plan.Remove = append(plan.Remove, jit.NSGRule{Name: name})
			}
			if err := b.client.ApplyNSGPlan(ctx, target, plan); err != nil && !errors.Is(err, ErrNotFound) {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The record goes last, with the last rule: no rule is left without it.
	if ref.Final && ref.Machine != nil {
		if err := b.client.removeRecord(ctx, ref.Machine.ID, ref.Machine.Tags, ref.RequestID); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// closeFirewallGrant removes the named rules from a grant's two collections,
// and the collections once empty.
func (b *Backend) closeFirewallGrant(ctx context.Context, firewall, collection string, names map[string]bool) error {
	fw, err := b.client.Firewall(ctx, firewall)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	change := FirewallChange{NAT: map[string]*jit.FirewallNATCollection{}, Network: map[string]*jit.FirewallNetworkCollection{}}
	for _, col := range fw.NATCollections {
		if col.Name == collection {
			col.Rules = slices.DeleteFunc(col.Rules, func(r jit.FirewallNATRule) bool { return names[r.Name] })
			change.NAT[col.Name] = nil
			if len(col.Rules) > 0 {
				change.NAT[col.Name] = &col
			}
		}
	}
	for _, col := range fw.NetworkCollections {
		if col.Name == collection {
			col.Rules = slices.DeleteFunc(col.Rules, func(r jit.FirewallNetworkRule) bool { return names[r.Name] })
			change.Network[col.Name] = nil
			if len(col.Rules) > 0 {
				change.Network[col.Name] = &col
			}
		}
	}
	if len(change.NAT)+len(change.Network) == 0 {
		return nil
	}
	return b.client.UpdateFirewall(ctx, firewall, change)
}

// grantTargets is every NSG and firewall a request may hold rules in, once each.
func grantTargets(m *jit.Machine, targets []string) []string {
	var all []string
	if m != nil {
		all = append(all, m.FilterIDs()...)
		if fw := m.Tags[jit.TagFirewall]; fw != "" {
			all = append(all, fw)
		}
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
