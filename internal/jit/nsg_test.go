package jit

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testNSG = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg-web"

var (
	tcp22   = PortProtocol{22, ProtocolTCP}
	tcp3389 = PortProtocol{3389, ProtocolTCP}
	any8080 = PortProtocol{8080, ProtocolAny}
	udp53   = PortProtocol{53, ProtocolUDP}
)

func web01(ports ...PortProtocol) LockedMachine {
	return LockedMachine{Key: vmID, PrivateIPs: []string{"10.0.0.4"}, Ports: ports}
}

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

func denyName(m LockedMachine, p PortProtocol) string { return DenyRuleName("prod-web", m.Key, p) }

func TestPlanNSG_emptyNSGGetsDeniesAtTheBase(t *testing.T) {
	vm := web01(tcp22, tcp3389, any8080)
	plan, err := PlanNSG(testNSG, nil, "prod-web", []LockedMachine{vm})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{denyName(vm, tcp22): 1000, denyName(vm, tcp3389): 1001, denyName(vm, any8080): 1002}
	if got := priorities(plan.Add); !reflect.DeepEqual(got, want) {
		t.Errorf("Add priorities %v; want %v", got, want)
	}
	if len(plan.Keep)+len(plan.Remove)+len(plan.Warnings) != 0 {
		t.Errorf("unexpected %+v", plan)
	}
	r := plan.Add[0]
	wantRule := NSGRule{
		Name: denyName(vm, tcp22), Priority: 1000, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolTCP,
		SourcePrefixes: []string{"*"}, SourcePortRanges: []string{"*"}, DestinationPrefixes: []string{"10.0.0.4"},
		DestinationPortRanges: []string{"22"}, Description: DenyMarker("prod-web").String(),
	}
	if !reflect.DeepEqual(r, wantRule) {
		t.Errorf("deny rule\n%+v\nwant\n%+v", r, wantRule)
	}
	if plan.Add[2].Protocol != NSGProtocolAny {
		t.Errorf("a * port must be denied for any protocol, got %q", plan.Add[2].Protocol)
	}
}

