package jit

import (
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	subnetNSG = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg-subnet"
	nicNSG    = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg-nic"
)

// onePath is a policy over one machine behind a subnet NSG and a NIC NSG.
func onePath(subnet, nic []NSGRule, ips []string, ports ...PortProtocol) PolicyPathInput {
	nsgs := map[string][]NSGRule{subnetNSG: subnet}
	iface := PathInterface{IPs: ips, SubnetNSG: subnetNSG}
	if nic != nil {
		nsgs[nicNSG] = nic
		iface.NICNSG = nicNSG
	}
	return PolicyPathInput{Policy: "prod-web", NSGs: nsgs, Machines: []PathMachine{{Key: vmID, Ports: ports, Interfaces: []PathInterface{iface}}}}
}

func findingsOf(plan PolicyPathPlan, severity Severity) []Finding {
	var out []Finding
	for _, f := range plan.Findings {
		if f.Severity == severity {
			out = append(out, f)
		}
	}
	return out
}

func exposuresOf(plan PolicyPathPlan, kind ExposureKind) []Exposure {
	var out []Exposure
	for _, e := range plan.Exposures {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// denyIn is the policy's deny of the port and family in the NSG after the plan.
func denyIn(plan PolicyPathPlan, nsg string, port PortProtocol, fam AddressFamily) (NSGRule, bool) {
	name := AggregateDenyRuleName("prod-web", port, fam)
	np := plan.NSGs[nsg]
	for _, r := range append(slices.Clone(np.Add), np.Keep...) {
		if r.Name == name {
			return r, true
		}
	}
	return NSGRule{}, false
}

// Which rules of others decide a locked port, and where the deny goes: at
// the base, or after the last rule deciding its port with a free priority
// between them for grants. An Allow it follows keeps the port open to its
// sources, and the plan says so.
func TestPlanPolicyPaths_denyFollowsTheRulesDecidingItsPort(t *testing.T) {
	for _, tc := range []struct {
		name             string
		rules            []NSGRule
		want22, want3389 int
		keptOpen         []string // by the rules named, one port each
	}{
		{"empty NSG", nil, 1000, 1001, nil},
		{"allow before the base", []NSGRule{inbound("allow-ssh", 300, NSGAllow, NSGProtocolTCP, "*", "22")}, 1000, 1001, []string{"allow-ssh"}},
		{"allow after the base", []NSGRule{inbound("allow-ssh", 2000, NSGAllow, NSGProtocolTCP, "VirtualNetwork", "22")}, 2002, 1000, []string{"allow-ssh"}},
		{"deny decides, keeping nothing open", []NSGRule{inbound("deny-ssh", 1500, NSGDeny, NSGProtocolAny, "10.0.0.0/24", "20-25")}, 1502, 1000, nil},
		{"other machine's rule does not decide", []NSGRule{inbound("allow-other", 2000, NSGAllow, NSGProtocolTCP, "10.0.1.5", "22")}, 1000, 1001, nil},
		{"other port does not decide", []NSGRule{inbound("allow-web", 2000, NSGAllow, NSGProtocolTCP, "*", "80 443 8000-8999")}, 1000, 1001, nil},
		{"UDP does not decide TCP", []NSGRule{inbound("allow-udp", 2000, NSGAllow, NSGProtocolUDP, "*", "22")}, 1000, 1001, nil},
		{"ICMP does not decide", []NSGRule{inbound("allow-icmp", 2000, NSGAllow, NSGProtocolICMP, "*", "*")}, 1000, 1001, nil},
		{"any protocol, any port decides both", []NSGRule{inbound("allow-all", 3000, NSGAllow, NSGProtocolAny, "*", "*")}, 3002, 3003, []string{"allow-all", "allow-all"}},
		{"application security group destination decides", []NSGRule{inbound("allow-asg", 2500, NSGAllow, NSGProtocolTCP, "", "3389")}, 1000, 2502, []string{"allow-asg"}},
		{"service tag destination decides", []NSGRule{inbound("allow-sql", 2500, NSGAllow, NSGProtocolTCP, "Sql", "22")}, 2502, 1000, []string{"allow-sql"}},
		{"CIDR with host bits decides", []NSGRule{inbound("deny-x", 2500, NSGDeny, NSGProtocolTCP, "10.0.0.9/24", "22")}, 2502, 1000, nil},
		{"case of enums is ignored", []NSGRule{{Name: "odd", Priority: 2500, Direction: "inbound", Access: "allow", Protocol: "tcp", DestinationPrefixes: []string{"*"}, DestinationPortRanges: []string{"22"}}}, 2502, 1000, []string{"odd"}},
		{"outbound rules neither decide nor take inbound priorities", []NSGRule{{Name: "out", Priority: 1000, Direction: NSGOutbound, Access: NSGAllow, Protocol: NSGProtocolAny, DestinationPrefixes: []string{"*"}, DestinationPortRanges: []string{"*"}}}, 1000, 1001, nil},
		{"base taken by an unrelated rule", []NSGRule{inbound("web", 1000, NSGAllow, NSGProtocolTCP, "*", "443")}, 1001, 1002, nil},
		{"an honoured grant comes first, keeping nothing open", []NSGRule{{Name: "jit-grant-x", Priority: 1200, Direction: NSGInbound, Access: NSGAllow, Protocol: NSGProtocolTCP,
			SourcePrefixes: []string{"203.0.113.7/32"}, DestinationPrefixes: []string{"10.0.0.4"}, DestinationPortRanges: []string{"22"}, Description: GrantMarker("prod-web", testEnd, "alice", "x").String()}}, 1202, 1000, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := onePath(tc.rules, nil, []string{"10.0.0.4"}, tcp22, tcp3389)
			in.HonouredGrant = func(_ string, r NSGRule) bool { return r.Name == "jit-grant-x" }
			plan := PlanPolicyPaths(in)
			if HasError(plan.Findings) {
				t.Fatalf("errors %+v", plan.Findings)
			}
			d22, _ := denyIn(plan, subnetNSG, tcp22, IPv4)
			d3389, _ := denyIn(plan, subnetNSG, tcp3389, IPv4)
			if d22.Priority != tc.want22 || d3389.Priority != tc.want3389 {
				t.Errorf("denies of 22 at %d, 3389 at %d; want %d, %d", d22.Priority, d3389.Priority, tc.want22, tc.want3389)
			}
			var kept []string
			for _, e := range exposuresOf(plan, ExposureKeptOpen) {
				for _, r := range e.Rules {
					kept = append(kept, r.Name)
				}
			}
			if !slices.Equal(kept, tc.keptOpen) || len(findingsOf(plan, SeverityWarning)) != len(tc.keptOpen) {
				t.Errorf("kept open by %v, warnings %+v; want %v", kept, findingsOf(plan, SeverityWarning), tc.keptOpen)
			}
		})
	}
}

func TestPlanPolicyPaths_denyContent(t *testing.T) {
	plan := PlanPolicyPaths(onePath(nil, nil, []string{"10.0.0.4"}, tcp22, any8080))
	d, _ := denyIn(plan, subnetNSG, tcp22, IPv4)
	want := NSGRule{Name: AggregateDenyRuleName("prod-web", tcp22, IPv4), Priority: 1000, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolTCP,
		SourcePrefixes: []string{"*"}, SourcePortRanges: []string{"*"}, DestinationPrefixes: []string{"10.0.0.4"},
		DestinationPortRanges: []string{"22"}, Description: DenyMarker("prod-web").String()}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("deny\n%+v\nwant\n%+v", d, want)
	}
	if d, _ := denyIn(plan, subnetNSG, any8080, IPv4); d.Protocol != NSGProtocolAny || d.Priority != 1001 {
		t.Errorf("a * port must be denied for any protocol: %+v", d)
	}
}

