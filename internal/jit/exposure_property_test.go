package jit

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// ExposedThroughNSGs over generated pairs of NSGs (subnet, NIC; either may
// be absent), checked against an oracle written apart from the evaluator:
// for every management port, every address of the interface and every
// public source worth trying, the rules of each NSG that may be the first
// to match, by triRule (policy_path_property_test.go) with the question's
// two premises (the Internet tag holds the source, VirtualNetwork holds
// the interface). The port must be reported exactly when, for some address
// and source, each NSG has an Allow from the internet at large among them,
// naming such rules for one address and source; and whenever first-match
// evaluation of one concrete world (evaluate_test.go's brute force, tags
// resolved at random) lets a public source through every NSG by such
// Allows, the port must be reported. Cases and replay as in propertySetup
// (JIT_PROPERTY_CASES, JIT_PROPERTY_SEED): a third of its cases, at least
// 100.

func TestExposedThroughNSGs_properties(t *testing.T) {
	rng, cases := propertySetup(t)
	cases = max(cases/3, 100)
	start := time.Now()
	stats := map[string]int{}
	for n := range cases {
		ips, levels := genExposureLayout(rng)
		checkExposure(t, rng, n, ips, levels, stats)
		if t.Failed() {
			t.Logf("seed above; case %d: interface %v, NSGs %s", n, ips, describeLevels(levels))
			return
		}
	}
	t.Logf("%d generated NSG pairs in %v: %v", cases, time.Since(start).Round(time.Millisecond), stats)
}

// atLargeSources are the sources holding the whole internet, as people
// spell them.
var atLargeSources = []string{"*", "Any", "Internet", "internet", "0.0.0.0/0", "::/0"}

func genExposureLayout(rng *rand.Rand) ([]string, []*NSGLevel) {
	locals := slices.Clone(evalLocals)
	rng.Shuffle(len(locals), func(i, j int) { locals[i], locals[j] = locals[j], locals[i] })
	ips := locals[:1+rng.IntN(3)]
	var levels []*NSGLevel
	for _, id := range []string{"subnet-nsg", "nic-nsg"} {
		if rng.IntN(5) == 0 {
			levels = append(levels, nil)
			continue
		}
		levels = append(levels, &NSGLevel{ID: id, Rules: genExposureRules(rng, ips)})
	}
	return ips, levels
}

// genExposureRules mixes evaluate_test.go's rules (tags, ASGs, prefixes,
// ranges, odd protocols and ports, source ports) with rules about the
// management ports from the internet at large.
func genExposureRules(rng *rand.Rand, ips []string) []NSGRule {
	rules := genNSGRules(rng, rng.IntN(10))
	for i := range rules {
		// A reversed range is refused by ARM; the evaluator assumes it, the
		// oracle does not.
		rules[i].DestinationPortRanges = slices.DeleteFunc(rules[i].DestinationPortRanges, func(s string) bool { return s == "25-20" })
	}
	for i := range rng.IntN(6) {
		r := NSGRule{Name: fmt.Sprintf("mgmt%d", i), Direction: NSGInbound, Access: pickOne(rng, NSGAllow, NSGAllow, NSGDeny),
			Protocol: pickOne(rng, NSGProtocolTCP, NSGProtocolAny, NSGProtocolUDP), SourcePortRanges: []string{"*"}}
		for range 1 + rng.IntN(2) {
			r.SourcePrefixes = append(r.SourcePrefixes, pickOne(rng, append(slices.Clone(atLargeSources), "203.0.113.0/24", "VirtualNetwork", "AzureCloud")...))
		}
		if rng.IntN(10) != 0 {
			for range 1 + rng.IntN(2) {
				r.DestinationPrefixes = append(r.DestinationPrefixes, pickOne(rng, "*", "VirtualNetwork", "Internet", "AzureCloud", "10.0.0.0/24", "fd00::/64", ips[rng.IntN(len(ips))]))
			}
		}
		r.DestinationPortRanges = []string{pickOne(rng, "22", "3389", "5985-5986", "*", "3000-6000", "5986", "20-25")}
		if rng.IntN(10) == 0 {
			r.SourcePortRanges = []string{"1024-65535"}
		}
		rules = append(rules, r)
	}
	// Unique priorities per direction, inbound rules shuffled among them.
	rng.Shuffle(len(rules), func(i, j int) { rules[i], rules[j] = rules[j], rules[i] })
	for i := range rules {
		rules[i].Priority = 100 + 2*i + rng.IntN(2)
	}
	return rules
}

