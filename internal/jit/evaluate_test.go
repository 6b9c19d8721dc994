package jit

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// --- A brute-force evaluator, written apart from evaluate.go: direct
// first match over one concrete connection, with every unknown (tag and
// ASG membership, unknown protocols and port ranges) resolved by a
// resolution. The evaluator's certain verdicts must hold under every
// resolution, and the rule that matches first under any resolution must be
// among its deciders. ---

// resolution decides what the evaluator cannot: whether a tag or an ASG
// holds an address, whether an unknown protocol or port range matches.
// Answers are remembered, so one connection sees one consistent world.
type resolution struct {
	rng    *rand.Rand // nil: answer all
	all    bool
	answer map[string]bool
}

func (r *resolution) holds(key string) bool {
	if r.rng == nil {
		return r.all
	}
	v, ok := r.answer[key]
	if !ok {
		v = r.rng.IntN(2) == 0
		r.answer[key] = v
	}
	return v
}

func bruteRange(s string) (netip.Addr, netip.Addr, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		p = p.Masked()
		return p.Addr(), lastAddr(p), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a, a, true
	}
	if x, y, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(x)
		b, err2 := netip.ParseAddr(y)
		if err1 == nil && err2 == nil && a.Is4() == b.Is4() {
			return a, b, true
		}
	}
	return netip.Addr{}, netip.Addr{}, false
}

// bruteAddress matches one rule side. local is the machine's side, whose
// private address no Internet or AzureLoadBalancer tag holds.
func bruteAddress(res *resolution, rule, side string, list []string, a netip.Addr, local bool) bool {
	if len(list) == 0 {
		return res.holds("asg " + rule + " " + side + " " + a.String())
	}
	for _, s := range list {
		switch lowerToken(s) {
		case "*", "any":
			return true
		case "internet":
			if !local && res.holds("internet "+a.String()) {
				return true
			}
			continue
		case "azureloadbalancer":
			if !local && a == netip.MustParseAddr("168.63.129.16") {
				return true
			}
			continue
		}
		if first, last, ok := bruteRange(s); ok {
			if a.Is4() == first.Is4() && first.Compare(a) <= 0 && a.Compare(last) <= 0 {
				return true
			}
			continue
		}
		if res.holds("tag " + lowerToken(s) + " " + a.String()) {
			return true
		}
	}
	return false
}

// lowerToken lower-cases the tokens the brute force compares, without
// allocating for the common ones.
func lowerToken(s string) string {
	for _, known := range []string{"*", "any", "internet", "azureloadbalancer", "virtualnetwork"} {
		if strings.EqualFold(s, known) {
			return known
		}
	}
	if s != "" && (s[0] >= '0' && s[0] <= '9' || s[0] == ':') {
		return s
	}
	return strings.ToLower(s)
}

func brutePorts(res *resolution, rule string, list []string, port int) bool {
	if len(list) == 0 {
		return true
	}
	for _, s := range list {
		if s == "*" {
			return true
		}
		a, b, isRange := strings.Cut(s, "-")
		if !isRange {
			b = a
		}
		lo, err1 := strconv.Atoi(a)
		hi, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil {
			if res.holds("port " + rule + " " + s) {
				return true
			}
			continue
		}
		if lo <= port && port <= hi {
			return true
		}
	}
	return false
}

func bruteProtocols(res *resolution, rule string, list []string, proto string) bool {
	if len(list) == 0 {
		return true
	}
	for _, s := range list {
		known := false
		for _, k := range []string{"tcp", "udp", "icmp", "icmpv6", "esp", "ah"} {
			known = known || strings.EqualFold(s, k)
		}
		switch {
		case s == "*" || s == "" || strings.EqualFold(s, "any"):
			return true
		case known:
			if strings.EqualFold(s, proto) {
				return true
			}
		default:
			if res.holds("protocol " + rule + " " + strings.ToLower(s)) {
				return true
			}
		}
	}
	return false
}