func TestPlanPolicyPaths_noRoomAfterALateDeciderLeavesOnlyItsPortUnlocked(t *testing.T) {
	late := fillInbound(4000, 4096, inbound("allow-ssh", 3999, NSGAllow, NSGProtocolTCP, "*", "22"))
	plan := PlanPolicyPaths(onePath(late, nil, []string{"10.0.0.4"}, tcp22, tcp3389))
	if _, ok := denyIn(plan, subnetNSG, tcp22, IPv4); ok {
		t.Error("22 denied with no free priority after the allow deciding it")
	}
	if d, _ := denyIn(plan, subnetNSG, tcp3389, IPv4); d.Priority != 1000 {
		t.Errorf("3389 deny at %d; want 1000", d.Priority)
	}
	if nl := exposuresOf(plan, ExposureNotLocked); len(nl) != 1 || nl[0].Port != tcp22 || !strings.Contains(nl[0].Reason, "has no two free inbound priorities") {
		t.Errorf("not locked %+v", nl)
	}
	// Two holes after it: one for the deny, one before it for grants.
	var holes []NSGRule
	for _, r := range late {
		if r.Priority != 4050 && r.Priority != 4060 {
			holes = append(holes, r)
		}
	}
	plan = PlanPolicyPaths(onePath(holes, nil, []string{"10.0.0.4"}, tcp22, tcp3389))
	if d, _ := denyIn(plan, subnetNSG, tcp22, IPv4); d.Priority != 4060 || len(exposuresOf(plan, ExposureNotLocked)) != 0 {
		t.Errorf("22 deny at %d, not locked %+v; want it at 4060", d.Priority, exposuresOf(plan, ExposureNotLocked))
	}
}

// Planned, applied and planned again at each step: the second plan changes
// nothing; the policy's rules are created, shrunk, repaired in place,
// moved after a new rule deciding their port, and removed, and the rules
// of others never touched.
func TestPlanPolicyPaths_lifecycle(t *testing.T) {
	web01 := PathMachine{Key: vmID, Ports: []PortProtocol{tcp22, tcp3389}, Interfaces: []PathInterface{{IPs: []string{"10.0.0.4"}, SubnetNSG: subnetNSG}}}
	web02 := PathMachine{Key: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-02", Ports: []PortProtocol{tcp22},
		Interfaces: []PathInterface{{IPs: []string{"10.0.0.5", "fd00::5"}, SubnetNSG: subnetNSG}}}
	foreign := []NSGRule{
		withSource(inbound("allow-bastion", 300, NSGAllow, NSGProtocolTCP, "10.0.0.4", "22"), "10.0.1.0/26"),
		{Name: "other-policy", Priority: 1000, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolTCP, DestinationPrefixes: []string{"10.0.0.9"},
			DestinationPortRanges: []string{"22"}, Description: DenyMarker("other").String()},
	}
	in := PolicyPathInput{Policy: "prod-web", NSGs: map[string][]NSGRule{subnetNSG: slices.Clone(foreign)}, Machines: []PathMachine{web01, web02}}
	v4, v6, rdp := AggregateDenyRuleName("prod-web", tcp22, IPv4), AggregateDenyRuleName("prod-web", tcp22, IPv6), AggregateDenyRuleName("prod-web", tcp3389, IPv4)
	step := func(name string) NSGPlan {
		t.Helper()
		plan := PlanPolicyPaths(in)
		if HasError(plan.Findings) {
			t.Fatalf("%s: errors %+v", name, plan.Findings)
		}
		np := plan.NSGs[subnetNSG]
		in.NSGs[subnetNSG] = applyNSGPlanRules(in.NSGs[subnetNSG], np)
		again := PlanPolicyPaths(in).NSGs[subnetNSG]
		if len(again.Add)+len(again.Remove) != 0 || len(again.Keep) != len(np.Add)+len(np.Keep) {
			t.Fatalf("%s: second plan %+v", name, again)
		}
		for _, r := range foreign {
			if !slices.ContainsFunc(in.NSGs[subnetNSG], func(x NSGRule) bool { return reflect.DeepEqual(x, r) }) {
				t.Fatalf("%s: rule %s of others changed", name, r.Name)
			}
		}
		return np
	}

	if np := step("create"); !reflect.DeepEqual(priorities(np.Add), map[string]int{v4: 1001, v6: 1002, rdp: 1003}) {
		t.Errorf("create: %v", priorities(np.Add))
	}
	// A port leaves the policy, a machine leaves the NSG: the IPv4 deny of
	// 22 is rewritten in place for the one machine left, the others go.
	in.Machines = []PathMachine{{Key: vmID, Ports: []PortProtocol{tcp22}, Interfaces: web01.Interfaces}}
	if np := step("shrink"); !reflect.DeepEqual(priorities(np.Add), map[string]int{v4: 1001}) || !reflect.DeepEqual(ruleNames(np.Remove), []string{v6, rdp}) {
		t.Errorf("shrink: add %v, remove %v", priorities(np.Add), ruleNames(np.Remove))
	}
	// Someone edits the deny: it is replaced in place, at the same priority.
	rules := in.NSGs[subnetNSG]
	rules[slices.IndexFunc(rules, func(r NSGRule) bool { return r.Name == v4 })].DestinationPrefixes = []string{"10.0.0.0/8"}
	if np := step("repair"); len(np.Add) != 1 || np.Add[0].Priority != 1001 || !reflect.DeepEqual(np.Add[0].DestinationPrefixes, []string{"10.0.0.4"}) || len(np.Remove) != 0 {
		t.Errorf("repair: %+v", np)
	}
	// Someone adds an allow after the deny, deciding the port for the
	// sources the bastion's allow leaves: the deny moves after it.
	foreign = append(foreign, inbound("late-allow", 1500, NSGAllow, NSGProtocolTCP, "*", "22"))
	in.NSGs[subnetNSG] = append(in.NSGs[subnetNSG], foreign[len(foreign)-1])
	if np := step("move"); len(np.Add) != 1 || np.Add[0].Name != v4 || np.Add[0].Priority != 1502 {
		t.Errorf("move: %+v", np)
	}
	// Destroy: everything of the policy goes, nothing else.
	in.Machines = nil
	if np := step("destroy"); !reflect.DeepEqual(ruleNames(np.Remove), []string{v4}) || len(np.Add) != 0 {
		t.Errorf("destroy: %+v", np)
	}
}

