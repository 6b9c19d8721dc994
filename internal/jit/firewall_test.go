package jit

import (
	"reflect"
	"strings"
	"testing"
)

const testFirewall = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/azureFirewalls/fw-hub"

func networkCollection(name string, priority int, action FirewallAction, destination, ports string, protocols ...string) FirewallNetworkCollection {
	if len(protocols) == 0 {
		protocols = []string{"TCP"}
	}
	return FirewallNetworkCollection{Name: name, Priority: priority, Action: action, Rules: []FirewallNetworkRule{{
		Name: name + "-rule", Protocols: protocols, SourceAddresses: []string{"*"},
		DestinationAddresses: strings.Fields(destination), DestinationPorts: strings.Fields(ports),
	}}}
}

func TestPlanFirewallDeny(t *testing.T) {
	vm := web01(tcp22, any8080)
	for _, tc := range []struct {
		name        string
		collections []FirewallNetworkCollection
		want        int
		warnings    int
	}{
		{"empty firewall", nil, 1000, 0},
		{"allow before the base", []FirewallNetworkCollection{networkCollection("allow-ssh", 200, FirewallAllow, "10.0.0.0/16", "22")}, 1000, 1},
		{"allow after the base", []FirewallNetworkCollection{networkCollection("allow-ssh", 5000, FirewallAllow, "*", "20-30")}, 5001, 1},
		{"deny decides without warning", []FirewallNetworkCollection{networkCollection("deny-udp", 3000, FirewallDeny, "10.0.0.4", "8080", "UDP")}, 3001, 0},
		{"IP range decides", []FirewallNetworkCollection{networkCollection("range", 3000, FirewallAllow, "10.0.0.1-10.0.0.9", "8080", "Any")}, 3001, 1},
		{"other address does not decide", []FirewallNetworkCollection{networkCollection("other", 3000, FirewallAllow, "10.0.0.5", "22")}, 1000, 0},
		{"ICMP does not decide", []FirewallNetworkCollection{networkCollection("ping", 3000, FirewallAllow, "*", "*", "ICMP")}, 1000, 0},
		{"IP groups decide", []FirewallNetworkCollection{networkCollection("ipgroup", 3000, FirewallAllow, "", "22")}, 3001, 1},
		{"base taken", []FirewallNetworkCollection{networkCollection("web", 1000, FirewallAllow, "*", "443")}, 1001, 0},
		{"grant decides without warning", []FirewallNetworkCollection{{Name: "g", Priority: 1200, Action: FirewallAllow, Rules: []FirewallNetworkRule{{
			Name: "g", Description: GrantMarker("prod-web", testEnd, "a", "b").String(), Protocols: []string{"TCP"}, SourceAddresses: []string{"203.0.113.7/32"},
			DestinationAddresses: []string{"10.0.0.4"}, DestinationPorts: []string{"22"}}}}}, 1201, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanFirewallDeny(testFirewall, tc.collections, "prod-web", []LockedMachine{vm})
			if err != nil {
				t.Fatal(err)
			}
			if plan.Want == nil || plan.Want.Priority != tc.want || !plan.Changed || plan.Have != nil || len(plan.Warnings) != tc.warnings {
				t.Fatalf("plan %+v; want priority %d and %d warnings", plan, tc.want, tc.warnings)
			}
			for _, w := range plan.Warnings {
				if !strings.Contains(w, "on Azure Firewall "+testFirewall) || !strings.Contains(w, "the port stays open") {
					t.Errorf("warning %q", w)
				}
			}
		})
	}
}

