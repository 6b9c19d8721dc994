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

// A policy leaving a firewall removes its deny collection, and only its own.
func TestPlanFirewallDenyRemoval(t *testing.T) {
	foreign := networkCollection("web", 1000, FirewallAllow, "*", "443")
	left := PlanPolicyPaths(PolicyPathInput{Policy: "prod-web", Firewall: &FirewallPathInput{ID: testFirewall},
		Machines: []PathMachine{{Key: vmID, Ports: []PortProtocol{tcp22}, Interfaces: []PathInterface{{IPs: []string{"10.0.0.4"}}}}}}).Firewall.Want
	plan, err := PlanFirewallDenyRemoval(testFirewall, []FirewallNetworkCollection{foreign, *left}, "prod-web")
	if err != nil || !plan.Changed || plan.Want != nil || plan.Have == nil || !reflect.DeepEqual(*plan.Have, *left) {
		t.Errorf("removal %+v, %v", plan, err)
	}
	if plan, err := PlanFirewallDenyRemoval(testFirewall, []FirewallNetworkCollection{foreign}, "prod-web"); err != nil || !reflect.DeepEqual(plan, FirewallDenyPlan{}) {
		t.Errorf("nothing to remove: %+v, %v", plan, err)
	}
	if plan, err := PlanFirewallDenyRemoval(testFirewall, []FirewallNetworkCollection{*left}, "prod-web-2"); err != nil || plan.Changed {
		t.Errorf("another policy's collection: %+v, %v", plan, err)
	}
	name := FirewallDenyCollectionName("prod-web")
	taken := networkCollection(name, 500, FirewallDeny, "*", "22")
	plan, err = PlanFirewallDenyRemoval(testFirewall, []FirewallNetworkCollection{foreign, taken}, "prod-web")
	if msg := `Azure Firewall ` + testFirewall + ` already has a network rule collection named "` + name + `" that jit does not manage (rule "` + name + `-rule" lacks the policy's marker)`; err == nil || !strings.Contains(err.Error(), msg) || !reflect.DeepEqual(plan, FirewallDenyPlan{}) {
		t.Errorf("a collection not jit's: %+v, %v; want an error containing %q", plan, err, msg)
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
