package jit

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// lockedNSG is an NSG where the policy denies 22/TCP to web-01 (10.0.0.4
// and fd00::4) at 1000 for each family, plus the extra rules.
func lockedNSG(extra ...NSGRule) []NSGRule {
	plan := PlanPolicyPaths(onePath(extra, nil, []string{"10.0.0.4", "fd00::4"}, tcp22))
	return applyNSGPlanRules(extra, plan.NSGs[subnetNSG])
}

func grantsFor(rules []NSGRule, source string) NSGGrant {
	return NSGGrant{NSG: subnetNSG, Rules: rules, Policy: "prod-web", Request: "req-1", Machine: vmID, PrivateIPs: []string{"10.0.0.4", "fd00::4"},
		Port: tcp22, Source: source, End: testEnd, Requestor: "alice@contoso.com", Justification: "INC-4211"}
}

func TestPlanNSGGrants_neverOverridesADenyOfOthers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rule   NSGRule
		source string
		msg    string
	}{
		{"before the JIT deny", inbound("block-ssh", 200, NSGDeny, NSGProtocolTCP, "*", "22"), "203.0.113.7",
			`rule "block-ssh" (priority 200, Deny) in NSG ` + subnetNSG + ` denies port 22/TCP from 203.0.113.7 to virtual machine ` + vmID},
		{"after the JIT deny", inbound("block-late", 3000, NSGDeny, NSGProtocolAny, "*", "*"), "203.0.113.0/24",
			`rule "block-late" (priority 3000, Deny) in NSG ` + subnetNSG + ` denies port 22/TCP from 203.0.113.0/24`},
		{"for part of the source", withSource(inbound("block-one", 200, NSGDeny, NSGProtocolTCP, "*", "22"), "203.0.113.9"), "203.0.113.0/24",
			`denies port 22/TCP from 203.0.113.9 to`},
		{"assumed to match", withSource(inbound("block-vnet", 200, NSGDeny, NSGProtocolTCP, "*", "22"), "VirtualNetwork"), "203.0.113.7",
			`(assumed to match: VirtualNetwork)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PlanNSGGrants(grantsFor(lockedNSG(tc.rule), tc.source))
			if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "not jit's to override") {
				t.Fatalf("error %v; want one containing %q", err, tc.msg)
			}
		})
	}
}

func TestPlanNSGGrants_placement(t *testing.T) {
	v4 := GrantRuleNameFamily("req-1", vmID, tcp22, IPv4)
	for _, tc := range []struct {
		name   string
		rules  []NSGRule
		source string
		want   int
		msg    string
	}{
		{"before the JIT deny", lockedNSG(), "203.0.113.7", 999, ""},
		{"a deny for other sources is not in the way", lockedNSG(withSource(inbound("block-corp", 200, NSGDeny, NSGProtocolTCP, "*", "22"), "10.0.0.0/8")), "203.0.113.7", 999, ""},
		{"a deny shadowed by an allow of the same owner decides nothing", lockedNSG(inbound("allow-ssh", 200, NSGAllow, NSGProtocolTCP, "*", "22"), inbound("block-ssh", 300, NSGDeny, NSGProtocolTCP, "*", "22")), "203.0.113.7", 999, ""},
		{"a deny for another machine is not in the way", lockedNSG(inbound("block-db", 200, NSGDeny, NSGProtocolTCP, "10.0.0.9", "22")), "203.0.113.7", 999, ""},
		{"a deny to Internet never holds the VM", lockedNSG(inbound("block-out", 200, NSGDeny, NSGProtocolTCP, "Internet", "22")), "203.0.113.7", 999, ""},
		{"after an allow of others deciding the traffic", lockedNSG(inbound("allow-ssh", 990, NSGAllow, NSGProtocolTCP, "*", "22")), "203.0.113.7", 999, ""},
		{"no priority between them", func() []NSGRule {
			rules := lockedNSG(inbound("allow-ssh", 990, NSGAllow, NSGProtocolTCP, "*", "22"))
			for p := 991; p <= 1010; p++ {
				if !slices.ContainsFunc(rules, func(r NSGRule) bool { return r.Priority == p }) {
					rules = append(rules, inbound("x"+string(rune('a'+p-991)), p, NSGAllow, NSGProtocolTCP, "10.9.9.9", "80"))
				}
			}
			return rules
		}(), "203.0.113.7", 0, `no inbound priority is free for the IPv4 grant between rule "allow-ssh" (priority 990, Allow) in NSG ` + subnetNSG + ` (which decides that traffic) and rule "`},
		{"taken priorities are skipped", lockedNSG(inbound("x", 999, NSGAllow, NSGProtocolTCP, "10.9.9.9", "80"), inbound("y", 998, NSGAllow, NSGProtocolTCP, "10.9.9.9", "80")), "203.0.113.7", 997, ""},
		{"no deny yet", nil, "203.0.113.7", 4096, ""},
		{"full NSG", fillInbound(100, 4096), "203.0.113.7", 0, "no inbound priority is free for the IPv4 grant between the lowest priority and the highest priority"},
		{"bad source", lockedNSG(), "10.0.0.1/8", 0, "host bits"},
		{"IPv6 source, IPv4 machine", nil, "2001:db8::7", 0, "source 2001:db8::7/128 is IPv6, and the machine has no address of that family"},
		{"name taken", []NSGRule{inbound(v4, 500, NSGAllow, NSGProtocolTCP, "*", "22")}, "203.0.113.7", 0, "is not a JIT grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := grantsFor(tc.rules, tc.source)
			if tc.name == "IPv6 source, IPv4 machine" {
				g.PrivateIPs = []string{"10.0.0.4"}
			}
			rules, err := PlanNSGGrants(g)
			if tc.msg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("error %v; want one containing %q", err, tc.msg)
				}
				return
			}
			if err != nil || len(rules) != 1 || rules[0].Priority != tc.want || rules[0].Name != v4 {
				t.Fatalf("rules %+v, %v; want one at %d", rules, err, tc.want)
			}
		})
	}
}

