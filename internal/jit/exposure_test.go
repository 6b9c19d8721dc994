package jit

import (
	"reflect"
	"testing"
	"time"
)

func exposedPorts(es []ExposedPort) []int {
	var out []int
	for _, e := range es {
		out = append(out, e.Port.Number)
	}
	return out
}

func nsgRule(name string, priority int, access NSGAccess, source, destination, port string) NSGRule {
	return NSGRule{Name: name, Priority: priority, Direction: NSGInbound, Access: access, Protocol: NSGProtocolTCP,
		SourcePrefixes: []string{source}, DestinationPrefixes: []string{destination}, DestinationPortRanges: []string{port}}
}

func TestExposedThroughNSGs(t *testing.T) {
	for _, tc := range []struct {
		name         string
		ips          []string // 10.0.1.4 when nil
		subnet, nic  *NSGLevel
		want         []int
		wantRulesFor map[int][]string
	}{
		{name: "no NSG at all lets everything through", want: []int{22, 3389, 5985, 5986},
			wantRulesFor: map[int][]string{22: {NoNSGOnPath}}},
		{name: "an empty NSG closes everything (DenyAllInBound)", nic: &NSGLevel{ID: "n"}},
		{name: "an allow from * on a range exposes the ports it holds",
			nic:  &NSGLevel{ID: "n", Rules: []NSGRule{nsgRule("mgmt", 300, NSGAllow, "*", "*", "3000-6000")}},
			want: []int{3389, 5985, 5986}, wantRulesFor: map[int][]string{3389: {"n/securityRules/mgmt"}}},
		{name: "Internet and 0.0.0.0/0 are the internet at large",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{
				nsgRule("ssh", 300, NSGAllow, "Internet", "10.0.1.0/24", "22"),
				nsgRule("rdp", 310, NSGAllow, "0.0.0.0/0", "10.0.1.4", "3389")}},
			want: []int{22, 3389}},
		{name: "a narrower source neither exposes nor closes",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{
				nsgRule("office-deny", 200, NSGDeny, "203.0.113.0/24", "*", "22"),
				nsgRule("office", 250, NSGAllow, "198.51.100.0/24", "*", "3389"),
				nsgRule("any-ssh", 300, NSGAllow, "*", "*", "22")}},
			want: []int{22}},
		{name: "a deny from * before the allow closes the port",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{
				nsgRule("deny", 200, NSGDeny, "*", "*", "22"),
				nsgRule("allow", 300, NSGAllow, "*", "*", "22")}}},
		{name: "priority, not order, decides",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{
				nsgRule("allow", 300, NSGAllow, "*", "*", "22"),
				nsgRule("deny", 200, NSGDeny, "*", "*", "22")}}},
		{name: "a rule for another VM's address does not decide",
			nic:  &NSGLevel{ID: "n", Rules: []NSGRule{nsgRule("other", 300, NSGAllow, "*", "10.0.2.4", "22")}},
			want: nil},
		{name: "a deny whose destination is an application security group does not hide an allow",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{
				{Name: "asg-deny", Priority: 200, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolAny, SourcePrefixes: []string{"*"}, DestinationPortRanges: []string{"22"}},
				nsgRule("allow", 300, NSGAllow, "*", "*", "22")}},
			want: []int{22}},
		{name: "a UDP rule does not open a TCP port",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{{Name: "udp", Priority: 300, Direction: NSGInbound, Access: NSGAllow, Protocol: NSGProtocolUDP,
				SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"*"}, DestinationPortRanges: []string{"22"}}}}},
		{name: "an outbound rule does not open anything",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{{Name: "out", Priority: 300, Direction: NSGOutbound, Access: NSGAllow, Protocol: NSGProtocolTCP,
				SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"*"}, DestinationPortRanges: []string{"22"}}}}},
		{name: "both levels must allow: the subnet NSG closes what the NIC NSG opens",
			subnet: &NSGLevel{ID: "s"},
			nic:    &NSGLevel{ID: "n", Rules: []NSGRule{nsgRule("ssh", 300, NSGAllow, "*", "*", "22")}}},
		{name: "both levels allow: both rules are named",
			subnet: &NSGLevel{ID: "s", Rules: []NSGRule{nsgRule("web-ssh", 400, NSGAllow, "Internet", "VirtualNetwork", "22")}},
			nic:    &NSGLevel{ID: "n", Rules: []NSGRule{nsgRule("ssh", 300, NSGAllow, "*", "*", "22")}},
			want:   []int{22}, wantRulesFor: map[int][]string{22: {"s/securityRules/web-ssh", "n/securityRules/ssh"}}},
		{name: "a deny from Internet closes the port: the tag holds every internet source",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{
				nsgRule("deny-internet", 200, NSGDeny, "Internet", "*", "22"),
				nsgRule("allow", 300, NSGAllow, "*", "*", "22")}}},
		{name: "a deny to VirtualNetwork closes the port: the tag holds the interface's address",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{
				nsgRule("deny-vnet", 200, NSGDeny, "*", "VirtualNetwork", "22"),
				nsgRule("allow", 300, NSGAllow, "*", "*", "22")}}},
		{name: "a deny assumed to match hides nothing: another tag as destination",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{
				nsgRule("deny-tag", 200, NSGDeny, "*", "AzureCloud", "22"),
				nsgRule("allow", 300, NSGAllow, "*", "*", "22")}},
			want: []int{22}, wantRulesFor: map[int][]string{22: {"n/securityRules/allow"}}},
		{name: "an allow assumed to match exposes: an application security group as destination",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{{Name: "asg-allow", Priority: 200, Direction: NSGInbound, Access: NSGAllow, Protocol: NSGProtocolTCP,
				SourcePrefixes: []string{"Internet"}, DestinationPortRanges: []string{"22"}}}},
			want: []int{22}, wantRulesFor: map[int][]string{22: {"n/securityRules/asg-allow"}}},
		{name: "an allow from a service tag is not from the internet at large",
			nic:  &NSGLevel{ID: "n", Rules: []NSGRule{nsgRule("cloud", 200, NSGAllow, "AzureCloud", "*", "22")}},
			want: nil},
		{name: "a narrower allow before an allow from anywhere: the latter exposes the port",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{
				nsgRule("office", 200, NSGAllow, "203.0.113.0/24", "*", "22"),
				nsgRule("any", 300, NSGAllow, "*", "*", "22")}},
			want: []int{22}, wantRulesFor: map[int][]string{22: {"n/securityRules/any"}}},
		// Behaviour changed with the move onto the evaluator (the old
		// matcher judged a rule as a whole, not per address and family):
		{name: "a deny of one address of the interface leaves the other exposed",
			ips: []string{"10.0.1.4", "10.0.1.5"},
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{
				nsgRule("deny-one", 200, NSGDeny, "*", "10.0.1.4", "22"),
				nsgRule("allow", 300, NSGAllow, "*", "*", "22")}},
			want: []int{22}, wantRulesFor: map[int][]string{22: {"n/securityRules/allow"}}},
		{name: "a deny of IPv6 sources does not close an IPv4 address",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{
				nsgRule("deny-v6", 200, NSGDeny, "::/0", "*", "22"),
				nsgRule("allow", 300, NSGAllow, "*", "*", "22")}},
			want: []int{22}},
		{name: "an allow from 0.0.0.0/0 does not expose an IPv6-only interface",
			ips: []string{"fd00::4"},
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{nsgRule("allow-v4", 300, NSGAllow, "0.0.0.0/0", "*", "22")}}},
		{name: "a deny of every internet address, as narrower prefixes, closes the port",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{
				{Name: "deny-halves", Priority: 200, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolTCP,
					SourcePrefixes: []string{"0.0.0.0/1", "128.0.0.0/1"}, DestinationPrefixes: []string{"*"}, DestinationPortRanges: []string{"22"}},
				nsgRule("allow", 300, NSGAllow, "*", "*", "22")}}},
		{name: "an allow from * that only private addresses reach is no exposure",
			ips: []string{"fd00::4"},
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{
				nsgRule("deny-global", 200, NSGDeny, "2000::/3", "*", "22"),
				nsgRule("allow", 300, NSGAllow, "*", "*", "22")}}},
		{name: "an allow to the Internet tag never reaches the interface's private address",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{nsgRule("to-internet", 300, NSGAllow, "*", "Internet", "22")}}},
		{name: "a deny limited to some source ports leaves the others through",
			nic: &NSGLevel{ID: "n", Rules: []NSGRule{
				{Name: "deny-high", Priority: 200, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolTCP, SourcePrefixes: []string{"*"},
					SourcePortRanges: []string{"1024-65535"}, DestinationPrefixes: []string{"*"}, DestinationPortRanges: []string{"22"}},
				nsgRule("allow", 300, NSGAllow, "*", "*", "22")}},
			want: []int{22}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ips := tc.ips
			if ips == nil {
				ips = []string{"10.0.1.4"}
			}
			got := ExposedThroughNSGs(ips, tc.subnet, tc.nic)
			if !reflect.DeepEqual(exposedPorts(got), tc.want) {
				t.Fatalf("exposed %v, want %v", exposedPorts(got), tc.want)
			}
			for port, rules := range tc.wantRulesFor {
				for _, e := range got {
					if e.Port.Number == port && !reflect.DeepEqual(e.Rules, rules) {
						t.Errorf("port %d exposed by %v, want %v", port, e.Rules, rules)
					}
				}
			}
		})
	}
}

