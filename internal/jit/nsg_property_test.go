package jit

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The precedence planner's invariants, checked over randomly generated
// NSGs. JIT_PROPERTY_CASES sets how many (default 3000, 1000 under -race,
// 300 with -short); JIT_PROPERTY_SEED replays a run (the seed is logged).

func propertySetup(t *testing.T) (*rand.Rand, int) {
	cases := 3000
	switch {
	case testing.Short():
		cases = 300
	case raceDetector:
		cases = 1000
	}
	if s := os.Getenv("JIT_PROPERTY_CASES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("JIT_PROPERTY_CASES=%q: %v", s, err)
		}
		cases = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("JIT_PROPERTY_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("JIT_PROPERTY_SEED=%q: %v", s, err)
		}
		seed = n
	}
	t.Logf("seed %d (replay with JIT_PROPERTY_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), cases
}

const (
	propPolicy = "prod-web"
	propNSG    = "nsg-prop"
)

// scenario is one generated NSG and the policy's machines behind it.
type scenario struct {
	kind     string
	rules    []NSGRule
	machines []LockedMachine
	// hadOwned tells whether the policy already had rules in the NSG (from
	// an applied earlier plan, possibly since drifted).
	hadOwned bool
}

var propPorts = []PortProtocol{
	{22, ProtocolTCP}, {3389, ProtocolTCP}, {5985, ProtocolTCP}, {5986, ProtocolTCP},
	{53, ProtocolUDP}, {161, ProtocolUDP}, {8080, ProtocolAny}, {443, ProtocolAny},
}

func genMachines(rng *rand.Rand) []LockedMachine {
	var machines []LockedMachine
	for i := range 1 + rng.IntN(4) {
		m := LockedMachine{Key: fmt.Sprintf("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-%d", i)}
		for k := range 1 + rng.IntN(2) {
			m.PrivateIPs = append(m.PrivateIPs, fmt.Sprintf("10.0.0.%d", 10+4*i+k))
		}
		if rng.IntN(4) == 0 {
			m.PrivateIPs = append(m.PrivateIPs, fmt.Sprintf("fd00::%d", 10+i))
		}
		for _, p := range propPorts {
			if rng.IntN(2) == 0 {
				m.Ports = append(m.Ports, p)
			}
		}
		if len(m.Ports) == 0 {
			m.Ports = append(m.Ports, propPorts[rng.IntN(len(propPorts))])
		}
		machines = append(machines, m)
	}
	return machines
}

// previousMachines is what the policy looked like when it was last applied.
func previousMachines(rng *rand.Rand, now []LockedMachine) []LockedMachine {
	var prev []LockedMachine
	for _, m := range now {
		if rng.IntN(5) == 0 {
			continue // the machine joined since
		}
		p := LockedMachine{Key: m.Key, PrivateIPs: slices.Clone(m.PrivateIPs)}
		if rng.IntN(5) == 0 {
			p.PrivateIPs[0] = "10.0.0.250" // its address changed since
		}
		for _, port := range propPorts {
			in := slices.Contains(m.Ports, port)
			if rng.IntN(6) == 0 {
				in = !in // a port was added or removed since
			}
			if in {
				p.Ports = append(p.Ports, port)
			}
		}
		prev = append(prev, p)
	}
	if rng.IntN(3) == 0 { // a machine left since
		prev = append(prev, LockedMachine{Key: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/gone",
			PrivateIPs: []string{"10.0.0.200"}, Ports: []PortProtocol{{22, ProtocolTCP}, {3389, ProtocolTCP}}})
	}
	return prev
}

