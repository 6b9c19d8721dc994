package jit

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The evaluator: what network security groups and the classic Azure
// Firewall do with traffic, as Azure evaluates it. The deny and grant
// placements, the plan's warnings and the data sources' classification all
// ask it, so that they cannot disagree about what a rule does.
//
// Rules name addresses the core cannot resolve: service tags, application
// security groups (a rule side with no address prefixes), IP groups. Rather
// than guess, the evaluator is three-valued: a rule matches, does not, or
// may match (is assumed to match), and a verdict is Allow, Deny, or Maybe
// when it hangs on such a rule. A tag is resolved where what it can contain
// settles the question. On the machine's side of the traffic (the
// destination of inbound traffic, the source of outbound), Internet and
// AzureLoadBalancer never hold a VM's private address, so a rule naming
// only them there does not match. On the remote side, "*" and "Any" hold
// every address and AzureLoadBalancer is exactly 168.63.129.16.
// VirtualNetwork, every other tag and application security groups are
// assumed on either side. A rule limited to some source ports matches some
// connections and not others, and an unknown protocol or a malformed port
// range may match: those are assumed too.
//
// Unknowns are treated as independent of one another: a rule after an
// assumed match may still be the first match. This can only widen the set
// of possible outcomes, never hide one, so a Deny or Allow verdict holds
// whatever the tags contain.

// Verdict is what a filter or a path does with some traffic.
type Verdict uint8

const (
	VerdictDeny Verdict = 1 + iota
	VerdictAllow
	// VerdictMaybe: the outcome depends on what a service tag or an
	// application security group contains, or on the client's source port.
	VerdictMaybe
)

func (v Verdict) String() string {
	switch v {
	case VerdictDeny:
		return "Deny"
	case VerdictAllow:
		return "Allow"
	case VerdictMaybe:
		return "Maybe"
	}
	return "Verdict(" + strconv.Itoa(int(v)) + ")"
}

// both is the verdict of traffic that must pass two filters.
func (v Verdict) both(w Verdict) Verdict {
	switch {
	case v == VerdictDeny || w == VerdictDeny:
		return VerdictDeny
	case v == VerdictAllow && w == VerdictAllow:
		return VerdictAllow
	}
	return VerdictMaybe
}

// AddressFamily is IPv4 or IPv6. Azure refuses a rule mixing them, so the
// planners write one rule per family.
type AddressFamily string

const (
	IPv4 AddressFamily = "IPv4"
	IPv6 AddressFamily = "IPv6"
)

