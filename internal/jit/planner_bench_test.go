package jit

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// benchNSG is an NSG of n inbound rules written by people: a mix of Allows
// and Denies on assorted ports and destinations, every fifth one deciding
// one of the locked ports, so the planner has real precedence work to do.
func benchNSG(n int) []NSGRule {
	rules := make([]NSGRule, n)
	for i := range rules {
		port := strconv.Itoa(8000 + i%500)
		if i%5 == 0 {
			port = []string{"22", "3389", "5985", "5986"}[i/5%4]
		}
		access := NSGAllow
		if i%3 == 0 {
			access = NSGDeny
		}
		rules[i] = NSGRule{
			Name: fmt.Sprintf("rule-%d", i), Priority: 100 + i*3, Direction: NSGInbound, Access: access, Protocol: NSGProtocolTCP,
			SourcePrefixes: []string{fmt.Sprintf("10.%d.0.0/16", i%200)}, SourcePortRanges: []string{"*"},
			DestinationPrefixes: []string{fmt.Sprintf("10.0.%d.0/24", i%8)}, DestinationPortRanges: []string{port},
		}
	}
	return rules
}

// benchMachines are machines behind the NSG (as their subnet's), each
// locking Defender's defaults.
func benchMachines(n int) []PathMachine {
	machines := make([]PathMachine, n)
	for i := range machines {
		machines[i] = PathMachine{
			Key:        fmt.Sprintf("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-%d", i),
			Ports:      []PortProtocol{{22, ProtocolTCP}, {3389, ProtocolTCP}, {5985, ProtocolTCP}, {5986, ProtocolTCP}},
			Interfaces: []PathInterface{{IPs: []string{fmt.Sprintf("10.0.%d.%d", i%8, 4+i)}, SubnetNSG: "nsg"}},
		}
	}
	return machines
}

// BenchmarkPlanPolicyPaths plans 20 machines' denies in NSGs of growing
// size; the time per plan should grow about linearly with the rule count.
func BenchmarkPlanPolicyPaths(b *testing.B) {
	machines := benchMachines(20)
	for _, n := range []int{10, 100, 900} {
		in := PolicyPathInput{Policy: "bench", Machines: machines, NSGs: map[string][]NSGRule{"nsg": benchNSG(n)}}
		b.Run("rules="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if plan := PlanPolicyPaths(in); HasError(plan.Findings) {
					b.Fatal(plan.Findings)
				}
			}
		})
	}
}

// BenchmarkPlanNSGGrants places one grant in an NSG of 900 rules holding
// the policy's denies.
func BenchmarkPlanNSGGrants(b *testing.B) {
	machines := benchMachines(20)
	rules := benchNSG(900)
	plan := PlanPolicyPaths(PolicyPathInput{Policy: "bench", Machines: machines, NSGs: map[string][]NSGRule{"nsg": rules}})
	if HasError(plan.Findings) {
		b.Fatal(plan.Findings)
	}
	rules = applyNSGPlanRules(rules, plan.NSGs["nsg"])
	end := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		_, err := PlanNSGGrants(NSGGrant{
			NSG: "nsg", Rules: rules, Policy: "bench", Request: "r", Machine: machines[7].Key, PrivateIPs: machines[7].Interfaces[0].IPs,
			Port: PortProtocol{22, ProtocolTCP}, Source: "203.0.113.7/32", End: end, Requestor: "alice@example.com", Justification: "bench",
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlanSecurityGroup revokes and splits in a group near EC2's
// limit of 60 inbound rules.
func BenchmarkPlanSecurityGroup(b *testing.B) {
	var rules []SGRule
	for i := range 50 {
		rules = append(rules, sgr(fmt.Sprintf("sgr-%d", i), "tcp", i*100, i*100+150, fmt.Sprintf("10.%d.0.0/16", i), "rule "+strconv.Itoa(i)))
	}
	in := SGPlanInput{GroupID: sgTestGroup, Rules: rules, Locked: []PortProtocol{{22, ProtocolTCP}, {3389, ProtocolTCP}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PlanSecurityGroup(in); err != nil {
			b.Fatal(err)
		}
	}
}