func TestPlanPolicyPaths_staleOwnedRulesAreRemovedForeignOnesNever(t *testing.T) {
	mine := DenyMarker("prod-web").String()
	rules := []NSGRule{
		{Name: "jit-deny-old-scheme", Priority: 900, Direction: NSGInbound, Access: NSGDeny, Description: mine},
		{Name: "outbound-copy", Priority: 900, Direction: NSGOutbound, Access: NSGDeny, Description: mine},
		{Name: "hand-made", Priority: 901, Direction: NSGInbound, Access: NSGDeny, Description: mine + " "},
		{Name: "theirs", Priority: 902, Direction: NSGInbound, Access: NSGDeny, Description: DenyMarker("prod-web-2").String()},
	}
	np := PlanPolicyPaths(PolicyPathInput{Policy: "prod-web", NSGs: map[string][]NSGRule{subnetNSG: rules}}).NSGs[subnetNSG]
	if !reflect.DeepEqual(ruleNames(np.Remove), []string{"jit-deny-old-scheme", "outbound-copy"}) || len(np.Add)+len(np.Keep) != 0 {
		t.Errorf("plan %+v", np)
	}
}

func TestPlanPolicyPaths_allowAtTheLastPriorityLeavesOnlyItsPortUnlocked(t *testing.T) {
	in := onePath([]NSGRule{inbound("allow-ssh", 4096, NSGAllow, NSGProtocolTCP, "*", "22")}, nil, []string{"10.0.0.4"}, tcp22, tcp3389)
	plan := PlanPolicyPaths(in)
	if HasError(plan.Findings) {
		t.Fatalf("errors: %+v", plan.Findings)
	}
	if _, ok := denyIn(plan, subnetNSG, tcp22, IPv4); ok {
		t.Error("22 denied before the allow deciding it at 4096")
	}
	if d, ok := denyIn(plan, subnetNSG, tcp3389, IPv4); !ok || d.Priority != 1000 {
		t.Errorf("3389 deny %+v, %v; want it at 1000", d, ok)
	}
	nl := exposuresOf(plan, ExposureNotLocked)
	if len(nl) != 1 || nl[0].Port != tcp22 || nl[0].Target != subnetNSG || len(nl[0].Rules) != 1 || nl[0].Rules[0].Name != "allow-ssh" {
		t.Fatalf("not locked %+v", nl)
	}
	warnings := findingsOf(plan, SeverityWarning)
	if !slices.ContainsFunc(warnings, func(f Finding) bool {
		return f.Summary == "Port cannot be locked" && strings.Contains(f.Detail, `rule "allow-ssh" (priority 4096, Allow) in NSG `+subnetNSG+` decides port 22/TCP`) &&
			strings.Contains(f.Detail, "stays open to some sources")
	}) {
		t.Errorf("no cannot-lock warning naming allow-ssh: %+v", warnings)
	}
	if ko := exposuresOf(plan, ExposureKeptOpen); len(ko) != 1 || ko[0].Port != tcp22 || !reflect.DeepEqual(ko[0].Sources, []string{"0.0.0.0/0"}) {
		t.Errorf("kept open %+v; want 22 from everywhere", ko)
	}

	in.Strict = true
	strict := PlanPolicyPaths(in)
	if errs := findingsOf(strict, SeverityError); len(errs) != 1 || !strings.Contains(errs[0].Detail, "strict") || !strings.Contains(errs[0].Detail, "allow-ssh") {
		t.Errorf("strict errors %+v", errs)
	}
}

func TestPlanPolicyPaths_bastionAllowInTheNICNSGIsCutNotKeptOpen(t *testing.T) {
	bastion := withSource(inbound("allow-bastion", 200, NSGAllow, NSGProtocolTCP, "*", "22"), "10.0.1.0/26")
	plan := PlanPolicyPaths(onePath(nil, []NSGRule{bastion}, []string{"10.0.0.4"}, tcp22))
	if len(plan.Findings) != 1 || plan.Findings[0].Summary != "Existing access will be cut" {
		t.Fatalf("findings %+v; want one cut warning", plan.Findings)
	}
	cut := exposuresOf(plan, ExposureCut)
	if len(cut) != 1 || !reflect.DeepEqual(cut[0].Sources, []string{"10.0.1.0/26"}) || cut[0].Rules[0].Name != "allow-bastion" ||
		len(cut[0].CutBy) != 1 || cut[0].CutBy[0].Filter != subnetNSG || cut[0].CutBy[0].Name != AggregateDenyRuleName("prod-web", tcp22, IPv4) {
		t.Errorf("cut %+v", cut)
	}
	f := plan.Findings[0].Detail
	for _, want := range []string{`rule "allow-bastion" (priority 200, Allow) in NSG ` + nicNSG + ` let 10.0.1.0/26 reach port 22/TCP of virtual machine web-01`,
		`after it, rule "` + AggregateDenyRuleName("prod-web", tcp22, IPv4) + `" (priority 1000, Deny) in NSG ` + subnetNSG + ` blocks them`} {
		if !strings.Contains(f, want) {
			t.Errorf("finding %q lacks %q", f, want)
		}
	}
	if d, ok := denyIn(plan, nicNSG, tcp22, IPv4); !ok || d.Priority != 1000 {
		t.Errorf("the NIC NSG's deny %+v, %v: it follows the bastion allow", d, ok)
	}
}

func TestPlanPolicyPaths_internetAndLoadBalancerDestinationsNeitherRefuseNorWarn(t *testing.T) {
	plan := PlanPolicyPaths(onePath([]NSGRule{
		inbound("allow-internet", 4096, NSGAllow, NSGProtocolTCP, "Internet", "22"),
		inbound("allow-lb", 4095, NSGAllow, NSGProtocolAny, "AzureLoadBalancer", "*"),
	}, nil, []string{"10.0.0.4"}, tcp22))
	if len(plan.Findings) != 0 {
		t.Errorf("findings %+v", plan.Findings)
	}
	if d, ok := denyIn(plan, subnetNSG, tcp22, IPv4); !ok || d.Priority != 1000 {
		t.Errorf("deny %+v, %v; want it at 1000", d, ok)
	}
}

