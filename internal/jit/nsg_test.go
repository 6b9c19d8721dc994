package jit

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

var (
	tcp22   = PortProtocol{22, ProtocolTCP}
	tcp3389 = PortProtocol{3389, ProtocolTCP}
	any8080 = PortProtocol{8080, ProtocolAny}
	udp53   = PortProtocol{53, ProtocolUDP}
)

// inbound builds a non-JIT inbound rule for table tests.
func inbound(name string, priority int, access NSGAccess, protocol NSGProtocol, destination, ports string) NSGRule {
	return NSGRule{
		Name: name, Priority: priority, Direction: NSGInbound, Access: access, Protocol: protocol,
		SourcePrefixes: []string{"*"}, SourcePortRanges: []string{"*"},
		DestinationPrefixes: strings.Fields(destination), DestinationPortRanges: strings.Fields(ports),
	}
}

// priorities maps rule names to priorities, for compact expectations.
func priorities(rules []NSGRule) map[string]int {
	m := map[string]int{}
	for _, r := range rules {
		m[r.Name] = r.Priority
	}
	return m
}

// fill returns rules taking every inbound priority in [from, to] (for
// port 80 of an unrelated address), plus the extra rules.
func fillInbound(from, to int, extra ...NSGRule) []NSGRule {
	rules := slices.Clone(extra)
	taken := map[int]bool{}
	for _, r := range extra {
		taken[r.Priority] = true
	}
	for p := from; p <= to; p++ {
		if !taken[p] {
			rules = append(rules, inbound("filler-"+strconv.Itoa(p), p, NSGAllow, NSGProtocolTCP, "10.9.9.9", "80"))
		}
	}
	return rules
}

func ruleNames(rules []NSGRule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.Name)
	}
	return out
}

func TestNSGRule_equivalent(t *testing.T) {
	a := NSGRule{Name: "n", Priority: 1000, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolTCP,
		SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"10.0.0.4", "fd00::5"}, DestinationPortRanges: []string{"22"}, Description: "d"}
	b := a
	b.Direction, b.Access, b.Protocol = "inbound", "DENY", "tcp"
	b.DestinationPrefixes = []string{"FD00::5/128", "10.0.0.4/32"}
	b.DestinationPortRanges = []string{"22-22"}
	b.SourcePortRanges = []string{"*"}
	if !a.Equivalent(b) {
		t.Error("spellings ARM treats alike must compare equal")
	}
	for _, change := range []func(*NSGRule){
		func(r *NSGRule) { r.Priority++ },
		func(r *NSGRule) { r.Name = "m" },
		func(r *NSGRule) { r.Description = "e" },
		func(r *NSGRule) { r.Access = NSGAllow },
		func(r *NSGRule) { r.DestinationPrefixes = []string{"10.0.0.4"} },
		func(r *NSGRule) { r.DestinationPortRanges = []string{"22", "23"} },
		func(r *NSGRule) { r.SourcePrefixes = []string{"Internet"} },
		func(r *NSGRule) { r.SourcePortRanges = []string{"1024-65535"} },
		func(r *NSGRule) { r.Protocol = NSGProtocolAny },
		func(r *NSGRule) { r.Direction = NSGOutbound },
	} {
		c := a
		change(&c)
		if a.Equivalent(c) {
			t.Errorf("%+v compares equal to %+v", c, a)
		}
	}
}

func withSource(r NSGRule, sources ...string) NSGRule {
	r.SourcePrefixes = sources
	return r
}