// FamilyOf is the family of an address (an IPv4-mapped IPv6 address is IPv6).
func FamilyOf(a netip.Addr) AddressFamily {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

func familyRange(f AddressFamily) (first, last netip.Addr) {
	if f == IPv4 {
		return netip.AddrFrom4([4]byte{}), netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	var ones [16]byte
	for i := range ones {
		ones[i] = 0xff
	}
	return netip.AddrFrom16([16]byte{}), netip.AddrFrom16(ones)
}

// RuleRef names a rule the evaluator found deciding some traffic.
type RuleRef struct {
	// Filter is the NSG's or the firewall's ID.
	Filter string
	// Collection is the firewall's network rule collection ("" in an NSG).
	Collection string
	Name       string
	Priority   int
	Access     NSGAccess
	// Default marks an NSG's default rules (AllowVnetInBound, …), which are
	// nobody's explicit rules, and the firewall's implicit network rule.
	Default bool
}

// Decider is a rule that is, or may be, the first match of some traffic in
// one filter.
type Decider struct {
	Rule RuleRef
	// Assumed is empty when the rule certainly matches; otherwise it says
	// what was assumed to match: the rule's tags or application security
	// groups, its source ports, an unknown protocol or port range.
	Assumed []string
}

// Segment is one interval of remote addresses that a path treats alike.
type Segment struct {
	First, Last netip.Addr // inclusive
	Verdict     Verdict
	// Deciders has one entry per filter of the path: the rules that may be
	// the first match there, in evaluation order. Every one but the last is
	// an assumed match; the last one is certain.
	Deciders [][]Decider
}

// Query is traffic between one address of a machine (Local) and a range
// of remote addresses: from them (inbound) or to them (outbound), to one
// destination port, from any source port.
type Query struct {
	Direction NSGDirection
	Local     netip.Addr
	Protocol  Protocol // ProtocolTCP or ProtocolUDP
	Port      int
	// Remote restricts the remote addresses; the zero value and AnyPrefix
	// mean every address of Local's family.
	Remote Prefix
}

// Packet is one connection, for point queries.
type Packet struct {
	Direction                   NSGDirection
	Source, Destination         netip.Addr
	Protocol                    Protocol // ProtocolTCP or ProtocolUDP
	SourcePort, DestinationPort int
}

// Filter is one NSG (its rules and its default rules) or one Azure
// Firewall (its network rule collections and the implicit rule after them).
type Filter struct {
	ID    string
	rules []*evalRule // in evaluation order; shared between filters

	mu     sync.Mutex
	byPort map[portKey][]int // indexes of the rules that may carry such traffic
}

type portKey struct {
	inbound bool
	proto   string
	port    int
}

// candidates lists, in order, the rules whose direction, protocol and
// destination port may match: most rules of a large NSG are about other
// ports, and queries come by the hundred for the same port.
func (f *Filter) candidates(inbound bool, proto string, port int) []int {
	k := portKey{inbound, proto, port}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.byPort[k]; ok {
		return c
	}
	var c []int
	var why []string
	for j, r := range f.rules {
		if r.dir.has(inbound) && r.protos.match(proto, &why) != no && r.dstPorts.match(port, &why) != no {
			c = append(c, j)
		}
	}
	if f.byPort == nil {
		f.byPort = map[portKey][]int{}
	}
	f.byPort[k] = c
	return c
}

// Path is the filters traffic crosses, in order; all must allow it. An
// absent NSG is simply not on the path.
type Path []*Filter

// NSG default rules: not anyone's explicit rules, evaluated after them.
var nsgDefaultRules = []NSGRule{
	{Name: "AllowVnetInBound", Priority: 65000, Direction: NSGInbound, Access: NSGAllow, Protocol: NSGProtocolAny,
		SourcePrefixes: []string{"VirtualNetwork"}, DestinationPrefixes: []string{"VirtualNetwork"}},
	{Name: "AllowAzureLoadBalancerInBound", Priority: 65001, Direction: NSGInbound, Access: NSGAllow, Protocol: NSGProtocolAny,
		SourcePrefixes: []string{"AzureLoadBalancer"}, DestinationPrefixes: []string{"*"}},
	{Name: "DenyAllInBound", Priority: 65500, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolAny,
		SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"*"}},
	{Name: "AllowVnetOutBound", Priority: 65000, Direction: NSGOutbound, Access: NSGAllow, Protocol: NSGProtocolAny,
		SourcePrefixes: []string{"VirtualNetwork"}, DestinationPrefixes: []string{"VirtualNetwork"}},
	{Name: "AllowInternetOutBound", Priority: 65001, Direction: NSGOutbound, Access: NSGAllow, Protocol: NSGProtocolAny,
		SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"Internet"}},
	{Name: "DenyAllOutBound", Priority: 65500, Direction: NSGOutbound, Access: NSGDeny, Protocol: NSGProtocolAny,
		SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"*"}},
}

// NSGFilter is an NSG with its custom rules and its default rules.
func NSGFilter(id string, rules []NSGRule) *Filter {
	return newNSGFilter(id, rules, nil, true)
}

// newNSGFilter keeps the rules for which keep is true (all when nil), with
// or without the default rules. Without them, traffic may pass every rule:
// the planners use such partial filters to ask which of the owner's rules
// decide some traffic.
func newNSGFilter(id string, rules []NSGRule, keep func(int) bool, defaults bool) *Filter {
	compiled := make([]*evalRule, len(rules))
	for i, r := range rules {
		if keep == nil || keep(i) {
			compiled[i] = nsgEvalRule(id, r)
		}
	}
	return nsgFilterOf(id, compiled, keep, defaults)
}

// nsgFilterOf builds a filter of rules compiled once (compiled[i] is
// rules[i]; nil where keep is false).
func nsgFilterOf(id string, compiled []*evalRule, keep func(int) bool, defaults bool) *Filter {
	return nsgFilterOrdered(id, compiled, evaluationOrder(compiled), keep, defaults)
}

