package jit

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Grants that never override a rule jit does not own.
//
// A grant is an Allow for one requester's source. Placed before a Deny of
// the NSG's owner, it would open what the owner closed: not jit's to do.
// So, in each NSG, the granted traffic (source × port × protocol × the
// machine's addresses) is evaluated against the owner's rules alone (the
// rules of others, without the policy's deny, its honoured grants or the
// NSG's default rules, which exist precisely for a grant to open past): if
// a rule of others that may be the first match of any part of that traffic
// denies it, wherever it sits, even after the JIT deny, the grant fails and
// the error names that rule. Otherwise the grant goes after every rule of
// others that may be the first match of some of the traffic, and before
// the first of the policy's denies matching it: at the highest free
// priority there, or where it already is while that still holds.
//
// Azure refuses a rule mixing IPv4 and IPv6 addresses, so a grant is one
// rule per address family: an IPv4 source reaches the machine's IPv4
// addresses only, an IPv6 source its IPv6 ones, "*" gets one rule per
// family the machine has.

// PlanNSGGrants returns the grant's rules in one NSG, one per address
// family the source can reach, named by GrantRuleNameFamily.
func PlanNSGGrants(g NSGGrant) ([]NSGRule, error) {
	src, err := ParsePrefix(g.Source)
	if err != nil {
		return nil, g.errorf("%v", err)
	}
	ips, err := parseMachineIPs(g.Machine, g.PrivateIPs)
	if err != nil {
		return nil, g.errorf("%v", err)
	}
	if err := checkLockedPorts(g.Machine, []PortProtocol{g.Port}); err != nil {
		return nil, g.errorf("%v", err)
	}
	var fams []AddressFamily
	for _, fam := range []AddressFamily{IPv4, IPv6} {
		if len(familyAddrs(ips, fam)) > 0 && (src.IsAny() || FamilyOf(src.net.Addr()) == fam) {
			fams = append(fams, fam)
		}
	}
	if len(fams) == 0 {
		return nil, g.errorf("source %s is %s, and the machine has no address of that family (%s)", src, FamilyOf(src.net.Addr()), strings.Join(g.PrivateIPs, ", "))
	}
	ws := make([]*grantWindow, len(fams))
	for i, fam := range fams {
		ws[i] = &grantWindow{fam: fam, rule: g.rule(src, familyAddrs(ips, fam), fam)}
	}
	pass, err := readNSGGrant(g, ws)
	if err != nil {
		return nil, err
	}
	for _, w := range ws {
		if err := pass.bound(w, src, ips); err != nil {
			return nil, err
		}
	}
	pass.keepCurrent(ws)
	// With two families, the order that fits both (one may take the
	// other's only priority).
	err = pass.place(ws, []int{0, 1}[:len(ws)])
	if err != nil && len(ws) == 2 {
		if pass.place(ws, []int{1, 0}) == nil {
			err = nil
		}
	}
	if err != nil {
		return nil, err
	}
	out := make([]NSGRule, len(ws))
	for i, w := range ws {
		out[i] = w.rule
	}
	return out, nil
}

// errorf is an error of the grant, saying which it is.
func (g NSGGrant) errorf(format string, args ...any) error {
	return fmt.Errorf("granting port %s to virtual machine %s in NSG %s: %s", portLabel(g.Port), g.Machine, g.NSG, fmt.Sprintf(format, args...))
}

// rule is the grant's rule for one family, its priority not yet chosen.
func (g NSGGrant) rule(src Prefix, dsts []netip.Addr, fam AddressFamily) NSGRule {
	return NSGRule{
		Name: GrantRuleNameFamily(g.Request, g.Machine, g.Port, fam), Direction: NSGInbound, Access: NSGAllow, Protocol: NSGProtocolOf(g.Port.Protocol),
		SourcePrefixes: []string{src.String()}, SourcePortRanges: []string{"*"}, DestinationPrefixes: addrStrings(dsts),
		DestinationPortRanges: []string{strconv.Itoa(g.Port.Number)}, Description: GrantMarker(g.Policy, g.End, g.Requestor, g.Justification).String(),
	}
}

// grantBounds is where a grant may go: from lo, after the last rule of
// others deciding its traffic (after), to below hi, the first of the
// policy's denies matching it (before); nil when there is none.
type grantBounds struct {
	lo, hi        int
	after, before *Decider
}

// follow moves the bounds after every rule of others that may be the
// first match of some of q's traffic. When one of them denies it, a grant
// could only work by overriding that rule: follow returns it, and the
// sources it denies.
func (b *grantBounds) follow(others *Filter, q Query) (*Decider, Segment) {
	for _, s := range (Path{others}).Evaluate(q) {
		for _, d := range s.Deciders[0] {
			if d.Rule.Access == NSGDeny {
				return &d, s
			}
			if d.Rule.Priority+1 > b.lo {
				b.lo, b.after = d.Rule.Priority+1, &d
			}
		}
	}
	return nil, Segment{}
}

