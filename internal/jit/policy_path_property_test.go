package jit

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PlanPolicyPaths' invariants over generated layouts: a subnet NSG, NIC
// NSGs (some absent, some shared), sometimes a firewall in front, rules of
// others with prefixes, tags, ASGs, port ranges and lists, protocols,
// restricted source ports, grants honoured or not, some NSGs near full,
// some holding the policy's earlier rules (aggregated, or per machine
// from before aggregation) since drifted. Each layout is planned, the plan
// applied, a grant requested, and everything checked against brute-force
// first-match evaluation (evaluate_test.go) and independent oracles.
//
// JIT_PROPERTY_SEED replays a run; JIT_PROPERTY_DUMP=file writes the
// first failing layout there as JSON (layoutDump), to study it apart.
//
// Counts that must be zero are logged so they can be quoted:
//   - grants admitting a source a rule of others denies (iii),
//   - warnings contradicting the evaluated outcome (iv),
//   - ports refused although a placement existed (v).

const pathPolicy = "prod-web"

type pathLayout struct {
	kind     string
	in       PolicyPathInput
	honoured map[string]bool // "nsg\x00rule" of grants honoured
	hadOwned map[string]bool // NSGs (lower-cased) holding the policy's denies before
	fresh    map[string]bool // NSGs without any rule of the policy before
}

var pathPorts = []PortProtocol{{22, ProtocolTCP}, {3389, ProtocolTCP}, {5985, ProtocolTCP}, {53, ProtocolUDP}, {8080, ProtocolAny}}

func genPathMachines(rng *rand.Rand) []PathMachine {
	var ms []PathMachine
	for i := range 1 + rng.IntN(4) {
		m := PathMachine{Key: fmt.Sprintf("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-%d", i)}
		for _, p := range pathPorts {
			if rng.IntN(2) == 0 {
				m.Ports = append(m.Ports, p)
			}
		}
		if len(m.Ports) == 0 {
			m.Ports = []PortProtocol{pathPorts[rng.IntN(len(pathPorts))]}
		}
		for k := range 1 + rng.IntN(4)/3 { // a second NIC now and then
			var ips []string
			switch rng.IntN(10) {
			case 0: // IPv6 only
				ips = []string{fmt.Sprintf("fd00::%d:%d", k, 10+i)}
			case 1, 2, 3: // dual stack
				ips = []string{fmt.Sprintf("10.0.%d.%d", k, 10+2*i), fmt.Sprintf("fd00::%d:%d", k, 10+i)}
			default:
				ips = []string{fmt.Sprintf("10.0.%d.%d", k, 10+2*i)}
				if rng.IntN(4) == 0 {
					ips = append(ips, fmt.Sprintf("10.0.%d.%d", k, 11+2*i))
				}
			}
			m.Interfaces = append(m.Interfaces, PathInterface{IPs: ips})
		}
		ms = append(ms, m)
	}
	return ms
}

func machineIPs(ms []PathMachine) []string {
	var ips []string
	for _, m := range ms {
		for _, nic := range m.Interfaces {
			ips = append(ips, nic.IPs...)
		}
	}
	return ips
}

var pathSources = []string{"*", "*", "Internet", "VirtualNetwork", "AzureLoadBalancer", "10.0.0.0/8", "10.0.1.0/26", "203.0.113.0/24", "203.0.113.7",
	"198.51.100.0/24", "2001:db8::/32", "fd00::/64", "0.0.0.0/0", "::/0", "192.0.2.0/25", "Storage.WestEurope"}

func genPathRule(rng *rand.Rand, name string, priority int, ms []PathMachine) NSGRule {
	ips := machineIPs(ms)
	r := NSGRule{Name: name, Priority: priority, Direction: NSGInbound, Access: pickOne(rng, NSGAllow, NSGDeny),
		Protocol: pickOne(rng, NSGProtocolTCP, NSGProtocolTCP, NSGProtocolUDP, NSGProtocolAny, NSGProtocolAny, NSGProtocolICMP, "tcp"), SourcePortRanges: []string{"*"}}
	if rng.IntN(12) != 0 {
		for range 1 + rng.IntN(3) {
			r.DestinationPrefixes = append(r.DestinationPrefixes, pickOne(rng, "*", "VirtualNetwork", "Internet", "AzureLoadBalancer", ips[rng.IntN(len(ips))],
				ips[rng.IntN(len(ips))], ips[rng.IntN(len(ips))], "10.9.0.7", "10.0.0.0/24", "10.0.0.0/28", "10.0.1.0/24", "fd00::/64", "10.0.0.5/24", "0.0.0.0/0", "::/0"))
		}
	}
	for range 1 + rng.IntN(2) {
		p := pathPorts[rng.IntN(len(pathPorts))].Number
		r.DestinationPortRanges = append(r.DestinationPortRanges, pickOne(rng, "*", strconv.Itoa(p), strconv.Itoa(p),
			fmt.Sprintf("%d-%d", p-rng.IntN(5), p+rng.IntN(5)), "20-25", "3000-4000", "80", strconv.Itoa(p+1)))
	}
	if rng.IntN(12) != 0 {
		for range 1 + rng.IntN(2) {
			r.SourcePrefixes = append(r.SourcePrefixes, pickOne(rng, pathSources...))
		}
	}
	if rng.IntN(15) == 0 {
		r.SourcePortRanges = []string{"1024-65535"}
	}
	switch rng.IntN(25) {
	case 0:
		r.Description = DenyMarker("other-policy").String()
	case 1:
		r.Description = "jit:deny pid=forged policy=" + pathPolicy
	}
	return r
}

// genGrant is a rule marked as a grant of the policy, for one machine's
// address and port from a source.
func genGrant(rng *rand.Rand, name string, priority int, ms []PathMachine) NSGRule {
	m := ms[rng.IntN(len(ms))]
	ips := m.Interfaces[0].IPs
	ip := ips[rng.IntN(len(ips))]
	p := m.Ports[rng.IntN(len(m.Ports))]
	src := pickOne(rng, "203.0.113.7/32", "198.51.100.0/25", "10.1.0.0/16", "*")
	if strings.Contains(ip, ":") {
		src = pickOne(rng, "2001:db8::7/128", "*")
	}
	return NSGRule{Name: name, Priority: priority, Direction: NSGInbound, Access: NSGAllow, Protocol: NSGProtocolOf(p.Protocol),
		SourcePrefixes: []string{src}, SourcePortRanges: []string{"*"}, DestinationPrefixes: []string{ip}, DestinationPortRanges: []string{strconv.Itoa(p.Number)},
		Description: GrantMarker(pathPolicy, time.Unix(1.8e9, 0), "alice", "x").String()}
}