func pickOne[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

// genRule makes a rule someone else wrote: people's, a grant, another
// policy's deny, aimed at the machines or elsewhere.
func genRule(rng *rand.Rand, name string, priority int, direction NSGDirection, machines []LockedMachine) NSGRule {
	r := NSGRule{Name: name, Priority: priority, Direction: direction,
		Access:   pickOne(rng, NSGAllow, NSGDeny),
		Protocol: pickOne(rng, NSGProtocolTCP, NSGProtocolTCP, NSGProtocolUDP, NSGProtocolAny, NSGProtocolAny, NSGProtocolICMP, NSGProtocolESP, NSGProtocolAH, "tcp"),
	}
	machineIP := func() string {
		m := machines[rng.IntN(len(machines))]
		return m.PrivateIPs[rng.IntN(len(m.PrivateIPs))]
	}
	if rng.IntN(20) != 0 {
		for range 1 + rng.IntN(3) {
			r.DestinationPrefixes = append(r.DestinationPrefixes, pickOne(rng,
				"*", "VirtualNetwork", "Internet", "AzureLoadBalancer", machineIP(), machineIP(), "10.9.0.7", "10.9.0.0/16",
				"10.0.0.0/24", "10.0.0.0/28", "10.0.0.16/28", "fd00::/64", "10.0.0.5/24", "0.0.0.0/0", "::/0", "10.0.0.250"))
		}
	}
	for range 1 + rng.IntN(2) {
		p := propPorts[rng.IntN(len(propPorts))].Number
		r.DestinationPortRanges = append(r.DestinationPortRanges, pickOne(rng,
			"*", strconv.Itoa(p), strconv.Itoa(p), fmt.Sprintf("%d-%d", p-rng.IntN(5), p+rng.IntN(5)), "20-25", "3000-4000", "80", "1-65535", "9000-9100", strconv.Itoa(p+1)))
	}
	if rng.IntN(30) != 0 {
		for range 1 + rng.IntN(2) {
			r.SourcePrefixes = append(r.SourcePrefixes, pickOne(rng,
				"*", "Internet", "VirtualNetwork", "10.0.0.0/8", "203.0.113.0/24", "203.0.113.7", "198.51.100.0/24", "2001:db8::/32", "192.0.2.0/25"))
		}
	}
	r.SourcePortRanges = []string{"*"}
	switch rng.IntN(20) {
	case 0, 1: // a grant of some request
		r.Access = NSGAllow
		r.Description = GrantMarker(propPolicy, time.Unix(1.7e9, 0), "alice", "x").String()
	case 2: // another policy's deny
		r.Access = NSGDeny
		r.Description = DenyMarker("other-policy").String()
	case 3, 4, 5:
		r.Description = ""
	default:
		r.Description = randomText(rng, 60)
	}
	return r
}

type prioritySet struct{ in, out map[int]bool }

func usedPriorities(rules []NSGRule) prioritySet {
	s := prioritySet{map[int]bool{}, map[int]bool{}}
	for _, r := range rules {
		if r.inbound() {
			s.in[r.Priority] = true
		} else {
			s.out[r.Priority] = true
		}
	}
	return s
}

func freePriority(rng *rand.Rand, used map[int]bool, lo, hi int) (int, bool) {
	for range 50 {
		if p := lo + rng.IntN(hi-lo+1); !used[p] {
			used[p] = true
			return p, true
		}
	}
	for p := lo; p <= hi; p++ {
		if !used[p] {
			used[p] = true
			return p, true
		}
	}
	return 0, false
}

func genScenario(rng *rand.Rand, n int) scenario {
	sc := scenario{machines: genMachines(rng)}
	used := prioritySet{map[int]bool{}, map[int]bool{}}
	added := 0
	add := func(lo, hi int, direction NSGDirection) {
		set := used.in
		if direction == NSGOutbound {
			set = used.out
		}
		if p, ok := freePriority(rng, set, lo, hi); ok {
			added++
			sc.rules = append(sc.rules, genRule(rng, fmt.Sprintf("rule-%d-%d", n, added), p, direction, sc.machines))
		}
	}
	switch k := rng.IntN(20); {
	case k < 15:
		sc.kind = "sparse"
		for range rng.IntN(40) {
			switch rng.IntN(4) {
			case 0:
				add(950, 1050, NSGInbound) // around the base
			case 1:
				add(100, 4096, NSGOutbound)
			default:
				add(100, 4096, NSGInbound)
			}
		}
	case k < 18:
		sc.kind = "tail" // rules deciding ports near the end of the range
		for range 1 + rng.IntN(6) {
			add(4060, 4096, NSGInbound)
		}
		for range rng.IntN(20) {
			add(100, 4096, NSGInbound)
		}
	default:
		sc.kind = "full" // every inbound priority taken but a few
		holes := map[int]bool{}
		for range rng.IntN(12) {
			holes[100+rng.IntN(3997)] = true
		}
		for p := 100; p <= 4096; p++ {
			if holes[p] {
				continue
			}
			used.in[p] = true
			name := fmt.Sprintf("filler-%d-%d", n, p)
			if rng.IntN(40) == 0 {
				sc.rules = append(sc.rules, genRule(rng, name, p, NSGInbound, sc.machines))
				continue
			}
			// Most crowd the NSG without deciding anything.
			sc.rules = append(sc.rules, NSGRule{Name: name, Priority: p, Direction: NSGInbound, Access: NSGAllow, Protocol: NSGProtocolTCP,
				SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"10.9.0.7"}, DestinationPortRanges: []string{"80"}})
		}
	}

	if rng.IntN(5) < 2 {
		// The policy was applied before, then the world drifted.
		if plan, err := PlanNSG(propNSG, sc.rules, propPolicy, previousMachines(rng, sc.machines)); err == nil {
			sc.rules = applyNSGPlan(sc.rules, plan)
		}
		used = usedPriorities(sc.rules)
		for i := range sc.rules {
			r := &sc.rules[i]
			if !isDeny(r.Description) || rng.IntN(4) != 0 {
				continue
			}
			switch rng.IntN(5) {
			case 0:
				set := used.in // a rule keeps its direction: its priority is unique there
				if !r.inbound() {
					set = used.out
				}
				if p, ok := freePriority(rng, set, 100, 4096); ok {
					r.Priority = p
				}
			case 1:
				r.DestinationPrefixes = []string{"10.0.0.0/8"}
			case 2:
				if p, ok := freePriority(rng, used.out, 100, 4096); ok {
					r.Direction, r.Priority = NSGOutbound, p
				}
			case 3:
				r.Protocol = NSGProtocolUDP
			case 4:
				r.Name = "" // deleted below
			}
		}
		sc.rules = slices.DeleteFunc(sc.rules, func(r NSGRule) bool { return r.Name == "" })
		for range rng.IntN(3) {
			add(100, 4096, NSGInbound) // may now decide a port after its deny
		}
		if rng.IntN(8) == 0 {
			if p, ok := freePriority(rng, used.in, 100, 4096); ok {
				sc.rules = append(sc.rules, NSGRule{Name: "jit-deny-older-scheme", Priority: p, Direction: NSGInbound, Access: NSGDeny,
					Protocol: NSGProtocolTCP, DestinationPrefixes: []string{"10.0.0.10"}, DestinationPortRanges: []string{"22"}, Description: DenyMarker(propPolicy).String()})
			}
		}
		sc.hadOwned = slices.ContainsFunc(sc.rules, func(r NSGRule) bool { return isDeny(r.Description) && (ownedBy(r, propPolicy)) })
	}
	rng.Shuffle(len(sc.rules), func(i, j int) { sc.rules[i], sc.rules[j] = sc.rules[j], sc.rules[i] })
	return sc
}