func TestPlanPolicyPaths_virtualNetworkAndASGsAreAssumedAndSaid(t *testing.T) {
	for _, tc := range []struct{ destination, assumed string }{{"VirtualNetwork", "VirtualNetwork"}, {"", "application security groups"}} {
		rule := withSource(inbound("allow-office", 300, NSGAllow, NSGProtocolTCP, tc.destination, "22"), "203.0.113.0/24")
		plan := PlanPolicyPaths(onePath([]NSGRule{rule}, nil, []string{"10.0.0.4"}, tcp22))
		ko := exposuresOf(plan, ExposureKeptOpen)
		if len(ko) != 1 || !slices.Contains(ko[0].Assumed, tc.assumed) || !reflect.DeepEqual(ko[0].Sources, []string{"203.0.113.0/24"}) {
			t.Errorf("%s: kept open %+v", tc.assumed, ko)
		}
		if len(plan.Findings) != 1 || !strings.Contains(plan.Findings[0].Detail, "ASSUMED") || !strings.Contains(plan.Findings[0].Detail, tc.assumed) {
			t.Errorf("%s: findings %+v", tc.assumed, plan.Findings)
		}
		if d, ok := denyIn(plan, subnetNSG, tcp22, IPv4); !ok || d.Priority != 1000 {
			t.Errorf("%s: deny %+v, %v", tc.assumed, d, ok)
		}
	}
}

func TestPlanPolicyPaths_dualStackGetsOneRulePerFamily(t *testing.T) {
	plan := PlanPolicyPaths(onePath(nil, nil, []string{"10.0.0.4", "fd00::4", "10.0.0.5"}, tcp22))
	v4, ok4 := denyIn(plan, subnetNSG, tcp22, IPv4)
	v6, ok6 := denyIn(plan, subnetNSG, tcp22, IPv6)
	if !ok4 || !ok6 || !reflect.DeepEqual(v4.DestinationPrefixes, []string{"10.0.0.4", "10.0.0.5"}) || !reflect.DeepEqual(v6.DestinationPrefixes, []string{"fd00::4"}) || v4.Priority == v6.Priority {
		t.Errorf("v4 %+v\nv6 %+v", v4, v6)
	}
	if len(plan.Denies) != 2 || plan.Denies[0].Family == plan.Denies[1].Family {
		t.Errorf("denies %+v", plan.Denies)
	}
}

// subnetOf is a policy over n machines in one subnet, dual-stack or not.
func subnetOf(n int, dual bool, rules []NSGRule, ports ...PortProtocol) PolicyPathInput {
	in := PolicyPathInput{Policy: "prod-web", NSGs: map[string][]NSGRule{subnetNSG: rules}}
	for i := range n {
		ips := []string{fmt.Sprintf("10.0.%d.%d", i/250, 4+i%250)}
		if dual {
			ips = append(ips, fmt.Sprintf("fd00::%x", 4+i))
		}
		in.Machines = append(in.Machines, PathMachine{Key: fmt.Sprintf("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-%03d", i),
			Ports: ports, Interfaces: []PathInterface{{IPs: ips, SubnetNSG: subnetNSG}}})
	}
	return in
}

func TestPlanPolicyPaths_threeHundredMachinesNeedOneRulePerPortAndFamily(t *testing.T) {
	ports := []PortProtocol{tcp22, tcp3389, {5985, ProtocolTCP}, {5986, ProtocolTCP}}
	for _, dual := range []bool{false, true} {
		start := time.Now()
		plan := PlanPolicyPaths(subnetOf(300, dual, nil, ports...))
		want := 4
		if dual {
			want = 8
		}
		np := plan.NSGs[subnetNSG]
		if len(plan.Findings) != 0 || len(np.Add) != want || len(plan.Denies) != want {
			t.Fatalf("dual %v: %d rules, findings %+v", dual, len(np.Add), plan.Findings)
		}
		for _, d := range plan.Denies {
			if len(d.MachineKeys) != 300 {
				t.Errorf("deny %s covers %d machines", d.Name, len(d.MachineKeys))
			}
		}
		for _, r := range np.Add {
			if len(r.DestinationPrefixes) != 300 {
				t.Errorf("deny %s names %d addresses", r.Name, len(r.DestinationPrefixes))
			}
		}
		if n := NSGAddressCount(np.Add); n > NSGMaxAddresses {
			t.Errorf("%d addresses", n)
		}
		t.Logf("300 machines × 4 ports (dual-stack %v): %d rules, planned in %v", dual, len(np.Add), time.Since(start).Round(time.Millisecond))
	}
}

func TestPlanPolicyPaths_limitsAreErrorsNamingTheNSG(t *testing.T) {
	var many []PortProtocol
	for p := range 1001 {
		many = append(many, PortProtocol{10000 + p, ProtocolTCP})
	}
	plan := PlanPolicyPaths(onePath(nil, nil, []string{"10.0.0.4"}, many...))
	if errs := findingsOf(plan, SeverityError); len(errs) != 1 || !strings.Contains(errs[0].Detail, "NSG "+subnetNSG+" would hold 1001 security rules") {
		t.Errorf("1001 ports: errors %+v", errs)
	}

	full := fillInbound(100, 1099) // 1000 rules
	plan = PlanPolicyPaths(onePath(full, nil, []string{"10.0.0.4"}, tcp22))
	if errs := findingsOf(plan, SeverityError); len(errs) != 1 || !strings.Contains(errs[0].Detail, "NSG "+subnetNSG+" would hold 1001 security rules") {
		t.Errorf("full NSG: errors %+v", errs)
	}

	// 1,001 machines × 4 ports name more than 4,000 addresses.
	plan = PlanPolicyPaths(subnetOf(1001, false, nil, tcp22, tcp3389, PortProtocol{5985, ProtocolTCP}, PortProtocol{5986, ProtocolTCP}))
	if errs := findingsOf(plan, SeverityError); len(errs) != 1 || !strings.Contains(errs[0].Detail, "NSG "+subnetNSG+" would name 4004 IP addresses") {
		t.Errorf("4004 addresses: errors %+v", errs)
	}
}

// legacyMachine is a machine as the planner before aggregation saw it.
type legacyMachine struct {
	key   string
	ips   []string
	ports []PortProtocol
}

