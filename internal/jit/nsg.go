package jit

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// NSGDirection, NSGAccess and NSGProtocol are spelled as ARM spells them;
// the planners compare them case-insensitively, as ARM does.
type (
	NSGDirection string
	NSGAccess    string
	NSGProtocol  string
)

const (
	NSGInbound  NSGDirection = "Inbound"
	NSGOutbound NSGDirection = "Outbound"

	NSGAllow NSGAccess = "Allow"
	NSGDeny  NSGAccess = "Deny"

	NSGProtocolTCP  NSGProtocol = "Tcp"
	NSGProtocolUDP  NSGProtocol = "Udp"
	NSGProtocolICMP NSGProtocol = "Icmp"
	NSGProtocolESP  NSGProtocol = "Esp"
	NSGProtocolAH   NSGProtocol = "Ah"
	NSGProtocolAny  NSGProtocol = "*"
)

// NSG rule priorities run from 100 to 4096, unique per direction.
const (
	NSGMinPriority = 100
	NSGMaxPriority = 4096
)

// NSGRule is a network security group's security rule, as the azure
// package reads and writes it (singular and plural ARM properties merged
// into the lists).
type NSGRule struct {
	Name      string
	Priority  int
	Direction NSGDirection
	Access    NSGAccess
	Protocol  NSGProtocol
	// Address lists hold "*", CIDRs, addresses or service tags. An empty
	// list means the rule uses application security groups, which the core
	// cannot resolve: it is assumed to match every address.
	SourcePrefixes      []string
	DestinationPrefixes []string
	// Port lists hold "*", "22" or "1000-2000"; empty means "*".
	SourcePortRanges      []string
	DestinationPortRanges []string
	Description           string
}

func (r NSGRule) inbound() bool { return strings.EqualFold(string(r.Direction), string(NSGInbound)) }

func (r NSGRule) filter() filterRule {
	return filterRule{
		priority:     r.Priority,
		deny:         strings.EqualFold(string(r.Access), string(NSGDeny)),
		protocols:    filterProtocolsOf(string(r.Protocol)),
		sources:      r.SourcePrefixes,
		destinations: r.DestinationPrefixes,
		ports:        r.DestinationPortRanges,
	}
}

// Equivalent reports whether two rules have the same name, position and
// effect, ignoring the spellings ARM treats alike (case of enums, order of
// lists, "10.0.0.4" for "10.0.0.4/32", "22-22" for "22", empty port lists
// for "*"). The provider compares what it wants with what it reads this way.
func (r NSGRule) Equivalent(o NSGRule) bool {
	return r.Name == o.Name && r.Priority == o.Priority && r.Description == o.Description &&
		strings.EqualFold(string(r.Direction), string(o.Direction)) &&
		strings.EqualFold(string(r.Access), string(o.Access)) &&
		strings.EqualFold(string(r.Protocol), string(o.Protocol)) &&
		slices.Equal(addressSet(r.SourcePrefixes), addressSet(o.SourcePrefixes)) &&
		slices.Equal(addressSet(r.DestinationPrefixes), addressSet(o.DestinationPrefixes)) &&
		slices.Equal(portSet(r.SourcePortRanges), portSet(o.SourcePortRanges)) &&
		slices.Equal(portSet(r.DestinationPortRanges), portSet(o.DestinationPortRanges))
}