// evaluationOrder lists the indexes of compiled rules by priority (then
// name, for a deterministic order of equal priorities).
func evaluationOrder(compiled []*evalRule) []int {
	order := make([]int, 0, len(compiled))
	for i, r := range compiled {
		if r != nil {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(compiled[a].ref.Priority, compiled[b].ref.Priority), cmp.Compare(compiled[a].ref.Name, compiled[b].ref.Name))
	})
	return order
}

// nsgFilterOrdered is nsgFilterOf with the evaluation order computed once.
func nsgFilterOrdered(id string, compiled []*evalRule, order []int, keep func(int) bool, defaults bool) *Filter {
	f := &Filter{ID: id}
	for _, i := range order {
		if keep == nil || keep(i) {
			f.rules = append(f.rules, compiled[i])
		}
	}
	if defaults {
		for _, r := range nsgDefaultRules {
			e := nsgEvalRule(id, r)
			e.ref.Default = true
			f.rules = append(f.rules, e)
		}
	}
	return f
}

// compileNSGInbound compiles an NSG's inbound rules (nil for the others):
// what the planners, which only ask about inbound traffic, evaluate.
func compileNSGInbound(id string, rules []NSGRule) []*evalRule {
	out := make([]*evalRule, len(rules))
	for i, r := range rules {
		if r.inbound() {
			out[i] = nsgEvalRule(id, r)
		}
	}
	return out
}

func nsgEvalRule(id string, r NSGRule) *evalRule {
	dir := dirOutbound
	if r.inbound() {
		dir = dirInbound
	}
	access := NSGAllow
	if strings.EqualFold(string(r.Access), string(NSGDeny)) {
		access = NSGDeny
	}
	return &evalRule{
		ref:      RuleRef{Filter: id, Name: r.Name, Priority: r.Priority, Access: access},
		dir:      dir,
		protos:   parseProtos(string(r.Protocol)),
		src:      parseAddrs(r.SourcePrefixes, "application security groups"),
		dst:      parseAddrs(r.DestinationPrefixes, "application security groups"),
		srcPorts: parsePorts(r.SourcePortRanges),
		dstPorts: parsePorts(r.DestinationPortRanges),
	}
}

// firewallImplicitRule stands for what a classic Azure Firewall does with
// traffic no network rule matches. Traffic reaching a machine through the
// firewall arrives by a DNAT rule, which Azure lets through an implicit
// network rule unless a network rule collection denies it; so after the
// collections, the firewall allows.
var firewallImplicitRule = RuleRef{Name: "(no network rule: DNAT traffic is allowed)", Priority: FirewallMaxPriority + 1, Access: NSGAllow, Default: true}

// FirewallFilter is a classic Azure Firewall's network rule collections,
// by priority, then its implicit allow of DNAT'd traffic.
func FirewallFilter(id string, collections []FirewallNetworkCollection) *Filter {
	return newFirewallFilter(id, collections, nil, true)
}

func newFirewallFilter(id string, collections []FirewallNetworkCollection, keep func(int) bool, implicit bool) *Filter {
	f := &Filter{ID: id}
	order := make([]int, 0, len(collections))
	for i := range collections {
		if keep == nil || keep(i) {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(collections[a].Priority, collections[b].Priority), cmp.Compare(collections[a].Name, collections[b].Name))
	})
	for _, i := range order {
		c := collections[i]
		access := NSGAllow
		if strings.EqualFold(string(c.Action), string(FirewallDeny)) {
			access = NSGDeny
		}
		for _, r := range c.Rules {
			f.rules = append(f.rules, &evalRule{
				ref:      RuleRef{Filter: id, Collection: c.Name, Name: r.Name, Priority: c.Priority, Access: access},
				dir:      dirBoth,
				protos:   parseProtos(r.Protocols...),
				src:      parseAddrs(r.SourceAddresses, "IP groups"),
				dst:      parseAddrs(r.DestinationAddresses, "IP groups or FQDNs"),
				srcPorts: portSpec{all: true},
				dstPorts: parsePorts(r.DestinationPorts),
			})
		}
	}
	if implicit {
		ref := firewallImplicitRule
		ref.Filter = id
		f.rules = append(f.rules, &evalRule{ref: ref, dir: dirBoth, protos: protoSpec{all: true},
			src: addrSpec{ranges: allRanges()}, dst: addrSpec{ranges: allRanges()}, srcPorts: portSpec{all: true}, dstPorts: portSpec{all: true}})
	}
	return f
}