// perMachineDenies adds to an NSG the denies the planner before
// aggregation wrote: one per machine and locked port, named by
// DenyRuleName, from any source to every address of the machine, each
// after every inbound rule (not the policy's) that may decide its port for
// the machine whatever the source, at the priority the shared scheme gives
// it (placeDeny). ok is false, as that planner refused, when a machine is
// listed twice, a name is taken or a deny finds no place.
func perMachineDenies(rules []NSGRule, policy string, ms []legacyMachine) ([]NSGRule, bool) {
	out := slices.Clone(rules)
	slots := newPrioritySlots(NSGMinPriority, NSGMaxPriority)
	names := map[string]bool{}
	for _, r := range rules {
		if r.inbound() {
			slots.take(r.Priority)
		}
		names[r.Name] = true
	}
	seen := map[string]bool{}
	for _, m := range ms {
		if seen[strings.ToLower(m.key)] {
			return rules, false
		}
		seen[strings.ToLower(m.key)] = true
		for _, port := range m.ports {
			after := NSGMinPriority
			for _, r := range rules {
				if ownedBy(r, policy) {
					continue
				}
				for _, ip := range m.ips {
					for _, proto := range portProtocols(port) {
						if triRule(r, netip.Addr{}, netip.MustParseAddr(ip), port.Number, strings.ToLower(string(proto))) > 0 {
							after = max(after, r.Priority+1)
						}
					}
				}
			}
			d := NSGRule{Name: DenyRuleName(policy, m.key, port), Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolOf(port.Protocol),
				SourcePrefixes: []string{"*"}, SourcePortRanges: []string{"*"}, DestinationPrefixes: m.ips,
				DestinationPortRanges: []string{strconv.Itoa(port.Number)}, Description: DenyMarker(policy).String()}
			p, ok := slots.placeDeny(after)
			if !ok || names[d.Name] {
				return rules, false
			}
			d.Priority, names[d.Name] = p, true
			out = append(out, d)
		}
	}
	return out, true
}

func TestPlanPolicyPaths_migratesPerMachineDeniesWithoutOpeningThePorts(t *testing.T) {
	in := subnetOf(3, false, nil, tcp22, tcp3389)
	var old []legacyMachine
	for _, m := range in.Machines {
		old = append(old, legacyMachine{key: m.Key, ips: m.Interfaces[0].IPs, ports: m.Ports})
	}
	legacy, ok := perMachineDenies(nil, "prod-web", old)
	if !ok || !reflect.DeepEqual(slices.Sorted(maps.Values(priorities(legacy))), []int{1000, 1001, 1002, 1003, 1004, 1005}) {
		t.Fatalf("per-machine denies %+v", legacy)
	}
	in.NSGs[subnetNSG] = legacy
	plan := PlanPolicyPaths(in)
	np := plan.NSGs[subnetNSG]
	if len(np.Remove) != 6 || len(np.Add) != 2 || len(plan.Findings) != 0 {
		t.Fatalf("plan %+v, findings %+v", np, plan.Findings)
	}
	for _, a := range np.Add {
		for _, r := range np.Remove {
			if a.Priority == r.Priority {
				t.Errorf("new deny %s takes priority %d of old deny %s: it could not be written before the old one goes", a.Name, a.Priority, r.Name)
			}
		}
	}
	in.NSGs[subnetNSG] = applyNSGPlanRules(legacy, np)
	if again := PlanPolicyPaths(in); len(again.NSGs[subnetNSG].Add)+len(again.NSGs[subnetNSG].Remove) != 0 || len(again.NSGs[subnetNSG].Keep) != 2 {
		t.Errorf("second plan %+v", again.NSGs[subnetNSG])
	}
}

func TestPlanPolicyPaths_machinesJoiningAndLeavingRewriteOneRuleInPlace(t *testing.T) {
	in := subnetOf(2, false, []NSGRule{inbound("allow-ssh", 300, NSGAllow, NSGProtocolTCP, "10.0.0.0/24", "22")}, tcp22)
	plan := PlanPolicyPaths(in)
	d, _ := denyIn(plan, subnetNSG, tcp22, IPv4)
	rules := applyNSGPlanRules(in.NSGs[subnetNSG], plan.NSGs[subnetNSG])
	grown := subnetOf(3, false, rules, tcp22)
	plan = PlanPolicyPaths(grown)
	if np := plan.NSGs[subnetNSG]; len(np.Add) != 1 || np.Add[0].Name != d.Name || np.Add[0].Priority != d.Priority || len(np.Add[0].DestinationPrefixes) != 3 || len(np.Remove) != 0 {
		t.Errorf("a machine joins: %+v", np)
	}
	rules = applyNSGPlanRules(rules, plan.NSGs[subnetNSG])
	plan = PlanPolicyPaths(subnetOf(1, false, rules, tcp22))
	if np := plan.NSGs[subnetNSG]; len(np.Add) != 1 || np.Add[0].Priority != d.Priority || len(np.Add[0].DestinationPrefixes) != 1 {
		t.Errorf("two machines leave: %+v", np)
	}
	left := subnetOf(0, false, rules, tcp22)
	plan = PlanPolicyPaths(left)
	if np := plan.NSGs[subnetNSG]; len(np.Remove) != 1 || np.Remove[0].Name != d.Name || len(np.Add) != 0 {
		t.Errorf("every machine leaves: %+v", np)
	}
}

func TestPlanPolicyPaths_refusals(t *testing.T) {
	name := AggregateDenyRuleName("prod-web", tcp22, IPv4)
	for _, tc := range []struct {
		name string
		in   PolicyPathInput
		msg  string
	}{
		{"name taken", onePath([]NSGRule{inbound(name, 500, NSGAllow, NSGProtocolTCP, "*", "80")}, nil, []string{"10.0.0.4"}, tcp22),
			`NSG ` + subnetNSG + ` already has a rule named "` + name + `" that jit does not manage`},
		{"name taken by another policy's deny", onePath([]NSGRule{{Name: name, Priority: 500, Direction: NSGInbound, Description: DenyMarker("other").String()}}, nil, []string{"10.0.0.4"}, tcp22),
			`already has a rule named "` + name + `" that jit does not manage`},
		{"bad port", onePath(nil, nil, []string{"10.0.0.4"}, PortProtocol{70000, ProtocolTCP}), "invalid locked port 70000/TCP"},
		{"empty key", func() PolicyPathInput {
			in := onePath(nil, nil, []string{"10.0.0.4"}, tcp22)
			in.Machines[0].Key = ""
			return in
		}(), "a machine of the policy has an empty key"},
		{"Defender's JIT", onePath([]NSGRule{inbound("SecurityCenter-JITRule_1_abc", 100, NSGDeny, NSGProtocolTCP, "*", "22")}, nil, []string{"10.0.0.4"}, tcp22),
			`NSG ` + subnetNSG + ` holds Defender for Cloud's JIT rule "SecurityCenter-JITRule_1_abc"`},
		{"NSG not read", func() PolicyPathInput {
			in := onePath(nil, nil, []string{"10.0.0.4"}, tcp22)
			in.Machines[0].Interfaces[0].NICNSG = nicNSG
			return in
		}(), "NSG " + nicNSG + " is on the path of virtual machine " + vmID + ", but its rules were not given"},
		{"machine twice", func() PolicyPathInput {
			in := onePath(nil, nil, []string{"10.0.0.4"}, tcp22)
			m := in.Machines[0]
			m.Key = strings.ToUpper(m.Key)
			in.Machines = append(in.Machines, m)
			return in
		}(), "are one machine"},
		{"no address", onePath(nil, nil, nil, tcp22), "has no private IP address"},
		{"bad address", onePath(nil, nil, []string{"10.0.0.300"}, tcp22), `invalid private IP address "10.0.0.300"`},
		{"overlapping ports", onePath(nil, nil, []string{"10.0.0.4"}, tcp22, PortProtocol{22, ProtocolAny}), "overlap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := PlanPolicyPaths(tc.in)
			if !slices.ContainsFunc(findingsOf(plan, SeverityError), func(f Finding) bool { return strings.Contains(f.Detail, tc.msg) }) {
				t.Errorf("errors %+v; want one containing %q", findingsOf(plan, SeverityError), tc.msg)
			}
		})
	}
}

