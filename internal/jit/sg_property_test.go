package jit

import (
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The security-group planner's promises, checked over randomly generated
// groups, each planned over one to three rounds of changing locked ports
// and out-of-band changes, some applies and restores interrupted half-way,
// then restored. JIT_PROPERTY_CASES sets the number of groups (default
// 3000, 300 with -short); JIT_PROPERTY_SEED replays another seed.
func TestPlanSecurityGroup_properties(t *testing.T) {
	rng, cases := sgPropertySetup(t)
	start := time.Now()
	stats := map[string]int{}
	for c := range cases {
		name := fmt.Sprintf("case %d", c)
		sgPropertyCase(t, name, rng, stats)
		if t.Failed() {
			t.Fatalf("%s failed", name)
		}
	}
	t.Logf("%d generated groups in %s: %v", cases, time.Since(start).Round(time.Millisecond), stats)
}

func sgPropertySetup(t *testing.T) (*rand.Rand, int) {
	cases := 3000
	if testing.Short() {
		cases = 300
	}
	if s := os.Getenv("JIT_PROPERTY_CASES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("JIT_PROPERTY_CASES=%q: %v", s, err)
		}
		cases = n
	}
	seed := uint64(20251123)
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

var (
	sgPropSources = []string{"10.0.0.0/8", "192.0.2.0/24", "0.0.0.0/0", "2001:db8::/32", "::/0",
		"pl-0123456789abcdef0", "pl-0fedcba9876543210", "sg-0123456789abcdef0"}
	sgPropDescriptions = []string{"", "ssh", "office VPN", "a_b (x)", "=+@", "."}
	sgPropProtocols    = []string{"tcp", "tcp", "tcp", "udp", "udp", "-1", "icmp", "icmpv6", "6", "17", "1", "58", "50", "47"}
	sgPropPorts        = []int{0, 1, 21, 22, 23, 53, 80, 443, 500, 3389, 5985, 5986, 65534, 65535}
	sgPropLocks        = []PortProtocol{sgTCPPort(22), sgTCPPort(3389), {53, ProtocolAny}, sgTCPPort(0), {65535, ProtocolUDP},
		{500, ProtocolUDP}, sgTCPPort(5985), sgTCPPort(5986), {443, ProtocolAny}}
	// sgPropProbeProtocols include 132 (SCTP), which no generated rule
	// names: only all-protocols rules allow it.
	sgPropProbeProtocols = []string{"tcp", "udp", "icmp", "icmpv6", "50", "47", "132"}
)

func sgPick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func sgPropPort(rng *rand.Rand) int {
	if rng.IntN(4) == 0 {
		return rng.IntN(65536)
	}
	return sgPick(rng, sgPropPorts)
}

func sgPropRule(rng *rand.Rand) SGRule {
	r := SGRule{IPProtocol: sgPick(rng, sgPropProtocols), FromPort: -1, ToPort: -1, Description: sgPick(rng, sgPropDescriptions)}
	switch canonicalSGProtocol(r.IPProtocol) {
	case sgTCP, sgUDP:
		switch rng.IntN(8) {
		case 0:
			r.FromPort, r.ToPort = 0, 65535
		case 1:
			// -1 -1 stays: all ports, the way a caller might write it.
		case 2, 3:
			r.FromPort = sgPropPort(rng)
			r.ToPort = r.FromPort
		default:
			a, b := sgPropPort(rng), sgPropPort(rng)
			r.FromPort, r.ToPort = min(a, b), max(a, b)
		}
	case sgICMP, sgICMPv6:
		r.FromPort, r.ToPort = sgPick(rng, [][2]int{{-1, -1}, {8, -1}, {3, 4}, {0, 0}})[0], 0
		switch r.FromPort {
		case -1, 8:
			r.ToPort = -1
		case 3:
			r.ToPort = 4
		}
	}
	return r.withSource(sgSourceOf(sgPick(rng, sgPropSources)))
}

// sgPropGroup is a group as EC2 could hold it: no two rules with one
// permission.
func sgPropGroup(rng *rand.Rand) []SGRule {
	var rules []SGRule
	n := rng.IntN(31)
	if rng.IntN(5) == 0 {
		n = 40 + rng.IntN(25) // near EC2's quota of 60
	}
	for i := range n {
		r := sgPropRule(rng)
		r.ID = fmt.Sprintf("sgr-o%d", i)
		if !slices.ContainsFunc(rules, func(o SGRule) bool { return o.permission() == r.permission() }) {
			rules = append(rules, r)
		}
	}
	return rules
}

func sgPropLocked(rng *rand.Rand) []PortProtocol {
	var locked []PortProtocol
	for range rng.IntN(5) {
		if rng.IntN(5) == 0 {
			locked = append(locked, PortProtocol{rng.IntN(65536), sgPick(rng, Protocols)})
		} else {
			locked = append(locked, sgPick(rng, sgPropLocks))
		}
	}
	return locked
}

func sgPropertyCase(t *testing.T, name string, rng *rand.Rand, stats map[string]int) {
	original := sgPropGroup(rng)
	g := newSGFakeGroup(original...)
	g.ids = 1000
	// reference holds every rule the group's owners wrote: what restore
	// gives back, and what the plans must keep open outside locked ports.
	reference := slices.Clone(original)
	var record SGPlan
	current := original // the first plan sees the protocols as written
	stats["groups"]++
	for round := range 1 + rng.IntN(3) {
		locked := sgPropLocked(rng)
		if round > 0 && rng.IntN(2) == 0 {
			stats["with out-of-band changes"]++
			for range 1 + rng.IntN(2) {
				r := sgPropRule(rng)
				// Either a rule the owners had, revoked, re-added as it was, or
				// a new permission.
				if rng.IntN(2) == 0 && len(reference) > 0 {
					r = sgPick(rng, reference)
				}
				if slices.ContainsFunc(g.rules, func(o SGRule) bool { return o.permission() == r.permission() }) {
					continue
				}
				if slices.ContainsFunc(reference, func(o SGRule) bool { return o.permission() == r.permission() && o.identity() != r.identity() }) {
					continue // same permission, other description: see TestPlanSecurityGroup_driftIsRevokedAgain
				}
				g.authorize(t, r)
				if !slices.ContainsFunc(reference, func(o SGRule) bool { return o.identity() == r.identity() }) {
					reference = append(reference, r)
				}
			}
			current = g.rules
		}

		in := SGPlanInput{GroupID: sgTestGroup, Rules: current, Locked: locked, Backup: record.Backup, Remainders: record.Remainders}
		plan, err := PlanSecurityGroup(in)
		if err != nil {
			sgPropCheckLimitError(t, name, in, plan, err)
			stats["refused: over the rule limit"]++
			break
		}
		stats["plans"]++
		for _, r := range plan.Revoke {
			if r.permission().protocol == sgAll && !slices.ContainsFunc(plan.Warnings, func(w string) bool { return strings.Contains(w, r.String()) }) {
				t.Errorf("%s: all-protocols rule %s revoked without a warning: %q", name, r, plan.Warnings)
			}
			if r.permission().protocol == sgAll {
				stats["all-protocols rules replaced"]++
			}
		}
		if rng.IntN(4) == 0 {
			// Interrupted: the record of both plans was written first, some
			// writes happened, and the apply runs again.
			stats["interrupted applies"]++
			sgApplySome(t, g, plan, rng.IntN(len(plan.Revoke)+len(plan.Authorize)+1))
			union := SGPlan{Backup: append(slices.Clone(record.Backup), plan.Backup...), Remainders: append(slices.Clone(record.Remainders), plan.Remainders...)}
			sgPropCheckTags(t, name, union)
			if plan, err = PlanSecurityGroup(SGPlanInput{GroupID: sgTestGroup, Rules: g.rules, Locked: locked, Backup: union.Backup, Remainders: union.Remainders}); err != nil {
				t.Fatalf("%s: planning again after an interruption: %v", name, err)
			}
		}
		g.apply(t, plan)
		record, current = plan, g.rules

		sgPropCheckOpen(t, name, reference, g.rules, locked)
		again, err := PlanSecurityGroup(SGPlanInput{GroupID: sgTestGroup, Rules: g.rules, Locked: locked, Backup: record.Backup, Remainders: record.Remainders})
		if err != nil || len(again.Revoke)+len(again.Authorize) > 0 || !slices.Equal(again.Backup, record.Backup) || !slices.Equal(again.Remainders, record.Remainders) {
			t.Errorf("%s: planning again after applying: %+v, %v; want nothing to do and the same record %+v", name, again, err, record)
		}
		sgPropCheckTags(t, name, record)
	}

	restore, err := PlanSecurityGroupRestore(g.rules, record.Backup, record.Remainders)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if rng.IntN(3) == 0 {
		stats["interrupted restores"]++
		sgApplySome(t, g, restore, rng.IntN(len(restore.Revoke)+len(restore.Authorize)+1))
		if restore, err = PlanSecurityGroupRestore(g.rules, record.Backup, record.Remainders); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	g.apply(t, restore)
	if got, want := sgWithoutIDs(g.rules), sgWithoutIDs(reference); !slices.Equal(got, want) {
		t.Errorf("%s: restored\n%v\nwant the owners' rules\n%v", name, got, want)
	}
	if len(restore.Warnings) > 0 {
		t.Errorf("%s: restore warned %q", name, restore.Warnings)
	}
}

// sgApplySome applies the first n writes of the plan, revokes first.
func sgApplySome(t *testing.T, g *sgFakeGroup, plan SGPlan, n int) {
	for i, r := range append(slices.Clone(plan.Revoke), plan.Authorize...) {
		switch {
		case i >= n:
			return
		case i < len(plan.Revoke):
			g.revoke(t, r)
		default:
			g.authorize(t, r)
		}
	}
}

// sgPropCheckLimitError checks a refusal is right: no plan, and the plan
// would indeed pass the limit in an address family it grows.
func sgPropCheckLimitError(t *testing.T, name string, in SGPlanInput, plan SGPlan, err error) {
	t.Helper()
	if !reflect.DeepEqual(plan, SGPlan{}) || !strings.Contains(err.Error(), "limit of 60") {
		t.Fatalf("%s: plan %+v, error %v; want only a rule-limit error", name, plan, err)
	}
	in.RuleLimit = 1 << 30
	unlimited, uerr := PlanSecurityGroup(in)
	if uerr != nil {
		t.Fatalf("%s: without a limit: %v", name, uerr)
	}
	b4, b6 := sgRuleWeights(in.Rules)
	r4, r6 := sgRuleWeights(unlimited.Revoke)
	a4, a6 := sgRuleWeights(unlimited.Authorize)
	if after4, after6 := b4-r4+a4, b6-r6+a6; !(after4 > 60 && after4 > b4 || after6 > 60 && after6 > b6) {
		t.Fatalf("%s: refused with %v, but the plan leaves %d IPv4 and %d IPv6 rules (from %d and %d)", name, err, after4, after6, b4, b6)
	}
}

func sgPropCheckTags(t *testing.T, name string, record SGPlan) {
	t.Helper()
	tags, err := SGBackupTags("prod-web", record.Backup, record.Remainders)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	backup, remainders, err := ParseSGBackupTags("prod-web", tags)
	if err != nil || !slices.Equal(backup, canonicalSGRules(slices.Compact(canonicalSGRules(record.Backup)))) ||
		!slices.Equal(remainders, slices.Compact(canonicalSGRules(record.Remainders))) {
		t.Errorf("%s: backup tags %q read back as %v %v %v, want %v %v", name, tags, backup, remainders, err, record.Backup, record.Remainders)
	}
}

// sgProbe is one kind of packet: protocol, port (or ICMP type and code),
// source.
type sgProbe struct {
	protocol   string
	port, code int
	source     sgSource
}

func sgAllows(perm sgPermission, p sgProbe) bool {
	switch perm.protocol {
	case sgAll:
		return true
	case sgTCP, sgUDP:
		return p.protocol == perm.protocol && perm.from <= p.port && p.port <= perm.to
	case sgICMP, sgICMPv6:
		return p.protocol == perm.protocol && (perm.from == -1 || perm.from == p.port) && (perm.to == -1 || perm.to == p.code)
	}
	return p.protocol == perm.protocol
}

// sgBySource is a rule set's permissions by source, so probes only meet
// the rules that can match them.
func sgBySource(rules []SGRule) map[sgSource][]sgPermission {
	out := map[sgSource][]sgPermission{}
	for _, r := range rules {
		p := r.permission()
		out[p.source] = append(out[p.source], p)
	}
	return out
}

// sgProbes covers every case that matters: for ports, every point where
// some rule's range or a locked port starts or ends.
func sgProbes(locked []PortProtocol, sets ...[]SGRule) []sgProbe {
	ports := []int{0}
	for _, l := range locked {
		ports = append(ports, l.Number, l.Number+1)
	}
	sources := map[sgSource]bool{}
	for _, rules := range sets {
		for _, r := range rules {
			p := r.permission()
			sources[p.source] = true
			if p.protocol == sgTCP || p.protocol == sgUDP {
				ports = append(ports, p.from, p.to+1)
			}
		}
	}
	slices.Sort(ports)
	ports = slices.Compact(ports)
	var probes []sgProbe
	for s := range sources {
		for _, protocol := range sgPropProbeProtocols {
			switch protocol {
			case sgTCP, sgUDP:
				for _, port := range ports {
					if port <= 65535 {
						probes = append(probes, sgProbe{protocol, port, 0, s})
					}
				}
			case sgICMP, sgICMPv6:
				for _, typ := range []int{0, 3, 8, 11} {
					for _, code := range []int{0, 4} {
						probes = append(probes, sgProbe{protocol, typ, code, s})
					}
				}
			default:
				probes = append(probes, sgProbe{protocol, 0, 0, s})
			}
		}
	}
	return probes
}

// sgPropCheckOpen checks what the group lets in after a plan against what
// the owners' rules let in: (a) no locked port, (b) everything else they
// allowed, except other protocols than TCP, UDP and ICMP where only an
// all-protocols rule allowed them, and nothing more.
func sgPropCheckOpen(t *testing.T, name string, reference, after []SGRule, locked []PortProtocol) {
	t.Helper()
	isLocked := func(p sgProbe) bool {
		return slices.ContainsFunc(locked, func(l PortProtocol) bool {
			return l.Number == p.port && (p.protocol == sgTCP && l.Protocol.Covers(ProtocolTCP) || p.protocol == sgUDP && l.Protocol.Covers(ProtocolUDP))
		})
	}
	kept := func(s sgSource, protocol string) bool {
		switch protocol {
		case sgTCP, sgUDP:
			return true
		case sgICMP:
			return s.kind != sgFromIPv6
		case sgICMPv6:
			return s.kind != sgFromIPv4
		}
		return false
	}
	before, now := sgBySource(reference), sgBySource(after)
	for _, p := range sgProbes(locked, reference, after) {
		allows := func(perm sgPermission) bool { return sgAllows(perm, p) }
		allowedAfter := slices.ContainsFunc(now[p.source], allows)
		allowedBefore := slices.ContainsFunc(before[p.source], allows)
		mustStay := slices.ContainsFunc(before[p.source], func(perm sgPermission) bool {
			return sgAllows(perm, p) && (perm.protocol != sgAll || kept(p.source, p.protocol))
		})
		switch {
		case allowedAfter && isLocked(p):
			t.Errorf("%s: %+v is locked by %v but allowed by %v", name, p, locked, after)
		case allowedAfter && !allowedBefore:
			t.Errorf("%s: %+v is allowed by %v, but by none of the owners' rules %v", name, p, after, reference)
		case !allowedAfter && mustStay && !isLocked(p):
			t.Errorf("%s: %+v is not locked by %v and was allowed by %v, but no longer by %v", name, p, locked, reference, after)
		}
	}
}