// oracleDefaultInbound are an NSG's default inbound rules, as documented.
var oracleDefaultInbound = []NSGRule{
	{Name: "AllowVnetInBound", Priority: 65000, Direction: "Inbound", Access: "Allow", Protocol: "*", SourcePrefixes: []string{"VirtualNetwork"}, DestinationPrefixes: []string{"VirtualNetwork"}},
	{Name: "AllowAzureLoadBalancerInBound", Priority: 65001, Direction: "Inbound", Access: "Allow", Protocol: "*", SourcePrefixes: []string{"AzureLoadBalancer"}, DestinationPrefixes: []string{"*"}},
	{Name: "DenyAllInBound", Priority: 65500, Direction: "Inbound", Access: "Deny", Protocol: "*", SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"*"}},
}

// exposureTri is triRule for traffic from the internet to the interface:
// a side naming Internet holds the source, a side naming VirtualNetwork
// the interface's address.
func exposureTri(r NSGRule, src, dst netip.Addr, port int) int {
	names := func(list []string, tag string) bool {
		return slices.ContainsFunc(list, func(s string) bool { return strings.EqualFold(s, tag) })
	}
	rest := r
	rest.SourcePrefixes, rest.DestinationPrefixes = []string{"*"}, []string{"*"}
	t := triRule(rest, src, dst, port, "tcp")
	if !names(r.SourcePrefixes, "internet") {
		t = min(t, triAddrs(r.SourcePrefixes, src, false))
	}
	if !names(r.DestinationPrefixes, "virtualnetwork") {
		t = min(t, triAddrs(r.DestinationPrefixes, dst, true))
	}
	return t
}

func oracleAtLarge(sources []string) bool {
	return slices.ContainsFunc(sources, func(s string) bool {
		return slices.ContainsFunc(atLargeSources, func(a string) bool { return strings.EqualFold(s, a) })
	})
}

// oracleOpeners are the rules of one NSG that may be the first to match
// TCP traffic from src to dst on the port and are Allows from the internet
// at large: a rule may be, when it may match and no earlier rule certainly
// matches.
func oracleOpeners(sorted []NSGRule, src, dst netip.Addr, port int) []string {
	var out []string
	for _, r := range sorted {
		t := exposureTri(r, src, dst, port)
		if t > 0 && strings.EqualFold(string(r.Access), "Allow") && oracleAtLarge(r.SourcePrefixes) && r.Priority <= NSGMaxPriority {
			out = append(out, r.Name)
		}
		if t == 2 {
			break
		}
	}
	return out
}

// oraclePublic tells the addresses of the internet: not "this network",
// private, shared, loopback, link-local, multicast or reserved; of IPv6,
// global unicast only.
func oraclePublic(a netip.Addr) bool {
	if a.Is6() {
		return netip.MustParsePrefix("2000::/3").Contains(a)
	}
	for _, p := range []string{"0.0.0.0/8", "100.64.0.0/10", "240.0.0.0/4"} {
		if netip.MustParsePrefix(p).Contains(a) {
			return false
		}
	}
	return !a.IsPrivate() && !a.IsLoopback() && !a.IsLinkLocalUnicast() && !a.IsMulticast()
}