func TestPlanPolicyPaths_noNSGOnThePathCannotLock(t *testing.T) {
	in := onePath(nil, nil, []string{"10.0.0.4"}, tcp22)
	in.Machines[0].Interfaces = append(in.Machines[0].Interfaces, PathInterface{IPs: []string{"10.1.0.4"}})
	plan := PlanPolicyPaths(in)
	nl := exposuresOf(plan, ExposureNotLocked)
	if len(nl) != 1 || !reflect.DeepEqual(nl[0].Addresses, []string{"10.1.0.4"}) || !strings.Contains(nl[0].Reason, "no network security group") {
		t.Errorf("not locked %+v", nl)
	}
	if d, ok := denyIn(plan, subnetNSG, tcp22, IPv4); !ok || !reflect.DeepEqual(d.DestinationPrefixes, []string{"10.0.0.4"}) {
		t.Errorf("the other NIC's deny %+v, %v", d, ok)
	}
}

func TestPlanPolicyPaths_firewallDenyCollectionIsAggregated(t *testing.T) {
	in := subnetOf(3, true, nil, tcp22, any8080)
	in.Firewall = &FirewallPathInput{ID: testFirewall, Collections: []FirewallNetworkCollection{
		networkCollection("allow-ssh", 2000, FirewallAllow, "10.0.0.0/16", "22"),
	}}
	plan := PlanPolicyPaths(in)
	fw := plan.Firewall
	if fw == nil || fw.Want == nil || !fw.Changed || fw.Want.Priority != 2002 || len(fw.Want.Rules) != 4 {
		t.Fatalf("firewall plan %+v", fw)
	}
	for _, r := range fw.Want.Rules {
		if len(r.DestinationAddresses) != 3 || r.Description != DenyMarker("prod-web").String() {
			t.Errorf("rule %+v", r)
		}
	}
	ko := exposuresOf(plan, ExposureKeptOpen)
	if len(ko) != 0 {
		t.Errorf("kept open %+v: the NSG denies close the port on the path through the firewall too", ko)
	}
	// Applied, then planned again: nothing changes.
	in.Firewall.Collections = append(in.Firewall.Collections, *fw.Want)
	for id, np := range plan.NSGs {
		in.NSGs[id] = applyNSGPlanRules(in.NSGs[id], np)
	}
	again := PlanPolicyPaths(in)
	if again.Firewall.Changed || again.Firewall.Want.Priority != 2002 {
		t.Errorf("second firewall plan %+v", again.Firewall)
	}
	// A collection shadowed by allow-ssh decides nothing; one deciding
	// 8080 at the last priority leaves that machine's port out.
	in.Firewall.Collections = append(in.Firewall.Collections, networkCollection("shadowed", FirewallMaxPriority-1, FirewallAllow, "10.0.0.4", "22"),
		networkCollection("last", FirewallMaxPriority, FirewallAllow, "10.0.0.4", "8080"))
	third := PlanPolicyPaths(in)
	nl := exposuresOf(third, ExposureNotLocked)
	if len(nl) != 1 || nl[0].Target != testFirewall || nl[0].Machine != in.Machines[0].Key || nl[0].Family != IPv4 || nl[0].Port != any8080 || nl[0].Rules[0].Collection != "last" {
		t.Errorf("not locked %+v", nl)
	}
	if !slices.ContainsFunc(third.Findings, func(f Finding) bool {
		return f.Summary == "Port cannot be locked" && reflect.DeepEqual(f.Path, []any{pathAzureFirewallID})
	}) {
		t.Errorf("findings %+v", third.Findings)
	}
}

// behindFirewall is a policy over machines behind the subnet NSG and a
// firewall holding the collections.
func behindFirewall(collections []FirewallNetworkCollection, ms ...PathMachine) PolicyPathInput {
	return PolicyPathInput{Policy: "prod-web", NSGs: map[string][]NSGRule{subnetNSG: nil}, Machines: ms,
		Firewall: &FirewallPathInput{ID: testFirewall, Collections: collections}}
}

func web01Path(ports ...PortProtocol) PathMachine {
	return PathMachine{Key: vmID, Ports: ports, Interfaces: []PathInterface{{IPs: []string{"10.0.0.4"}, SubnetNSG: subnetNSG}}}
}

// Which collections decide a locked port, and where the deny collection
// goes: at the base, or after the last collection of others deciding a
// port with a free priority between them for grants.
func TestPlanPolicyPaths_firewallDenyCollectionFollowsTheCollectionsDecidingItsPorts(t *testing.T) {
	for _, tc := range []struct {
		name        string
		collections []FirewallNetworkCollection
		want        int
		cut         string // the Allow collection whose access the plan cuts
	}{
		{"empty firewall", nil, 1000, ""},
		{"allow before the base", []FirewallNetworkCollection{networkCollection("allow-ssh", 200, FirewallAllow, "10.0.0.0/16", "22")}, 1000, "allow-ssh"},
		{"allow after the base", []FirewallNetworkCollection{networkCollection("allow-ssh", 5000, FirewallAllow, "*", "20-30")}, 5002, "allow-ssh"},
		{"deny decides, cutting nothing", []FirewallNetworkCollection{networkCollection("deny-udp", 3000, FirewallDeny, "10.0.0.4", "8080", "UDP")}, 3002, ""},
		{"IP range decides", []FirewallNetworkCollection{networkCollection("range", 3000, FirewallAllow, "10.0.0.1-10.0.0.9", "8080", "Any")}, 3002, "range"},
		{"other address does not decide", []FirewallNetworkCollection{networkCollection("other", 3000, FirewallAllow, "10.0.0.5", "22")}, 1000, ""},
		{"ICMP does not decide", []FirewallNetworkCollection{networkCollection("ping", 3000, FirewallAllow, "*", "*", "ICMP")}, 1000, ""},
		{"IP groups decide", []FirewallNetworkCollection{networkCollection("ipgroup", 3000, FirewallAllow, "", "22")}, 3002, "ipgroup"},
		{"base taken", []FirewallNetworkCollection{networkCollection("web", 1000, FirewallAllow, "*", "443")}, 1001, ""},
		{"an honoured grant comes first, cut by nothing", []FirewallNetworkCollection{{Name: "jit-grant-x", Priority: 1200, Action: FirewallAllow, Rules: []FirewallNetworkRule{{
			Name: "g", Description: GrantMarker("prod-web", testEnd, "a", "b").String(), Protocols: []string{"TCP"}, SourceAddresses: []string{"203.0.113.7/32"},
			DestinationAddresses: []string{"10.0.0.4"}, DestinationPorts: []string{"22"}}}}}, 1202, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := behindFirewall(tc.collections, web01Path(tcp22, any8080))
			in.Firewall.HonouredGrant = func(c FirewallNetworkCollection) bool { return c.Name == "jit-grant-x" }
			plan := PlanPolicyPaths(in)
			if fw := plan.Firewall; HasError(plan.Findings) || fw == nil || fw.Want == nil || fw.Want.Priority != tc.want || !fw.Changed || fw.Have != nil {
				t.Fatalf("plan %+v, findings %+v; want the collection at %d", fw, plan.Findings, tc.want)
			}
			var cut []string
			for _, e := range exposuresOf(plan, ExposureCut) {
				for _, r := range e.Rules {
					if r.Filter == testFirewall {
						cut = append(cut, r.Collection)
					}
				}
			}
			if cut = slices.Compact(cut); tc.cut == "" && len(cut) != 0 || tc.cut != "" && !slices.Equal(cut, []string{tc.cut}) {
				t.Errorf("access cut through %v; want %q", cut, tc.cut)
			}
		})
	}
}

