package jit

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// PlanPolicyPaths plans a policy's JIT denies on the whole paths of its
// Azure machines: every NSG traffic crosses to reach them (the subnet's,
// then the NIC's) and, when the policy has one, the classic Azure Firewall
// in front, all judged together by the evaluator (evaluate.go).
//
// In each NSG, one inbound Deny per port, protocol and address family
// covers every machine of the policy behind it (the rule's destinations are
// their addresses of that family): 300 machines of one subnet locking 4
// ports need 4 rules, not 1,200 past the NSG's limit. Machines joining or
// leaving rewrite that rule in place, under the same name. Existing rules
// keep precedence: the deny comes after every rule of others that may be
// the first match of some traffic to the port on one of the machines it
// covers (judged by the evaluator, without the policy's own rules), and
// after the policy's honoured grants for them, with a free priority in
// between for later grants. A machine for which no such priority exists is
// left out of that deny and reported; the others are still locked. The
// firewall's deny collection is planned alike: one rule per port and
// family, the collection after every collection deciding a locked port.
//
// What the plan leaves true is then evaluated on the whole path, and
// reported: access that stays open to a locked port (naming the allowing
// rules and the sources), existing access the new denies cut (naming the
// rule that let the sources through, and the deny in another NSG that now
// blocks them), and ports that cannot be locked. Limits of ARM are checked.
// Errors are findings too; the plan must not be applied when one is there.
func PlanPolicyPaths(in PolicyPathInput) PolicyPathPlan {
	return planPolicyPaths(in, true)
}

func planPolicyPaths(in PolicyPathInput, lookAhead bool) PolicyPathPlan {
	p := &pathPlanner{in: in, marker: DenyMarker(in.Policy).String(), nsgs: map[string]*nsgState{}}
	p.plan.NSGs = map[string]NSGPlan{}
	if !p.read() {
		return p.plan
	}
	for _, key := range p.nsgOrder {
		p.planNSG(p.nsgs[key])
	}
	if p.fw != nil {
		p.planFirewall()
	}
	if lookAhead {
		p.announceRoomAfterMoves()
	}
	p.evaluateExposures()
	p.report()
	return p.plan
}

// announceRoomAfterMoves: a deny that must move keeps its old priority
// until it has moved, so the same plan cannot give that priority to
// another deny (the writes may run in any order); nor, when the plan
// prefers that new denies can be written before old ones are removed, the
// priority of a rule it removes. In a crowded NSG, a machine left out for
// want of room may then fit once the plan is applied. Such a plan is not the last one, and says so: the next plan is
// computed on the applied result, and each machine it would lock is
// reported as one that planning again locks.
func (p *pathPlanner) announceRoomAfterMoves() {
	moved, left := false, false
	for _, key := range p.nsgOrder {
		st := p.nsgs[key]
		np := p.plan.NSGs[st.id]
		for _, a := range np.Add {
			if i, ok := st.byName[a.Name]; ok && st.rules[i].Priority != a.Priority {
				moved = true
			}
		}
		moved = moved || slices.ContainsFunc(np.Remove, NSGRule.inbound)
		for _, g := range st.groups {
			for _, m := range g.members {
				left = left || m.reason != ""
			}
		}
	}
	if !moved || !left {
		return
	}
	next := p.in
	next.NSGs = map[string][]NSGRule{}
	for _, key := range p.nsgOrder {
		next.NSGs[p.nsgs[key].id] = p.nsgs[key].after
	}
	if p.fw != nil {
		fw := *p.in.Firewall
		fw.Collections = p.fw.after
		next.Firewall = &fw
	}
	covered := map[string]bool{}
	for _, d := range planPolicyPaths(next, false).Denies {
		for _, m := range d.MachineKeys {
			covered[strings.ToLower(d.Target+"|"+m+"|"+portLabel(d.Port)+"|"+string(d.Family))] = true
		}
	}
	for _, key := range p.nsgOrder {
		st := p.nsgs[key]
		for _, g := range st.groups {
			for _, m := range g.members {
				if m.reason != "" && covered[strings.ToLower(st.id+"|"+p.machines[m.machine].key+"|"+portLabel(g.key.port)+"|"+string(g.key.fam))] {
					m.reason += ". This plan moves denies of the policy away from priorities that it frees; once it is applied, " + PlanAgainLocks
				}
			}
		}
	}
}

// PlanAgainLocks ends the reason of a port that a plan cannot lock, but
// the next plan, once this one is applied, will.
const PlanAgainLocks = "planning again locks this port here"

// PathMachine is one machine of the policy and the way traffic reaches it.
type PathMachine struct {
	// Key identifies the machine (its ARM ID); compared without case.
	Key        string
	Ports      []PortProtocol
	Interfaces []PathInterface
}

// PathInterface is one network interface: its private addresses and the
// NSGs inbound traffic crosses to reach them, the subnet's first ("" when
// absent: an absent NSG allows).
type PathInterface struct {
	IPs       []string
	SubnetNSG string
	NICNSG    string
}

// FirewallPathInput is the classic Azure Firewall in front of every machine.
type FirewallPathInput struct {
	ID          string
	Collections []FirewallNetworkCollection
	// HonouredGrant tells the grant collections the caller judged valid for
	// this policy: the policy's own, kept before its deny collection.
	HonouredGrant func(FirewallNetworkCollection) bool
}

// PolicyPathInput is what PlanPolicyPaths needs.
type PolicyPathInput struct {
	Policy   string
	Machines []PathMachine
	// NSGs holds the current custom rules of every NSG on the machines'
	// paths and of every NSG where the policy may still hold rules (its
	// rules there are removed). IDs are compared without case.
	NSGs     map[string][]NSGRule
	Firewall *FirewallPathInput
	// HonouredGrant tells the grant rules the caller judged valid for this
	// policy: the policy's own, never deciding anything, kept before its
	// denies. Every other rule, whatever its description says, is someone
	// else's, unless it carries this policy's deny marker. Nil: none.
	HonouredGrant func(nsg string, r NSGRule) bool
	// Strict makes every port that cannot be locked an error: all or nothing.
	Strict bool
}

// PolicyPathPlan is the plan of a policy over its machines' paths.
type PolicyPathPlan struct {
	// NSGs holds the plan of each NSG (keyed as the caller spelled it),
	// with NSGPlan's write contract. Add also never takes the priority of a
	// rule in Remove when the NSG has room enough, so old denies being
	// replaced (per-machine denies of earlier versions) may be removed
	// after the new ones are written, and the ports never open.
	NSGs     map[string]NSGPlan
	Firewall *FirewallDenyPlan
	// Denies lists every deny the policy owns after the plan.
	Denies []PlannedDeny
	// Exposures is what the findings report, as data.
	Exposures []Exposure
	Findings  []Finding
}

// PlannedDeny is one of the policy's denies after the plan.
type PlannedDeny struct {
	// Target is the NSG's or the firewall's ID.
	Target string
	Name   string
	// Priority is the rule's, or in a firewall its collection's.
	Priority    int
	Port        PortProtocol
	Family      AddressFamily
	MachineKeys []string
}

// ExposureKind tells what an exposure reports.
type ExposureKind string