// Evaluate partitions the query's remote addresses into intervals, each
// with its verdict on the whole path and the deciding rules in each filter.
// The intervals are in address order, cover the remote range exactly, and
// adjacent ones differ. A query of one family never sees addresses of the
// other (a remote prefix of the other family gives no interval).
func (p Path) Evaluate(q Query) []Segment {
	lo, hi, ok := q.remoteRange()
	if !ok {
		return nil
	}
	per := make([][]fseg, len(p))
	for i, f := range p {
		per[i] = f.segments(q, lo, hi)
	}
	var out []Segment
	var outSigs [][]int
	next := make([]int, len(p))
	for cur := lo; ; {
		end := hi
		for i := range p {
			if l := per[i][next[i]].last; l.Less(end) {
				end = l
			}
		}
		s := Segment{First: cur, Last: end, Verdict: VerdictAllow, Deciders: make([][]Decider, len(p))}
		var sig []int
		for i := range p {
			fs := per[i][next[i]]
			s.Verdict = s.Verdict.both(fs.verdict)
			s.Deciders[i] = fs.deciders
			sig = append(sig, fs.sig...)
			sig = append(sig, -1)
		}
		if n := len(out); n > 0 && slices.Equal(outSigs[n-1], sig) {
			out[n-1].Last = end
		} else {
			out = append(out, s)
			outSigs = append(outSigs, sig)
		}
		if end == hi {
			return out
		}
		for i := range p {
			if per[i][next[i]].last == end {
				next[i]++
			}
		}
		cur = end.Next()
	}
}

// EvaluatePacket is the verdict of the path on one connection, with the
// deciding rules in each filter.
func (p Path) EvaluatePacket(pk Packet) (Verdict, [][]Decider) {
	v := VerdictAllow
	deciders := make([][]Decider, len(p))
	inbound := !strings.EqualFold(string(pk.Direction), string(NSGOutbound))
	local, remote := pk.Destination, pk.Source
	if !inbound {
		local, remote = pk.Source, pk.Destination
	}
	proto := strings.ToLower(string(pk.Protocol))
	for i, f := range p {
		var ds []Decider
		definite := false
		for _, j := range f.candidates(inbound, proto, pk.DestinationPort) {
			r := f.rules[j]
			var why []string
			m := r.protos.match(proto, &why)
			m = min(m, r.dstPorts.match(pk.DestinationPort, &why))
			m = min(m, r.srcPorts.match(pk.SourcePort, &why))
			m = min(m, r.local(inbound).matchLocal(local, &why))
			m = min(m, r.remote(inbound).matchRemote(remote, &why))
			if m == no {
				continue
			}
			d := Decider{Rule: r.ref}
			if m == maybe {
				d.Assumed = why
			}
			ds = append(ds, d)
			if m == yes {
				definite = true
				break
			}
		}
		deciders[i] = ds
		v = v.both(verdictOf(ds, definite))
	}
	return v, deciders
}

// mayMatch lists the rules that match, or may match, some of the query's
// traffic, whatever rules come before them.
func (f *Filter) mayMatch(q Query) []Decider {
	lo, hi, ok := q.remoteRange()
	if !ok {
		return nil
	}
	inbound := !strings.EqualFold(string(q.Direction), string(NSGOutbound))
	proto := strings.ToLower(string(q.Protocol))
	var out []Decider
	for _, j := range f.candidates(inbound, proto, q.Port) {
		r := f.rules[j]
		var why []string
		m := r.protos.match(proto, &why)
		m = min(m, r.dstPorts.match(q.Port, &why))
		m = min(m, r.srcPorts.matchAny(&why))
		m = min(m, r.local(inbound).matchLocal(q.Local, &why))
		side := r.remote(inbound)
		remote := no
		for _, rg := range side.remoteRanges() {
			if !rg.last.Less(lo) && !hi.Less(rg.first) {
				remote = yes
			}
		}
		if assumed := side.remoteAssumed(); remote == no && len(assumed) > 0 {
			remote, why = maybe, append(why, assumed...)
		}
		if m = min(m, remote); m == no {
			continue
		}
		d := Decider{Rule: r.ref}
		if m == maybe {
			d.Assumed = why
		}
		out = append(out, d)
	}
	return out
}