func TestPlanNSGGrants_content(t *testing.T) {
	g := grantsFor(lockedNSG(), "203.0.113.7")
	g.PrivateIPs = []string{"10.0.0.4"}
	out, err := PlanNSGGrants(g)
	want := NSGRule{Name: GrantRuleNameFamily("req-1", vmID, tcp22, IPv4), Priority: 999, Direction: NSGInbound, Access: NSGAllow, Protocol: NSGProtocolTCP,
		SourcePrefixes: []string{"203.0.113.7/32"}, SourcePortRanges: []string{"*"}, DestinationPrefixes: []string{"10.0.0.4"},
		DestinationPortRanges: []string{"22"}, Description: GrantMarker("prod-web", testEnd, "alice@contoso.com", "INC-4211").String()}
	if err != nil || len(out) != 1 || !reflect.DeepEqual(out[0], want) {
		t.Fatalf("grant %+v, %v\nwant %+v", out, err, want)
	}
	// Renewed where it was moved by hand, still in its window: it stays
	// there, though a higher priority has come free.
	moved := out[0]
	moved.Priority = 500
	g.Rules = append(lockedNSG(), moved)
	g.End = testEnd.Add(time.Hour)
	if renewed, err := PlanNSGGrants(g); err != nil || len(renewed) != 1 || renewed[0].Priority != 500 || !strings.Contains(renewed[0].Description, "end=2025-03-04T06:06:07Z") {
		t.Errorf("renewed %+v, %v", renewed, err)
	}
}