// bruteRule is an NSG rule or a firewall rule in one shape.
type bruteRule struct {
	id                       string // filter/collection/name, for resolutions
	filter, collection, name string
	priority                 int
	deny                     bool
	inbound, outbound        bool
	protocols                []string
	src, dst                 []string
	srcPorts, dstPorts       []string
}

func (r bruteRule) matches(res *resolution, pk Packet) bool {
	inbound := pk.Direction == NSGInbound
	if inbound && !r.inbound || !inbound && !r.outbound {
		return false
	}
	id := r.id
	return bruteProtocols(res, id, r.protocols, string(pk.Protocol)) &&
		brutePorts(res, id, r.srcPorts, pk.SourcePort) && brutePorts(res, id, r.dstPorts, pk.DestinationPort) &&
		bruteAddress(res, id, "src", r.src, pk.Source, !inbound) && bruteAddress(res, id, "dst", r.dst, pk.Destination, inbound)
}

type bruteFilter struct {
	id    string
	rules []bruteRule // in evaluation order, ending with a rule matching everything
}

func bruteNSG(id string, rules []NSGRule) bruteFilter {
	f := bruteFilter{id: id}
	order := make([]int, len(rules))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if rules[a].Priority != rules[b].Priority {
			return rules[a].Priority - rules[b].Priority
		}
		return strings.Compare(rules[a].Name, rules[b].Name)
	})
	sorted := make([]NSGRule, 0, len(rules)+6)
	for _, i := range order {
		sorted = append(sorted, rules[i])
	}
	for _, r := range append(sorted,
		NSGRule{Name: "AllowVnetInBound", Priority: 65000, Direction: "Inbound", Access: "Allow", Protocol: "*", SourcePrefixes: []string{"VirtualNetwork"}, DestinationPrefixes: []string{"VirtualNetwork"}},
		NSGRule{Name: "AllowAzureLoadBalancerInBound", Priority: 65001, Direction: "Inbound", Access: "Allow", Protocol: "*", SourcePrefixes: []string{"AzureLoadBalancer"}, DestinationPrefixes: []string{"*"}},
		NSGRule{Name: "DenyAllInBound", Priority: 65500, Direction: "Inbound", Access: "Deny", Protocol: "*", SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"*"}},
		NSGRule{Name: "AllowVnetOutBound", Priority: 65000, Direction: "Outbound", Access: "Allow", Protocol: "*", SourcePrefixes: []string{"VirtualNetwork"}, DestinationPrefixes: []string{"VirtualNetwork"}},
		NSGRule{Name: "AllowInternetOutBound", Priority: 65001, Direction: "Outbound", Access: "Allow", Protocol: "*", SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"Internet"}},
		NSGRule{Name: "DenyAllOutBound", Priority: 65500, Direction: "Outbound", Access: "Deny", Protocol: "*", SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"*"}},
	) {
		in := strings.EqualFold(string(r.Direction), "inbound")
		f.rules = append(f.rules, bruteRule{id: id + "//" + r.Name, filter: id, name: r.Name, priority: r.Priority, deny: strings.EqualFold(string(r.Access), "deny"),
			inbound: in, outbound: !in, protocols: []string{string(r.Protocol)}, src: r.SourcePrefixes, dst: r.DestinationPrefixes,
			srcPorts: r.SourcePortRanges, dstPorts: r.DestinationPortRanges})
	}
	return f
}