// verdictOf is a filter's verdict from its possible first matches; when
// none is certain, traffic may pass every rule, which allows it.
func verdictOf(ds []Decider, definite bool) Verdict {
	allow, deny := !definite, false
	for _, d := range ds {
		if d.Rule.Access == NSGDeny {
			deny = true
		} else {
			allow = true
		}
	}
	switch {
	case allow && deny:
		return VerdictMaybe
	case deny:
		return VerdictDeny
	}
	return VerdictAllow
}

func (q Query) remoteRange() (lo, hi netip.Addr, ok bool) {
	if !q.Local.IsValid() {
		return lo, hi, false
	}
	fam := FamilyOf(q.Local)
	lo, hi = familyRange(fam)
	if q.Remote.net.IsValid() {
		n := q.Remote.net.Masked()
		if FamilyOf(n.Addr()) != fam {
			return lo, hi, false
		}
		lo, hi = n.Addr(), lastAddr(n)
	}
	return lo, hi, true
}

// fseg is one filter's verdict over an interval; sig identifies its
// deciders, so that equal neighbours merge.
type fseg struct {
	last     netip.Addr
	verdict  Verdict
	deciders []Decider
	sig      []int
}

// segments evaluates one filter over the remote interval [lo, hi].
func (f *Filter) segments(q Query, lo, hi netip.Addr) []fseg {
	inbound := !strings.EqualFold(string(q.Direction), string(NSGOutbound))
	proto := strings.ToLower(string(q.Protocol))
	type relevant struct {
		r        *evalRule
		idx      int
		pre      tri
		ranges   []addrRange // remote addresses it certainly holds, within [lo, hi]
		assumeRm bool        // remote addresses outside ranges may match
		whyYes   []string    // assumptions when the remote side matches
		whyMaybe []string    // assumptions when the remote side is assumed
	}
	var rel []relevant
	bounds := []netip.Addr{lo}
	for _, j := range f.candidates(inbound, proto, q.Port) {
		r := f.rules[j]
		var why []string
		pre := r.protos.match(proto, &why)
		pre = min(pre, r.dstPorts.match(q.Port, &why))
		pre = min(pre, r.srcPorts.matchAny(&why))
		pre = min(pre, r.local(inbound).matchLocal(q.Local, &why))
		if pre == no {
			continue
		}
		side := r.remote(inbound)
		x := relevant{r: r, idx: j, pre: pre, whyYes: why}
		for _, rg := range side.remoteRanges() {
			if rg.last.Less(lo) || hi.Less(rg.first) {
				continue
			}
			rg.first, rg.last = maxAddr(rg.first, lo), minAddr(rg.last, hi)
			x.ranges = append(x.ranges, rg)
			bounds = append(bounds, rg.first)
			if n := rg.last.Next(); rg.last != hi && n.IsValid() {
				bounds = append(bounds, n)
			}
		}
		if assumed := side.remoteAssumed(); len(assumed) > 0 {
			x.assumeRm = true
			x.whyMaybe = append(slices.Clone(why), assumed...)
		}
		if len(x.ranges) == 0 && !x.assumeRm {
			continue
		}
		rel = append(rel, x)
	}
	slices.SortFunc(bounds, netip.Addr.Compare)
	bounds = slices.Compact(bounds)

	var out []fseg
	for k, start := range bounds {
		end := hi
		if k+1 < len(bounds) {
			end = bounds[k+1].Prev()
		}
		var ds []Decider
		var sig []int
		definite := false
		for _, x := range rel {
			m := no
			for _, rg := range x.ranges {
				if rg.contains(start) {
					m = yes
					break
				}
			}
			why := x.whyYes
			if m == no && x.assumeRm {
				m, why = maybe, x.whyMaybe
			}
			m = min(m, x.pre)
			if m == no {
				continue
			}
			d := Decider{Rule: x.r.ref}
			if m == maybe {
				d.Assumed = why
			}
			ds = append(ds, d)
			sig = append(sig, 2*x.idx+int(m))
			if m == yes {
				definite = true
				break
			}
		}
		v := verdictOf(ds, definite)
		if n := len(out); n > 0 && slices.Equal(out[n-1].sig, sig) {
			out[n-1].last = end
			continue
		}
		out = append(out, fseg{last: end, verdict: v, deciders: ds, sig: sig})
	}
	return out
}