func addressSet(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, s := range addrs {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil && p.IsSingleIP() {
			s = p.Addr().String()
		} else if err == nil {
			s = p.String()
		} else if a, err := netip.ParseAddr(s); err == nil {
			s = a.String()
		} else {
			s = strings.ToLower(s)
		}
		out[i] = s
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func portSet(ranges []string) []string {
	if len(ranges) == 0 {
		return []string{"*"}
	}
	out := make([]string, len(ranges))
	for i, r := range ranges {
		r = strings.TrimSpace(r)
		if lo, hi, ok := filterPortRange(r); ok && r != "*" {
			r = strconv.Itoa(lo)
			if hi != lo {
				r += "-" + strconv.Itoa(hi)
			}
		}
		out[i] = r
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// LockedMachine is a VM as the planners see it: a stable key (its ARM ID
// or instance ID), its private addresses, and the ports its policy locks.
type LockedMachine struct {
	Key        string
	PrivateIPs []string
	Ports      []PortProtocol
}

// NSGPlan is what PlanNSG wants done to one NSG. The cloud package writes it
// rule by rule through the security-rules API: Remove first, then Add.
type NSGPlan struct {
	// Add holds complete rules to PUT. A rule whose name already exists in
	// the NSG (always one of the policy's own) is replaced in place, so a
	// deny being corrected or moved never leaves its port open. Add
	// priorities collide with no rule left after Remove, including the
	// old priority of a rule being moved, so the PUTs may run in any order.
	Add []NSGRule
	// Keep holds the policy's denies that are already right.
	Keep []NSGRule
	// Remove holds the policy's denies that are no longer wanted: a port
	// left the policy, a machine left it or no longer crosses this NSG.
	Remove   []NSGRule
	Warnings []string
}

// PlanNSG plans the policy's JIT denies in one NSG: for each machine whose
// path crosses the NSG, one inbound Deny per locked port, from any source
// and source port to the machine's private addresses only, so a subnet NSG
// shared with other machines blocks only the policy's. machines must list
// every machine of the policy behind this NSG: the policy's denies for any
// other are removed.
//
// Rules are the policy's when their description carries its deny marker;
// every other rule (people's, other policies', grants) is never changed,
// moved or removed. Where such rules already decide a locked port for a
// machine (an inbound rule for that port and protocol whose destination
// covers one of the machine's addresses, whatever its source), the deny
// comes after all of them, and each Allow among them is reported in
// Warnings, since the port stays open to its sources. The priorities follow
// the scheme in priority.go. A deny already in place with the right
// content, after the rules deciding its port and with a free priority
// before it, is kept where it is, so planning again after applying a plan
// changes nothing.
//
// When a deny has no priority satisfying these constraints, PlanNSG returns
// an error naming the NSG and the port, and no plan at all.
func PlanNSG(nsg string, rules []NSGRule, policy string, machines []LockedMachine) (NSGPlan, error) {
	marker := DenyMarker(policy).String()
	// Markers are parsed once: owned[i] and grant[i] describe rules[i].
	owned, grant := make([]bool, len(rules)), make([]bool, len(rules))
	current := make(map[string]int, len(rules))
	for i, r := range rules {
		m, ok := ParseMarker(r.Description)
		owned[i] = ok && m.Kind == MarkerDeny && m.BelongsTo(policy)
		grant[i] = ok && m.Kind == MarkerGrant
		current[r.Name] = i
	}

	type deny struct {
		rule    NSGRule
		machine string
		port    PortProtocol
		after   int     // first priority not decided by an existing rule
		decider NSGRule // the existing rule with the highest priority deciding the port
	}
	var wants []*deny
	wanted := map[string]bool{}
	seenMachines := map[string]bool{}
	var warnings []string
	for _, m := range machines {
		if m.Key == "" || seenMachines[strings.ToLower(m.Key)] {
			return NSGPlan{}, fmt.Errorf("planning NSG %s: virtual machine key %q is empty or listed twice", nsg, m.Key)
		}
		seenMachines[strings.ToLower(m.Key)] = true
		ips, err := parseMachineIPs(m.Key, m.PrivateIPs)
		if err != nil {
			return NSGPlan{}, fmt.Errorf("planning NSG %s: %w", nsg, err)
		}
		if err := checkLockedPorts(m); err != nil {
			return NSGPlan{}, fmt.Errorf("planning NSG %s: %w", nsg, err)
		}
		destinations := make([]string, len(ips))
		for i, ip := range ips {
			destinations[i] = ip.String()
		}
		for _, port := range m.Ports {
			d := &deny{machine: m.Key, port: port, after: NSGMinPriority, rule: NSGRule{
				Name:                  DenyRuleName(policy, m.Key, port),
				Direction:             NSGInbound,
				Access:                NSGDeny,
				Protocol:              NSGProtocolOf(port.Protocol),
				SourcePrefixes:        []string{"*"},
				SourcePortRanges:      []string{"*"},
				DestinationPrefixes:   destinations,
				DestinationPortRanges: []string{strconv.Itoa(port.Number)},
				Description:           marker,
			}}
			if i, ok := current[d.rule.Name]; ok && !owned[i] {
				return NSGPlan{}, fmt.Errorf("NSG %s already has a rule named %q that jit does not manage (its description lacks the policy's marker); rename or delete that rule", nsg, d.rule.Name)
			}
			for i, r := range rules {
				if owned[i] || !r.inbound() || !r.filter().decides(ips, port) {
					continue
				}
				if r.Priority+1 > d.after {
					d.after, d.decider = r.Priority+1, r
				}
				if strings.EqualFold(string(r.Access), string(NSGAllow)) && !grant[i] {
					warnings = append(warnings, fmt.Sprintf("rule %q (priority %d) in NSG %s allows port %s to virtual machine %s before the JIT deny: the port stays open to the sources that rule allows (%s).",
						r.Name, r.Priority, nsg, portLabel(port), m.Key, strings.Join(orAny(r.SourcePrefixes), ", ")))
				}
			}
			wants = append(wants, d)
			wanted[d.rule.Name] = true
		}
	}

	var plan NSGPlan
	inboundUse := map[int]int{}
	for i, r := range rules {
		if owned[i] && !wanted[r.Name] {
			plan.Remove = append(plan.Remove, r)
		} else if r.inbound() {
			inboundUse[r.Priority]++
		}
	}
	slots := newPrioritySlots(NSGMinPriority, NSGMaxPriority)
	for p := range inboundUse {
		slots.take(p)
	}
	var toPlace []*deny
	for _, d := range wants {
		i, ok := current[d.rule.Name]
		if !ok {
			toPlace = append(toPlace, d)
			continue
		}
		cur := rules[i]
		if !cur.inbound() || cur.Priority < d.after || cur.Priority > NSGMaxPriority ||
			inboundUse[cur.Priority] > 1 || !slots.freeBefore(cur.Priority) {
			toPlace = append(toPlace, d)
			continue
		}
		d.rule.Priority = cur.Priority
		if cur.Equivalent(d.rule) {
			plan.Keep = append(plan.Keep, cur)
		} else {
			plan.Add = append(plan.Add, d.rule)
		}
	}
	// Most constrained first: see priority.go for why this finds a slot for
	// every deny whenever one exists.
	slices.SortStableFunc(toPlace, func(a, b *deny) int { return cmp.Compare(b.after, a.after) })
	for _, d := range toPlace {
		p, ok := slots.placeDeny(d.after)
		if !ok {
			if d.after > NSGMinPriority {
				return NSGPlan{}, fmt.Errorf("NSG %s has no free inbound priority for the JIT deny of port %s on virtual machine %s: the deny must come after rule %q (priority %d), which already decides that port, and leave a free priority before it for grants; free a priority after %d, and one before it, in that NSG",
					nsg, portLabel(d.port), d.machine, d.decider.Name, d.decider.Priority, d.decider.Priority)
			}
			return NSGPlan{}, fmt.Errorf("NSG %s has no free inbound priority for the JIT deny of port %s on virtual machine %s that leaves a free priority before it for grants; free two inbound priorities between %d and %d in that NSG",
				nsg, portLabel(d.port), d.machine, NSGMinPriority, NSGMaxPriority)
		}
		d.rule.Priority = p
		plan.Add = append(plan.Add, d.rule)
	}
	for _, list := range [][]NSGRule{plan.Add, plan.Keep, plan.Remove} {
		slices.SortFunc(list, func(a, b NSGRule) int {
			return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(a.Name, b.Name))
		})
	}
	slices.Sort(warnings)
	plan.Warnings = slices.Compact(warnings)
	return plan, nil
}

// NSGProtocolOf is the NSG protocol that carries a policy protocol.
func NSGProtocolOf(p Protocol) NSGProtocol {
	switch p {
	case ProtocolTCP:
		return NSGProtocolTCP
	case ProtocolUDP:
		return NSGProtocolUDP
	}
	return NSGProtocolAny
}

// checkLockedPorts rejects ports a policy's validation would have rejected,
// so a planner never writes a rule for them.
func checkLockedPorts(m LockedMachine) error {
	for i, p := range m.Ports {
		if p.Number < 0 || p.Number > 65535 || !validProtocol(p.Protocol) {
			return fmt.Errorf("virtual machine %s: invalid locked port %s", m.Key, portLabel(p))
		}
		for _, q := range m.Ports[:i] {
			if q.Number == p.Number && protocolsOverlap(p.Protocol, q.Protocol) {
				return fmt.Errorf("virtual machine %s: locked ports %s and %s overlap", m.Key, portLabel(q), portLabel(p))
			}
		}
	}
	return nil
}

func isGrant(description string) bool {
	m, ok := ParseMarker(description)
	return ok && m.Kind == MarkerGrant
}

func orAny(addrs []string) []string {
	if len(addrs) == 0 {
		return []string{"application security groups"}
	}
	return addrs
}

// NSGGrant describes the grant of one port of one machine, by one request,
// in one NSG on the machine's path.
type NSGGrant struct {
	NSG        string
	Rules      []NSGRule
	Policy     string
	Request    string
	Machine    string
	PrivateIPs []string
	Port       PortProtocol
	// Source is the prefix the traffic arrives from: the requester's, or
	// the Azure Firewall's private addresses when a DNAT rule forwards it.
	Source                   string
	End                      time.Time
	Requestor, Justification string
	// HonouredGrant tells, for PlanNSGGrants, the other grants the caller
	// judged valid for the policy: the policy's own, never in this grant's
	// way. Nil: every inbound Allow carrying the policy's grant marker.
	HonouredGrant func(NSGRule) bool
}

// PlanNSGGrant returns the complete inbound Allow rule that grants the
// port: from the source to the machine's private addresses, marked with
// the grant's end time and requestor. Its priority comes before every
// inbound Deny that matches some of the granted traffic: the JIT deny, and
// any other Deny that would shadow the grant. It is the highest free
// priority there; a grant already written at a priority that still
// qualifies keeps it. With no free priority before such a Deny, the error
// names the rule in the way.
func PlanNSGGrant(g NSGGrant) (NSGRule, error) {
	src, err := ParsePrefix(g.Source)
	if err != nil {
		return NSGRule{}, fmt.Errorf("granting port %s in NSG %s: %w", portLabel(g.Port), g.NSG, err)
	}
	ips, err := parseMachineIPs(g.Machine, g.PrivateIPs)
	if err != nil {
		return NSGRule{}, fmt.Errorf("granting port %s in NSG %s: %w", portLabel(g.Port), g.NSG, err)
	}
	if err := checkLockedPorts(LockedMachine{Key: g.Machine, Ports: []PortProtocol{g.Port}}); err != nil {
		return NSGRule{}, fmt.Errorf("granting in NSG %s: %w", g.NSG, err)
	}
	destinations := make([]string, len(ips))
	for i, ip := range ips {
		destinations[i] = ip.String()
	}
	rule := NSGRule{
		Name:                  GrantRuleName(g.Request, g.Machine, g.Port),
		Direction:             NSGInbound,
		Access:                NSGAllow,
		Protocol:              NSGProtocolOf(g.Port.Protocol),
		SourcePrefixes:        []string{src.String()},
		SourcePortRanges:      []string{"*"},
		DestinationPrefixes:   destinations,
		DestinationPortRanges: []string{strconv.Itoa(g.Port.Number)},
		Description:           GrantMarker(g.Policy, g.End, g.Requestor, g.Justification).String(),
	}
	var cur *NSGRule
	bound, blocker := NSGMaxPriority+1, NSGRule{}
	slots := newPrioritySlots(NSGMinPriority, NSGMaxPriority)
	for i, r := range g.Rules {
		if r.Name == rule.Name {
			if !isGrant(r.Description) {
				return NSGRule{}, fmt.Errorf("NSG %s already has a rule named %q that is not a JIT grant; rename or delete that rule", g.NSG, r.Name)
			}
			cur = &g.Rules[i]
			continue
		}
		if !r.inbound() {
			continue
		}
		slots.take(r.Priority)
		if r.filter().shadows(src, ips, g.Port) && r.Priority < bound {
			bound, blocker = r.Priority, r
		}
	}
	if cur != nil && cur.inbound() {
		if cur.Priority < bound && slots.free(cur.Priority) {
			rule.Priority = cur.Priority
			return rule, nil
		}
		slots.take(cur.Priority) // until the grant moves, its old priority is taken
	}
	p, ok := slots.placeGrant(bound)
	switch {
	case ok:
		rule.Priority = p
		return rule, nil
	case bound > NSGMaxPriority:
		return NSGRule{}, fmt.Errorf("NSG %s has no free inbound priority for the grant of port %s to virtual machine %s; free one in that NSG", g.NSG, portLabel(g.Port), g.Machine)
	case isDeny(blocker.Description):
		return NSGRule{}, fmt.Errorf("NSG %s has no free inbound priority before the JIT deny %q (priority %d) for the grant of port %s to virtual machine %s; free one before %d in that NSG",
			g.NSG, blocker.Name, blocker.Priority, portLabel(g.Port), g.Machine, blocker.Priority)
	}
	return NSGRule{}, fmt.Errorf("rule %q (priority %d) in NSG %s denies port %s from %s to virtual machine %s, and no priority before it is free, so a grant could not work; free a priority before %d in that NSG or narrow that rule",
		blocker.Name, blocker.Priority, g.NSG, portLabel(g.Port), src, g.Machine, blocker.Priority)
}

func isDeny(description string) bool {
	m, ok := ParseMarker(description)
	return ok && m.Kind == MarkerDeny
}