func TestPlanNSG_existingRulesKeepPrecedence(t *testing.T) {
	vm := web01(tcp22, tcp3389)
	for _, tc := range []struct {
		name     string
		rules    []NSGRule
		want22   int
		want3389 int
		warnings []string // one fragment per expected warning
	}{
		{"allow before the base", []NSGRule{inbound("allow-ssh", 300, NSGAllow, NSGProtocolTCP, "*", "22")}, 1000, 1001,
			[]string{`rule "allow-ssh" (priority 300) in NSG ` + testNSG + ` allows port 22/TCP to virtual machine ` + vmID + ` before the JIT deny: the port stays open to the sources that rule allows (*).`}},
		{"allow after the base", []NSGRule{inbound("allow-ssh", 2000, NSGAllow, NSGProtocolTCP, "VirtualNetwork", "22")}, 2001, 1000, []string{`"allow-ssh" (priority 2000)`}},
		{"deny decides without warning", []NSGRule{inbound("deny-ssh", 1500, NSGDeny, NSGProtocolAny, "10.0.0.0/24", "20-25")}, 1501, 1000, nil},
		{"other machine's rule does not decide", []NSGRule{inbound("allow-other", 2000, NSGAllow, NSGProtocolTCP, "10.0.1.5", "22")}, 1000, 1001, nil},
		{"other port does not decide", []NSGRule{inbound("allow-web", 2000, NSGAllow, NSGProtocolTCP, "*", "80 443 8000-8999")}, 1000, 1001, nil},
		{"UDP does not decide TCP", []NSGRule{inbound("allow-udp", 2000, NSGAllow, NSGProtocolUDP, "*", "22")}, 1000, 1001, nil},
		{"ICMP does not decide", []NSGRule{inbound("allow-icmp", 2000, NSGAllow, NSGProtocolICMP, "*", "*")}, 1000, 1001, nil},
		{"any protocol, any port decides both", []NSGRule{inbound("allow-all", 3000, NSGAllow, NSGProtocolAny, "*", "*")}, 3001, 3002, []string{`"allow-all" (priority 3000) in NSG ` + testNSG + ` allows port 22/TCP`, `"allow-all" (priority 3000) in NSG ` + testNSG + ` allows port 3389/TCP`}},
		{"application security group destination decides", []NSGRule{inbound("allow-asg", 2500, NSGAllow, NSGProtocolTCP, "", "3389")}, 1000, 2501, []string{"port 3389/TCP to virtual machine " + vmID + " before the JIT deny: the port stays open to the sources that rule allows (*)"}},
		{"service tag decides", []NSGRule{inbound("allow-lb", 2500, NSGAllow, NSGProtocolTCP, "AzureLoadBalancer", "22")}, 2501, 1000, []string{`"allow-lb"`}},
		{"CIDR with host bits decides", []NSGRule{inbound("deny-x", 2500, NSGDeny, NSGProtocolTCP, "10.0.0.9/24", "22")}, 2501, 1000, nil},
		{"case of enums is ignored", []NSGRule{{Name: "odd", Priority: 2500, Direction: "inbound", Access: "allow", Protocol: "tcp", DestinationPrefixes: []string{"*"}, DestinationPortRanges: []string{"22"}}}, 2501, 1000, []string{`"odd"`}},
		{"outbound rules neither decide nor take inbound priorities", []NSGRule{{Name: "out", Priority: 1000, Direction: NSGOutbound, Access: NSGAllow, Protocol: NSGProtocolAny, DestinationPrefixes: []string{"*"}, DestinationPortRanges: []string{"*"}}}, 1000, 1001, nil},
		{"base taken by an unrelated rule", []NSGRule{inbound("web", 1000, NSGAllow, NSGProtocolTCP, "*", "443")}, 1001, 1002, nil},
		{"grant decides without warning", []NSGRule{{Name: "jit-grant-x", Priority: 1200, Direction: NSGInbound, Access: NSGAllow, Protocol: NSGProtocolTCP, SourcePrefixes: []string{"203.0.113.7/32"}, DestinationPrefixes: []string{"10.0.0.4"}, DestinationPortRanges: []string{"22"}, Description: GrantMarker("prod-web", testEnd, "alice", "x").String()}}, 1201, 1000, nil},
		{"past the base, the highest slot below it with room", fillInbound(1000, 4096, inbound("allow-ssh", 500, NSGAllow, NSGProtocolTCP, "*", "22")), 999, 998, []string{`"allow-ssh" (priority 500)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanNSG(testNSG, tc.rules, "prod-web", []LockedMachine{vm})
			if err != nil {
				t.Fatal(err)
			}
			got := priorities(plan.Add)
			if got[denyName(vm, tcp22)] != tc.want22 || got[denyName(vm, tcp3389)] != tc.want3389 {
				t.Errorf("priorities 22: %d, 3389: %d; want %d, %d", got[denyName(vm, tcp22)], got[denyName(vm, tcp3389)], tc.want22, tc.want3389)
			}
			if len(plan.Warnings) != len(tc.warnings) {
				t.Fatalf("warnings %q; want %d", plan.Warnings, len(tc.warnings))
			}
			for i, w := range tc.warnings {
				if !strings.Contains(plan.Warnings[i], w) {
					t.Errorf("warning %q; want one containing %q", plan.Warnings[i], w)
				}
			}
		})
	}
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

func TestPlanNSG_noFreeSlotIsAnErrorAndNoPlan(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []NSGRule
		ports []PortProtocol
		msg   string
	}{
		{"decided at the last priority", []NSGRule{inbound("allow-all", 4096, NSGAllow, NSGProtocolAny, "*", "*")}, []PortProtocol{tcp22},
			`NSG ` + testNSG + ` has no free inbound priority for the JIT deny of port 22/TCP on virtual machine ` + vmID + `: the deny must come after rule "allow-all" (priority 4096)`},
		{"after the decider, all taken", fillInbound(4000, 4096, inbound("allow-ssh", 3999, NSGAllow, NSGProtocolTCP, "*", "22")), []PortProtocol{tcp22},
			`after rule "allow-ssh" (priority 3999)`},
		{"one hole: nothing before it", fillInbound(101, 4096), []PortProtocol{tcp22}, "that leaves a free priority before it for grants"},
		{"two holes, two ports", fillExcept(100, 4096, 100, 2000), []PortProtocol{tcp22, tcp3389}, "port 3389/TCP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanNSG(testNSG, tc.rules, "prod-web", []LockedMachine{web01(tc.ports...)})
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v; want one containing %q", err, tc.msg)
			}
			if !reflect.DeepEqual(plan, NSGPlan{}) {
				t.Errorf("plan %+v alongside the error", plan)
			}
		})
	}
	// One more hole and it fits.
	plan, err := PlanNSG(testNSG, fillExcept(100, 4096, 100, 2000, 3000), "prod-web", []LockedMachine{web01(tcp22, tcp3389)})
	if err != nil || len(plan.Add) != 2 || plan.Add[0].Priority != 2000 || plan.Add[1].Priority != 3000 {
		t.Errorf("plan %+v, %v", plan.Add, err)
	}
}

func fillExcept(from, to int, holes ...int) []NSGRule {
	var rules []NSGRule
	for _, r := range fillInbound(from, to) {
		if !slices.Contains(holes, r.Priority) {
			rules = append(rules, r)
		}
	}
	return rules
}

func applyNSGPlan(rules []NSGRule, plan NSGPlan) []NSGRule {
	var out []NSGRule
	for _, r := range rules {
		if !slices.ContainsFunc(plan.Remove, func(x NSGRule) bool { return x.Name == r.Name }) {
			out = append(out, r)
		}
	}
	for _, a := range plan.Add {
		if i := slices.IndexFunc(out, func(x NSGRule) bool { return x.Name == a.Name }); i >= 0 {
			out[i] = a
		} else {
			out = append(out, a)
		}
	}
	return out
}

func TestPlanNSG_lifecycle(t *testing.T) {
	other := LockedMachine{Key: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-02", PrivateIPs: []string{"10.0.0.5", "fd00::5"}, Ports: []PortProtocol{tcp22}}
	vm := web01(tcp22, tcp3389)
	foreign := []NSGRule{
		inbound("allow-ssh", 300, NSGAllow, NSGProtocolTCP, "10.0.0.4", "22"),
		{Name: "other-policy", Priority: 1000, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolTCP, DestinationPrefixes: []string{"10.0.0.9"}, DestinationPortRanges: []string{"22"}, Description: DenyMarker("other").String()},
	}

	step := func(name string, rules []NSGRule, machines ...LockedMachine) ([]NSGRule, NSGPlan) {
		t.Helper()
		plan, err := PlanNSG(testNSG, rules, "prod-web", machines)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		after := applyNSGPlan(rules, plan)
		again, err := PlanNSG(testNSG, after, "prod-web", machines)
		if err != nil || len(again.Add)+len(again.Remove) != 0 || len(again.Keep) != len(plan.Add)+len(plan.Keep) {
			t.Fatalf("%s: second plan %+v, %v", name, again, err)
		}
		return after, plan
	}

	rules, plan := step("create", foreign, vm, other)
	if got := priorities(plan.Add); got[denyName(vm, tcp22)] != 1001 || got[denyName(other, tcp22)] != 1003 || got[denyName(vm, tcp3389)] != 1002 {
		t.Errorf("create: %v", got)
	}
	if d := plan.Add[len(plan.Add)-1]; !reflect.DeepEqual(d.DestinationPrefixes, []string{"10.0.0.5", "fd00::5"}) {
		t.Errorf("web-02's deny targets %v", d.DestinationPrefixes)
	}

	// A port leaves the policy, a machine leaves the NSG.
	rules, plan = step("shrink", rules, web01(tcp22))
	if got := ruleNames(plan.Remove); !reflect.DeepEqual(got, []string{denyName(vm, tcp3389), denyName(other, tcp22)}) {
		t.Errorf("shrink removes %v", got)
	}

	// Someone edits the deny: it is replaced in place, at the same priority.
	i := slices.IndexFunc(rules, func(r NSGRule) bool { return r.Name == denyName(vm, tcp22) })
	rules[i].DestinationPrefixes = []string{"10.0.0.0/8"}
	rules, plan = step("repair", rules, web01(tcp22))
	if len(plan.Add) != 1 || plan.Add[0].Priority != 1001 || plan.Add[0].DestinationPrefixes[0] != "10.0.0.4" || len(plan.Remove) != 0 {
		t.Errorf("repair: %+v", plan)
	}

	// Someone adds an allow after the deny: the deny moves after it, and its
	// old priority is not reused while it moves.
	rules = append(rules, inbound("late-allow", 1500, NSGAllow, NSGProtocolTCP, "*", "22"))
	rules, plan = step("move", rules, web01(tcp22))
	if len(plan.Add) != 1 || plan.Add[0].Priority != 1501 || len(plan.Warnings) != 2 {
		t.Errorf("move: %+v", plan)
	}

	// Destroy: everything of the policy goes, nothing else.
	_, plan = step("destroy", rules)
	if len(plan.Remove) != 1 || plan.Remove[0].Name != denyName(vm, tcp22) || len(plan.Add) != 0 {
		t.Errorf("destroy: %+v", plan)
	}
}

func ruleNames(rules []NSGRule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.Name)
	}
	return out
}

func TestPlanNSG_refusesBadInput(t *testing.T) {
	vm := web01(tcp22)
	for _, tc := range []struct {
		name     string
		rules    []NSGRule
		machines []LockedMachine
		msg      string
	}{
		{"name taken by a foreign rule", []NSGRule{inbound(denyName(vm, tcp22), 500, NSGAllow, NSGProtocolTCP, "*", "22")}, []LockedMachine{vm},
			`already has a rule named "` + denyName(vm, tcp22) + `" that jit does not manage`},
		{"name taken by another policy's deny", []NSGRule{{Name: denyName(vm, tcp22), Priority: 500, Direction: NSGInbound, Description: DenyMarker("other").String()}}, []LockedMachine{vm}, "does not manage"},
		{"no IP", nil, []LockedMachine{{Key: vmID, Ports: []PortProtocol{tcp22}}}, "has no private IP address"},
		{"bad IP", nil, []LockedMachine{{Key: vmID, PrivateIPs: []string{"10.0.0.300"}, Ports: []PortProtocol{tcp22}}}, `invalid private IP address "10.0.0.300"`},
		{"machine twice", nil, []LockedMachine{vm, {Key: strings.ToUpper(vmID), PrivateIPs: []string{"10.0.0.5"}}}, "listed twice"},
		{"empty key", nil, []LockedMachine{{PrivateIPs: []string{"10.0.0.5"}}}, "empty or listed twice"},
		{"overlapping ports", nil, []LockedMachine{web01(tcp22, PortProtocol{22, ProtocolAny})}, "locked ports 22/TCP and 22/* overlap"},
		{"bad port", nil, []LockedMachine{web01(PortProtocol{70000, ProtocolTCP})}, "invalid locked port 70000/TCP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanNSG(testNSG, tc.rules, "prod-web", tc.machines)
			if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), testNSG) {
				t.Fatalf("error %v; want one naming the NSG and containing %q", err, tc.msg)
			}
			if !reflect.DeepEqual(plan, NSGPlan{}) {
				t.Errorf("plan %+v alongside the error", plan)
			}
		})
	}
}

func TestPlanNSG_staleOwnedRulesAreRemovedForeignOnesNever(t *testing.T) {
	mine := DenyMarker("prod-web").String()
	rules := []NSGRule{
		{Name: "jit-deny-old-scheme", Priority: 900, Direction: NSGInbound, Access: NSGDeny, Description: mine},
		{Name: "outbound-copy", Priority: 900, Direction: NSGOutbound, Access: NSGDeny, Description: mine},
		{Name: "hand-made", Priority: 901, Direction: NSGInbound, Access: NSGDeny, Description: mine + " "},
		{Name: "theirs", Priority: 902, Direction: NSGInbound, Access: NSGDeny, Description: DenyMarker("prod-web-2").String()},
	}
	plan, err := PlanNSG(testNSG, rules, "prod-web", nil)
	if err != nil || !reflect.DeepEqual(ruleNames(plan.Remove), []string{"jit-deny-old-scheme", "outbound-copy"}) || len(plan.Add) != 0 {
		t.Errorf("plan %+v, %v", plan, err)
	}
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

func grantFor(rules []NSGRule, source string) NSGGrant {
	return NSGGrant{NSG: testNSG, Rules: rules, Policy: "prod-web", Request: "req-1", Machine: vmID, PrivateIPs: []string{"10.0.0.4"},
		Port: tcp22, Source: source, End: testEnd, Requestor: "alice@contoso.com", Justification: "INC-4211"}
}

func TestPlanNSGGrant(t *testing.T) {
	vm := web01(tcp22)
	base, _ := PlanNSG(testNSG, nil, "prod-web", []LockedMachine{vm})
	denied := base.Add
	for _, tc := range []struct {
		name   string
		rules  []NSGRule
		source string
		want   int
		msg    string
	}{
		{"before the JIT deny", denied, "203.0.113.7", 999, ""},
		{"before a foreign deny", append(slices.Clone(denied), inbound("block", 500, NSGDeny, NSGProtocolAny, "*", "*")), "203.0.113.7", 499, ""},
		{"a deny for other sources does not shadow", append(slices.Clone(denied), withSource(inbound("block-corp", 500, NSGDeny, NSGProtocolTCP, "*", "22"), "10.0.0.0/8")), "203.0.113.7", 999, ""},
		{"a deny for other machines does not shadow", append(slices.Clone(denied), inbound("block-db", 500, NSGDeny, NSGProtocolTCP, "10.0.0.9", "22")), "203.0.113.7", 999, ""},
		{"a deny for part of the source shadows", append(slices.Clone(denied), withSource(inbound("block-one", 500, NSGDeny, NSGProtocolTCP, "*", "22"), "203.0.113.9")), "203.0.113.0/24", 499, ""},
		{"an allow before does not shadow", append(slices.Clone(denied), inbound("allow", 500, NSGAllow, NSGProtocolTCP, "*", "22")), "*", 999, ""},
		{"taken priorities are skipped", append(slices.Clone(denied), inbound("x", 999, NSGAllow, NSGProtocolTCP, "10.9.9.9", "80"), inbound("y", 998, NSGAllow, NSGProtocolTCP, "10.9.9.9", "80")), "*", 997, ""},
		{"no deny at all", nil, "*", 4096, ""},
		{"foreign deny first", append(slices.Clone(denied), inbound("block", 100, NSGDeny, NSGProtocolTCP, "VirtualNetwork", "22")), "203.0.113.7",
			0, `rule "block" (priority 100) in NSG ` + testNSG + ` denies port 22/TCP from 203.0.113.7/32 to virtual machine ` + vmID + `, and no priority before it is free`},
		{"JIT deny with nothing free before it", append(fillInbound(100, 999), denied...), "*", 0, `no free inbound priority before the JIT deny "` + denyName(vm, tcp22) + `" (priority 1000)`},
		{"full NSG", fillInbound(100, 4096), "*", 0, "has no free inbound priority for the grant"},
		{"bad source", denied, "10.0.0.1/8", 0, "host bits"},
		{"name taken", []NSGRule{inbound(GrantRuleName("req-1", vmID, tcp22), 500, NSGAllow, NSGProtocolTCP, "*", "22")}, "*", 0, "is not a JIT grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := PlanNSGGrant(grantFor(tc.rules, tc.source))
			if tc.msg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("error %v; want one containing %q", err, tc.msg)
				}
				return
			}
			if err != nil || r.Priority != tc.want {
				t.Fatalf("priority %d, %v; want %d", r.Priority, err, tc.want)
			}
		})
	}

	g := grantFor(denied, "203.0.113.7")
	r, _ := PlanNSGGrant(g)
	want := NSGRule{Name: GrantRuleName("req-1", vmID, tcp22), Priority: 999, Direction: NSGInbound, Access: NSGAllow, Protocol: NSGProtocolTCP,
		SourcePrefixes: []string{"203.0.113.7/32"}, SourcePortRanges: []string{"*"}, DestinationPrefixes: []string{"10.0.0.4"},
		DestinationPortRanges: []string{"22"}, Description: GrantMarker("prod-web", testEnd, "alice@contoso.com", "INC-4211").String()}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("grant\n%+v\nwant\n%+v", r, want)
	}

	// Renewing keeps the priority even when a higher one has come free.
	g.Rules = append(slices.Clone(denied), r, inbound("x", 998, NSGAllow, NSGProtocolTCP, "10.9.9.9", "80"))
	g.Rules[len(denied)].Priority = 500
	g.End = testEnd.Add(time.Hour)
	renewed, err := PlanNSGGrant(g)
	if err != nil || renewed.Priority != 500 || !strings.Contains(renewed.Description, "end=2025-03-04T06:06:07Z") {
		t.Errorf("renewed %+v, %v", renewed, err)
	}
	// A grant that a new deny now shadows moves before it.
	g.Rules = append(g.Rules, inbound("block", 400, NSGDeny, NSGProtocolTCP, "*", "22"))
	moved, err := PlanNSGGrant(g)
	if err != nil || moved.Priority != 399 {
		t.Errorf("moved %+v, %v", moved, err)
	}
}

func withSource(r NSGRule, sources ...string) NSGRule {
	r.SourcePrefixes = sources
	return r
}