func TestExposedThroughSecurityGroups(t *testing.T) {
	groups := map[string][]SGRule{
		"sg-web": {
			{ID: "sgr-1", IPProtocol: "tcp", FromPort: 22, ToPort: 22, CIDRIPv4: "0.0.0.0/0"},
			{ID: "sgr-2", IPProtocol: "tcp", FromPort: 3389, ToPort: 3389, CIDRIPv4: "10.0.0.0/8"},
			{ID: "sgr-3", IPProtocol: "udp", FromPort: 5985, ToPort: 5986, CIDRIPv4: "0.0.0.0/0"},
		},
		"sg-all": {
			{ID: "sgr-4", IPProtocol: "-1", FromPort: -1, ToPort: -1, CIDRIPv6: "::/0"},
			{ID: "sgr-5", IPProtocol: "tcp", FromPort: 0, ToPort: 65535, PrefixListID: "pl-123"},
		},
	}
	got := ExposedThroughSecurityGroups(map[string][]SGRule{"sg-web": groups["sg-web"]})
	if want := []ExposedPort{{Port: PortProtocol{22, ProtocolTCP}, Rules: []string{"sg-web/sgr-1"}}}; !reflect.DeepEqual(got, want) {
		t.Errorf("sg-web: %v, want %v", got, want)
	}
	got = ExposedThroughSecurityGroups(groups)
	if ports := exposedPorts(got); !reflect.DeepEqual(ports, []int{22, 3389, 5985, 5986}) {
		t.Errorf("both groups: %v", ports)
	}
	if len(got) != 4 || !reflect.DeepEqual(got[0].Rules, []string{"sg-all/sgr-4", "sg-web/sgr-1"}) {
		t.Errorf("port 22 exposed by %v", got[0].Rules)
	}
	if got := ExposedThroughSecurityGroups(nil); got != nil {
		t.Errorf("no group: %v", got)
	}
}