func ownedBy(r NSGRule, policy string) bool {
	m, ok := ParseMarker(r.Description)
	return ok && m.Kind == MarkerDeny && m.BelongsTo(policy)
}

// --- An oracle written independently of the planner, on package net. ---

func oracleProtocols(p Protocol) []string {
	if p == ProtocolAny {
		return []string{"tcp", "udp"}
	}
	return []string{strings.ToLower(string(p))}
}

func oracleProtocolMatches(rule NSGProtocol, proto string) bool {
	switch strings.ToLower(string(rule)) {
	case "*":
		return true
	case "tcp", "udp":
		return strings.EqualFold(string(rule), proto)
	}
	return false // ICMP, ESP, AH carry no ports
}

func oraclePortMatches(ranges []string, port int) bool {
	if len(ranges) == 0 {
		return true
	}
	for _, r := range ranges {
		if r == "*" {
			return true
		}
		a, b, isRange := strings.Cut(r, "-")
		if !isRange {
			b = a
		}
		lo, err1 := strconv.Atoi(a)
		hi, err2 := strconv.Atoi(b)
		if err1 == nil && err2 == nil && lo <= port && port <= hi {
			return true
		}
	}
	return false
}

// oracleAddressMatches: tags, "*" and empty lists match everything.
func oracleAddressMatches(list []string, ip net.IP) bool {
	if len(list) == 0 {
		return true
	}
	for _, s := range list {
		if _, n, err := net.ParseCIDR(s); err == nil {
			if n.Contains(ip) {
				return true
			}
		} else if a := net.ParseIP(s); a != nil {
			if a.Equal(ip) {
				return true
			}
		} else {
			return true
		}
	}
	return false
}