// grantWindow is one family's rule of the grant and where it may go.
type grantWindow struct {
	fam  AddressFamily
	rule NSGRule
	grantBounds
	keep bool // it stays where it is
}

// nsgGrantPass is the NSG as one grant sees it.
type nsgGrantPass struct {
	g       NSGGrant
	current map[string]NSGRule // the grant's rules now, by name
	slots   *prioritySlots     // the inbound priorities of every other rule
	others  *Filter            // the rules of others
	denies  *Filter            // the policy's denies
}

// readNSGGrant sorts the NSG's rules by whose they are: the policy's
// denies, its grants (this one's current rules, named as ws, among them),
// or someone else's.
func readNSGGrant(g NSGGrant, ws []*grantWindow) (*nsgGrantPass, error) {
	honoured := g.HonouredGrant
	if honoured == nil {
		honoured = func(r NSGRule) bool {
			m, ok := ParseMarker(r.Description)
			return ok && m.Kind == MarkerGrant && m.BelongsTo(g.Policy)
		}
	}
	ownDeny := make([]bool, len(g.Rules))
	foreign := make([]bool, len(g.Rules))
	pass := &nsgGrantPass{g: g, current: map[string]NSGRule{}, slots: newPrioritySlots(NSGMinPriority, NSGMaxPriority)}
	for i, r := range g.Rules {
		if slices.ContainsFunc(ws, func(w *grantWindow) bool { return w.rule.Name == r.Name }) {
			if !isGrant(r.Description) {
				return nil, g.errorf("NSG %s already has a rule named %q that is not a JIT grant; rename or delete that rule", g.NSG, r.Name)
			}
			pass.current[r.Name] = r
			continue
		}
		if r.inbound() {
			pass.slots.take(r.Priority)
		}
		m, ok := ParseMarker(r.Description)
		switch {
		case ok && m.Kind == MarkerDeny && m.BelongsTo(g.Policy):
			ownDeny[i] = true
		case r.inbound() && strings.EqualFold(string(r.Access), string(NSGAllow)) && honoured(r):
		default:
			foreign[i] = true
		}
	}
	pass.others = newNSGFilter(g.NSG, g.Rules, func(i int) bool { return foreign[i] }, false)
	pass.denies = newNSGFilter(g.NSG, g.Rules, func(i int) bool { return ownDeny[i] }, false)
	return pass, nil
}

// bound sets the family's window: after the rules of others deciding its
// traffic, before the policy's first deny matching it. A rule of others
// denying the traffic fails the grant.
func (pass *nsgGrantPass) bound(w *grantWindow, src Prefix, ips []netip.Addr) error {
	g := pass.g
	w.grantBounds = grantBounds{lo: NSGMinPriority, hi: NSGMaxPriority + 1}
	for _, ip := range familyAddrs(ips, w.fam) {
		for _, proto := range portProtocols(g.Port) {
			q := Query{Direction: NSGInbound, Local: ip, Protocol: proto, Port: g.Port.Number, Remote: src}
			if d, s := w.follow(pass.others, q); d != nil {
				return fmt.Errorf("%s denies port %s from %s to virtual machine %s%s, so a grant could not work without overriding it, and that rule is not jit's to override: ask the NSG's owner to allow the traffic or narrow the rule, or request from another source",
					ruleLabel(d.Rule), portLabel(PortProtocol{g.Port.Number, proto}), RangeString(s.First, s.Last), g.Machine, assumedClause(d.Assumed))
			}
			for _, d := range pass.denies.mayMatch(q) {
				if d.Rule.Access == NSGDeny && d.Rule.Priority < w.hi {
					w.hi, w.before = d.Rule.Priority, &d
				}
			}
		}
	}
	return nil
}

// keepCurrent: a grant already in its window stays; one that must move
// keeps its old priority until it has moved.
func (pass *nsgGrantPass) keepCurrent(ws []*grantWindow) {
	for _, w := range ws {
		if cur, ok := pass.current[w.rule.Name]; ok && cur.inbound() {
			w.keep = w.lo <= cur.Priority && cur.Priority < w.hi && pass.slots.free(cur.Priority)
			w.rule.Priority = cur.Priority
			pass.slots.take(cur.Priority)
		}
	}
}

// place gives each window that moves, in the order given, the highest
// free priority in it; taken is not changed, so place may try again.
func (pass *nsgGrantPass) place(ws []*grantWindow, order []int) error {
	s := pass.slots.clone()
	for _, i := range order {
		w := ws[i]
		if w.keep {
			continue
		}
		p, ok := s.highestFree(w.lo, w.hi)
		if !ok {
			return pass.g.errorf("no inbound priority is free for the %s grant between %s and %s; free one in between",
				w.fam, boundLabel(w.after, "the lowest priority", "which decides that traffic"), boundLabel(w.before, "the highest priority", "the JIT deny"))
		}
		s.take(p)
		w.rule.Priority = p
	}
	return nil
}