func genPathNSG(rng *rand.Rand, id string, ms []PathMachine, honoured map[string]bool) (rules []NSGRule, kind string) {
	used := map[int]bool{}
	add := func(lo, hi int) {
		p, ok := freePriority(rng, used, lo, hi)
		if !ok {
			return
		}
		name := fmt.Sprintf("rule-%d", p)
		if rng.IntN(15) == 0 {
			r := genGrant(rng, "jit-grant-"+name, p, ms)
			if rng.IntN(3) != 0 {
				honoured[id+"\x00"+r.Name] = true
			}
			rules = append(rules, r)
			return
		}
		rules = append(rules, genPathRule(rng, name, p, ms))
	}
	switch k := rng.IntN(20); {
	case k < 14:
		kind = "sparse"
		for range rng.IntN(25) {
			if rng.IntN(3) == 0 {
				add(950, 1050)
			} else {
				add(100, 4096)
			}
		}
		for range rng.IntN(4) { // outbound rules neither decide nor take inbound priorities
			rules = append(rules, NSGRule{Name: fmt.Sprintf("out-%d", len(rules)), Priority: 100 + rng.IntN(3997), Direction: NSGOutbound, Access: NSGDeny, Protocol: NSGProtocolAny,
				SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"*"}})
		}
	case k < 17:
		kind = "tail" // deciding rules near the end, in a crowded tail
		for p := 4040; p <= 4096; p++ {
			if rng.IntN(6) != 0 {
				used[p] = true
				rules = append(rules, NSGRule{Name: fmt.Sprintf("tail-%d", p), Priority: p, Direction: NSGInbound, Access: NSGAllow, Protocol: NSGProtocolTCP,
					SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"10.9.0.7"}, DestinationPortRanges: []string{"80"}})
			}
		}
		for i := range rules {
			if rng.IntN(8) == 0 {
				r := genPathRule(rng, rules[i].Name, rules[i].Priority, ms)
				rules[i] = r
			}
		}
		for range rng.IntN(10) {
			add(100, 4000)
		}
	default:
		// Near full: up to ARM's 1000 rules, packed into the last
		// priorities but a few holes, some deciding ports.
		kind = "full"
		from := 4096 - 985 - rng.IntN(14)
		holes := map[int]bool{}
		for range rng.IntN(10) {
			holes[from+rng.IntN(4097-from)] = true
		}
		if rng.IntN(2) == 0 {
			holes[4095], holes[4096] = true, true
		}
		for p := from; p <= 4096; p++ {
			if holes[p] {
				continue
			}
			used[p] = true
			name := fmt.Sprintf("filler-%d", p)
			if rng.IntN(60) == 0 {
				rules = append(rules, genPathRule(rng, name, p, ms))
				continue
			}
			rules = append(rules, NSGRule{Name: name, Priority: p, Direction: NSGInbound, Access: NSGAllow, Protocol: NSGProtocolTCP,
				SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"10.9.0.7"}, DestinationPortRanges: []string{"80"}})
		}
	}
	return rules, kind
}