func TestPlanNSGGrants_onePerFamily(t *testing.T) {
	rules := lockedNSG()
	out, err := PlanNSGGrants(grantsFor(rules, "*"))
	if err != nil || len(out) != 2 {
		t.Fatalf("rules %+v, %v", out, err)
	}
	v4, v6 := out[0], out[1]
	if !reflect.DeepEqual(v4.DestinationPrefixes, []string{"10.0.0.4"}) || !reflect.DeepEqual(v6.DestinationPrefixes, []string{"fd00::4"}) ||
		v4.Name != GrantRuleNameFamily("req-1", vmID, tcp22, IPv4) || v6.Name != GrantRuleNameFamily("req-1", vmID, tcp22, IPv6) ||
		v4.Priority == v6.Priority || !reflect.DeepEqual(v4.SourcePrefixes, []string{"*"}) {
		t.Errorf("grants\n%+v\n%+v", v4, v6)
	}
	if out, err := PlanNSGGrants(grantsFor(rules, "2001:db8::/48")); err != nil || len(out) != 1 || out[0].DestinationPrefixes[0] != "fd00::4" {
		t.Errorf("IPv6 source: %+v, %v", out, err)
	}

	// Planned again over its own result: unchanged; renewed: same priorities.
	applied := applyNSGPlanRules(rules, NSGPlan{Add: out})
	again, err := PlanNSGGrants(grantsFor(applied, "*"))
	if err != nil || again[0].Priority != v4.Priority || again[1].Priority != v6.Priority {
		t.Errorf("again %+v, %v", again, err)
	}
	g := grantsFor(applied, "*")
	g.End = testEnd.Add(time.Hour)
	renewed, err := PlanNSGGrants(g)
	if err != nil || renewed[0].Priority != v4.Priority || !strings.Contains(renewed[0].Description, "end=2025-03-04T06:06:07Z") {
		t.Errorf("renewed %+v, %v", renewed, err)
	}

	// Another requester's grant is the policy's own: never in the way.
	other := grantsFor(applied, "198.51.100.7")
	other.Request = "req-2"
	if out, err := PlanNSGGrants(other); err != nil || len(out) != 1 || out[0].Priority >= 1000 || out[0].Priority == v4.Priority {
		t.Errorf("a second requester: %+v, %v", out, err)
	}
}

func TestPlanNSGGrants_oneFreePriorityEachFamily(t *testing.T) {
	// The IPv6 window holds one free priority, which is also the highest
	// of the wider IPv4 window: IPv6 must take it, IPv4 the next one down.
	rules := []NSGRule{
		{Name: "deny-v4", Priority: 2000, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolTCP, SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"10.0.0.4"}, DestinationPortRanges: []string{"22"}, Description: DenyMarker("prod-web").String()},
		{Name: "deny-v6", Priority: 1500, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolTCP, SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"fd00::4"}, DestinationPortRanges: []string{"22"}, Description: DenyMarker("prod-web").String()},
		inbound("allow-v6", 1400, NSGAllow, NSGProtocolTCP, "fd00::4", "22"),
	}
	for p := 1401; p <= 1999; p++ {
		if p != 1450 && p != 1500 {
			rules = append(rules, inbound("f"+strings.Repeat("x", p%7)+string(rune(p)), p, NSGAllow, NSGProtocolTCP, "10.9.9.9", "80"))
		}
	}
	out, err := PlanNSGGrants(grantsFor(rules, "*"))
	if err != nil || len(out) != 2 || out[0].Priority != 1399 || out[1].Priority != 1450 {
		t.Fatalf("grants %+v, %v; want IPv4 at 1399, IPv6 at 1450", out, err)
	}
}