func oracleDecides(r NSGRule, m LockedMachine, p PortProtocol) bool {
	if !strings.EqualFold(string(r.Direction), "Inbound") || !oraclePortMatches(r.DestinationPortRanges, p.Number) {
		return false
	}
	protoOK := false
	for _, proto := range oracleProtocols(p.Protocol) {
		protoOK = protoOK || oracleProtocolMatches(r.Protocol, proto)
	}
	if !protoOK {
		return false
	}
	for _, ip := range m.PrivateIPs {
		if oracleAddressMatches(r.DestinationPrefixes, net.ParseIP(ip)) {
			return true
		}
	}
	return false
}

type packet struct {
	src, dst net.IP
	port     int
	proto    string
}

// byPriority sorts a copy of the rules in evaluation order.
func byPriority(rules []NSGRule) []NSGRule {
	sorted := slices.Clone(rules)
	slices.SortFunc(sorted, func(a, b NSGRule) int { return a.Priority - b.Priority })
	return sorted
}

// firstMatch evaluates the NSG as Azure does: inbound rules by priority
// (sorted is in byPriority order), the first match decides.
func firstMatch(sorted []NSGRule, p packet) *NSGRule {
	for i, r := range sorted {
		if strings.EqualFold(string(r.Direction), "Inbound") && oracleProtocolMatches(r.Protocol, p.proto) &&
			oraclePortMatches(r.DestinationPortRanges, p.port) && oracleAddressMatches(r.SourcePrefixes, p.src) &&
			oracleAddressMatches(r.DestinationPrefixes, p.dst) {
			return &sorted[i]
		}
	}
	return nil
}

// samples are addresses inside a prefix: its ends and a random one.
func samples(rng *rand.Rand, prefix string) []net.IP {
	if prefix == "*" {
		return []net.IP{net.IPv4(byte(1+rng.IntN(220)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))), net.ParseIP("2001:db8::99")}
	}
	p := netip.MustParsePrefix(prefix)
	first, last := p.Addr().AsSlice(), lastAddr(p).AsSlice()
	mid := slices.Clone(first)
	for i := range mid {
		if first[i] != last[i] {
			mid[i] = first[i] + byte(rng.IntN(int(last[i]-first[i])+1))
		}
	}
	return []net.IP{first, last, mid}
}

func oracleSourceOverlaps(list []string, source string) bool {
	if len(list) == 0 || source == "*" {
		return true
	}
	src := netip.MustParsePrefix(source)
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			if p.Masked().Overlaps(src) {
				return true
			}
		} else if a, err := netip.ParseAddr(s); err == nil {
			if src.Contains(a) {
				return true
			}
		} else {
			return true
		}
	}
	return false
}

func oracleShadows(r NSGRule, m LockedMachine, p PortProtocol, source string) bool {
	return strings.EqualFold(string(r.Access), "Deny") && oracleDecides(r, m, p) && oracleSourceOverlaps(r.SourcePrefixes, source)
}