func TestPlanFirewallDeny_content(t *testing.T) {
	other := LockedMachine{Key: "i-0123456789abcdef0", PrivateIPs: []string{"10.0.1.9"}, Ports: []PortProtocol{udp53}}
	plan, err := PlanFirewallDeny(testFirewall, nil, "prod-web", []LockedMachine{web01(tcp22, any8080), other})
	if err != nil {
		t.Fatal(err)
	}
	marker := DenyMarker("prod-web").String()
	want := &FirewallNetworkCollection{Name: FirewallDenyCollectionName("prod-web"), Priority: 1000, Action: FirewallDeny, Rules: []FirewallNetworkRule{
		{Name: denyName(web01(), tcp22), Description: marker, Protocols: []string{"TCP"}, SourceAddresses: []string{"*"}, DestinationAddresses: []string{"10.0.0.4"}, DestinationPorts: []string{"22"}},
		{Name: denyName(web01(), any8080), Description: marker, Protocols: []string{"TCP", "UDP"}, SourceAddresses: []string{"*"}, DestinationAddresses: []string{"10.0.0.4"}, DestinationPorts: []string{"8080"}},
		{Name: denyName(other, udp53), Description: marker, Protocols: []string{"UDP"}, SourceAddresses: []string{"*"}, DestinationAddresses: []string{"10.0.1.9"}, DestinationPorts: []string{"53"}},
	}}
	if !reflect.DeepEqual(plan.Want, want) {
		t.Errorf("want\n%+v\ngot\n%+v", want, plan.Want)
	}
}

func TestPlanFirewallDeny_lifecycle(t *testing.T) {
	foreign := []FirewallNetworkCollection{networkCollection("web", 1000, FirewallAllow, "*", "443")}
	plan, err := PlanFirewallDeny(testFirewall, foreign, "prod-web", []LockedMachine{web01(tcp22)})
	if err != nil {
		t.Fatal(err)
	}
	applied := append(foreign, *plan.Want)

	// Unchanged: nothing to write, whatever order ARM lists things in.
	reordered := applied[1]
	reordered.Action = "deny"
	reordered.Rules = []FirewallNetworkRule{reordered.Rules[0]}
	reordered.Rules[0].DestinationAddresses = []string{"10.0.0.4/32"}
	again, err := PlanFirewallDeny(testFirewall, []FirewallNetworkCollection{applied[0], reordered}, "prod-web", []LockedMachine{web01(tcp22)})
	if err != nil || again.Changed || again.Have == nil || again.Want.Priority != 1001 {
		t.Errorf("second plan %+v, %v", again, err)
	}

	// A port more: rewritten at the same priority.
	grown, err := PlanFirewallDeny(testFirewall, applied, "prod-web", []LockedMachine{web01(tcp22, tcp3389)})
	if err != nil || !grown.Changed || grown.Want.Priority != 1001 || len(grown.Want.Rules) != 2 {
		t.Errorf("grown %+v, %v", grown, err)
	}

	// A deciding allow appears after it: it moves after that allow.
	moved, err := PlanFirewallDeny(testFirewall, append(applied, networkCollection("late", 2000, FirewallAllow, "*", "22")), "prod-web", []LockedMachine{web01(tcp22)})
	if err != nil || !moved.Changed || moved.Want.Priority != 2001 || len(moved.Warnings) != 1 {
		t.Errorf("moved %+v, %v", moved, err)
	}

	// The policy leaves: the collection goes.
	gone, err := PlanFirewallDeny(testFirewall, applied, "prod-web", nil)
	if err != nil || !gone.Changed || gone.Want != nil || gone.Have == nil {
		t.Errorf("gone %+v, %v", gone, err)
	}
	nothing, err := PlanFirewallDeny(testFirewall, foreign, "prod-web", nil)
	if err != nil || nothing.Changed || nothing.Want != nil {
		t.Errorf("nothing %+v, %v", nothing, err)
	}
}