func bruteFirewall(id string, collections []FirewallNetworkCollection) bruteFilter {
	f := bruteFilter{id: id}
	sorted := slices.Clone(collections)
	slices.SortStableFunc(sorted, func(a, b FirewallNetworkCollection) int {
		if a.Priority != b.Priority {
			return a.Priority - b.Priority
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, c := range sorted {
		for _, r := range c.Rules {
			f.rules = append(f.rules, bruteRule{id: id + "/" + c.Name + "/" + r.Name, filter: id, collection: c.Name, name: r.Name, priority: c.Priority, deny: strings.EqualFold(string(c.Action), "deny"),
				inbound: true, outbound: true, protocols: r.Protocols, src: r.SourceAddresses, dst: r.DestinationAddresses, dstPorts: r.DestinationPorts})
		}
	}
	f.rules = append(f.rules, bruteRule{filter: id, name: firewallImplicitRule.Name, priority: FirewallMaxPriority + 1, inbound: true, outbound: true, src: []string{"*"}, dst: []string{"*"}})
	return f
}

// firstMatch is the rule deciding the packet in the filter.
func (f bruteFilter) firstMatch(res *resolution, pk Packet) bruteRule {
	for _, r := range f.rules {
		if r.matches(res, pk) {
			return r
		}
	}
	panic("no catch-all rule")
}

func (r bruteRule) is(ref RuleRef) bool {
	return r.filter == ref.Filter && r.collection == ref.Collection && r.name == ref.Name && r.priority == ref.Priority
}

// --- Generated layouts. ---

var (
	evalLocals  = []string{"10.0.0.4", "10.0.0.5", "10.0.0.20", "fd00::4", "fd00::5"}
	evalAddrTok = []string{
		"*", "Any", "VirtualNetwork", "Internet", "AzureLoadBalancer", "Storage.WestEurope", "AzureCloud",
		"10.0.0.4", "10.0.0.5", "10.0.0.20", "fd00::4", "10.0.0.0/24", "10.0.0.0/28", "10.0.0.16/28", "10.0.0.5/24",
		"203.0.113.0/24", "203.0.113.7", "203.0.113.128/25", "168.63.129.16", "168.63.128.0/23", "0.0.0.0/0", "::/0",
		"2001:db8::/32", "2001:db8::7", "fd00::/64", "198.51.100.0/25", "10.0.0.1-10.0.0.9", "203.0.113.5-203.0.113.200", "not an address",
	}
	evalPorts  = []string{"*", "22", "22", "20-25", "3389", "80", "1-65535", "3000-4000", "bad", "25-20", "53", "0-1024"}
	evalProtos = []string{"Tcp", "Tcp", "Udp", "*", "Icmp", "Esp", "Ah", "tcp", "Gre"}
)

func genTokens(rng *rand.Rand) []string {
	if rng.IntN(12) == 0 {
		return nil // application security groups / IP groups
	}
	var out []string
	for range 1 + rng.IntN(3) {
		if rng.IntN(3) == 0 {
			out = append(out, pickOne(rng, evalAddrTok...))
		} else { // mostly addresses, so that many verdicts are certain
			out = append(out, pickOne(rng, evalAddrTok[7:len(evalAddrTok)-1]...))
		}
	}
	return out
}

func genPortList(rng *rand.Rand) []string {
	var out []string
	for range 1 + rng.IntN(2) {
		out = append(out, pickOne(rng, evalPorts...))
	}
	return out
}

func genNSGRules(rng *rand.Rand, n int) []NSGRule {
	var rules []NSGRule
	used := map[[2]int]bool{}
	for i := range n {
		dir := pickOne(rng, NSGInbound, NSGInbound, NSGInbound, NSGOutbound)
		p := 100 + rng.IntN(60)
		d := 0
		if dir == NSGOutbound {
			d = 1
		}
		for used[[2]int{d, p}] {
			p++
		}
		used[[2]int{d, p}] = true
		r := NSGRule{Name: fmt.Sprintf("r%d", i), Priority: p, Direction: dir, Access: pickOne(rng, NSGAllow, NSGDeny),
			Protocol: NSGProtocol(pickOne(rng, evalProtos...)), SourcePrefixes: genTokens(rng), DestinationPrefixes: genTokens(rng),
			DestinationPortRanges: genPortList(rng), SourcePortRanges: []string{"*"}}
		if rng.IntN(8) == 0 {
			r.SourcePortRanges = []string{pickOne(rng, "1024-65535", "22", "bad", "0-100")}
		}
		rules = append(rules, r)
	}
	return rules
}

func genCollections(rng *rand.Rand, n int) []FirewallNetworkCollection {
	var cs []FirewallNetworkCollection
	for i := range n {
		c := FirewallNetworkCollection{Name: fmt.Sprintf("c%d", i), Priority: 100 + 10*rng.IntN(10) + i, Action: pickOne(rng, FirewallAllow, FirewallDeny)}
		for j := range 1 + rng.IntN(3) {
			var protos []string
			for range 1 + rng.IntN(2) {
				protos = append(protos, pickOne(rng, "TCP", "UDP", "Any", "ICMP"))
			}
			c.Rules = append(c.Rules, FirewallNetworkRule{Name: fmt.Sprintf("c%d-r%d", i, j), Protocols: protos,
				SourceAddresses: genTokens(rng), DestinationAddresses: genTokens(rng), DestinationPorts: genPortList(rng)})
		}
		cs = append(cs, c)
	}
	return cs
}

// samplePoints are remote addresses of a family inside [lo, hi]: the ends
// and neighbours of every address range the rules name, the segments'
// ends, and random addresses.
func samplePoints(rng *rand.Rand, fam AddressFamily, lo, hi netip.Addr, segs []Segment) []netip.Addr {
	var pts []netip.Addr
	add := func(a netip.Addr) {
		if a.IsValid() && FamilyOf(a) == fam && lo.Compare(a) <= 0 && a.Compare(hi) <= 0 {
			pts = append(pts, a)
		}
	}
	for _, s := range append(slices.Clone(evalAddrTok), "168.63.129.16") {
		if first, last, ok := bruteRange(s); ok {
			add(first)
			add(last)
			add(first.Prev())
			add(last.Next())
		}
	}
	for _, s := range segs {
		add(s.First)
		add(s.Last)
	}
	for range 4 {
		if fam == IPv4 {
			add(netip.AddrFrom4([4]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}))
		} else {
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.IntN(256))
			}
			if rng.IntN(2) == 0 {
				copy(b[:], netip.MustParseAddr("2001:db8::").AsSlice()[:4])
			}
			add(netip.AddrFrom16(b))
		}
	}
	slices.SortFunc(pts, netip.Addr.Compare)
	return slices.Compact(pts)
}