// feasible says, by Hall's condition, whether every deny can get its own
// free priority at or after its lower bound while the lowest free priority
// stays free (a deny needs a free priority before it), counting as taken
// every priority of the given rules.
func feasible(rules []NSGRule, bounds []int) bool {
	used := usedPriorities(rules).in
	var free []int
	for p := 100; p <= 4096; p++ {
		if !used[p] {
			free = append(free, p)
		}
	}
	if len(bounds) == 0 {
		return true
	}
	if len(free) == 0 {
		return false
	}
	free = free[1:]
	slices.Sort(bounds)
	slices.Reverse(bounds)
	for k, b := range bounds {
		n := 0
		for _, p := range free {
			if p >= b {
				n++
			}
		}
		if n < k+1 {
			return false
		}
	}
	return true
}

func TestPlanNSG_properties(t *testing.T) {
	rng, cases := propertySetup(t)
	start := time.Now()
	stats := map[string]int{}
	for n := range cases {
		sc := genScenario(rng, n)
		stats[sc.kind]++
		if sc.hadOwned {
			stats["with the policy's earlier (drifted) rules"]++
		}
		if t.Failed() {
			return
		}
		checkScenario(t, rng, n, sc, stats)
	}
	t.Logf("%d generated NSGs in %v: %v", cases, time.Since(start).Round(time.Millisecond), stats)
}