const (
	// ExposureKeptOpen: after the plan, sources still reach a locked port
	// of the machine through the path, by rules of others.
	ExposureKeptOpen ExposureKind = "kept open"
	// ExposureCut: sources an explicit rule of others let through before
	// the plan are blocked after it, by a new deny in another filter of
	// the path.
	ExposureCut ExposureKind = "cut"
	// ExposureNotLocked: a filter's deny could not cover the machine.
	ExposureNotLocked ExposureKind = "cannot lock"
)

// Exposure is one finding about one machine and port, as data.
type Exposure struct {
	Kind    ExposureKind
	Machine string
	// Port is the policy's port; for kept open and cut, the protocol is
	// the one evaluated (TCP or UDP).
	Port      PortProtocol
	Family    AddressFamily
	Addresses []string // the machine's addresses concerned
	// Path lists the filters (IDs) of the path evaluated (kept open, cut).
	Path []string
	// Sources are the remote addresses concerned (kept open, cut), as
	// RangeString writes them.
	Sources []string
	// Rules are the rules allowing the sources after the plan (kept open),
	// those that let them through before it (cut), or the rule the deny
	// could not follow (cannot lock; none when room was missing).
	Rules []RuleRef
	// CutBy are the policy's denies that block the sources (cut).
	CutBy []RuleRef
	// Assumed lists the tags, application security groups and other
	// unknowns the verdict was assumed on; empty when certain.
	Assumed []string
	// Target and Reason say where and why the port cannot be locked.
	Target, Reason string
}

// Schema paths the findings are attached to.
const (
	pathVirtualMachineIDs = "virtual_machine_ids"
	pathAzureFirewallID   = "azure_firewall_id"
)

// ARM limits of one NSG.
const (
	NSGMaxRules     = 1000
	NSGMaxAddresses = 4000
)

// --- Reading the input. ---

type ruleClass uint8

const (
	classForeign ruleClass = iota
	classOwnDeny
	classGrant
)

type pathPlanner struct {
	in       PolicyPathInput
	marker   string
	nsgs     map[string]*nsgState // by lower-cased ID
	nsgOrder []string
	machines []pathMachine
	fw       *fwState
	plan     PolicyPathPlan
	// noNSG records interfaces with no NSG at all: nothing locks them.
	noNSG []Exposure
}

type pathMachine struct {
	key    string
	ports  []PortProtocol
	ifaces []pathIface
}

type pathIface struct {
	ips  []netip.Addr
	nsgs []string // lower-cased NSG keys in path order
}

type groupKey struct {
	port PortProtocol
	fam  AddressFamily
}

// nsgState is one NSG: its rules now, the policy's denies in it, its plan
// and its rules after the plan.
type nsgState struct {
	id       string
	rules    []NSGRule
	class    []ruleClass
	byName   map[string]int
	onPath   bool
	defender string      // a Defender for Cloud JIT rule's name
	compiled []*evalRule // inbound rules, compiled once (nil for the others)
	order    []int       // their evaluation order
	foreign  *Filter
	grants   *Filter
	groups   map[groupKey]*denyGroup
	bounds   map[boundKey]bound
	after    []NSGRule
	// classes of rules by name before and after the plan
	beforeClass, afterClass map[string]ruleClass
	beforeF, afterF         *Filter
}

type boundKey struct {
	ip    netip.Addr
	port  int
	proto Protocol
}

// bound is the first priority a deny may take for some traffic, and the
// rule that sets it.
type bound struct {
	at      int
	rule    *Decider
	byGrant bool
	// foreign is the first priority after the rules of others alone: where
	// the window for later grants may start. The policy's grants bound the
	// deny, not the window: a later grant may go before an earlier one.
	foreign int
}

func (b bound) later(o bound) bound {
	f := max(b.foreign, o.foreign)
	if o.at > b.at {
		b = o
	}
	b.foreign = f
	return b
}

type denyGroup struct {
	key     groupKey
	name    string
	members []*groupMember
	place   placeGroup
}

type groupMember struct {
	machine int
	ips     []netip.Addr
	bound   bound
	reason  string // why it is left out ("" when covered)
}

func (p *pathPlanner) fail(summary, detail string, path ...any) {
	p.plan.Findings = append(p.plan.Findings, Error(summary, detail, path...))
}

// read reads the input: the NSGs, the machines and the firewall. It
// returns false, each reason reported, when the plan cannot be made.
// Then every machine's addresses join the denies of the NSGs on its path.
func (p *pathPlanner) read() bool {
	p.readNSGs()
	ok := true
	seen := map[string]string{}
	for _, m := range p.in.Machines {
		if m.Key == "" {
			p.fail("Virtual machine without key", "a machine of the policy has an empty key.", pathVirtualMachineIDs)
			ok = false
			continue
		}
		if other, dup := seen[strings.ToLower(m.Key)]; dup {
			p.fail("Virtual machine listed twice", fmt.Sprintf("%s and %s are one machine (ARM IDs are case-insensitive); list it once.", other, m.Key), pathVirtualMachineIDs)
			ok = false
			continue
		}
		seen[strings.ToLower(m.Key)] = m.Key
		ok = p.readMachine(m) && ok
	}
	for _, key := range p.nsgOrder {
		if st := p.nsgs[key]; st.onPath && st.defender != "" {
			p.fail("NSG managed by Defender for Cloud's JIT", fmt.Sprintf("NSG %s holds Defender for Cloud's JIT rule %q: two JIT engines on one NSG fight over its rules. Disable Defender's JIT for these machines, or leave them out of this policy.", st.id, st.defender), pathVirtualMachineIDs)
			ok = false
		}
	}
	if p.in.Firewall != nil {
		ok = p.readFirewall() && ok
	}
	if !ok {
		return false
	}
	p.joinGroups()
	return true
}

// readNSGs reads every NSG given, in the order of their IDs; one listed
// twice (IDs differing in case) is reported, and read once.
func (p *pathPlanner) readNSGs() {
	for _, id := range slices.Sorted(maps.Keys(p.in.NSGs)) {
		key := strings.ToLower(id)
		if other, ok := p.nsgs[key]; ok {
			p.fail("NSG listed twice", fmt.Sprintf("the NSGs %s and %s differ only in case: ARM IDs are case-insensitive, so they are one NSG. List it once.", other.id, id), pathVirtualMachineIDs)
			continue
		}
		p.nsgs[key] = p.readNSG(id)
		p.nsgOrder = append(p.nsgOrder, key)
	}
}

// readNSG reads one NSG: whose each rule is, whether Defender for
// Cloud's JIT manages it, and its inbound rules compiled, with the
// filters of the rules of others and of the policy's honoured grants.
func (p *pathPlanner) readNSG(id string) *nsgState {
	st := &nsgState{id: id, rules: p.in.NSGs[id], byName: map[string]int{}, groups: map[groupKey]*denyGroup{}, bounds: map[boundKey]bound{}}
	st.class = make([]ruleClass, len(st.rules))
	for i, r := range st.rules {
		st.byName[r.Name] = i
		if m, ok := parseMarkerFast(r.Description); ok && m.Kind == MarkerDeny && m.BelongsTo(p.in.Policy) {
			st.class[i] = classOwnDeny
		} else if r.inbound() && strings.EqualFold(string(r.Access), string(NSGAllow)) && p.in.HonouredGrant != nil && p.in.HonouredGrant(id, r) {
			st.class[i] = classGrant
		}
		if IsDefenderJITRule(r.Name) && st.defender == "" {
			st.defender = r.Name
		}
	}
	st.compiled = compileNSGInbound(id, st.rules)
	st.order = evaluationOrder(st.compiled)
	st.foreign = nsgFilterOrdered(id, st.compiled, st.order, func(i int) bool { return st.class[i] == classForeign }, false)
	st.grants = nsgFilterOrdered(id, st.compiled, st.order, func(i int) bool { return st.class[i] == classGrant }, false)
	return st
}