func TestPlanFirewallGrants_neverOverridesADenyCollectionOfOthers(t *testing.T) {
	deny := PlanPolicyPaths(PolicyPathInput{Policy: "prod-web", Machines: []PathMachine{{Key: vmID, Ports: []PortProtocol{tcp22}, Interfaces: []PathInterface{{IPs: []string{"10.0.0.4"}}}}},
		Firewall: &FirewallPathInput{ID: testFirewall}})
	network := []FirewallNetworkCollection{*deny.Firewall.Want}
	from := FirewallGrantPort{tcp22, "203.0.113.7"}
	for _, tc := range []struct {
		name  string
		extra FirewallNetworkCollection
		allow int
		msg   string
	}{
		{"a Deny collection of others before", networkCollection("block", 500, FirewallDeny, "10.0.0.0/8", "*", "Any"), 0,
			`rule "block-rule" of network rule collection "block" (priority 500, Deny) on Azure Firewall ` + testFirewall + ` denies port 22/TCP from 203.0.113.7`},
		{"and after the JIT deny", networkCollection("block-late", 3000, FirewallDeny, "*", "22"), 0, `collection "block-late" (priority 3000, Deny)`},
		{"an Allow collection of others comes first", networkCollection("allow", 990, FirewallAllow, "10.0.0.4", "22"), 999, ""},
		{"a Deny for other sources is not in the way", FirewallNetworkCollection{Name: "block", Priority: 500, Action: FirewallDeny, Rules: []FirewallNetworkRule{
			{Name: "b", Protocols: []string{"Any"}, SourceAddresses: []string{"10.0.0.0/8"}, DestinationAddresses: []string{"*"}, DestinationPorts: []string{"*"}}}}, 999, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanFirewallGrants(firewallGrant(append(slices.Clone(network), tc.extra), nil, from))
			if tc.msg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "not jit's to override") {
					t.Fatalf("error %v; want one containing %q", err, tc.msg)
				}
				return
			}
			if err != nil || plan.Allow.Priority != tc.allow || plan.MappedPorts[0] != 49152 {
				t.Errorf("allow at %d, %v; want %d", plan.Allow.Priority, err, tc.allow)
			}
		})
	}
	// A Deny of others kept under the JIT deny collection's name is theirs
	// too: the grant is not placed in front of it.
	t.Run("a rule of others in the collection named as the JIT deny", func(t *testing.T) {
		taken := *deny.Firewall.Want
		taken.Rules = append(slices.Clone(taken.Rules), networkCollection("block-ssh", 0, FirewallDeny, "*", "22").Rules...)
		plan, err := PlanFirewallGrants(firewallGrant([]FirewallNetworkCollection{taken}, nil, from))
		if err == nil || !strings.Contains(err.Error(), `rule "block-ssh-rule" lacks its marker`) || !strings.Contains(err.Error(), "not jit's to override") {
			t.Errorf("allow at %d, error %v; want the grant refused naming the rule", plan.Allow.Priority, err)
		}
	})
	// Planned again over its own result: unchanged.
	plan, _ := PlanFirewallGrants(firewallGrant(network, nil, from))
	again, err := PlanFirewallGrants(firewallGrant(append(slices.Clone(network), plan.Allow), []FirewallNATCollection{plan.NAT}, from))
	if err != nil || !reflect.DeepEqual(again, plan) {
		t.Errorf("again %+v, %v", again, err)
	}
}

// A private address written IPv4-mapped (::ffff:10.0.0.4) is the IPv4
// address it maps, to the grant's Allow as to its DNAT rule.
func TestPlanFirewallGrants_anIPv4MappedPrivateAddress(t *testing.T) {
	deny := PlanPolicyPaths(PolicyPathInput{Policy: "prod-web", Machines: []PathMachine{{Key: vmID, Ports: []PortProtocol{tcp22}, Interfaces: []PathInterface{{IPs: []string{"10.0.0.4"}}}}},
		Firewall: &FirewallPathInput{ID: testFirewall}})
	g := firewallGrant([]FirewallNetworkCollection{*deny.Firewall.Want}, nil, FirewallGrantPort{tcp22, "203.0.113.7"})
	g.PrivateIP = "::ffff:10.0.0.4"
	if _, err := PlanFirewallGrants(g); err != nil {
		t.Errorf("grant to %s: %v", g.PrivateIP, err)
	}
}