func checkScenario(t *testing.T, rng *rand.Rand, n int, sc scenario, stats map[string]int) {
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("case %d (%s): %s\nmachines: %+v", n, sc.kind, fmt.Sprintf(format, args...), sc.machines)
	}
	owned := map[string]bool{}
	foreign := map[string]NSGRule{}
	for _, r := range sc.rules {
		if ownedBy(r, propPolicy) {
			owned[r.Name] = true
		} else {
			foreign[r.Name] = r
		}
	}
	type lockedPort struct {
		m        LockedMachine
		p        PortProtocol
		deciders []NSGRule // foreign rules deciding the port
		bound    int       // first priority after all of them
	}
	var locked []lockedPort
	var bounds []int
	for _, m := range sc.machines {
		for _, p := range m.Ports {
			lp := lockedPort{m: m, p: p, bound: 100}
			for _, r := range foreign {
				if oracleDecides(r, m, p) {
					lp.deciders = append(lp.deciders, r)
					lp.bound = max(lp.bound, r.Priority+1)
				}
			}
			locked = append(locked, lp)
			bounds = append(bounds, lp.bound)
		}
	}

	plan, err := PlanNSG(propNSG, sc.rules, propPolicy, sc.machines)

	// (e) No slot: an error naming the NSG and the port, and no plan at all.
	// Starting from an NSG without the policy's rules, the error happens
	// exactly when no placement exists.
	if err != nil {
		stats["no-slot errors"]++
		if !reflect.DeepEqual(plan, NSGPlan{}) || !strings.Contains(err.Error(), "NSG "+propNSG+" has no free inbound priority for the JIT deny of port ") {
			fail("error %v with plan %+v", err, plan)
		}
		if !sc.hadOwned {
			stats["no-slot errors proven by the oracle"]++
			if feasible(sc.rules, bounds) {
				fail("error %v, but a placement exists", err)
			}
		}
		return
	}
	if !sc.hadOwned && !feasible(sc.rules, bounds) {
		fail("no placement exists, yet the planner found one")
	}
	stats["planned"]++

	// (a) Foreign rules are never added, removed or given away their priority.
	remaining := map[string]NSGRule{}
	for _, r := range sc.rules {
		remaining[r.Name] = r
	}
	for _, r := range plan.Remove {
		if !owned[r.Name] {
			fail("removes foreign rule %q", r.Name)
		}
		delete(remaining, r.Name)
	}
	for _, r := range plan.Keep {
		if !owned[r.Name] {
			fail("keeps foreign rule %q as the policy's", r.Name)
		}
	}
	addPriorities := map[int]bool{}
	for _, a := range plan.Add {
		if _, ok := foreign[a.Name]; ok {
			fail("adds a rule named like foreign rule %q", a.Name)
		}
		if addPriorities[a.Priority] {
			fail("two adds share priority %d", a.Priority)
		}
		addPriorities[a.Priority] = true
		// Write safety: a PUT collides with no rule present once the
		// removes are done, whatever the order of the PUTs.
		for _, r := range remaining {
			if r.Name != a.Name && r.inbound() && r.Priority == a.Priority {
				fail("add %q takes priority %d of %q, still present", a.Name, a.Priority, r.Name)
			}
		}
	}

	after := byPriority(applyNSGPlan(sc.rules, plan))

	// (d) Priorities unique per direction, and ours within range.
	seen := prioritySet{map[int]bool{}, map[int]bool{}}
	for _, r := range after {
		set := seen.out
		if r.inbound() {
			set = seen.in
		}
		if set[r.Priority] {
			fail("priority %d used twice (direction %s)", r.Priority, r.Direction)
		}
		set[r.Priority] = true
		if ownedBy(r, propPolicy) && (r.Priority < 100 || r.Priority > 4096) {
			fail("deny %q at priority %d", r.Name, r.Priority)
		}
	}
	afterByName := map[string]NSGRule{}
	for _, r := range after {
		afterByName[r.Name] = r
	}
	for _, r := range foreign {
		if a, ok := afterByName[r.Name]; !ok || !reflect.DeepEqual(a, r) {
			fail("foreign rule %q altered", r.Name)
		}
	}

	// Exactly the wanted denies, with the wanted content.
	denies := map[string]NSGRule{}
	for _, r := range after {
		if ownedBy(r, propPolicy) {
			denies[r.Name] = r
		}
	}
	if len(denies) != len(locked) {
		fail("%d denies after apply; want %d", len(denies), len(locked))
	}
	for _, lp := range locked {
		d, ok := denies[DenyRuleName(propPolicy, lp.m.Key, lp.p)]
		if !ok {
			fail("no deny for %s on %s", portLabel(lp.p), lp.m.Key)
			continue
		}
		if !d.inbound() || d.Access != NSGDeny || d.Protocol != NSGProtocolOf(lp.p.Protocol) ||
			!reflect.DeepEqual(d.SourcePrefixes, []string{"*"}) || !reflect.DeepEqual(d.DestinationPortRanges, []string{strconv.Itoa(lp.p.Number)}) ||
			!reflect.DeepEqual(addressSet(d.DestinationPrefixes), addressSet(lp.m.PrivateIPs)) {
			fail("deny %+v for %s on %s", d, portLabel(lp.p), lp.m.Key)
		}

		// (b) Every foreign rule deciding the port comes before the deny.
		if d.Priority < lp.bound {
			fail("deny %q at %d precedes a foreign rule deciding %s (bound %d)", d.Name, d.Priority, portLabel(lp.p), lp.bound)
		}
		// (c) A free priority before the deny, for grants; and where no
		// foreign rule decides the port, the deny is the first rule any
		// packet to the port meets.
		free := false
		for q := 100; q < d.Priority && !free; q++ {
			free = !seen.in[q]
		}
		if !free {
			fail("no free priority before deny %q at %d", d.Name, d.Priority)
		}
		if lp.bound == 100 {
			for _, ip := range lp.m.PrivateIPs {
				for _, proto := range oracleProtocols(lp.p.Protocol) {
					for _, src := range samples(rng, "*") {
						if got := firstMatch(after, packet{src, net.ParseIP(ip), lp.p.Number, proto}); got == nil || got.Name != d.Name {
							fail("packet %s→%s:%d/%s first meets %v, not the deny", src, ip, lp.p.Number, proto, got)
						}
					}
				}
			}
		}

		// (g) A grant precedes the deny, is not shadowed, and works.
		checkGrant(t, rng, fail, after, lp.m, lp.p, d, stats)
	}

	// Warnings name each foreign Allow deciding a port, and only those.
	var wantWarnings int
	for _, lp := range locked {
		for _, r := range lp.deciders {
			if strings.EqualFold(string(r.Access), "Allow") && !isGrant(r.Description) {
				wantWarnings++
				if !slices.ContainsFunc(plan.Warnings, func(w string) bool {
					return strings.Contains(w, fmt.Sprintf("rule %q (priority %d)", r.Name, r.Priority)) && strings.Contains(w, "port "+portLabel(lp.p)+" to virtual machine "+lp.m.Key)
				}) {
					fail("no warning for allow %q on %s", r.Name, portLabel(lp.p))
				}
			}
		}
	}
	if len(plan.Warnings) != wantWarnings {
		fail("%d warnings; want %d: %q", len(plan.Warnings), wantWarnings, plan.Warnings)
	}

	// (f) Planning the applied result changes nothing.
	again, err := PlanNSG(propNSG, after, propPolicy, sc.machines)
	if err != nil || len(again.Add) != 0 || len(again.Remove) != 0 || len(again.Keep) != len(locked) || !reflect.DeepEqual(again.Warnings, plan.Warnings) {
		fail("second plan %+v, %v", again, err)
	}

	// Determinism: the order in which ARM lists rules does not matter.
	shuffled := slices.Clone(sc.rules)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if other, err := PlanNSG(propNSG, shuffled, propPolicy, sc.machines); err != nil || !reflect.DeepEqual(other, plan) {
		fail("plan depends on rule order")
	}
}