// publicEdges are where the internet begins and ends around the blocks it
// does not hold.
var publicEdges = []string{"1.0.0.0", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255", "128.0.0.0",
	"169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0", "192.167.255.255", "192.169.0.0", "223.255.255.255",
	"2000::", "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}

// exposureProbes are the public sources of a family worth trying: where
// every range the rules name begins and has ended, where the internet
// begins and ends, and random addresses. Between two of them every rule
// answers alike.
func exposureProbes(rng *rand.Rand, fam AddressFamily, levels []*NSGLevel) []netip.Addr {
	var out []netip.Addr
	add := func(a netip.Addr) {
		if a.IsValid() && FamilyOf(a) == fam && oraclePublic(a) {
			out = append(out, a)
		}
	}
	for _, s := range publicEdges {
		add(netip.MustParseAddr(s))
	}
	lists := [][]string{{"168.63.129.16"}}
	for _, l := range levels {
		if l == nil {
			continue
		}
		for _, r := range l.Rules {
			lists = append(lists, r.SourcePrefixes)
		}
	}
	addEdges(rng, fam, lists, add)
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func checkExposure(t *testing.T, rng *rand.Rand, n int, ips []string, levels []*NSGLevel, stats map[string]int) {
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("case %d: %s", n, fmt.Sprintf(format, args...))
	}
	got := ExposedThroughNSGs(ips, levels...)
	var present []*NSGLevel
	var sorted [][]NSGRule
	var brute []bruteFilter
	for _, l := range levels {
		if l != nil {
			present = append(present, l)
			sorted = append(sorted, append(byPriorityName(l.Rules), oracleDefaultInbound...))
			brute = append(brute, bruteNSG(l.ID, l.Rules))
		}
	}
	for _, port := range ManagementPorts {
		i := slices.IndexFunc(got, func(e ExposedPort) bool { return e.Port == port })
		if len(present) == 0 {
			if i < 0 || !slices.Equal(got[i].Rules, []string{NoNSGOnPath}) {
				fail("no NSG on the path, port %d: %+v", port.Number, got)
			}
			stats["without NSG"]++
			continue
		}
		// Every address and source for which each NSG has an opener, and
		// whether the reported rules are openers of one of them.
		exposed, named := false, false
		for _, ip := range ips {
			dst := netip.MustParseAddr(ip)
			probes := exposureProbes(rng, FamilyOf(dst), present)
			for _, src := range probes {
				openers := make([][]string, len(present))
				open := true
				for k := range present {
					openers[k] = oracleOpeners(sorted[k], src, dst, port.Number)
					open = open && len(openers[k]) > 0
				}
				if !open {
					continue
				}
				exposed = true
				if i >= 0 && len(got[i].Rules) == len(present) {
					all := true
					for k, l := range present {
						all = all && slices.ContainsFunc(openers[k], func(name string) bool { return got[i].Rules[k] == l.ID+"/securityRules/"+name })
					}
					named = named || all
				}
			}
			// One concrete world at a time: tags and ASGs resolved at
			// random, the Internet holding the source, VirtualNetwork the
			// interface.
			for range 3 {
				src := pickOne(rng, probes...)
				res := &resolution{rng: rng, answer: map[string]bool{"internet " + src.String(): true, "tag virtualnetwork " + dst.String(): true}}
				pk := Packet{Direction: NSGInbound, Source: src, Destination: dst, Protocol: ProtocolTCP, SourcePort: pickOne(rng, 50000, 22, 1024, 80), DestinationPort: port.Number}
				through := true
				for k, f := range brute {
					r := f.firstMatch(res, pk)
					custom := slices.ContainsFunc(present[k].Rules, func(c NSGRule) bool { return c.Name == r.name && oracleAtLarge(c.SourcePrefixes) })
					through = through && !r.deny && custom
				}
				if through {
					stats["concrete worlds letting the internet through"]++
					if i < 0 {
						fail("port %d: %+v lets %s through every NSG, yet the port is not reported", port.Number, pk, src)
					}
				}
			}
		}
		switch {
		case exposed && i < 0:
			fail("port %d is open to the internet through %v, not reported", port.Number, ips)
		case !exposed && i >= 0:
			fail("port %d reported (%v), yet no public source gets through by rules from the internet at large", port.Number, got[i].Rules)
		case exposed && !named:
			fail("port %d reported by %v: not rules letting one public source through every NSG", port.Number, got[i].Rules)
		case exposed:
			stats["exposed"]++
		default:
			stats["closed"]++
		}
	}
}

// byPriorityName sorts a copy of the rules as Azure evaluates them (equal
// priorities, which ARM refuses, by name).
func byPriorityName(rules []NSGRule) []NSGRule {
	sorted := slices.Clone(rules)
	slices.SortStableFunc(sorted, func(a, b NSGRule) int {
		if a.Priority != b.Priority {
			return a.Priority - b.Priority
		}
		return strings.Compare(a.Name, b.Name)
	})
	return sorted
}

func describeLevels(levels []*NSGLevel) string {
	var b strings.Builder
	for _, l := range levels {
		if l == nil {
			b.WriteString("\n  (none)")
			continue
		}
		fmt.Fprintf(&b, "\n  %s:", l.ID)
		for _, r := range byPriorityName(l.Rules) {
			fmt.Fprintf(&b, "\n    %+v", r)
		}
	}
	return b.String()
}