func TestPlanFirewallDeny_errors(t *testing.T) {
	name := FirewallDenyCollectionName("prod-web")
	for _, tc := range []struct {
		name        string
		collections []FirewallNetworkCollection
		machines    []LockedMachine
		msg         string
	}{
		{"foreign collection with our name", []FirewallNetworkCollection{networkCollection(name, 500, FirewallDeny, "*", "22")}, []LockedMachine{web01(tcp22)},
			`Azure Firewall ` + testFirewall + ` already has a network rule collection named "` + name + `" that jit does not manage`},
		{"decided at the last priority", []FirewallNetworkCollection{networkCollection("all", 65000, FirewallAllow, "*", "*", "Any")}, []LockedMachine{web01(tcp22)},
			`it must come after collection "all" (priority 65000)`},
		{"no IP", nil, []LockedMachine{{Key: vmID, Ports: []PortProtocol{tcp22}}}, "has no private IP address"},
		{"bad port", nil, []LockedMachine{web01(PortProtocol{22, "ICMP"})}, "invalid locked port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanFirewallDeny(testFirewall, tc.collections, "prod-web", tc.machines)
			if err == nil || !strings.Contains(err.Error(), tc.msg) || !reflect.DeepEqual(plan, FirewallDenyPlan{}) {
				t.Fatalf("plan %+v, error %v; want one containing %q", plan, err, tc.msg)
			}
		})
	}
}

func firewallGrant(network []FirewallNetworkCollection, nat []FirewallNATCollection, ports ...FirewallGrantPort) FirewallGrant {
	return FirewallGrant{Firewall: testFirewall, PublicIP: "20.1.2.3", NAT: nat, Network: network, Policy: "prod-web", Request: "req-1",
		Machine: vmID, PrivateIP: "10.0.0.4", Ports: ports, End: testEnd, Requestor: "alice", Justification: "INC-1"}
}