func checkGrant(t *testing.T, rng *rand.Rand, fail func(string, ...any), rules []NSGRule, m LockedMachine, p PortProtocol, deny NSGRule, stats map[string]int) {
	t.Helper()
	source := pickOne(rng, "*", "203.0.113.7/32", "203.0.113.0/24", "10.1.0.0/16", "198.51.100.128/25", "2001:db8::/48", "192.0.2.9/32")
	g := NSGGrant{NSG: propNSG, Rules: rules, Policy: propPolicy, Request: "req", Machine: m.Key, PrivateIPs: m.PrivateIPs,
		Port: p, Source: source, End: time.Unix(1.8e9, 0), Requestor: "alice", Justification: "property test"}
	grant, err := PlanNSGGrant(g)
	used := usedPriorities(rules).in
	if err != nil {
		stats["grant errors"]++
		// Then truly no free priority precedes every Deny in the way.
		bound := deny.Priority
		for _, r := range rules {
			if oracleShadows(r, m, p, source) {
				bound = min(bound, r.Priority)
			}
		}
		for q := 100; q < bound; q++ {
			if !used[q] {
				fail("grant from %s refused (%v), yet priority %d before %d is free", source, err, q, bound)
				return
			}
		}
		return
	}
	stats["grants"]++
	if used[grant.Priority] || grant.Priority < 100 || grant.Priority >= deny.Priority {
		fail("grant at %d: taken, out of range or not before the deny at %d", grant.Priority, deny.Priority)
	}
	for _, r := range rules {
		if r.Priority < grant.Priority && oracleShadows(r, m, p, source) {
			fail("grant from %s at %d shadowed by %q at %d", source, grant.Priority, r.Name, r.Priority)
		}
	}
	withGrant := byPriority(append(slices.Clone(rules), grant))
	for _, ip := range m.PrivateIPs {
		for _, proto := range oracleProtocols(p.Protocol) {
			for _, src := range samples(rng, source) {
				if got := firstMatch(withGrant, packet{src, net.ParseIP(ip), p.Number, proto}); got == nil || !strings.EqualFold(string(got.Access), "Allow") {
					fail("packet %s→%s:%d/%s from the granted source meets %+v", src, ip, p.Number, proto, got)
				}
			}
		}
	}
	// The grant stays put when planned again, and the policy's plan keeps
	// its deny behind it.
	g.Rules = withGrant
	if again, err := PlanNSGGrant(g); err != nil || again.Priority != grant.Priority {
		fail("grant planned again: %d, %v; was %d", again.Priority, err, grant.Priority)
	}
}