// --- Rules, compiled. ---

type tri uint8

const (
	no tri = iota
	maybe
	yes
)

type ruleDirection uint8

const (
	dirInbound ruleDirection = 1 << iota
	dirOutbound
	dirBoth = dirInbound | dirOutbound
)

func (d ruleDirection) has(inbound bool) bool {
	if inbound {
		return d&dirInbound != 0
	}
	return d&dirOutbound != 0
}

type evalRule struct {
	ref                RuleRef
	dir                ruleDirection
	protos             protoSpec
	src, dst           addrSpec
	srcPorts, dstPorts portSpec
}

// local and remote are the rule's sides for the machine's address and the
// other end of the traffic.
func (r *evalRule) local(inbound bool) *addrSpec {
	if inbound {
		return &r.dst
	}
	return &r.src
}

func (r *evalRule) remote(inbound bool) *addrSpec {
	if inbound {
		return &r.src
	}
	return &r.dst
}

type protoSpec struct {
	all     bool
	names   []string // tcp, udp, icmp, …
	unknown []string
}

// parseProtos reads NSG ("Tcp", "*") and firewall ("TCP", "Any")
// protocols alike; none means any.
func parseProtos(names ...string) protoSpec {
	var s protoSpec
	if len(names) == 0 {
		s.all = true
	}
	for _, n := range names {
		switch l := strings.ToLower(strings.TrimSpace(n)); l {
		case "*", "any", "":
			s.all = true
		case "tcp", "udp", "icmp", "icmpv6", "esp", "ah":
			s.names = append(s.names, l)
		default:
			s.unknown = append(s.unknown, "protocol "+n)
		}
	}
	return s
}

func (s *protoSpec) match(proto string, why *[]string) tri {
	if s.all || slices.Contains(s.names, proto) {
		return yes
	}
	if len(s.unknown) > 0 {
		*why = append(*why, s.unknown...)
		return maybe
	}
	return no
}

// readPortRange reads "*", "22" or "1000-2000".
func readPortRange(r string) (lo, hi int, ok bool) {
	if r == "*" {
		return 0, 65535, true
	}
	a, b, isRange := strings.Cut(r, "-")
	lo, err := strconv.Atoi(strings.TrimSpace(a))
	if err != nil {
		return 0, 0, false
	}
	if !isRange {
		return lo, lo, true
	}
	hi, err = strconv.Atoi(strings.TrimSpace(b))
	return lo, hi, err == nil
}

// readAddressRange reads a cloud-side address: a CIDR (host bits
// tolerated, since the cloud accepted it), a single address or a
// "first-last" range. ok is false for "*", tags and anything else.
func readAddressRange(s string) (first, last netip.Addr, ok bool) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		p = p.Masked()
		return p.Addr(), lastAddr(p), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a, a, true
	}
	if x, y, found := strings.Cut(s, "-"); found {
		a, errA := netip.ParseAddr(strings.TrimSpace(x))
		b, errB := netip.ParseAddr(strings.TrimSpace(y))
		if errA == nil && errB == nil && a.BitLen() == b.BitLen() {
			return a, b, true
		}
	}
	return netip.Addr{}, netip.Addr{}, false
}

type portSpec struct {
	all    bool
	ranges [][2]int
	bad    []string
}

// parsePorts reads "*", "22" and "1000-2000"; none means any.
func parsePorts(ranges []string) portSpec {
	var s portSpec
	if len(ranges) == 0 {
		s.all = true
	}
	for _, r := range ranges {
		r = strings.TrimSpace(r)
		lo, hi, ok := readPortRange(r)
		switch {
		case !ok || lo > hi:
			s.bad = append(s.bad, "port range "+strconv.Quote(r))
		case lo <= 0 && hi >= 65535:
			s.all = true
		default:
			s.ranges = append(s.ranges, [2]int{lo, hi})
		}
	}
	return s
}