func genPathLayout(rng *rand.Rand) pathLayout {
	ms := genPathMachines(rng)
	l := pathLayout{honoured: map[string]bool{}, hadOwned: map[string]bool{}, fresh: map[string]bool{}}
	l.in = PolicyPathInput{Policy: pathPolicy, NSGs: map[string][]NSGRule{}, Machines: ms, Strict: rng.IntN(10) == 0}
	var kinds []string
	newNSG := func(id string) {
		rules, kind := genPathNSG(rng, id, ms, l.honoured)
		l.in.NSGs[id] = rules
		kinds = append(kinds, kind)
	}
	subnet := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/NSG-Subnet"
	if rng.IntN(8) != 0 {
		newNSG(subnet)
	} else {
		subnet = ""
	}
	shared := ""
	for i := range ms {
		for k := range ms[i].Interfaces {
			nic := &ms[i].Interfaces[k]
			nic.SubnetNSG = subnet
			switch rng.IntN(6) {
			case 0, 1: // none
			case 2: // shared by several NICs
				if shared == "" {
					shared = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg-shared"
					newNSG(shared)
				}
				nic.NICNSG = shared
			case 3:
				if subnet != "" && rng.IntN(4) == 0 {
					nic.NICNSG = strings.ToLower(subnet) // the same NSG twice, spelled differently
					break
				}
				fallthrough
			default:
				id := fmt.Sprintf("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg-vm%d-nic%d", i, k)
				newNSG(id)
				nic.NICNSG = id
			}
		}
	}
	if rng.IntN(10) == 0 { // an NSG the policy left, still holding its rules
		id := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg-left"
		old := subnetOf(2, false, nil, PortProtocol{22, ProtocolTCP})
		old.NSGs = map[string][]NSGRule{id: nil}
		old.Policy = pathPolicy
		for i := range old.Machines {
			old.Machines[i].Interfaces[0].SubnetNSG = id
		}
		l.in.NSGs[id] = PlanPolicyPaths(old).NSGs[id].Add
	}
	if rng.IntN(5) == 0 {
		fw := &FirewallPathInput{ID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/azureFirewalls/fw-hub"}
		for i := range rng.IntN(5) {
			c := FirewallNetworkCollection{Name: fmt.Sprintf("col-%d", i), Priority: pickOne(rng, 200+100*i, 1000+i, 64990+i), Action: pickOne(rng, FirewallAllow, FirewallDeny)}
			r := genPathRule(rng, "r", 100, ms)
			c.Rules = []FirewallNetworkRule{{Name: "r", Protocols: []string{pickOne(rng, "TCP", "UDP", "Any")}, SourceAddresses: r.SourcePrefixes,
				DestinationAddresses: r.DestinationPrefixes, DestinationPorts: r.DestinationPortRanges}}
			fw.Collections = append(fw.Collections, c)
		}
		l.in.Firewall = fw
	}
	l.in.HonouredGrant = func(nsg string, r NSGRule) bool { return l.honoured[nsg+"\x00"+r.Name] }

	// The policy applied before, then the world drifted.
	switch rng.IntN(6) {
	case 0, 1:
		prev := l.in
		prev.Machines = slices.Clone(ms)
		if len(prev.Machines) > 1 && rng.IntN(3) == 0 {
			prev.Machines = prev.Machines[1:] // a machine joined since
		}
		if rng.IntN(3) == 0 {
			prev.Machines = append(prev.Machines, PathMachine{Key: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/gone",
				Ports: []PortProtocol{{22, ProtocolTCP}}, Interfaces: []PathInterface{{IPs: []string{"10.0.3.3"}, SubnetNSG: subnet}}})
		}
		prevPlan := PlanPolicyPaths(prev)
		if !HasError(prevPlan.Findings) {
			for id, np := range prevPlan.NSGs {
				l.in.NSGs[id] = applyNSGPlanRules(l.in.NSGs[id], np)
			}
			if prevPlan.Firewall != nil && prevPlan.Firewall.Want != nil {
				l.in.Firewall.Collections = append(l.in.Firewall.Collections, *prevPlan.Firewall.Want)
			}
		}
		kinds = append(kinds, "applied before")
		l.drift(rng)
	case 2: // per-machine denies of the planner before aggregation
		for _, id := range sortedKeys(l.in.NSGs) {
			var old []legacyMachine
			for _, m := range ms {
				for _, nic := range m.Interfaces {
					if strings.EqualFold(nic.SubnetNSG, id) || strings.EqualFold(nic.NICNSG, id) {
						old = append(old, legacyMachine{key: m.Key, ips: nic.IPs, ports: m.Ports})
					}
				}
			}
			if rules, ok := perMachineDenies(l.in.NSGs[id], pathPolicy, old); ok {
				l.in.NSGs[id] = rules
			}
		}
		kinds = append(kinds, "per-machine denies before")
		l.drift(rng)
	}
	for _, id := range sortedKeys(l.in.NSGs) {
		rules := l.in.NSGs[id]
		key := strings.ToLower(id)
		l.fresh[key] = !slices.ContainsFunc(rules, func(r NSGRule) bool { return ownsRule(r) })
		l.hadOwned[key] = !l.fresh[key]
		rng.Shuffle(len(rules), func(i, j int) { rules[i], rules[j] = rules[j], rules[i] })
	}
	slices.Sort(kinds)
	l.kind = strings.Join(slices.Compact(kinds), "+")
	return l
}

// drift alters some of the policy's rules as people would.
func (l *pathLayout) drift(rng *rand.Rand) {
	for _, id := range sortedKeys(l.in.NSGs) {
		rules := l.in.NSGs[id]
		used := usedPriorities(rules)
		for i := range rules {
			r := &rules[i]
			if !ownedBy(*r, pathPolicy) || rng.IntN(4) != 0 {
				continue
			}
			switch rng.IntN(5) {
			case 0:
				if p, ok := freePriority(rng, used.in, 100, 4096); ok {
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
				r.Name = ""
			}
		}
		rules = slices.DeleteFunc(rules, func(r NSGRule) bool { return r.Name == "" })
		if p, ok := freePriority(rng, used.in, 100, 4096); ok && rng.IntN(3) == 0 {
			rules = append(rules, genPathRule(rng, fmt.Sprintf("late-%d", p), p, l.in.Machines)) // may now decide a port after a deny
		}
		l.in.NSGs[id] = rules
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// --- An independent three-valued matcher, for the oracles. ---

// triAddrs: 2 certain, 1 assumed, 0 no. local is the machine's side.
func triAddrs(list []string, a netip.Addr, local bool) int {
	if len(list) == 0 {
		return 1
	}
	best := 0
	for _, s := range list {
		switch strings.ToLower(s) {
		case "*", "any":
			return 2
		case "internet":
			if !local {
				best = max(best, 1)
			}
		case "azureloadbalancer":
			if !local && a == netip.MustParseAddr("168.63.129.16") {
				return 2
			}
		default:
			if first, last, ok := bruteRange(s); ok {
				if a.Is4() == first.Is4() && first.Compare(a) <= 0 && a.Compare(last) <= 0 {
					return 2
				}
			} else {
				best = max(best, 1)
			}
		}
	}
	return best
}

func triRule(r NSGRule, src, dst netip.Addr, port int, proto string) int {
	if !strings.EqualFold(string(r.Direction), "inbound") {
		return 0
	}
	t := 2
	switch l := strings.ToLower(string(r.Protocol)); l {
	case "*", "any", "":
	case "tcp", "udp", "icmp", "esp", "ah":
		if l != proto {
			return 0
		}
	default:
		t = 1
	}
	res := &resolution{all: true}
	if !brutePorts(res, "", r.DestinationPortRanges, port) {
		return 0
	}
	if !brutePorts(&resolution{all: false}, "", r.DestinationPortRanges, port) {
		t = 1 // only an unreadable range matches
	}
	if sp := r.SourcePortRanges; len(sp) > 0 && !slices.Contains(sp, "*") && !slices.Contains(sp, "0-65535") {
		t = 1
	}
	t = min(t, triAddrs(r.DestinationPrefixes, dst, true))
	if src.IsValid() {
		t = min(t, triAddrs(r.SourcePrefixes, src, false))
	}
	return t
}

// oracleDeciders lists the rules that may be the first match of some
// traffic from the sources to dst on the port: a rule is, if at some source
// it may match while no earlier rule certainly matches. Sources are probed
// at every boundary of every address the rules name, which is where
// answers change.
func oracleDeciders(rules []NSGRule, sources Prefix, dst netip.Addr, port int, proto string) []NSGRule {
	lo, hi, ok := Query{Local: dst, Remote: sources}.remoteRange()
	if !ok {
		return nil
	}
	var sorted []NSGRule // the rules matching the traffic from some source
	for _, r := range rules {
		if triRule(r, netip.Addr{}, dst, port, proto) > 0 {
			sorted = append(sorted, r)
		}
	}
	sorted = byPriority(sorted)
	probes := []netip.Addr{lo, hi}
	for _, r := range sorted {
		for _, s := range append(slices.Clone(r.SourcePrefixes), "168.63.129.16") {
			if first, last, ok := bruteRange(s); ok {
				probes = append(probes, first, last.Next(), first.Prev(), last)
			}
		}
	}
	var out []NSGRule
	seen := map[string]bool{}
	for _, a := range probes {
		if !a.IsValid() || a.Is4() != dst.Is4() || a.Less(lo) || hi.Less(a) {
			continue
		}
		for _, r := range sorted {
			t := triRule(r, a, dst, port, proto)
			if t > 0 && !seen[r.Name] {
				seen[r.Name] = true
				out = append(out, r)
			}
			if t == 2 {
				break
			}
		}
	}
	return out
}

// oracleFeasible decides, apart from placeDenies, whether denies with
// these lower bounds fit among the free priorities: denies whose bounds
// leave them room enough below the others' are set aside, the others
// enumerated (feasibleByEnumeration). decided is false when the
// enumeration would be too large.
func oracleFeasible(free []int, lowers []int) (feasible, decided bool) {
	if len(lowers) == 0 {
		return true, true
	}
	lowers = slices.Clone(lowers)
	slices.Sort(lowers)
	count := func(from, to int) int {
		n := 0
		for _, p := range free {
			if from <= p && p <= to {
				n++
			}
		}
		return n
	}
	if count(lowers[len(lowers)-1], 1<<30) >= len(lowers)+1 {
		return true, true
	}
	for k := range lowers {
		if k > 0 && count(lowers[k-1], lowers[k]-1) < k+1 {
			continue
		}
		if count(lowers[k], 1<<30) > 18 {
			continue
		}
		var high []int
		for _, p := range free {
			if p >= lowers[k] {
				high = append(high, p)
			}
		}
		return feasibleByEnumeration(high, lowers[k:]), true
	}
	return false, false
}

// --- The test. ---

type pathCounts struct {
	grantsAdmittingDenied, contradictions, missingWarnings, refusedWithSlot, precedence, undecided int
}

func TestPlanPolicyPaths_properties(t *testing.T) {
	// Layouts are many, large and short-lived: collect garbage less often.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	rng, cases := propertySetup(t)
	cases = max(cases/3, 1000) // ≥ 1000 layouts (300 with -short or -race)
	if testing.Short() || raceDetector {
		cases = 300
	}
	start := time.Now()
	stats := map[string]int{}
	var c pathCounts
	for n := range cases {
		l := genPathLayout(rng)
		stats[l.kind]++
		checkPathLayout(t, rng, n, l, stats, &c)
		if t.Failed() {
			t.Logf("seed above; case %d", n)
			return
		}
	}
	t.Logf("%d generated layouts in %v: %v", cases, time.Since(start).Round(time.Millisecond), stats)
	t.Logf("grants admitting a source a rule of others denies: %d; warnings contradicting the evaluated outcome: %d (kept-open sources the warnings miss: %d); ports refused although a placement existed: %d (undecided by the oracle: %d); foreign first matches changed: %d",
		c.grantsAdmittingDenied, c.contradictions, c.missingWarnings, c.refusedWithSlot, c.undecided, c.precedence)
	if c.grantsAdmittingDenied+c.contradictions+c.missingWarnings+c.refusedWithSlot+c.precedence > 0 {
		t.Error("a count that must be zero is not")
	}
}

// pathWorld is the layout's filters as brute-force evaluation sees them.
type pathWorld struct {
	nsgs map[string][]NSGRule // by lower-cased ID
	fw   []FirewallNetworkCollection
	// relevant rules per filter and traffic, ending with the catch-all
	cache   map[worldKey][]bruteRule
	filters map[string]bruteFilter
}

type worldKey struct {
	id    string
	dst   netip.Addr
	port  int
	proto Protocol
}

func newWorld(nsgs map[string][]NSGRule, fw []FirewallNetworkCollection) *pathWorld {
	w := &pathWorld{nsgs: map[string][]NSGRule{}, fw: fw, cache: map[worldKey][]bruteRule{}, filters: map[string]bruteFilter{}}
	for id, r := range nsgs {
		w.nsgs[strings.ToLower(id)] = r
	}
	return w
}

// first is the rule deciding the packet in the filter (an NSG ID, or "fw").
// Rules that match no packet to dst on the port under any resolution are
// skipped first: answers only ever add matches, so "all" is the widest.
func (w *pathWorld) first(id string, res *resolution, pk Packet) bruteRule {
	k := worldKey{id, pk.Destination, pk.DestinationPort, pk.Protocol}
	rel, ok := w.cache[k]
	if !ok {
		f, built := w.filters[id]
		if !built {
			if id == "fw" {
				f = bruteFirewall("fw", w.fw)
			} else {
				f = bruteNSG(id, w.nsgs[id])
			}
			w.filters[id] = f
		}
		all := &resolution{all: true}
		for _, r := range f.rules {
			wide := r
			wide.src, wide.srcPorts = []string{"*"}, nil
			if wide.matches(all, pk) {
				rel = append(rel, r)
			}
		}
		w.cache[k] = rel
	}
	for _, r := range rel {
		if r.matches(res, pk) {
			return r
		}
	}
	panic("no catch-all")
}

func checkPathLayout(t *testing.T, rng *rand.Rand, n int, l pathLayout, stats map[string]int, c *pathCounts) {
	in := l.in
	dumped := false
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("case %d (%s): %s", n, l.kind, fmt.Sprintf(format, args...))
		if dump := os.Getenv("JIT_PROPERTY_DUMP"); dump != "" && !dumped {
			dumped = true
			b, err := json.Marshal(layoutDump{in.Policy, in.Machines, in.NSGs, fwCollections(in), in.Strict, l.honoured})
			if err == nil {
				err = os.WriteFile(dump, b, 0o644)
			}
			if err != nil {
				t.Errorf("writing %s: %v", dump, err)
			}
		}
	}
	plan := PlanPolicyPaths(in)
	if HasError(plan.Findings) {
		stats["plans with an error finding"]++
		for _, f := range findingsOf(plan, SeverityError) {
			ok := strings.Contains(f.Summary, "limit exceeded") || f.Summary == "Rule name taken" || in.Strict && f.Summary == "Port cannot be locked"
			if !ok {
				fail("unexpected error %+v", f)
			}
			stats["error: "+f.Summary]++
		}
		if slices.ContainsFunc(plan.Findings, func(f Finding) bool { return f.Summary != "Port cannot be locked" && f.Severity == SeverityError }) {
			return
		}
	}
	stats["plans"]++

	// (vi) Write safety and ownership.
	after := map[string][]NSGRule{}
	for id, rules := range in.NSGs {
		np := plan.NSGs[id]
		remaining := map[string]NSGRule{}
		for _, r := range rules {
			remaining[r.Name] = r
		}
		for _, r := range np.Remove {
			if !ownsRule(r) {
				fail("NSG %s: removes rule %q the policy does not own", id, r.Name)
			}
			delete(remaining, r.Name)
		}
		for _, r := range np.Keep {
			if !ownsRule(r) {
				fail("NSG %s: keeps rule %q as the policy's", id, r.Name)
			}
		}
		for _, a := range np.Add {
			if r, ok := remaining[a.Name]; ok && !ownsRule(r) {
				fail("NSG %s: overwrites rule %q the policy does not own", id, a.Name)
			}
			for _, r := range remaining {
				if r.Name != a.Name && r.inbound() && r.Priority == a.Priority {
					fail("NSG %s: add %q takes priority %d of %q, still present", id, a.Name, a.Priority, r.Name)
				}
			}
			fams := map[bool]bool{}
			for _, d := range a.DestinationPrefixes {
				fams[netip.MustParseAddr(d).Is4()] = true
			}
			if len(fams) != 1 || a.Priority < 100 || a.Priority > 4096 || !a.inbound() {
				fail("NSG %s: deny %+v mixes families, or is out of range", id, a)
			}
		}
		after[id] = applyNSGPlanRules(rules, np)
		seen := prioritySet{map[int]bool{}, map[int]bool{}}
		for _, r := range after[id] {
			set := seen.out
			if r.inbound() {
				set = seen.in
			}
			if set[r.Priority] && (ownsRule(r) || slices.ContainsFunc(np.Add, func(a NSGRule) bool { return a.Priority == r.Priority })) {
				fail("NSG %s: priority %d used twice", id, r.Priority)
			}
			set[r.Priority] = true
		}
		byName := map[string]NSGRule{}
		for _, r := range after[id] {
			byName[r.Name] = r
		}
		for _, r := range rules {
			if !ownsRule(r) && !reflect.DeepEqual(byName[r.Name], r) {
				fail("NSG %s: rule %q of others altered", id, r.Name)
			}
		}
		if !HasError(plan.Findings) && (len(after[id]) > NSGMaxRules && len(np.Add) > 0 || NSGAddressCount(after[id]) > NSGMaxAddresses && len(np.Add) > 0) {
			fail("NSG %s over ARM's limits without an error", id)
		}
	}
	var fwAfter []FirewallNetworkCollection
	if in.Firewall != nil {
		for _, col := range in.Firewall.Collections {
			if col.Name != FirewallDenyCollectionName(pathPolicy) {
				fwAfter = append(fwAfter, col)
			}
		}
		if plan.Firewall.Want != nil {
			fwAfter = append(fwAfter, *plan.Firewall.Want)
			for _, r := range plan.Firewall.Want.Rules {
				fams := map[bool]bool{}
				for _, d := range r.DestinationAddresses {
					fams[netip.MustParseAddr(d).Is4()] = true
				}
				if len(fams) != 1 {
					fail("firewall deny %+v mixes families", r)
				}
			}
		}
	}
	var fwBefore []FirewallNetworkCollection
	if in.Firewall != nil {
		fwBefore = in.Firewall.Collections
	}
	before, world := newWorld(in.NSGs, fwBefore), newWorld(after, fwAfter)

	// Which machines each deny covers, and what is reported as not locked.
	covered := map[string]bool{} // target|machine|port|family
	for _, d := range plan.Denies {
		for _, m := range d.MachineKeys {
			covered[strings.ToLower(d.Target)+"|"+strings.ToLower(m)+"|"+portLabel(d.Port)+"|"+string(d.Family)] = true
		}
	}
	notLocked := map[string]bool{}
	for _, e := range exposuresOf(plan, ExposureNotLocked) {
		notLocked[strings.ToLower(e.Target)+"|"+strings.ToLower(e.Machine)+"|"+portLabel(e.Port)+"|"+string(e.Family)] = true
		notLocked["any|"+strings.ToLower(e.Machine)+"|"+portLabel(e.Port)+"|"+string(e.Family)] = true
		stats["not locked"]++
	}
	for _, m := range in.Machines {
		for _, nic := range m.Interfaces {
			for _, ip := range nic.IPs {
				fam := FamilyOf(netip.MustParseAddr(ip))
				targets := slices.Compact([]string{strings.ToLower(nic.SubnetNSG), strings.ToLower(nic.NICNSG)})
				if in.Firewall != nil {
					targets = append(targets, strings.ToLower(in.Firewall.ID))
				}
				for _, port := range m.Ports {
					for _, tg := range targets {
						k := tg + "|" + strings.ToLower(m.Key) + "|" + portLabel(port) + "|" + string(fam)
						if tg != "" && covered[k] == notLocked[k] {
							fail("%s: covered %v, reported not locked %v", k, covered[k], notLocked[k])
						}
					}
				}
			}
		}
	}

	// (i) Rules of others keep their first matches; (ii) locked ports are
	// denied but where rules of others (or grants) allow; (iv) warnings
	// agree with what the filters do.
	owned := map[string]bool{} // lower-cased NSG ID + rule name, after the plan
	for id, rules := range after {
		for _, r := range rules {
			if ownsRule(r) {
				owned[strings.ToLower(id)+"\x00"+r.Name] = true
			}
		}
	}
	for id, rules := range in.NSGs {
		for _, r := range rules {
			if ownsRule(r) {
				owned[strings.ToLower(id)+"\x00"+r.Name] = true
			}
		}
	}
	honouredLower := map[string]bool{}
	for k, v := range l.honoured {
		id, name, _ := strings.Cut(k, "\x00")
		honouredLower[strings.ToLower(id)+"\x00"+name] = v
	}
	classOf := func(id string, r bruteRule) string {
		switch {
		case r.name == firewallImplicitRule.Name || (r.priority >= 65000 && id != "fw"):
			return "default"
		case id == "fw" && r.collection == FirewallDenyCollectionName(pathPolicy):
			return "ours"
		case id == "fw":
			return "foreign"
		case honouredLower[id+"\x00"+r.name]:
			return "grant"
		case owned[id+"\x00"+r.name]:
			return "ours"
		}
		return "foreign"
	}
	// Exposures by machine, address, port and path, for the checks below.
	type expKey struct{ machine, addr, port, path string }
	exposures := map[expKey][]Exposure{}
	for _, e := range plan.Exposures {
		for _, a := range e.Addresses {
			k := expKey{strings.ToLower(e.Machine), a, portLabel(e.Port), strings.Join(e.Path, ",")}
			exposures[k] = append(exposures[k], e)
		}
	}
	for _, m := range in.Machines {
		for _, nic := range m.Interfaces {
			var routes [][]string
			var direct []string
			for _, id := range []string{nic.SubnetNSG, nic.NICNSG} {
				if id != "" {
					direct = append(direct, strings.ToLower(id))
				}
			}
			if len(direct) == 0 {
				continue
			}
			routes = append(routes, direct)
			if in.Firewall != nil {
				routes = append(routes, append([]string{"fw"}, direct...))
			}
			for _, ipS := range nic.IPs {
				ip := netip.MustParseAddr(ipS)
				fam := FamilyOf(ip)
				for _, port := range m.Ports {
					locked := !notLocked["any|"+strings.ToLower(m.Key)+"|"+portLabel(port)+"|"+string(fam)]
					for _, proto := range portProtocols(port) {
						pk0 := Packet{Direction: NSGInbound, Destination: ip, Protocol: proto, DestinationPort: port.Number}
						sources := world.probes(rng, fam, routes, pk0)
						for _, src := range sources {
							for _, res := range []*resolution{{all: true}, {rng: rng, answer: map[string]bool{}}} {
								pk := Packet{Direction: NSGInbound, Source: src, Destination: ip, Protocol: proto, SourcePort: 50000, DestinationPort: port.Number}
								// (i) per filter
								for _, id := range direct {
									b, a := before.first(id, res, pk), world.first(id, res, pk)
									if classOf(id, b) == "foreign" && (a.name != b.name || a.priority != b.priority) {
										c.precedence++
										fail("NSG %s: %+v first matched %q before the plan, %q after", id, pk, b.name, a.name)
									}
								}
								for ri, route := range routes {
									admitted, byOthers, byGrant := true, false, false
									var firsts []bruteRule
									for _, id := range route {
										r := world.first(id, res, pk)
										firsts = append(firsts, r)
										if r.deny {
											admitted = false
										}
										switch classOf(id, r) {
										case "foreign":
											byOthers = byOthers || !r.deny
										case "grant":
											byGrant = true
										}
									}
									ids := routeIDs(in, route)
									related := exposures[expKey{strings.ToLower(m.Key), ip.String(), portLabel(PortProtocol{port.Number, proto}), strings.Join(ids, ",")}]
									if admitted && locked && !byOthers && !byGrant {
										fail("%s port %s from %s under %+v: admitted on %v by %v although locked", m.Key, portLabel(port), src, res.all, ids, firsts)
									}
									if admitted && !byGrant {
										if !slices.ContainsFunc(related, func(e Exposure) bool { return e.Kind == ExposureKeptOpen && sourcesHold(e.Sources, src) }) {
											c.missingWarnings++
											fail("%s port %d/%s open to %s on route %d (%v) with no warning saying so%s", m.Key, port.Number, proto, src, ri, firsts, dumpRoute(world, route, plan, m.Key, pk))
										}
									}
									// (iv) warnings that claim certainty hold under every resolution.
									for _, e := range related {
										if len(e.Assumed) != 0 || !sourcesHold(e.Sources, src) {
											continue
										}
										if e.Kind == ExposureKeptOpen && !admitted || e.Kind == ExposureCut && admitted {
											c.contradictions++
											fail("warning %+v contradicted for %s: admitted %v (%v)%s", e, src, admitted, firsts, dumpRoute(world, route, plan, m.Key, pk))
										}
									}
								}
							}
						}
					}
				}
			}
		}
	}

	// (v) No port refused although a placement existed, in NSGs without
	// rules of the policy before (where nothing had to stay in place).
	checkRefusals(t, fail, l, plan, stats, c)

	// (iii) A grant, requested once the plan is applied.
	checkPathGrant(t, rng, fail, l, after, stats, c)

	// The plan does not depend on the order ARM lists rules in (checked on
	// every fourth layout: it costs a plan).
	shuffled := in
	if n%4 == 0 {
		shuffled.NSGs = map[string][]NSGRule{}
		for _, id := range sortedKeys(in.NSGs) {
			rules := slices.Clone(in.NSGs[id])
			rng.Shuffle(len(rules), func(i, j int) { rules[i], rules[j] = rules[j], rules[i] })
			shuffled.NSGs[id] = rules
		}
		if other := PlanPolicyPaths(shuffled); fmt.Sprint(other.Denies, other.Exposures, other.Findings) != fmt.Sprint(plan.Denies, plan.Exposures, plan.Findings) {
			fail("the plan depends on the order of the rules")
		}
	}

	// (vi) Planning the applied result changes nothing, except where the
	// plan said so: a machine left out for want of room that the plan's own
	// moves free (PlanAgainLocks) is locked by the next plan, which then is
	// the last.
	again := in
	again.NSGs = after
	if in.Firewall != nil {
		fw := *in.Firewall
		fw.Collections = fwAfter
		again.Firewall = &fw
	}
	second := PlanPolicyPaths(again)
	announced := map[string]bool{}
	for _, e := range exposuresOf(plan, ExposureNotLocked) {
		if strings.HasSuffix(e.Reason, PlanAgainLocks) {
			announced[strings.ToLower(e.Target+"|"+e.Machine+"|"+portLabel(e.Port)+"|"+string(e.Family))] = true
			// Room the next plan finds where this one removes rules of
			// the policy, this one finds too (Remove first): only a deny
			// that moves keeps its old priority taken until it has moved.
			id := nsgKey(in.NSGs, strings.ToLower(e.Target))
			if !slices.ContainsFunc(plan.NSGs[id].Add, func(a NSGRule) bool {
				return slices.ContainsFunc(in.NSGs[id], func(r NSGRule) bool { return r.Name == a.Name && r.inbound() && r.Priority != a.Priority })
			}) {
				fail("NSG %s: %s %s left out for room the next plan finds, yet no deny of the plan moves there", e.Target, e.Machine, portLabel(e.Port))
			}
		}
	}
	coveredBy := func(p PolicyPathPlan) map[string]bool {
		m := map[string]bool{}
		for _, d := range p.Denies {
			for _, k := range d.MachineKeys {
				m[strings.ToLower(d.Target+"|"+k+"|"+portLabel(d.Port)+"|"+string(d.Family))] = true
			}
		}
		return m
	}
	firstCovered, secondCovered := coveredBy(plan), coveredBy(second)
	changed := false
	for id, np := range second.NSGs {
		changed = changed || len(np.Add)+len(np.Remove) != 0
		if len(np.Remove) != 0 {
			fail("second plan of NSG %s removes %v", id, ruleNames(np.Remove))
		}
	}
	for k := range firstCovered {
		if !secondCovered[k] {
			fail("second plan no longer locks %s", k)
		}
	}
	for k := range secondCovered {
		if !firstCovered[k] && !announced[k] {
			fail("second plan locks %s, which the first plan did not announce", k)
		}
	}
	if changed {
		stats["second plans locking what the first announced"]++
		third := again
		third.NSGs = map[string][]NSGRule{}
		for id, rules := range after {
			third.NSGs[id] = applyNSGPlanRules(rules, second.NSGs[id])
		}
		for id, np := range PlanPolicyPaths(third).NSGs {
			if len(np.Add)+len(np.Remove) != 0 {
				fail("third plan of NSG %s: add %v remove %v", id, ruleNames(np.Add), ruleNames(np.Remove))
			}
		}
	} else if len(announced) != 0 {
		fail("the plan announced %v for the next plan, which changes nothing", announced)
	}
	if second.Firewall != nil && second.Firewall.Changed {
		fail("second plan changes the firewall")
	}
	if !changed && (len(exposuresOf(second, ExposureCut)) != 0 || !slices.EqualFunc(exposuresOf(second, ExposureKeptOpen), exposuresOf(plan, ExposureKeptOpen), func(a, b Exposure) bool { return fmt.Sprint(a) == fmt.Sprint(b) })) {
		fail("second plan reports otherwise")
	}
	stats["kept open"] += len(exposuresOf(plan, ExposureKeptOpen))
	stats["cut"] += len(exposuresOf(plan, ExposureCut))
}

func nsgKey(nsgs map[string][]NSGRule, lower string) string {
	if _, ok := nsgs[lower]; ok {
		return lower
	}
	for id := range nsgs {
		if strings.EqualFold(id, lower) {
			return id
		}
	}
	return lower
}

// routeIDs spells a route's filters as the plan does.
func routeIDs(in PolicyPathInput, route []string) []string {
	var out []string
	for _, id := range route {
		if id == "fw" {
			out = append(out, in.Firewall.ID)
		} else {
			out = append(out, nsgKey(in.NSGs, id))
		}
	}
	return out
}

func sourcesHold(sources []string, a netip.Addr) bool {
	for _, s := range sources {
		if first, last, ok := readAddressRange(s); ok && first.Is4() == a.Is4() && first.Compare(a) <= 0 && a.Compare(last) <= 0 {
			return true
		}
	}
	return false
}

// pathProbes are sources to try: the ends and neighbours of every address
// range the rules name, and random addresses.
func pathProbes(rng *rand.Rand, fam AddressFamily, nsgs map[string][]NSGRule, fw []FirewallNetworkCollection) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	add := func(a netip.Addr) {
		if a.IsValid() && FamilyOf(a) == fam && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	lo, hi := familyRange(fam)
	add(lo)
	add(hi)
	lists := [][]string{{"168.63.129.16"}}
	for _, rules := range nsgs {
		for _, r := range rules {
			if r.inbound() && r.Priority < 65000 && len(r.SourcePrefixes) < 4 && !strings.HasPrefix(r.Name, "filler-") && !strings.HasPrefix(r.Name, "tail-") {
				lists = append(lists, r.SourcePrefixes)
			}
		}
	}
	for _, c := range fw {
		for _, r := range c.Rules {
			lists = append(lists, r.SourceAddresses)
		}
	}
	addEdges(rng, fam, lists, add)
	return out
}

// checkRefusals: every member left out of a deny in an NSG without rules
// of the policy before truly could not have been added to what was placed.
func checkRefusals(t *testing.T, fail func(string, ...any), l pathLayout, plan PolicyPathPlan, stats map[string]int, c *pathCounts) {
	t.Helper()
	in := l.in
	for id, rules := range in.NSGs {
		key := strings.ToLower(id)
		if !l.fresh[key] {
			continue
		}
		var refused []Exposure
		for _, e := range exposuresOf(plan, ExposureNotLocked) {
			if strings.EqualFold(e.Target, id) {
				refused = append(refused, e)
			}
		}
		if len(refused) == 0 {
			continue
		}
		var free []int
		used := usedPriorities(rules).in
		for p := 100; p <= 4096; p++ {
			if !used[p] {
				free = append(free, p)
			}
		}
		foreign := slices.DeleteFunc(slices.Clone(rules), func(r NSGRule) bool { return l.honoured[id+"\x00"+r.Name] })
		grants := slices.DeleteFunc(slices.Clone(rules), func(r NSGRule) bool { return !l.honoured[id+"\x00"+r.Name] })
		// lower bound of one machine's addresses of a family, for a port
		lowers := map[string]int{}
		lowerOf := func(key string, port PortProtocol, fam AddressFamily) int {
			ck := strings.ToLower(key) + "|" + portLabel(port) + "|" + string(fam)
			if b, ok := lowers[ck]; ok {
				return b
			}
			defer func() { lowers[ck] = lowers[ck+"?"] }()
			b := 100
			for _, m := range in.Machines {
				if !strings.EqualFold(m.Key, key) {
					continue
				}
				for _, nic := range m.Interfaces {
					if !strings.EqualFold(nic.SubnetNSG, id) && !strings.EqualFold(nic.NICNSG, id) {
						continue
					}
					for _, ipS := range nic.IPs {
						ip := netip.MustParseAddr(ipS)
						if FamilyOf(ip) != fam {
							continue
						}
						for _, proto := range portProtocols(port) {
							p := strings.ToLower(string(proto))
							for _, r := range oracleDeciders(foreign, AnyPrefix, ip, port.Number, p) {
								b = max(b, r.Priority+1)
							}
							for _, g := range grants {
								// a grant matching some traffic to ip on the port
								if slices.ContainsFunc(oracleDeciders([]NSGRule{g}, AnyPrefix, ip, port.Number, p), func(x NSGRule) bool { return x.Name == g.Name }) {
									b = max(b, g.Priority+1)
								}
							}
						}
					}
				}
			}
			lowers[ck+"?"] = b
			return b
		}
		type gk struct {
			port PortProtocol
			fam  AddressFamily
		}
		placed := map[gk]int{}
		for _, d := range plan.Denies {
			if !strings.EqualFold(d.Target, id) {
				continue
			}
			k := gk{d.Port, d.Family}
			placed[k] = 100
			for _, m := range d.MachineKeys {
				placed[k] = max(placed[k], lowerOf(m, d.Port, d.Family))
			}
		}
		for _, e := range refused {
			with := map[gk]int{}
			for k, v := range placed {
				with[k] = v
			}
			k := gk{e.Port, e.Family}
			with[k] = max(with[k], lowerOf(e.Machine, e.Port, e.Family))
			var ls []int
			for _, v := range with {
				ls = append(ls, v)
			}
			ok, decided := oracleFeasible(free, ls)
			switch {
			case !decided:
				c.undecided++
			case ok:
				c.refusedWithSlot++
				fail("NSG %s: %s port %s (%s) left out, yet a placement exists (bounds %v)", id, e.Machine, portLabel(e.Port), e.Family, ls)
			default:
				stats["refusals proven by the oracle"]++
			}
		}
	}
}

// checkPathGrant requests a grant once the plan is applied: in every NSG
// of a machine's first interface, PlanNSGGrants. A grant must never admit
// a source that a rule of others denies; when refused, a rule of others
// must deny some of the traffic or no priority be free in its window;
// when placed, the whole path must admit the granted source.
func checkPathGrant(t *testing.T, rng *rand.Rand, fail func(string, ...any), l pathLayout, after map[string][]NSGRule, stats map[string]int, c *pathCounts) {
	t.Helper()
	m := l.in.Machines[rng.IntN(len(l.in.Machines))]
	nic := m.Interfaces[0]
	port := m.Ports[rng.IntN(len(m.Ports))]
	source := pickOne(rng, "*", "203.0.113.7/32", "203.0.113.0/24", "10.1.0.0/16", "198.51.100.128/25", "2001:db8::/48", "192.0.2.9/32")
	src, _ := ParsePrefix(source)
	var ids []string
	for _, id := range []string{nic.SubnetNSG, nic.NICNSG} {
		if id != "" && !slices.ContainsFunc(ids, func(x string) bool { return strings.EqualFold(x, id) }) {
			ids = append(ids, nsgKey(after, strings.ToLower(id)))
		}
	}
	withGrants := map[string][]NSGRule{}
	for k, v := range after {
		withGrants[k] = v
	}
	granted := true
	for _, id := range ids {
		rules := after[id]
		honoured := func(r NSGRule) bool { return l.honoured[id+"\x00"+r.Name] }
		g := NSGGrant{NSG: id, Rules: rules, Policy: pathPolicy, Request: "req-prop", Machine: m.Key, PrivateIPs: nic.IPs, Port: port, Source: source,
			End: time.Unix(1.9e9, 0), Requestor: "bob", Justification: "property test", HonouredGrant: honoured}
		out, err := PlanNSGGrants(g)
		if err != nil {
			granted = false
			stats["grants refused"]++
			if !grantRefusalJustified(rules, l.honoured, id, nic.IPs, port, src) {
				fail("grant of %s from %s in NSG %s refused (%v), yet no rule of others denies it and a priority is free", portLabel(port), source, id, err)
			}
			continue
		}
		stats["grant rules"] += len(out)
		used := usedPriorities(rules).in
		for _, r := range out {
			fam := FamilyOf(netip.MustParseAddr(r.DestinationPrefixes[0]))
			for _, d := range r.DestinationPrefixes {
				if FamilyOf(netip.MustParseAddr(d)) != fam {
					fail("grant %+v mixes families", r)
				}
			}
			if (used[r.Priority] && !slices.ContainsFunc(rules, func(x NSGRule) bool { return x.Name == r.Name && x.Priority == r.Priority })) || r.Priority < 100 || r.Priority > 4096 {
				fail("grant %s at %d: taken or out of range", r.Name, r.Priority)
			}
			used[r.Priority] = true
		}
		withGrants[id] = applyNSGPlanRules(rules, NSGPlan{Add: out})
	}
	if len(ids) == 0 {
		return
	}
	gw := newWorld(withGrants, nil)
	foreignWorlds := map[string]*pathWorld{}
	for _, id := range ids {
		lower := strings.ToLower(id)
		foreignWorlds[id] = newWorld(map[string][]NSGRule{lower: slices.DeleteFunc(slices.Clone(after[id]), func(r NSGRule) bool {
			return ownsRule(r) || l.honoured[id+"\x00"+r.Name]
		})}, nil)
	}
	for _, ipS := range nic.IPs {
		ip := netip.MustParseAddr(ipS)
		if !src.IsAny() && FamilyOf(src.net.Addr()) != FamilyOf(ip) {
			continue
		}
		for _, proto := range portProtocols(port) {
			for _, a := range pathProbes(rng, FamilyOf(ip), map[string][]NSGRule{"x": {{Name: "s", Direction: NSGInbound, SourcePrefixes: []string{source}}}}, nil) {
				if !src.IsAny() && !src.net.Contains(a) {
					continue
				}
				for _, res := range []*resolution{{all: true}, {all: false}, {rng: rng, answer: map[string]bool{}}} {
					pk := Packet{Direction: NSGInbound, Source: a, Destination: ip, Protocol: proto, SourcePort: 50000, DestinationPort: port.Number}
					admitted := true
					for _, id := range ids {
						lower := strings.ToLower(id)
						f := foreignWorlds[id].first(lower, res, pk)
						g := gw.first(lower, res, pk)
						if f.deny && f.priority < 65000 && (g.name != f.name) && strings.HasPrefix(g.name, "jit-grant-") && !l.honoured[id+"\x00"+g.name] {
							c.grantsAdmittingDenied++
							fail("grant %s in NSG %s admits %s, which %q of others denies", g.name, id, a, f.name)
						}
						admitted = admitted && !g.deny
					}
					if granted && !admitted {
						fail("grant of %s from %s placed, yet %s is not admitted on the path (%+v)", portLabel(port), source, a, pk)
					}
				}
			}
		}
	}
	if granted {
		stats["grants placed on the whole path"]++
	}
}

// grantRefusalJustified: some rule of others may be the first of them to
// match part of the granted traffic and denies it, or no priority is free
// after the rules of others deciding the traffic and before the policy's
// first deny matching it, or the source reaches none of the machine's
// families.
func grantRefusalJustified(rules []NSGRule, honouredSet map[string]bool, id string, ips []string, port PortProtocol, src Prefix) bool {
	foreign := slices.DeleteFunc(slices.Clone(rules), func(r NSGRule) bool { return ownsRule(r) || honouredSet[id+"\x00"+r.Name] })
	used := usedPriorities(rules).in
	type window struct{ lo, hi int }
	windows := map[bool]*window{} // by family (IPv4: true)
	for _, s := range ips {
		ip := netip.MustParseAddr(s)
		if !src.IsAny() && FamilyOf(src.net.Addr()) != FamilyOf(ip) {
			continue
		}
		w := windows[ip.Is4()]
		if w == nil {
			w = &window{100, 4097}
			windows[ip.Is4()] = w
		}
		for _, proto := range portProtocols(port) {
			p := strings.ToLower(string(proto))
			for _, r := range oracleDeciders(foreign, src, ip, port.Number, p) {
				if strings.EqualFold(string(r.Access), "deny") {
					return true
				}
				w.lo = max(w.lo, r.Priority+1)
			}
			for _, r := range rules {
				if ownsRule(r) && strings.EqualFold(string(r.Access), "deny") && len(oracleDeciders([]NSGRule{r}, src, ip, port.Number, p)) > 0 {
					w.hi = min(w.hi, r.Priority)
				}
			}
		}
	}
	if len(windows) == 0 {
		return true // the source reaches none of the machine's families
	}
	// Distinct free priorities, one per family's window, by brute force.
	var ws []*window
	for _, w := range windows {
		ws = append(ws, w)
	}
	var fits func(i int, taken map[int]bool) bool
	fits = func(i int, taken map[int]bool) bool {
		if i == len(ws) {
			return true
		}
		for q := ws[i].lo; q < ws[i].hi && q <= 4096; q++ {
			if !used[q] && !taken[q] {
				taken[q] = true
				if fits(i+1, taken) {
					return true
				}
				delete(taken, q)
			}
		}
		return false
	}
	return !fits(0, map[int]bool{})
}

// dumpRoute shows, for a failure, the rules of the route that may match
// the packet's traffic and what the plan reports about it.
func dumpRoute(w *pathWorld, route []string, plan PolicyPathPlan, machine string, pk Packet) string {
	var b strings.Builder
	for _, id := range route {
		fmt.Fprintf(&b, "\n  %s:", id)
		w.first(id, &resolution{all: true}, pk)
		for _, r := range w.cache[worldKey{id, pk.Destination, pk.DestinationPort, pk.Protocol}] {
			fmt.Fprintf(&b, "\n    %d %s deny=%v proto=%v src=%v srcPorts=%v dst=%v ports=%v", r.priority, r.name, r.deny, r.protocols, r.src, r.srcPorts, r.dst, r.dstPorts)
		}
	}
	for _, e := range plan.Exposures {
		if strings.EqualFold(e.Machine, machine) && e.Port.Number == pk.DestinationPort && slices.Contains(e.Addresses, pk.Destination.String()) {
			fmt.Fprintf(&b, "\n  exposure %s %s path %d filters sources %v rules %v assumed %v", e.Kind, portLabel(e.Port), len(e.Path), e.Sources, refsKey(e.Rules), e.Assumed)
		}
	}
	return b.String()
}

// probes are sources to try for traffic like pk on the routes: where
// every address range the rules that may match it name begins, and where
// it has ended (every interval the filters treat alike starts at one of
// those), and a random address.
func (w *pathWorld) probes(rng *rand.Rand, fam AddressFamily, routes [][]string, pk Packet) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	add := func(a netip.Addr) {
		if a.IsValid() && FamilyOf(a) == fam && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	lo, hi := familyRange(fam)
	add(lo)
	add(hi)
	lists := [][]string{{"168.63.129.16"}}
	for _, route := range routes {
		for _, id := range route {
			w.first(id, &resolution{all: true}, pk)
			for _, r := range w.cache[worldKey{id, pk.Destination, pk.DestinationPort, pk.Protocol}] {
				lists = append(lists, r.src)
			}
		}
	}
	for _, list := range lists {
		for _, s := range list {
			if first, last, ok := bruteRange(s); ok {
				add(first)
				add(last.Next())
			}
		}
	}
	if fam == IPv4 {
		add(netip.AddrFrom4([4]byte{byte(1 + rng.IntN(220)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}))
	} else {
		add(netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", rng.IntN(65536))))
	}
	return out
}

// layoutDump is a layout as JSON (JIT_PROPERTY_DUMP), to study a failure
// apart.
type layoutDump struct {
	Policy   string
	Machines []PathMachine
	NSGs     map[string][]NSGRule
	Firewall []FirewallNetworkCollection
	Strict   bool
	Honoured map[string]bool
}

func fwCollections(in PolicyPathInput) []FirewallNetworkCollection {
	if in.Firewall == nil {
		return nil
	}
	return in.Firewall.Collections
}

// ownsRule tells the policy's denies, parsing only what can be a marker.
func ownsRule(r NSGRule) bool {
	return strings.HasPrefix(r.Description, "jit:deny ") && ownedBy(r, pathPolicy)
}