func TestEvaluate_agreesWithBruteForce(t *testing.T) {
	rng, cases := propertySetup(t)
	cases = max(cases/5, 50)
	start := time.Now()
	stats := map[string]int{}
	for n := range cases {
		if t.Failed() {
			return
		}
		var path Path
		var brute []bruteFilter
		if rng.IntN(3) == 0 {
			cs := genCollections(rng, rng.IntN(5))
			path, brute = append(path, FirewallFilter("fw", cs)), append(brute, bruteFirewall("fw", cs))
		}
		for k := range 1 + rng.IntN(2) {
			id := fmt.Sprintf("nsg%d", k)
			rules := genNSGRules(rng, rng.IntN(14))
			if rng.IntN(2) == 0 { // a hardened NSG ends with its own catch-all
				rules = append(rules, NSGRule{Name: "catch-all", Priority: 4000, Direction: NSGInbound, Access: pickOne(rng, NSGAllow, NSGDeny),
					Protocol: NSGProtocolAny, SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"*"}})
			}
			path, brute = append(path, NSGFilter(id, rules)), append(brute, bruteNSG(id, rules))
		}
		for range 4 {
			q := Query{Direction: pickOne(rng, NSGInbound, NSGInbound, NSGOutbound), Local: netip.MustParseAddr(pickOne(rng, evalLocals...)),
				Protocol: pickOne(rng, ProtocolTCP, ProtocolUDP), Port: pickOne(rng, 22, 22, 3389, 53, 80, 20, 1024, 65535)}
			if rng.IntN(4) == 0 {
				q.Remote, _ = ParsePrefix(pickOne(rng, "203.0.113.0/24", "10.0.0.0/8", "2001:db8::/32", "168.63.129.16", "0.0.0.0/0"))
			}
			segs := path.Evaluate(q)
			lo, hi, ok := q.remoteRange()
			if !ok {
				if segs != nil {
					t.Errorf("case %d: segments for a remote prefix of the other family", n)
				}
				stats["queries across families"]++
				continue
			}
			checkSegments(t, n, segs, lo, hi, len(path))
			stats["queries"]++
			stats["segments"] += len(segs)
			for _, a := range samplePoints(rng, FamilyOf(q.Local), lo, hi, segs) {
				seg := segmentOf(segs, a)
				stats[seg.Verdict.String()]++
				for range 2 {
					pk := Packet{Direction: q.Direction, Protocol: q.Protocol, DestinationPort: q.Port, SourcePort: pickOne(rng, 50000, 22, 1024, 80, 65535)}
					pk.Source, pk.Destination = a, q.Local
					if q.Direction == NSGOutbound {
						pk.Source, pk.Destination = q.Local, a
					}
					pv, pd := path.EvaluatePacket(pk)
					if seg.Verdict != VerdictMaybe && pv != seg.Verdict {
						t.Errorf("case %d: %+v: packet verdict %s, segment %s", n, pk, pv, seg.Verdict)
					}
					for _, res := range []*resolution{{all: true}, {all: false}, {rng: rng, answer: map[string]bool{}}} {
						v := VerdictAllow
						for fi, f := range brute {
							r := f.firstMatch(res, pk)
							if r.deny {
								v = VerdictDeny
							}
							if !slices.ContainsFunc(seg.Deciders[fi], func(d Decider) bool { return r.is(d.Rule) }) {
								t.Errorf("case %d: %+v: %s decides in %s, not among the segment's deciders %+v", n, pk, r.name, f.id, seg.Deciders[fi])
							}
							if !slices.ContainsFunc(pd[fi], func(d Decider) bool { return r.is(d.Rule) }) {
								t.Errorf("case %d: %+v: %s decides in %s, not among the packet's deciders %+v", n, pk, r.name, f.id, pd[fi])
							}
						}
						if seg.Verdict != VerdictMaybe && v != seg.Verdict {
							t.Errorf("case %d: %+v: brute force %s, segment %s (deciders %+v)", n, pk, v, seg.Verdict, seg.Deciders)
						}
						if pv != VerdictMaybe && v != pv {
							t.Errorf("case %d: %+v: brute force %s, packet %s (deciders %+v)", n, pk, v, pv, pd)
						}
						stats["brute-force evaluations"]++
					}
				}
			}
		}
	}
	t.Logf("%d generated paths in %v: %v", cases, time.Since(start).Round(time.Millisecond), stats)
}