func TestPlanPolicyPaths_firewallDenyCollectionContent(t *testing.T) {
	other := PathMachine{Key: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-02", Ports: []PortProtocol{tcp22, udp53},
		Interfaces: []PathInterface{{IPs: []string{"10.0.1.9"}, SubnetNSG: subnetNSG}}}
	plan := PlanPolicyPaths(behindFirewall(nil, web01Path(tcp22, any8080), other))
	marker := DenyMarker("prod-web").String()
	rule := func(port PortProtocol, protocols []string, dsts ...string) FirewallNetworkRule {
		return FirewallNetworkRule{Name: AggregateDenyRuleName("prod-web", port, IPv4), Description: marker, Protocols: protocols, SourceAddresses: []string{"*"},
			DestinationAddresses: dsts, DestinationPorts: []string{strconv.Itoa(port.Number)}}
	}
	want := &FirewallNetworkCollection{Name: FirewallDenyCollectionName("prod-web"), Priority: 1000, Action: FirewallDeny, Rules: []FirewallNetworkRule{
		rule(tcp22, []string{"TCP"}, "10.0.0.4", "10.0.1.9"), rule(any8080, []string{"TCP", "UDP"}, "10.0.0.4"), rule(udp53, []string{"UDP"}, "10.0.1.9"),
	}}
	slices.SortFunc(want.Rules, func(a, b FirewallNetworkRule) int { return strings.Compare(a.Name, b.Name) })
	if plan.Firewall == nil || !reflect.DeepEqual(plan.Firewall.Want, want) {
		t.Errorf("want\n%+v\ngot\n%+v", want, plan.Firewall)
	}
}

func TestPlanPolicyPaths_firewallDenyCollectionLifecycle(t *testing.T) {
	foreign := []FirewallNetworkCollection{networkCollection("web", 1000, FirewallAllow, "*", "443")}
	plan := PlanPolicyPaths(behindFirewall(foreign, web01Path(tcp22)))
	applied := append(slices.Clone(foreign), *plan.Firewall.Want)

	// Unchanged: nothing to write, whatever spelling ARM returns.
	reordered := applied[1]
	reordered.Action = "deny"
	reordered.Rules = slices.Clone(reordered.Rules)
	reordered.Rules[0].DestinationAddresses = []string{"10.0.0.4/32"}
	again := PlanPolicyPaths(behindFirewall([]FirewallNetworkCollection{reordered, applied[0]}, web01Path(tcp22)))
	if fw := again.Firewall; fw.Changed || fw.Have == nil || fw.Want.Priority != 1001 {
		t.Errorf("second plan %+v", fw)
	}

	// A port more: rewritten at the same priority.
	if fw := PlanPolicyPaths(behindFirewall(applied, web01Path(tcp22, tcp3389))).Firewall; !fw.Changed || fw.Want.Priority != 1001 || len(fw.Want.Rules) != 2 {
		t.Errorf("grown %+v", fw)
	}

	// A deciding allow appears after it: it moves after that allow.
	late := append(slices.Clone(applied), networkCollection("late", 2000, FirewallAllow, "*", "22"))
	if fw := PlanPolicyPaths(behindFirewall(late, web01Path(tcp22))).Firewall; !fw.Changed || fw.Want.Priority != 2002 {
		t.Errorf("moved %+v", fw)
	}

	// The policy leaves: the collection goes.
	if fw := PlanPolicyPaths(behindFirewall(applied)).Firewall; !fw.Changed || fw.Want != nil || fw.Have == nil {
		t.Errorf("gone %+v", fw)
	}
	if fw := PlanPolicyPaths(behindFirewall(foreign)).Firewall; fw.Changed || fw.Want != nil {
		t.Errorf("nothing %+v", fw)
	}

	// A collection of that name that is not jit's is refused.
	name := FirewallDenyCollectionName("prod-web")
	taken := PlanPolicyPaths(behindFirewall([]FirewallNetworkCollection{networkCollection(name, 500, FirewallDeny, "*", "22")}, web01Path(tcp22)))
	if errs := findingsOf(taken, SeverityError); len(errs) != 1 || errs[0].Summary != "Rule collection name taken" ||
		!strings.Contains(errs[0].Detail, `Azure Firewall `+testFirewall+` already has a network rule collection named "`+name+`" that jit does not manage (rule "`+name+`-rule" lacks`) {
		t.Errorf("errors %+v", errs)
	}
}