func (s *portSpec) match(port int, why *[]string) tri {
	if s.all {
		return yes
	}
	for _, r := range s.ranges {
		if r[0] <= port && port <= r[1] {
			return yes
		}
	}
	if len(s.bad) > 0 {
		*why = append(*why, s.bad...)
		return maybe
	}
	return no
}

// matchAny is the match of source ports when the client's is not known.
func (s *portSpec) matchAny(why *[]string) tri {
	if s.all {
		return yes
	}
	var parts []string
	for _, r := range s.ranges {
		parts = append(parts, portRangeString(r[0], r[1]))
	}
	*why = append(*why, "source ports "+strings.Join(append(parts, s.bad...), ", "))
	return maybe
}

func portRangeString(lo, hi int) string {
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return strconv.Itoa(lo) + "-" + strconv.Itoa(hi)
}

type addrRange struct{ first, last netip.Addr }

func (r addrRange) contains(a netip.Addr) bool {
	return a.BitLen() == r.first.BitLen() && r.first.Compare(a) <= 0 && a.Compare(r.last) <= 0
}

func allRanges() []addrRange {
	f4, l4 := familyRange(IPv4)
	f6, l6 := familyRange(IPv6)
	return []addrRange{{f4, l4}, {f6, l6}}
}

// azureLoadBalancer is the only address of the AzureLoadBalancer tag: the
// platform's health probes.
var azureLoadBalancer = netip.AddrFrom4([4]byte{168, 63, 129, 16})

// addrSpec is one side of a rule.
type addrSpec struct {
	ranges       []addrRange // addresses the side certainly holds
	loadBalancer bool        // AzureLoadBalancer
	internet     bool        // Internet
	assumed      []string    // VirtualNetwork, other tags, ASGs, anything unresolvable
}

func parseAddrs(list []string, none string) addrSpec {
	var s addrSpec
	if len(list) == 0 {
		s.assumed = []string{none}
	}
	for _, a := range list {
		t := strings.TrimSpace(a)
		switch {
		case t == "*" || strings.EqualFold(t, "any"):
			s.ranges = append(s.ranges, allRanges()...)
		case strings.EqualFold(t, "internet"):
			s.internet = true
		case strings.EqualFold(t, "azureloadbalancer"):
			s.loadBalancer = true
		default:
			if first, last, ok := readAddressRange(a); ok && first.Compare(last) <= 0 {
				s.ranges = append(s.ranges, addrRange{first, last})
			} else {
				s.assumed = append(s.assumed, strings.TrimSpace(a))
			}
		}
	}
	return s
}

// matchLocal matches the machine's own address: Internet and
// AzureLoadBalancer never hold it.
func (s *addrSpec) matchLocal(a netip.Addr, why *[]string) tri {
	for _, r := range s.ranges {
		if r.contains(a) {
			return yes
		}
	}
	if len(s.assumed) > 0 {
		*why = append(*why, s.assumed...)
		return maybe
	}
	return no
}

func (s *addrSpec) matchRemote(a netip.Addr, why *[]string) tri {
	for _, r := range s.remoteRanges() {
		if r.contains(a) {
			return yes
		}
	}
	if assumed := s.remoteAssumed(); len(assumed) > 0 {
		*why = append(*why, assumed...)
		return maybe
	}
	return no
}

func (s *addrSpec) remoteRanges() []addrRange {
	if !s.loadBalancer {
		return s.ranges
	}
	return append(slices.Clip(s.ranges), addrRange{azureLoadBalancer, azureLoadBalancer})
}

func (s *addrSpec) remoteAssumed() []string {
	if !s.internet {
		return s.assumed
	}
	return append(slices.Clip(s.assumed), "Internet")
}

func minAddr(a, b netip.Addr) netip.Addr {
	if a.Less(b) {
		return a
	}
	return b
}

func maxAddr(a, b netip.Addr) netip.Addr {
	if a.Less(b) {
		return b
	}
	return a
}

// RangeString writes an address interval as people read it: a single
// address, a CIDR when it is one, "first-last" otherwise.
func RangeString(first, last netip.Addr) string {
	if first == last {
		return first.String()
	}
	for bits := 0; bits <= first.BitLen(); bits++ {
		p := netip.PrefixFrom(first, bits)
		if p.Masked().Addr() == first && lastAddr(p.Masked()) == last {
			return p.String()
		}
	}
	return first.String() + "-" + last.String()
}