// segmentOf is the segment holding a.
func segmentOf(segs []Segment, a netip.Addr) Segment {
	i, found := slices.BinarySearchFunc(segs, a, func(s Segment, a netip.Addr) int {
		switch {
		case s.Last.Less(a):
			return -1
		case a.Less(s.First):
			return 1
		}
		return 0
	})
	if !found {
		panic(fmt.Sprintf("%s in no segment", a))
	}
	return segs[i]
}

// checkSegments: the segments cover [lo, hi] in order, without gap or
// overlap, with one list of deciders per filter, the last one certain.
func checkSegments(t *testing.T, n int, segs []Segment, lo, hi netip.Addr, filters int) {
	t.Helper()
	if len(segs) == 0 || segs[0].First != lo || segs[len(segs)-1].Last != hi {
		t.Fatalf("case %d: segments %v do not cover %s-%s", n, segs, lo, hi)
	}
	for i, s := range segs {
		if s.Last.Less(s.First) || i > 0 && segs[i-1].Last.Next() != s.First {
			t.Fatalf("case %d: segment %d (%s-%s) does not follow %s", n, i, s.First, s.Last, segs[max(i-1, 0)].Last)
		}
		if len(s.Deciders) != filters {
			t.Fatalf("case %d: %d decider lists for %d filters", n, len(s.Deciders), filters)
		}
		for _, ds := range s.Deciders {
			if len(ds) == 0 || len(ds[len(ds)-1].Assumed) != 0 {
				t.Fatalf("case %d: deciders %+v end without a certain match", n, ds)
			}
			for _, d := range ds[:len(ds)-1] {
				if len(d.Assumed) == 0 {
					t.Fatalf("case %d: deciders %+v: a certain match before the last", n, ds)
				}
			}
		}
	}
}