func TestHasDefenderJITRules(t *testing.T) {
	if HasDefenderJITRules([]NSGRule{{Name: "allow-ssh"}, {Name: "jit-deny-x"}}) {
		t.Error("no Defender rule reported as one")
	}
	if !HasDefenderJITRules([]NSGRule{{Name: "securitycenter-jitrule_123_ABC"}}) {
		t.Error("Defender's rule (any case) not found")
	}
}

func TestGrantRequestOf(t *testing.T) {
	vm := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/Web-01"
	port := PortProtocol{22, ProtocolTCP}
	request := "20261123T094700Z-0a1b2c3d"
	name := GrantRuleName(request, vm, port)
	if got, ok := GrantRequestOf(name, vm, port); !ok || got != request {
		t.Fatalf("GrantRequestOf(%s) = %q %v", name, got, ok)
	}
	if _, ok := GrantRequestOf(name, vm+"x", port); ok {
		t.Error("a grant of another machine was taken for this one's")
	}
	if _, ok := GrantRequestOf(name, vm, PortProtocol{3389, ProtocolTCP}); ok {
		t.Error("a grant of another port was taken for this one's")
	}
	if _, ok := GrantRequestOf("jit-grant-web-01-22-tcp-hand-made-0123456789", vm, port); ok {
		t.Error("a hand-made name was taken for a grant")
	}
	start, ok := RequestStart(request)
	if !ok || !start.Equal(time.Date(2026, 11, 23, 9, 47, 0, 0, time.UTC)) {
		t.Errorf("RequestStart = %v %v", start, ok)
	}
	if _, ok := RequestStart("manual"); ok {
		t.Error("RequestStart read a time from an ID without one")
	}
}