// readMachine reads one machine, its ports and interfaces, and adds it to
// the machines when it has an address. It returns false, each reason
// reported, when the machine cannot be planned.
func (p *pathPlanner) readMachine(m PathMachine) bool {
	if err := checkLockedPorts(m.Key, m.Ports); err != nil {
		p.fail("Invalid locked port", err.Error()+".", pathVirtualMachineIDs)
		return false
	}
	ok := true
	pm := pathMachine{key: m.Key, ports: m.Ports}
	hasIP := false
	for _, nic := range m.Interfaces {
		var ips []netip.Addr
		if len(nic.IPs) > 0 {
			var err error
			if ips, err = parseMachineIPs(m.Key, nic.IPs); err != nil {
				p.fail("Invalid private IP address", err.Error()+".", pathVirtualMachineIDs)
				ok = false
				continue
			}
		}
		hasIP = hasIP || len(ips) > 0
		nsgs, nsgsOK := p.pathNSGs(m.Key, nic)
		ok = ok && nsgsOK
		pm.ifaces = append(pm.ifaces, pathIface{ips: ips, nsgs: nsgs})
	}
	if !hasIP {
		p.fail("Virtual machine without private IP address", fmt.Sprintf("virtual machine %s has no private IP address, so no rule can target it.", m.Key), pathVirtualMachineIDs)
		return false
	}
	p.machines = append(p.machines, pm)
	return ok
}

// pathNSGs is the keys of the NSGs on an interface's path, in path order,
// each marked as on a path; false when one of them was not given (each
// reported, and left out).
func (p *pathPlanner) pathNSGs(machine string, nic PathInterface) ([]string, bool) {
	var keys []string
	ok := true
	for _, id := range []string{nic.SubnetNSG, nic.NICNSG} {
		if id == "" {
			continue
		}
		st := p.nsgs[strings.ToLower(id)]
		if st == nil {
			p.fail("NSG not read", fmt.Sprintf("NSG %s is on the path of virtual machine %s, but its rules were not given to the planner.", id, machine), pathVirtualMachineIDs)
			ok = false
			continue
		}
		st.onPath = true
		keys = append(keys, strings.ToLower(id))
	}
	return keys, ok
}

// joinGroups adds every machine's addresses behind each NSG to the deny
// of each port and family there. An interface with no NSG is reported as
// not locked: nothing on its path can lock it.
func (p *pathPlanner) joinGroups() {
	for mi, m := range p.machines {
		for _, nic := range m.ifaces {
			if len(nic.nsgs) == 0 {
				p.reportNoNSG(m, nic)
				continue
			}
			for _, key := range slices.Compact(slices.Clone(nic.nsgs)) {
				st := p.nsgs[key]
				for _, ip := range nic.ips {
					for _, port := range m.ports {
						gm := st.member(groupKey{port, FamilyOf(ip)}, p.in.Policy, mi)
						gm.ips = append(gm.ips, ip)
					}
				}
			}
		}
	}
}

// reportNoNSG records each port of the machine as not locked on an
// interface with no NSG on its path, per address family.
func (p *pathPlanner) reportNoNSG(m pathMachine, nic pathIface) {
	for _, fam := range []AddressFamily{IPv4, IPv6} {
		addrs := familyAddrs(nic.ips, fam)
		if len(addrs) == 0 {
			continue
		}
		for _, port := range m.ports {
			p.noNSG = append(p.noNSG, Exposure{Kind: ExposureNotLocked, Machine: m.key, Port: port, Family: fam, Addresses: addrStrings(addrs),
				Reason: "no network security group is on the path of its network interface (neither the NIC nor its subnet has one), so nothing can lock the port there; associate an NSG with the subnet or the NIC"})
		}
	}
}

// member is the machine's member of the group, created on first use.
func (st *nsgState) member(k groupKey, policy string, machine int) *groupMember {
	g := st.groups[k]
	if g == nil {
		g = &denyGroup{key: k, name: AggregateDenyRuleName(policy, k.port, k.fam)}
		st.groups[k] = g
	}
	for _, m := range g.members {
		if m.machine == machine {
			return m
		}
	}
	m := &groupMember{machine: machine}
	g.members = append(g.members, m)
	return m
}

// parseMarkerFast skips the checksum of descriptions that cannot be
// markers: most rules of a large NSG.
func parseMarkerFast(description string) (Marker, bool) {
	if !strings.HasPrefix(description, "jit:") {
		return Marker{}, false
	}
	return ParseMarker(description)
}

func familyAddrs(ips []netip.Addr, fam AddressFamily) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		if FamilyOf(ip) == fam {
			out = append(out, ip)
		}
	}
	return out
}

// --- One NSG. ---

// planNSG plans the policy's denies in one NSG, and what the NSG's rules
// are once the plan is written.
func (p *pathPlanner) planNSG(st *nsgState) {
	placing, held := p.groupsToPlace(st)
	st.placeGroups(placing, held)
	plan, placed := p.writeDenies(st, placing)
	p.plan.NSGs[st.id] = plan
	st.after = applyNSGPlanRules(st.rules, plan)
	p.checkLimits(st, plan)
	st.filtersAround(plan, placed)
}

// sortedGroups is the NSG's deny groups, by name.
func (st *nsgState) sortedGroups() []*denyGroup {
	return slices.SortedFunc(maps.Values(st.groups), func(a, b *denyGroup) int { return strings.Compare(a.name, b.name) })
}

// groupsToPlace readies the NSG's deny groups for placement (bounds, the
// members the policy's deny covers now, its current priority) and returns
// them, but for those whose name a rule of others holds: those cannot be
// written, and are reported. held names the policy's denies whose
// priority placement holds while they cover someone.
func (p *pathPlanner) groupsToPlace(st *nsgState) (placing []*denyGroup, held map[string]bool) {
	inboundUse := map[int]int{}
	for _, r := range st.rules {
		if r.inbound() {
			inboundUse[r.Priority]++
		}
	}
	held = map[string]bool{}
	for _, g := range st.sortedGroups() {
		st.boundMembers(g)
		if i, ok := st.byName[g.name]; ok {
			r := st.rules[i]
			if st.class[i] != classOwnDeny {
				p.fail("Rule name taken", fmt.Sprintf("NSG %s already has a rule named %q that jit does not manage (its description lacks policy %q's marker), so the policy's deny of port %s for %s cannot be written. Rename or delete that rule.",
					st.id, g.name, p.in.Policy, portLabel(g.key.port), g.key.fam), pathVirtualMachineIDs)
				for _, m := range g.members {
					m.reason = fmt.Sprintf("a rule of others in NSG %s is named %q, the name of the policy's deny", st.id, g.name)
				}
				continue
			}
			if r.inbound() {
				for k, m := range g.members {
					g.place.incumbent[k] = coversAll(r.DestinationPrefixes, m.ips)
				}
				if NSGMinPriority <= r.Priority && r.Priority <= NSGMaxPriority && inboundUse[r.Priority] == 1 {
					g.place.current = r.Priority
					held[r.Name] = true
				}
			}
		}
		placing = append(placing, g)
	}
	return placing, held
}