func TestPlanPolicyPaths_roomFreedByItsOwnMovesIsAnnounced(t *testing.T) {
	// A crowded NSG: priorities 3100-4096 taken but 4090 and 4091. Rules of
	// others decide 8080 and 53/UDP at 3300 and 3301; the policy's denies of
	// those ports sit at 3500 and 3450 with no free priority left between
	// for grants, so both move: to 4090 and 4091, their old priorities
	// serving as windows. Port 22, decided at 3400, then finds no priority
	// of its own, since 3450 and 3500 stay taken until the denies have
	// moved. Once the plan is applied they are free, and the next plan locks
	// 22 there; the first plan says so.
	udp53v4, any8080v4, tcp22v4 := AggregateDenyRuleName("prod-web", udp53, IPv4), AggregateDenyRuleName("prod-web", any8080, IPv4), AggregateDenyRuleName("prod-web", tcp22, IPv4)
	mine := DenyMarker("prod-web").String()
	rules := []NSGRule{
		{Name: any8080v4, Priority: 3500, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolAny, SourcePrefixes: []string{"*"}, SourcePortRanges: []string{"*"}, DestinationPrefixes: []string{"10.0.0.4"}, DestinationPortRanges: []string{"8080"}, Description: mine},
		{Name: udp53v4, Priority: 3450, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolUDP, SourcePrefixes: []string{"*"}, SourcePortRanges: []string{"*"}, DestinationPrefixes: []string{"10.0.0.4"}, DestinationPortRanges: []string{"53"}, Description: mine},
		inbound("allow-web", 3300, NSGAllow, NSGProtocolAny, "10.0.0.4", "8080"),
		inbound("allow-dns", 3301, NSGAllow, NSGProtocolUDP, "10.0.0.4", "53"),
		inbound("allow-ssh", 3400, NSGAllow, NSGProtocolTCP, "10.0.0.4", "22"),
	}
	for p := 3100; p <= 4096; p++ {
		if !slices.Contains([]int{3300, 3301, 3400, 3450, 3500, 4090, 4091}, p) {
			rules = append(rules, inbound(fmt.Sprintf("filler-%d", p), p, NSGAllow, NSGProtocolTCP, "10.9.9.9", "80"))
		}
	}
	in := onePath(rules, nil, []string{"10.0.0.4"}, tcp22, udp53, any8080)
	plan := PlanPolicyPaths(in)
	np := plan.NSGs[subnetNSG]
	if got := priorities(np.Add); len(got) != 2 || got[any8080v4]+got[udp53v4] != 4090+4091 {
		t.Fatalf("first plan adds %v", got)
	}
	nl := exposuresOf(plan, ExposureNotLocked)
	if len(nl) != 1 || nl[0].Port != tcp22 || !strings.HasSuffix(nl[0].Reason, PlanAgainLocks) {
		t.Fatalf("not locked %+v", nl)
	}
	in.NSGs[subnetNSG] = applyNSGPlanRules(rules, np)
	second := PlanPolicyPaths(in)
	if got := priorities(second.NSGs[subnetNSG].Add); got[tcp22v4] != 3500 || len(got) != 1 || len(exposuresOf(second, ExposureNotLocked)) != 0 {
		t.Fatalf("second plan adds %v, not locked %+v", got, exposuresOf(second, ExposureNotLocked))
	}
	in.NSGs[subnetNSG] = applyNSGPlanRules(in.NSGs[subnetNSG], second.NSGs[subnetNSG])
	if third := PlanPolicyPaths(in).NSGs[subnetNSG]; len(third.Add)+len(third.Remove) != 0 {
		t.Errorf("third plan %+v", third)
	}
}

func TestPlanPolicyPaths_neverUnlocksAMachineToLockAnother(t *testing.T) {
	// Crowded: 3100-4096 taken but 3746. The policy's deny of 5985 covers
	// vm-1 at 4026, after allow-winrm (3709), with 3746 free between. A new
	// machine's 8080, decided at 3605, could only take 4026: the deny of
	// 5985 stays, and 8080 is reported as not locked.
	deny5985 := AggregateDenyRuleName("prod-web", PortProtocol{5985, ProtocolTCP}, IPv4)
	rules := []NSGRule{
		{Name: deny5985, Priority: 4026, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolTCP, SourcePrefixes: []string{"*"}, SourcePortRanges: []string{"*"},
			DestinationPrefixes: []string{"10.0.0.5"}, DestinationPortRanges: []string{"5985"}, Description: DenyMarker("prod-web").String()},
		inbound("allow-web", 3605, NSGAllow, NSGProtocolAny, "10.0.0.4", "8080"),
		inbound("allow-winrm", 3709, NSGAllow, NSGProtocolTCP, "10.0.0.5", "5985"),
	}
	for p := 3100; p <= 4096; p++ {
		if !slices.Contains([]int{3605, 3709, 3746, 4026}, p) {
			rules = append(rules, inbound(fmt.Sprintf("filler-%d", p), p, NSGAllow, NSGProtocolTCP, "10.9.9.9", "80"))
		}
	}
	in := PolicyPathInput{Policy: "prod-web", NSGs: map[string][]NSGRule{subnetNSG: rules}, Machines: []PathMachine{
		{Key: vmID, Ports: []PortProtocol{any8080}, Interfaces: []PathInterface{{IPs: []string{"10.0.0.4"}, SubnetNSG: subnetNSG}}},
		{Key: vmID + "-1", Ports: []PortProtocol{{5985, ProtocolTCP}}, Interfaces: []PathInterface{{IPs: []string{"10.0.0.5"}, SubnetNSG: subnetNSG}}},
	}}
	plan := PlanPolicyPaths(in)
	np := plan.NSGs[subnetNSG]
	if len(np.Add)+len(np.Remove) != 0 || len(np.Keep) != 1 || np.Keep[0].Name != deny5985 {
		t.Errorf("plan %v %v %v; want the deny of 5985 kept, nothing else", priorities(np.Add), priorities(np.Keep), priorities(np.Remove))
	}
	if nl := exposuresOf(plan, ExposureNotLocked); len(nl) != 1 || nl[0].Port != any8080 || nl[0].Machine != vmID {
		t.Errorf("not locked %+v", nl)
	}
}

// A grant takes the highest free priority before the deny; the policy's
// next plan must not move the deny for it (every grant would make the
// policy's plan dirty), and a later grant still fits, before the first.
func TestPlanPolicyPaths_aGrantJustBeforeTheDenyLeavesThePlanEmpty(t *testing.T) {
	in := onePath(nil, nil, []string{"10.0.0.4"}, tcp22)
	first := PlanPolicyPaths(in)
	deny, ok := denyIn(first, subnetNSG, tcp22, IPv4)
	if !ok || HasError(first.Findings) {
		t.Fatalf("first plan: %+v %v", first.Findings, ok)
	}
	rules := []NSGRule{deny}
	for i, source := range []string{"203.0.113.7/32", "198.51.100.9/32"} {
		placed, err := PlanNSGGrants(NSGGrant{NSG: subnetNSG, Rules: rules, Policy: "prod-web", Request: fmt.Sprintf("20261128T120000Z-0000000%d", i),
			Machine: vmID, PrivateIPs: []string{"10.0.0.4"}, Port: tcp22, Source: source, End: testEnd, Requestor: "alice", Justification: "INC-1"})
		if err != nil {
			t.Fatalf("grant %d: %v", i, err)
		}
		if placed[0].Priority >= deny.Priority {
			t.Fatalf("grant %d at %d, not before the deny at %d", i, placed[0].Priority, deny.Priority)
		}
		rules = append(rules, placed...)
		in.NSGs[subnetNSG] = rules
		in.HonouredGrant = func(string, NSGRule) bool { return true }
		again := PlanPolicyPaths(in)
		if np := again.NSGs[subnetNSG]; len(np.Add) != 0 || len(np.Remove) != 0 || HasError(again.Findings) {
			t.Fatalf("after grant %d at %d the plan writes %+v (findings %+v); want nothing", i, placed[0].Priority, np, again.Findings)
		}
	}
}
