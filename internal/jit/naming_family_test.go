package jit

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestFamilyRuleNames_areValidDistinctAndDeterministic(t *testing.T) {
	tcp22 := PortProtocol{22, ProtocolTCP}
	for _, tc := range []struct{ got, want string }{
		{AggregateDenyRuleName("prod-web", tcp22, IPv4), "jit-deny-prod-web-22-tcp-v4-"},
		{AggregateDenyRuleName("prod-web", PortProtocol{3389, ProtocolAny}, IPv6), "jit-deny-prod-web-3389-any-v6-"},
		{GrantRuleNameFamily("req-1", vmID, tcp22, IPv6), "jit-grant-web-01-22-tcp-v6-req-1-"},
	} {
		if !strings.HasPrefix(tc.got, tc.want) || len(tc.got) != len(tc.want)+10 {
			t.Errorf("name %q; want %q followed by a 10-digit hash", tc.got, tc.want)
		}
	}
	if GrantRuleNameFamily("req-1", vmID, tcp22, IPv4) != GrantRuleName("req-1", vmID, tcp22) {
		t.Error("the IPv4 grant must keep the name grants had before the split per family")
	}
	if GrantRuleNameFamily("r", vmID, tcp22, IPv6) != GrantRuleNameFamily("r", strings.ToUpper(vmID), tcp22, IPv6) {
		t.Error("the machine key's case changes the name")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	seen := map[string]string{}
	for i := range 3000 {
		policy, machine, request := randomText(rng, 200), randomText(rng, 300), randomText(rng, 100)
		p := PortProtocol{rng.IntN(65536), Protocols[rng.IntN(3)]}
		f := pickOne(rng, IPv4, IPv6)
		for _, n := range []struct{ name, key string }{
			{AggregateDenyRuleName(policy, p, f), "deny\x00" + policy + "\x00" + portLabel(p) + string(f)},
			{GrantRuleNameFamily(request, machine, p, f), "grant\x00" + request + "\x00" + strings.ToLower(machine) + "\x00" + portLabel(p) + string(f)},
		} {
			if len(n.name) > 80 || !armRuleName.MatchString(n.name) {
				t.Fatalf("case %d: invalid name %q", i, n.name)
			}
			if other, ok := seen[n.name]; ok && other != n.key {
				t.Fatalf("two inputs share the name %q", n.name)
			}
			seen[n.name] = n.key
		}
	}
	for _, n := range []string{
		AggregateDenyRuleName(strings.Repeat("p", 300), PortProtocol{65535, ProtocolAny}, IPv6),
		GrantRuleNameFamily(strings.Repeat("r", 300), "/x/"+strings.Repeat("m", 300), PortProtocol{65535, ProtocolUDP}, IPv6),
	} {
		if len(n) > 80 || !armRuleName.MatchString(n) {
			t.Errorf("longest name %q (%d characters) invalid", n, len(n))
		}
	}
}