// The DNAT part of a grant through a firewall, and its Allow collection's
// content; where the Allow collection goes is grant_path_test.go's.
func TestPlanFirewallGrants_DNAT(t *testing.T) {
	deny := PlanPolicyPaths(PolicyPathInput{Policy: "prod-web", Firewall: &FirewallPathInput{ID: testFirewall},
		Machines: []PathMachine{{Key: vmID, Ports: []PortProtocol{tcp22, udp53}, Interfaces: []PathInterface{{IPs: []string{"10.0.0.4"}}}}}})
	network := []FirewallNetworkCollection{*deny.Firewall.Want}
	from := func(p PortProtocol, source string) FirewallGrantPort { return FirewallGrantPort{p, source} }

	plan, err := PlanFirewallGrants(firewallGrant(network, nil, from(tcp22, "203.0.113.7"), from(udp53, "198.51.100.0/24")))
	if err != nil {
		t.Fatal(err)
	}
	marker := GrantMarker("prod-web", testEnd, "alice", "INC-1").String()
	name := FirewallGrantCollectionName("req-1", vmID)
	wantNAT := FirewallNATCollection{Name: name, Priority: 100, Rules: []FirewallNATRule{
		{Name: GrantRuleName("req-1", vmID, tcp22), Description: marker, Protocols: []string{"TCP"}, SourceAddresses: []string{"203.0.113.7/32"},
			DestinationAddresses: []string{"20.1.2.3"}, DestinationPorts: []string{"49152"}, TranslatedAddress: "10.0.0.4", TranslatedPort: "22"},
		{Name: GrantRuleName("req-1", vmID, udp53), Description: marker, Protocols: []string{"UDP"}, SourceAddresses: []string{"198.51.100.0/24"},
			DestinationAddresses: []string{"20.1.2.3"}, DestinationPorts: []string{"49153"}, TranslatedAddress: "10.0.0.4", TranslatedPort: "53"},
	}}
	wantAllow := FirewallNetworkCollection{Name: name, Priority: 999, Action: FirewallAllow, Rules: []FirewallNetworkRule{
		{Name: GrantRuleName("req-1", vmID, tcp22), Description: marker, Protocols: []string{"TCP"}, SourceAddresses: []string{"203.0.113.7/32"},
			DestinationAddresses: []string{"10.0.0.4"}, DestinationPorts: []string{"22"}},
		{Name: GrantRuleName("req-1", vmID, udp53), Description: marker, Protocols: []string{"UDP"}, SourceAddresses: []string{"198.51.100.0/24"},
			DestinationAddresses: []string{"10.0.0.4"}, DestinationPorts: []string{"53"}},
	}}
	if !reflect.DeepEqual(plan.NAT, wantNAT) || !reflect.DeepEqual(plan.Allow, wantAllow) || !reflect.DeepEqual(plan.MappedPorts, []int{49152, 49153}) {
		t.Errorf("plan\n%+v\nwant NAT\n%+v\nAllow\n%+v", plan, wantNAT, wantAllow)
	}

	// Planned again over its own result, and with other DNAT rules since: unchanged.
	others := []FirewallNATCollection{{Name: "web", Priority: 101, Rules: []FirewallNATRule{{Name: "web", DestinationAddresses: []string{"20.1.2.3"}, DestinationPorts: []string{"49154-49160"}}}}}
	again, err := PlanFirewallGrants(firewallGrant(append(network, plan.Allow), append(others, plan.NAT), from(tcp22, "203.0.113.7"), from(udp53, "198.51.100.0/24")))
	if err != nil || !reflect.DeepEqual(again, plan) {
		t.Errorf("again %+v, %v", again, err)
	}

	for _, tc := range []struct {
		name    string
		network []FirewallNetworkCollection
		nat     []FirewallNATCollection
		mapped  int
		allow   int
		msg     string
	}{
		{"used mapped ports on the same address are skipped", network, []FirewallNATCollection{{Name: "web", Priority: 100, Rules: []FirewallNATRule{
			{Name: "a", DestinationAddresses: []string{"20.1.2.3"}, DestinationPorts: []string{"49152"}},
			{Name: "b", DestinationAddresses: []string{"*"}, DestinationPorts: []string{"49153-49160"}}}}}, 49161, 999, ""},
		{"another address's ports are free", network, []FirewallNATCollection{{Name: "web", Priority: 100, Rules: []FirewallNATRule{
			{Name: "a", DestinationAddresses: []string{"20.9.9.9"}, DestinationPorts: []string{"49152"}}}}}, 49152, 999, ""},
		{"no free priority after the collections deciding the traffic and before the JIT deny", append(network,
			networkCollection("allow", 998, FirewallAllow, "10.0.0.4", "22"), networkCollection("web", 999, FirewallAllow, "*", "443")), nil, 0, 0,
			`no network rule collection priority is free for the grant's Allow collection between rule "allow-rule" of network rule collection "allow" (priority 998, Allow) on Azure Firewall ` +
				testFirewall + ` (which decides that traffic) and rule "`},
		{"collection name taken", append(network, networkCollection(name, 300, FirewallAllow, "*", "22")), nil, 0, 0, "is not a JIT grant"},
		{"NAT collection name taken", network, []FirewallNATCollection{{Name: name, Priority: 100, Rules: []FirewallNATRule{{Name: "x"}}}}, 0, 0, "is not a JIT grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanFirewallGrants(firewallGrant(tc.network, tc.nat, from(tcp22, "203.0.113.7")))
			if tc.msg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), testFirewall) {
					t.Fatalf("error %v; want one naming the firewall and containing %q", err, tc.msg)
				}
				return
			}
			if err != nil || plan.MappedPorts[0] != tc.mapped || plan.Allow.Priority != tc.allow {
				t.Errorf("mapped %v, allow at %d, %v; want %d, %d", plan.MappedPorts, plan.Allow.Priority, err, tc.mapped, tc.allow)
			}
		})
	}

	for _, g := range []FirewallGrant{
		firewallGrant(network, nil, from(tcp22, "10.0.0.1/8")),
		func() FirewallGrant { g := firewallGrant(network, nil, from(tcp22, "*")); g.PublicIP = "fw"; return g }(),
		func() FirewallGrant { g := firewallGrant(network, nil, from(tcp22, "*")); g.PrivateIP = ""; return g }(),
		firewallGrant(network, nil, from(tcp22, "*"), from(PortProtocol{22, ProtocolAny}, "*")),
		firewallGrant(network, nil),
	} {
		if _, err := PlanFirewallGrants(g); err == nil {
			t.Errorf("grant %+v accepted", g)
		}
	}
}