func boundLabel(d *Decider, none, what string) string {
	if d == nil {
		return none
	}
	return fmt.Sprintf("%s (%s)", ruleLabel(d.Rule), what)
}

// PlanFirewallGrants plans a grant through a firewall: its DNAT collection
// and mapped ports (planFirewallDNAT), and its network Allow collection,
// placed by the rule of PlanNSGGrants: the granted traffic (each port's
// source × protocol × the machine's address) is evaluated against the
// collections of others alone; if one that may be the first of them to
// match part of it denies it, wherever it sits, the grant fails and the
// error names it. Otherwise the Allow collection goes after every
// collection of others that may be the first match of some of the traffic,
// and before the first rule of the policy's deny collection matching it:
// at the highest free priority there, or where it already is while that
// still holds.
func PlanFirewallGrants(g FirewallGrant) (FirewallGrantPlan, error) {
	fail := func(format string, args ...any) (FirewallGrantPlan, error) {
		return FirewallGrantPlan{}, fmt.Errorf("granting access to virtual machine %s through Azure Firewall %s: "+format, append([]any{g.Machine, g.Firewall}, args...)...)
	}
	plan, err := planFirewallDNAT(g)
	if err != nil {
		return plan, err
	}
	network := g.Network
	name := plan.Allow.Name
	honoured := g.HonouredGrant
	if honoured == nil {
		honoured = func(c FirewallNetworkCollection) bool {
			descriptions := make([]string, len(c.Rules))
			for i, r := range c.Rules {
				descriptions[i] = r.Description
			}
			_, _, ok := FirewallGrantEnd(descriptions)
			return ok && IsFirewallGrantCollection(c.Name)
		}
	}
	denyName := FirewallDenyCollectionName(g.Policy)
	foreign := make([]bool, len(network))
	var have *FirewallNetworkCollection
	slots := newPrioritySlots(FirewallMinPriority, FirewallMaxPriority)
	b := grantBounds{lo: FirewallMinPriority, hi: FirewallMaxPriority + 1}
	for i, c := range network {
		switch {
		case c.Name == name:
			for _, r := range c.Rules {
				if !isGrant(r.Description) {
					return fail("network rule collection %q exists but is not a JIT grant; rename or delete it", name)
				}
			}
			have = &network[i]
			continue
		case c.Name == denyName:
			// Ours only while every rule carries the policy's marker: a
			// grant must not be placed in front of someone else's Deny
			// kept under that name.
			if r, alien := foreignRuleIn(c, DenyMarker(g.Policy).String()); alien {
				return fail("network rule collection %q is named as policy %q's deny collection but rule %q lacks its marker, so it is not jit's to override; rename that collection, or apply the policy to see it reported", c.Name, g.Policy, r)
			}
		case strings.EqualFold(string(c.Action), string(FirewallAllow)) && honoured(c):
		default:
			foreign[i] = true
		}
		slots.take(c.Priority)
	}
	others := newFirewallFilter(g.Firewall, network, func(i int) bool { return foreign[i] }, false)
	ours := newFirewallFilter(g.Firewall, network, func(i int) bool { return network[i].Name == denyName }, false)
	ip, _ := netip.ParseAddr(g.PrivateIP) // planFirewallDNAT refused an unreadable one
	ip = ip.Unmap()                       // as planFirewallDNAT reads it
	for _, gp := range g.Ports {
		src, _ := ParsePrefix(gp.Source)
		if !src.IsAny() && FamilyOf(src.net.Addr()) != FamilyOf(ip) {
			return fail("source %s of port %s is %s, and %s is %s", src, portLabel(gp.Port), FamilyOf(src.net.Addr()), g.PrivateIP, FamilyOf(ip))
		}
		for _, proto := range portProtocols(gp.Port) {
			q := Query{Direction: NSGInbound, Local: ip, Protocol: proto, Port: gp.Port.Number, Remote: src}
			if d, s := b.follow(others, q); d != nil {
				return fail("%s denies port %s from %s%s, so a grant could not work without overriding it, and that collection is not jit's to override: ask the firewall's owner to allow the traffic or narrow the rule, or request from another source",
					ruleLabel(d.Rule), portLabel(PortProtocol{gp.Port.Number, proto}), RangeString(s.First, s.Last), assumedClause(d.Assumed))
			}
			for _, d := range ours.mayMatch(q) {
				if d.Rule.Priority < b.hi {
					b.hi, b.before = d.Rule.Priority, &d
				}
			}
		}
	}
	if have != nil && b.lo <= have.Priority && have.Priority < b.hi && slots.free(have.Priority) {
		plan.Allow.Priority = have.Priority
		return plan, nil
	}
	if q, ok := slots.highestFree(b.lo, b.hi); ok {
		plan.Allow.Priority = q
		return plan, nil
	}
	return fail("no network rule collection priority is free for the grant's Allow collection between %s and %s; free one in between",
		boundLabel(b.after, "the lowest priority", "which decides that traffic"), boundLabel(b.before, "the highest priority", "the JIT deny collection"))
}