// boundMembers sets each member's bound, from the rules its traffic must
// come after, and the group's placement from them.
func (st *nsgState) boundMembers(g *denyGroup) {
	g.place = placeGroup{bounds: make([]int, len(g.members)), windows: make([]int, len(g.members)), incumbent: make([]bool, len(g.members))}
	for i, m := range g.members {
		slices.SortFunc(m.ips, netip.Addr.Compare)
		m.ips = slices.Compact(m.ips)
		for _, ip := range m.ips {
			for _, proto := range portProtocols(g.key.port) {
				m.bound = m.bound.later(st.boundFor(ip, g.key.port.Number, proto))
			}
		}
		m.bound.at = max(m.bound.at, NSGMinPriority)
		g.place.bounds[i], g.place.windows[i] = m.bound.at, m.bound.foreign
	}
}

// placeGroups places the groups' denies (placeExcluding).
//
// First attempt: every priority in use stays taken, so no new deny takes
// the priority of a rule the plan removes, and the new denies may be
// written before the old ones go: a port never opens while old per-machine
// denies are replaced. Second attempt, when the first leaves machines out:
// the priorities of the policy's own rules are free, as the contract's
// order (Remove first) allows; placeDenies still holds those of the denies
// it places.
func (st *nsgState) placeGroups(placing []*denyGroup, held map[string]bool) {
	placingNames := map[string]bool{}
	pg := make([]*placeGroup, len(placing))
	for i, g := range placing {
		placingNames[g.name] = true
		pg[i] = &g.place
	}
	// The policy's rules now: the plan removes those of no deny placed,
	// so their priorities may serve as windows in the first attempt.
	gone := st.inboundSlots(func(i int) bool { return st.class[i] == classOwnDeny })
	placeExcluding(st.inboundSlots(nil), gone, pg)
	n, kept := covered(placing, false), covered(placing, true)
	if n == countMembers(placing) {
		return
	}
	first := make([]placeGroup, len(placing))
	for i, g := range placing {
		first[i] = g.place
	}
	placeExcluding(st.inboundSlots(func(i int) bool {
		name := st.rules[i].Name
		return st.class[i] != classOwnDeny || !held[name] && placingNames[name]
	}), nil, pg)
	// The second attempt wins if it keeps more of what is locked, or as
	// much and locks more.
	if k := covered(placing, true); k < kept || k == kept && covered(placing, false) <= n {
		for i, g := range placing {
			g.place = first[i]
		}
	}
}

// inboundSlots is the NSG's inbound priorities, taken by the rules take
// selects (nil: every rule).
func (st *nsgState) inboundSlots(take func(i int) bool) *prioritySlots {
	s := newPrioritySlots(NSGMinPriority, NSGMaxPriority)
	for i, r := range st.rules {
		if r.inbound() && (take == nil || take(i)) {
			s.take(r.Priority)
		}
	}
	return s
}

// writeDenies is the NSG's plan: each placed group's deny, written or
// kept as it is, and the removal of the policy's other rules. Members left
// out get their reason. It also returns the names of the denies placed.
func (p *pathPlanner) writeDenies(st *nsgState, placing []*denyGroup) (NSGPlan, map[string]bool) {
	var plan NSGPlan
	placed := map[string]bool{}
	for _, g := range placing {
		var dsts []netip.Addr
		for i, m := range g.members {
			if g.place.included[i] {
				dsts = append(dsts, m.ips...)
				continue
			}
			m.reason = p.notLockedReason(st.id, g.key.port, m.bound, NSGMaxPriority, "NSG", "inbound priorities")
		}
		if len(dsts) == 0 {
			continue
		}
		slices.SortFunc(dsts, netip.Addr.Compare)
		rule := NSGRule{
			Name: g.name, Priority: g.place.prio, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolOf(g.key.port.Protocol),
			SourcePrefixes: []string{"*"}, SourcePortRanges: []string{"*"}, DestinationPrefixes: addrStrings(slices.Compact(dsts)),
			DestinationPortRanges: []string{strconv.Itoa(g.key.port.Number)}, Description: p.marker,
		}
		placed[g.name] = true
		if i, ok := st.byName[g.name]; ok && st.rules[i].Equivalent(rule) {
			plan.Keep = append(plan.Keep, st.rules[i])
		} else {
			plan.Add = append(plan.Add, rule)
		}
		p.plan.Denies = append(p.plan.Denies, PlannedDeny{Target: st.id, Name: g.name, Priority: rule.Priority, Port: g.key.port, Family: g.key.fam, MachineKeys: p.memberKeys(g.members, g.place.included)})
	}
	for i, r := range st.rules {
		if st.class[i] == classOwnDeny && !placed[r.Name] {
			plan.Remove = append(plan.Remove, r)
		}
	}
	for _, list := range [][]NSGRule{plan.Add, plan.Keep, plan.Remove} {
		slices.SortFunc(list, func(a, b NSGRule) int {
			return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(a.Name, b.Name))
		})
	}
	return plan, placed
}

// filtersAround readies the NSG for judging what the plan leaves true:
// whose each rule is before and after the plan (placed: the policy's
// denies after it), and the NSG's filters before and after.
func (st *nsgState) filtersAround(plan NSGPlan, placed map[string]bool) {
	st.beforeClass, st.afterClass = map[string]ruleClass{}, map[string]ruleClass{}
	for i, r := range st.rules {
		st.beforeClass[r.Name] = st.class[i]
		if st.class[i] != classOwnDeny {
			st.afterClass[r.Name] = st.class[i]
		}
	}
	for name := range placed {
		st.afterClass[name] = classOwnDeny
	}
	// The rules after the plan: those kept, compiled once, and the new ones.
	st.beforeF = nsgFilterOrdered(st.id, st.compiled, st.order, nil, true)
	replaced := map[string]bool{}
	for _, r := range append(slices.Clone(plan.Remove), plan.Add...) {
		replaced[r.Name] = true
	}
	st.afterF = nsgFilterOrdered(st.id, st.compiled, st.order, func(i int) bool { return !replaced[st.rules[i].Name] }, false)
	for _, r := range plan.Add { // few: inserted in order
		e := nsgEvalRule(st.id, r)
		at, _ := slices.BinarySearchFunc(st.afterF.rules, e, func(a, b *evalRule) int {
			return cmp.Or(cmp.Compare(a.ref.Priority, b.ref.Priority), cmp.Compare(a.ref.Name, b.ref.Name))
		})
		st.afterF.rules = slices.Insert(st.afterF.rules, at, e)
	}
	for _, r := range nsgDefaultRules {
		e := nsgEvalRule(st.id, r)
		e.ref.Default = true
		st.afterF.rules = append(st.afterF.rules, e)
	}
}

// covered counts the members the groups' denies cover: all of them, or
// only the incumbents (those the policy covers now, and still does).
func covered(groups []*denyGroup, incumbents bool) int {
	n := 0
	for _, g := range groups {
		for i, in := range g.place.included {
			if in && (!incumbents || g.place.incumbent[i]) {
				n++
			}
		}
	}
	return n
}