func TestEvaluate_tags(t *testing.T) {
	for _, tc := range []struct {
		name, src, dst, remote string
		decides                bool   // rule "r" is among the deciders
		certain                bool   // and certainly matches
		assumed                string // else what it assumes
	}{
		{"Internet never holds the VM", "*", "Internet", "203.0.113.7", false, false, ""},
		{"AzureLoadBalancer never holds the VM", "*", "AzureLoadBalancer", "203.0.113.7", false, false, ""},
		{"nor both", "*", "Internet AzureLoadBalancer", "203.0.113.7", false, false, ""},
		{"VirtualNetwork is assumed", "203.0.113.7", "VirtualNetwork", "203.0.113.7", true, false, "VirtualNetwork"},
		{"other tags are assumed", "203.0.113.7", "Sql.WestEurope", "203.0.113.7", true, false, "Sql.WestEurope"},
		{"ASG is assumed", "203.0.113.7", "", "203.0.113.7", true, false, "application security groups"},
		{"AzureLoadBalancer is one source", "AzureLoadBalancer", "*", "168.63.129.16", true, true, ""},
		{"and no other", "AzureLoadBalancer", "*", "168.63.129.17", false, false, ""},
		{"Internet as a source is assumed", "Internet", "*", "203.0.113.7", true, false, "Internet"},
		{"Any is every source", "Any", "10.0.0.4 fd00::4", "2001:db8::1", true, true, ""},
		{"0.0.0.0/0 holds no IPv6 source", "0.0.0.0/0", "*", "2001:db8::1", false, false, ""},
		{"an IPv4 destination never holds an IPv6 VM", "*", "10.0.0.0/8", "2001:db8::1", false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remote := netip.MustParseAddr(tc.remote)
			q := Query{Direction: NSGInbound, Local: netip.MustParseAddr("10.0.0.4"), Protocol: ProtocolTCP, Port: 22}
			if remote.Is6() {
				q.Local = netip.MustParseAddr("fd00::4")
			}
			rule := NSGRule{Name: "r", Priority: 100, Direction: NSGInbound, Access: NSGAllow, Protocol: NSGProtocolTCP,
				SourcePrefixes: strings.Fields(tc.src), DestinationPrefixes: strings.Fields(tc.dst), DestinationPortRanges: []string{"22"}}
			s := segmentOf(Path{NSGFilter("nsg", []NSGRule{rule})}.Evaluate(q), remote)
			i := slices.IndexFunc(s.Deciders[0], func(d Decider) bool { return d.Rule.Name == "r" })
			switch {
			case (i >= 0) != tc.decides:
				t.Errorf("deciders %+v; want r among them: %v", s.Deciders[0], tc.decides)
			case i >= 0 && tc.certain != (len(s.Deciders[0][i].Assumed) == 0):
				t.Errorf("r assumes %q; want certain: %v", s.Deciders[0][i].Assumed, tc.certain)
			case i >= 0 && !tc.certain && !slices.Contains(s.Deciders[0][i].Assumed, tc.assumed):
				t.Errorf("r assumes %q; want %q", s.Deciders[0][i].Assumed, tc.assumed)
			}
		})
	}
}

func TestRangeString(t *testing.T) {
	for _, tc := range []struct{ first, last, want string }{
		{"10.0.0.4", "10.0.0.4", "10.0.0.4"},
		{"0.0.0.0", "255.255.255.255", "0.0.0.0/0"},
		{"10.0.0.0", "10.0.0.255", "10.0.0.0/24"},
		{"10.0.0.1", "10.0.0.9", "10.0.0.1-10.0.0.9"},
		{"10.0.0.0", "10.0.1.127", "10.0.0.0-10.0.1.127"},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0"},
	} {
		if got := RangeString(netip.MustParseAddr(tc.first), netip.MustParseAddr(tc.last)); got != tc.want {
			t.Errorf("RangeString(%s, %s) = %s; want %s", tc.first, tc.last, got, tc.want)
		}
	}
}