// coversAll tells whether a deny's destinations name every address.
func coversAll(destinations []string, ips []netip.Addr) bool {
	for _, ip := range ips {
		if !slices.ContainsFunc(destinations, func(d string) bool {
			a, err := netip.ParseAddr(strings.TrimSpace(d))
			return err == nil && a.Unmap() == ip
		}) {
			return false
		}
	}
	return true
}

func countMembers(groups []*denyGroup) int {
	n := 0
	for _, g := range groups {
		n += len(g.members)
	}
	return n
}

// portProtocols lists the transport protocols a policy port carries.
func portProtocols(p PortProtocol) []Protocol {
	if p.Protocol == ProtocolAny {
		return []Protocol{ProtocolTCP, ProtocolUDP}
	}
	return []Protocol{p.Protocol}
}

// boundFor is the first priority a deny may take in the NSG for traffic
// to ip on the port: after every rule of others that may be the first of
// them to match some of that traffic (from any source), and after every
// honoured grant matching some of it.
func (st *nsgState) boundFor(ip netip.Addr, port int, proto Protocol) bound {
	k := boundKey{ip, port, proto}
	if b, ok := st.bounds[k]; ok {
		return b
	}
	q := Query{Direction: NSGInbound, Local: ip, Protocol: proto, Port: port}
	b := bound{at: NSGMinPriority}
	for _, s := range (Path{st.foreign}).Evaluate(q) {
		for _, d := range s.Deciders[0] {
			if d.Rule.Priority+1 > b.at {
				b = bound{at: d.Rule.Priority + 1, rule: &d}
			}
		}
	}
	b.foreign = b.at
	for _, d := range st.grants.mayMatch(q) {
		if d.Rule.Priority+1 > b.at {
			b = bound{at: d.Rule.Priority + 1, rule: &d, byGrant: true, foreign: b.foreign}
		}
	}
	st.bounds[k] = b
	return b
}

// notLockedReason says why a member could not be covered.
func (p *pathPlanner) notLockedReason(target string, port PortProtocol, b bound, hi int, kind, unit string) string {
	label := portLabel(port)
	switch {
	case b.rule != nil && b.at >= hi:
		return fmt.Sprintf("%s decides port %s for it%s; the deny must come after it, with a free priority in between for grants, and no %s are left after %d. Narrow or move that rule, or free priorities after it",
			ruleLabel(b.rule.Rule), label, assumedClause(b.rule.Assumed), unit, b.rule.Rule.Priority)
	case b.rule != nil && b.byGrant:
		return fmt.Sprintf("%s %s has no two free %s after the policy's grant %q (priority %d): one for the deny, one before it for later grants. Free two priorities after %d",
			kind, target, unit, b.rule.Rule.Name, b.rule.Rule.Priority, b.rule.Rule.Priority)
	case b.rule != nil:
		return fmt.Sprintf("%s %s has no two free %s after %s, which decides port %s for it%s: one for the deny, one before it for grants. Free two priorities after %d",
			kind, target, unit, ruleLabel(b.rule.Rule), label, assumedClause(b.rule.Assumed), b.rule.Rule.Priority)
	}
	return fmt.Sprintf("%s %s has no two free %s left (one for the deny, one before it for grants). Free two", kind, target, unit)
}

func (p *pathPlanner) memberKeys(members []*groupMember, included []bool) []string {
	var keys []string
	for i, m := range members {
		if included[i] {
			keys = append(keys, p.machines[m.machine].key)
		}
	}
	slices.SortFunc(keys, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	return keys
}

// applyNSGPlanRules is the NSG's rules once the plan is written.
func applyNSGPlanRules(rules []NSGRule, plan NSGPlan) []NSGRule {
	gone := map[string]bool{}
	for _, r := range plan.Remove {
		gone[r.Name] = true
	}
	var out []NSGRule
	at := map[string]int{}
	for _, r := range rules {
		if !gone[r.Name] {
			at[r.Name] = len(out)
			out = append(out, r)
		}
	}
	for _, a := range plan.Add {
		if i, ok := at[a.Name]; ok {
			out[i] = a
		} else {
			out = append(out, a)
		}
	}
	return out
}

// checkLimits holds the NSG to ARM's limits once the plan is written.
func (p *pathPlanner) checkLimits(st *nsgState, plan NSGPlan) {
	if len(plan.Add) == 0 {
		return // nothing grows
	}
	if n := len(st.after); n > NSGMaxRules {
		p.fail("NSG rule limit exceeded", fmt.Sprintf("NSG %s would hold %d security rules after this plan (%d of them the policy's denies); ARM allows at most %d per NSG. Remove rules from that NSG, lock fewer ports, or split the machines behind it over more NSGs.",
			st.id, n, len(plan.Add)+len(plan.Keep), NSGMaxRules), pathVirtualMachineIDs)
	}
	if n := NSGAddressCount(st.after); n > NSGMaxAddresses {
		p.fail("NSG address limit exceeded", fmt.Sprintf("NSG %s would name %d IP addresses and ranges in its rules after this plan (sources and destinations, over all rules); ARM allows at most %d per NSG. Each deny names the addresses of every machine of the policy behind it, once per locked port: lock fewer ports or machines behind that NSG, or remove addresses from its other rules.",
			st.id, n, NSGMaxAddresses), pathVirtualMachineIDs)
	}
}

// NSGAddressCount counts the addresses and ranges an NSG's rules name, as
// ARM's limit of NSGMaxAddresses does: not "*" and not tags.
func NSGAddressCount(rules []NSGRule) int {
	n := 0
	for _, r := range rules {
		for _, list := range [][]string{r.SourcePrefixes, r.DestinationPrefixes} {
			for _, a := range list {
				if _, _, ok := readAddressRange(a); ok {
					n++
				}
			}
		}
	}
	return n
}

// --- The firewall. ---

type fwState struct {
	id      string
	cols    []FirewallNetworkCollection
	class   []ruleClass
	name    string
	have    int // index of the policy's collection, -1
	foreign *Filter
	grants  *Filter
	// members: one per machine, port and family
	members []*fwMember
	place   placeGroup
	after   []FirewallNetworkCollection
	// classes of collections by name before and after the plan
	beforeClass, afterClass map[string]ruleClass
	beforeF, afterF         *Filter
}

type fwMember struct {
	machine int
	port    PortProtocol
	fam     AddressFamily
	ips     []netip.Addr
	bound   bound
	reason  string
}

func (p *pathPlanner) readFirewall() bool {
	in := p.in.Firewall
	f := &fwState{id: in.ID, cols: in.Collections, name: FirewallDenyCollectionName(p.in.Policy), have: -1}
	f.class = make([]ruleClass, len(f.cols))
	ok := true
	for i, c := range f.cols {
		switch {
		case c.Name == f.name:
			if r, foreign := foreignRuleIn(c, p.marker); foreign {
				p.fail("Rule collection name taken", fmt.Sprintf("Azure Firewall %s already has a network rule collection named %q that jit does not manage (rule %q lacks policy %q's marker). Rename or delete that collection.", f.id, f.name, r, p.in.Policy), pathAzureFirewallID)
				ok = false
			}
			f.class[i], f.have = classOwnDeny, i
		case in.HonouredGrant != nil && strings.EqualFold(string(c.Action), string(FirewallAllow)) && in.HonouredGrant(c):
			f.class[i] = classGrant
		}
	}
	f.foreign = newFirewallFilter(f.id, f.cols, func(i int) bool { return f.class[i] == classForeign }, false)
	f.grants = newFirewallFilter(f.id, f.cols, func(i int) bool { return f.class[i] == classGrant }, false)
	p.fw = f
	return ok
}

func (p *pathPlanner) planFirewall() {
	f := p.fw
	for mi, m := range p.machines {
		var ips []netip.Addr
		for _, nic := range m.ifaces {
			ips = append(ips, nic.ips...)
		}
		slices.SortFunc(ips, netip.Addr.Compare)
		ips = slices.Compact(ips)
		for _, port := range m.ports {
			for _, fam := range []AddressFamily{IPv4, IPv6} {
				addrs := familyAddrs(ips, fam)
				if len(addrs) == 0 {
					continue
				}
				fm := &fwMember{machine: mi, port: port, fam: fam, ips: addrs, bound: bound{at: FirewallMinPriority}}
				for _, ip := range addrs {
					for _, proto := range portProtocols(port) {
						fm.bound = fm.bound.later(f.boundFor(ip, port.Number, proto))
					}
				}
				f.members = append(f.members, fm)
			}
		}
	}
	slots := newPrioritySlots(FirewallMinPriority, FirewallMaxPriority)
	use := map[int]int{}
	for _, c := range f.cols {
		use[c.Priority]++
		slots.take(c.Priority)
	}
	f.place = placeGroup{bounds: make([]int, len(f.members)), windows: make([]int, len(f.members)), incumbent: make([]bool, len(f.members))}
	for i, m := range f.members {
		f.place.bounds[i], f.place.windows[i] = m.bound.at, m.bound.foreign
		if f.have >= 0 {
			name := AggregateDenyRuleName(p.in.Policy, m.port, m.fam)
			f.place.incumbent[i] = slices.ContainsFunc(f.cols[f.have].Rules, func(r FirewallNetworkRule) bool {
				return r.Name == name && coversAll(r.DestinationAddresses, m.ips)
			})
		}
	}
	if f.have >= 0 && use[f.cols[f.have].Priority] == 1 {
		f.place.current = f.cols[f.have].Priority
	}
	placeExcluding(slots, nil, []*placeGroup{&f.place})

	plan := &FirewallDenyPlan{}
	if f.have >= 0 {
		plan.Have = &f.cols[f.have]
	}
	type ruleKey struct {
		port PortProtocol
		fam  AddressFamily
	}
	dsts := map[ruleKey][]netip.Addr{}
	keys := map[ruleKey][]string{}
	for i, m := range f.members {
		if !f.place.included[i] {
			m.reason = p.notLockedReason(f.id, m.port, m.bound, FirewallMaxPriority, "Azure Firewall", "network rule collection priorities")
			continue
		}
		k := ruleKey{m.port, m.fam}
		dsts[k] = append(dsts[k], m.ips...)
		keys[k] = append(keys[k], p.machines[m.machine].key)
	}
	if len(dsts) > 0 {
		want := FirewallNetworkCollection{Name: f.name, Priority: f.place.prio, Action: FirewallDeny}
		rks := make([]ruleKey, 0, len(dsts))
		for k := range dsts {
			rks = append(rks, k)
		}
		slices.SortFunc(rks, func(a, b ruleKey) int {
			return strings.Compare(AggregateDenyRuleName(p.in.Policy, a.port, a.fam), AggregateDenyRuleName(p.in.Policy, b.port, b.fam))
		})
		for _, k := range rks {
			d := dsts[k]
			slices.SortFunc(d, netip.Addr.Compare)
			name := AggregateDenyRuleName(p.in.Policy, k.port, k.fam)
			want.Rules = append(want.Rules, FirewallNetworkRule{Name: name, Description: p.marker, Protocols: firewallProtocolsOf(k.port.Protocol),
				SourceAddresses: []string{"*"}, DestinationAddresses: addrStrings(slices.Compact(d)), DestinationPorts: []string{strconv.Itoa(k.port.Number)}})
			mk := keys[k]
			slices.SortFunc(mk, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
			p.plan.Denies = append(p.plan.Denies, PlannedDeny{Target: f.id, Name: name, Priority: want.Priority, Port: k.port, Family: k.fam, MachineKeys: slices.Compact(mk)})
		}
		plan.Want = &want
	}
	plan.Changed = plan.Have == nil && plan.Want != nil || plan.Have != nil && (plan.Want == nil || !firewallNetworkCollectionsEquivalent(*plan.Have, *plan.Want))
	p.plan.Firewall = plan

	f.beforeClass, f.afterClass = map[string]ruleClass{}, map[string]ruleClass{}
	for i, c := range f.cols {
		f.beforeClass[c.Name] = f.class[i]
		if i != f.have {
			f.after = append(f.after, c)
			f.afterClass[c.Name] = f.class[i]
		}
	}
	if plan.Want != nil {
		f.after = append(f.after, *plan.Want)
		f.afterClass[f.name] = classOwnDeny
	}
	f.beforeF, f.afterF = FirewallFilter(f.id, f.cols), FirewallFilter(f.id, f.after)
}

func (f *fwState) boundFor(ip netip.Addr, port int, proto Protocol) bound {
	q := Query{Direction: NSGInbound, Local: ip, Protocol: proto, Port: port}
	b := bound{at: FirewallMinPriority}
	for _, s := range (Path{f.foreign}).Evaluate(q) {
		for _, d := range s.Deciders[0] {
			if d.Rule.Priority+1 > b.at {
				b = bound{at: d.Rule.Priority + 1, rule: &d}
			}
		}
	}
	b.foreign = b.at
	for _, d := range f.grants.mayMatch(q) {
		if d.Rule.Priority+1 > b.at {
			b = bound{at: d.Rule.Priority + 1, rule: &d, byGrant: true, foreign: b.foreign}
		}
	}
	return b
}

// --- What the plan leaves true. ---

// route is one way traffic reaches an address: its filters before and
// after the plan.
type route struct {
	ids           []string
	before, after Path
}

func (p *pathPlanner) classOf(ref RuleRef, after bool) ruleClass {
	if ref.Default {
		return classForeign
	}
	if p.fw != nil && ref.Filter == p.fw.id && ref.Collection != "" {
		if after {
			return p.fw.afterClass[ref.Collection]
		}
		return p.fw.beforeClass[ref.Collection]
	}
	st := p.nsgs[strings.ToLower(ref.Filter)]
	if after {
		return st.afterClass[ref.Name]
	}
	return st.beforeClass[ref.Name]
}

func (p *pathPlanner) evaluateExposures() {
	p.plan.Exposures = append(p.plan.Exposures, p.noNSG...)
	for _, key := range p.nsgOrder {
		st := p.nsgs[key]
		for _, g := range st.sortedGroups() {
			for _, m := range g.members {
				if m.reason != "" {
					p.plan.Exposures = append(p.plan.Exposures, p.notLocked(m.machine, g.key.port, g.key.fam, m.ips, st.id, m.reason, m.bound))
				}
			}
		}
	}
	if p.fw != nil {
		for _, m := range p.fw.members {
			if m.reason != "" {
				p.plan.Exposures = append(p.plan.Exposures, p.notLocked(m.machine, m.port, m.fam, m.ips, p.fw.id, m.reason, m.bound))
			}
		}
	}

	for _, m := range p.machines {
		acc := map[string]*exposureAcc{}
		var order []string
		for _, nic := range m.ifaces {
			if len(nic.nsgs) == 0 {
				continue // reported as not locked; nothing on the path to name
			}
			routes := []route{{}}
			if p.fw != nil {
				routes = append(routes, route{ids: []string{p.fw.id}, before: Path{p.fw.beforeF}, after: Path{p.fw.afterF}})
			}
			for i := range routes {
				for _, key := range nic.nsgs {
					st := p.nsgs[key]
					routes[i].ids = append(routes[i].ids, st.id)
					routes[i].before = append(routes[i].before, st.beforeF)
					routes[i].after = append(routes[i].after, st.afterF)
				}
			}
			for _, ip := range nic.ips {
				for _, port := range m.ports {
					for _, proto := range portProtocols(port) {
						q := Query{Direction: NSGInbound, Local: ip, Protocol: proto, Port: port.Number}
						for _, r := range routes {
							p.exposuresOn(r, q, func(e Exposure, first, last netip.Addr) {
								e.Machine, e.Port, e.Family, e.Path = m.key, PortProtocol{port.Number, proto}, FamilyOf(ip), r.ids
								e.Addresses = []string{ip.String()} // one address: the sources differ from one to another
								k := e.key()
								a := acc[k]
								if a == nil {
									a = &exposureAcc{e: e}
									acc[k] = a
									order = append(order, k)
								}
								a.add(ip, first, last, e.Assumed)
							})
						}
					}
				}
			}
		}
		for _, k := range order {
			p.plan.Exposures = append(p.plan.Exposures, acc[k].exposure())
		}
	}
}

func (p *pathPlanner) notLocked(machine int, port PortProtocol, fam AddressFamily, ips []netip.Addr, target, reason string, b bound) Exposure {
	e := Exposure{Kind: ExposureNotLocked, Machine: p.machines[machine].key, Port: port, Family: fam, Addresses: addrStrings(ips), Target: target, Reason: reason}
	if b.rule != nil && !b.byGrant {
		e.Rules = []RuleRef{b.rule.Rule}
		e.Assumed = b.rule.Assumed
	}
	return e
}

// exposuresOn compares the route before and after the plan over the
// query's sources, and emits what stays open and what is cut.
func (p *pathPlanner) exposuresOn(r route, q Query, emit func(e Exposure, first, last netip.Addr)) {
	before, after := r.before.Evaluate(q), r.after.Evaluate(q)
	i, j := 0, 0
	for cur := before[0].First; ; {
		b, a := before[i], after[j]
		end := minAddr(b.Last, a.Last)
		p.classify(b, a, func(e Exposure) { emit(e, cur, end) })
		if end == before[len(before)-1].Last {
			return
		}
		if b.Last == end {
			i++
		}
		if a.Last == end {
			j++
		}
		cur = end.Next()
	}
}

// classify tells what one interval of sources becomes.
func (p *pathPlanner) classify(b, a Segment, emit func(Exposure)) {
	has := func(s Segment, after bool, want func(Decider, ruleClass) bool) []Decider {
		var out []Decider
		for _, ds := range s.Deciders {
			for _, d := range ds {
				if want(d, p.classOf(d.Rule, after)) {
					out = append(out, d)
				}
			}
		}
		return out
	}
	if a.Verdict != VerdictDeny {
		// Access is the policy's intent where, in some filter, only its own
		// grants may let the sources through.
		for _, ds := range a.Deciders {
			grant, other := false, false
			for _, d := range ds {
				if d.Rule.Access == NSGAllow {
					if p.classOf(d.Rule, true) == classGrant {
						grant = true
					} else {
						other = true
					}
				}
			}
			if grant && !other {
				return
			}
		}
		e := Exposure{Kind: ExposureKeptOpen}
		for _, d := range has(a, true, func(d Decider, c ruleClass) bool { return d.Rule.Access == NSGAllow && c != classGrant }) {
			e.Rules = append(e.Rules, d.Rule)
		}
		if a.Verdict == VerdictMaybe {
			for _, ds := range a.Deciders {
				for _, d := range ds {
					e.Assumed = append(e.Assumed, d.Assumed...)
				}
			}
		}
		emit(e)
		return
	}
	if b.Verdict == VerdictDeny {
		return
	}
	// The denies that block: in the filters that now deny those sources.
	var cut []Decider
	for _, ds := range a.Deciders {
		if verdictOf(ds, true) != VerdictDeny {
			continue
		}
		for _, d := range ds {
			if p.classOf(d.Rule, true) == classOwnDeny && d.Rule.Access == NSGDeny {
				cut = append(cut, d)
			}
		}
	}
	allowed := has(b, false, func(d Decider, c ruleClass) bool {
		return c == classForeign && !d.Rule.Default && d.Rule.Access == NSGAllow
	})
	if len(cut) == 0 || len(allowed) == 0 {
		return
	}
	e := Exposure{Kind: ExposureCut}
	for _, d := range allowed {
		e.Rules = append(e.Rules, d.Rule)
		e.Assumed = append(e.Assumed, d.Assumed...)
	}
	for _, d := range cut {
		e.CutBy = append(e.CutBy, d.Rule)
		e.Assumed = append(e.Assumed, d.Assumed...)
	}
	emit(e)
}

func (e Exposure) key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%s|%s|%s|%s|", e.Kind, strings.ToLower(e.Machine), portLabel(e.Port), strings.Join(e.Addresses, ","), e.Family, strings.Join(e.Path, ","))
	for _, r := range e.Rules {
		fmt.Fprintf(&b, "%s/%s/%s/%d;", r.Filter, r.Collection, r.Name, r.Priority)
	}
	b.WriteByte('|')
	for _, r := range e.CutBy {
		fmt.Fprintf(&b, "%s/%s/%s/%d;", r.Filter, r.Collection, r.Name, r.Priority)
	}
	return b.String()
}

// exposureAcc gathers the sources and addresses of one exposure.
type exposureAcc struct {
	e       Exposure
	ips     []netip.Addr
	ranges  []addrRange
	assumed []string
}

func (a *exposureAcc) add(ip netip.Addr, first, last netip.Addr, assumed []string) {
	a.ips = append(a.ips, ip)
	a.ranges = append(a.ranges, addrRange{first, last})
	a.assumed = append(a.assumed, assumed...)
}

func (a *exposureAcc) exposure() Exposure {
	e := a.e
	slices.SortFunc(a.ips, netip.Addr.Compare)
	e.Addresses = addrStrings(slices.Compact(a.ips))
	slices.SortFunc(a.ranges, func(x, y addrRange) int { return x.first.Compare(y.first) })
	var merged []addrRange
	for _, r := range a.ranges {
		if n := len(merged); n > 0 {
			last := &merged[n-1]
			if next := last.last.Next(); !r.first.Less(last.first) && (!next.IsValid() || !next.Less(r.first)) {
				if last.last.Less(r.last) {
					last.last = r.last
				}
				continue
			}
		}
		merged = append(merged, r)
	}
	e.Sources = nil
	for _, r := range merged {
		e.Sources = append(e.Sources, RangeString(r.first, r.last))
	}
	slices.Sort(a.assumed)
	e.Assumed = slices.Compact(a.assumed)
	return e
}

// --- Findings. ---

func (p *pathPlanner) report() {
	// What stays open after the plan, to say it where a port cannot be locked.
	type mpf struct {
		machine string
		port    int
		fam     AddressFamily
	}
	open := map[mpf]bool{}
	for _, e := range p.plan.Exposures {
		if e.Kind == ExposureKeptOpen {
			open[mpf{strings.ToLower(e.Machine), e.Port.Number, e.Family}] = true
		}
	}
	type group struct {
		e        Exposure
		machines []string
		families []string
		open     bool
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, e := range p.plan.Exposures {
		k := fmt.Sprintf("%s|%s|%s|%s|%q|%q|%q|%s|%s", e.Kind, portLabel(e.Port), strings.Join(e.Path, ","), e.Target,
			e.Sources, e.Assumed, e.Reason, refsKey(e.Rules), refsKey(e.CutBy))
		g := byKey[k]
		if g == nil {
			g = &group{e: e}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.machines = append(g.machines, e.Machine)
		g.families = append(g.families, string(e.Family))
		g.open = g.open || open[mpf{strings.ToLower(e.Machine), e.Port.Number, e.Family}]
	}
	for _, g := range groups {
		e := g.e
		vms := machineList(g.machines)
		path := pathVirtualMachineIDs
		if p.fw != nil && e.Target == p.fw.id {
			path = pathAzureFirewallID
		}
		assumed := assumedSentence(e.Assumed)
		switch e.Kind {
		case ExposureNotLocked:
			slices.Sort(g.families)
			where := "in " + targetLabel(p, e.Target)
			if e.Target == "" {
				where = "on its path"
			}
			after := " The policy's other ports and machines are still locked. On the whole path the port stays closed all the same: another filter's JIT deny blocks it."
			if g.open {
				after = " The policy's other ports and machines are still locked. On the whole path the port stays open to some sources: see the warnings \"Locked port stays open\"."
			}
			detail := fmt.Sprintf("Port %s (%s) of %s cannot be locked %s: %s.%s%s", portLabel(e.Port), strings.Join(slices.Compact(g.families), ", "), vms, where, e.Reason, assumed, after)
			if p.in.Strict {
				p.fail("Port cannot be locked", detail+" The policy is strict: it locks all or nothing.", path)
			} else {
				p.plan.Findings = append(p.plan.Findings, Warning("Port cannot be locked", detail, path))
			}
		case ExposureKeptOpen:
			detail := fmt.Sprintf("After this plan, port %s of %s stays reachable from %s on the path through %s: %s %s them through.%s",
				portLabel(e.Port), vms, sourcesText(e.Sources, e.Family), p.pathLabel(e.Path), ruleList(e.Rules, ", "), verb(len(e.Rules), "lets", "let"), assumed)
			p.plan.Findings = append(p.plan.Findings, Warning("Locked port stays open", detail, path))
		case ExposureCut:
			detail := fmt.Sprintf("On the path through %s, %s let %s reach port %s of %s before this plan; after it, %s %s them.%s If that access is still needed, it takes a grant now, or the policy must leave that port or machine out.",
				p.pathLabel(e.Path), ruleList(e.Rules, " and "), sourcesText(e.Sources, e.Family), portLabel(e.Port), vms, ruleList(e.CutBy, " and "), verb(len(e.CutBy), "blocks", "block"), assumed)
			p.plan.Findings = append(p.plan.Findings, Warning("Existing access will be cut", detail, path))
		}
	}
}

// sourcesText writes sources for people: nearly all addresses of the
// family as "any IPv4 address except …".
func sourcesText(sources []string, fam AddressFamily) string {
	var ranges []addrRange
	for _, s := range sources {
		if first, last, ok := readAddressRange(s); ok {
			ranges = append(ranges, addrRange{first, last})
		}
	}
	lo, hi := familyRange(fam)
	if len(ranges) == 0 || len(ranges) != len(sources) || ranges[0].first != lo || ranges[len(ranges)-1].last != hi {
		return strings.Join(sources, ", ")
	}
	if len(ranges) == 1 {
		return "any " + string(fam) + " address"
	}
	var gaps []string
	for i := 1; i < len(ranges); i++ {
		gaps = append(gaps, RangeString(ranges[i-1].last.Next(), ranges[i].first.Prev()))
	}
	return "any " + string(fam) + " address except " + strings.Join(gaps, ", ")
}

// pathLabel names the filters of a path, in order.
func (p *pathPlanner) pathLabel(ids []string) string {
	labels := make([]string, len(ids))
	for i, id := range ids {
		labels[i] = targetLabel(p, id)
	}
	return strings.Join(labels, ", then ")
}

func verb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func refsKey(refs []RuleRef) string {
	var b strings.Builder
	for _, r := range refs {
		fmt.Fprintf(&b, "%s/%s/%s/%d;", r.Filter, r.Collection, r.Name, r.Priority)
	}
	return b.String()
}

// machineList names machines by their short names, at most ten.
func machineList(keys []string) string {
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		names = append(names, machineShortName(k))
	}
	slices.Sort(names)
	names = slices.Compact(names)
	prefix := "virtual machine "
	if len(names) > 1 {
		prefix = "virtual machines "
	}
	if len(names) > 10 {
		return prefix + strings.Join(names[:10], ", ") + fmt.Sprintf(" and %d more", len(names)-10)
	}
	return prefix + strings.Join(names, ", ")
}

func targetLabel(p *pathPlanner, id string) string {
	if p.fw != nil && id == p.fw.id {
		return "Azure Firewall " + id
	}
	return "NSG " + id
}

// ruleLabel names a rule where people find it.
func ruleLabel(r RuleRef) string {
	switch {
	case r.Default && r.Collection == "" && r.Priority > FirewallMaxPriority:
		return fmt.Sprintf("the implicit network rule of Azure Firewall %s (DNAT traffic no collection denies is allowed)", r.Filter)
	case r.Default:
		return fmt.Sprintf("default rule %q (priority %d) of NSG %s", r.Name, r.Priority, r.Filter)
	case r.Collection != "":
		return fmt.Sprintf("rule %q of network rule collection %q (priority %d, %s) on Azure Firewall %s", r.Name, r.Collection, r.Priority, r.Access, r.Filter)
	}
	return fmt.Sprintf("rule %q (priority %d, %s) in NSG %s", r.Name, r.Priority, r.Access, r.Filter)
}

func ruleList(refs []RuleRef, sep string) string {
	labels := make([]string, len(refs))
	for i, r := range refs {
		labels[i] = ruleLabel(r)
	}
	return strings.Join(slices.Compact(labels), sep)
}

func assumedClause(assumed []string) string {
	if len(assumed) == 0 {
		return ""
	}
	return " (assumed to match: " + strings.Join(assumed, ", ") + ")"
}

func assumedSentence(assumed []string) string {
	if len(assumed) == 0 {
		return ""
	}
	return " This was ASSUMED: the core cannot resolve " + strings.Join(assumed, ", ") + ", so it assumed they match; check them."
}
