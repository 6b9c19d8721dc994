package jit

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Where a crowded NSG has room only at the priorities of the policy's own
// rules, placeGroups' second attempt places the denies there (the plan
// then must be written Remove first, as NSGPlan's contract allows); where
// it has room enough without them, the first attempt's placement stays, so
// the new denies may be written before the old ones go. These layouts are
// the ones where the two attempts differ.

// ownDeny is a deny of the policy named name, from any source to the
// destinations on the port: its aggregated deny (AggregateDenyRuleName) or
// a per-machine one of earlier versions (DenyRuleName).
func ownDeny(name string, priority int, port PortProtocol, destinations ...string) NSGRule {
	return NSGRule{Name: name, Priority: priority, Direction: NSGInbound, Access: NSGDeny, Protocol: NSGProtocolOf(port.Protocol),
		SourcePrefixes: []string{"*"}, SourcePortRanges: []string{"*"}, DestinationPrefixes: destinations,
		DestinationPortRanges: []string{strconv.Itoa(port.Number)}, Description: DenyMarker("prod-web").String()}
}

// crowdedTail takes every inbound priority from 3100 to 4096 but the
// holes and those of the extra rules (fillInbound), which it adds.
func crowdedTail(holes []int, extra ...NSGRule) []NSGRule {
	return slices.DeleteFunc(fillInbound(3100, 4096, extra...), func(r NSGRule) bool {
		return strings.HasPrefix(r.Name, "filler-") && slices.Contains(holes, r.Priority)
	})
}

const (
	vm1 = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-02"
	vm2 = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-03"
)

var winrm = PortProtocol{5985, ProtocolTCP}

func TestPlanPolicyPaths_roomAtTheOwnRulesPriorities(t *testing.T) {
	web01 := func(ports ...PortProtocol) PathMachine {
		return PathMachine{Key: vmID, Ports: ports, Interfaces: []PathInterface{{IPs: []string{"10.0.0.4"}, SubnetNSG: subnetNSG}}}
	}
	web02 := PathMachine{Key: vm1, Ports: []PortProtocol{tcp22}, Interfaces: []PathInterface{{IPs: []string{"10.0.0.5"}, SubnetNSG: subnetNSG}}}
	// The bastion's access, deciding 22 (and 3389) for web-01 from
	// 10.0.1.0/26: the denies come after it, in the crowded tail.
	bastion := func(priority int, ports string) NSGRule {
		return withSource(inbound("allow-bastion", priority, NSGAllow, NSGProtocolTCP, "10.0.0.4", ports), "10.0.1.0/26")
	}
	agg := func(port PortProtocol) string { return AggregateDenyRuleName("prod-web", port, IPv4) }
	perMachine := func(machine string, port PortProtocol) string { return DenyRuleName("prod-web", machine, port) }
	legacy, ok := perMachineDenies(nil, "prod-web", []legacyMachine{
		{key: vmID, ips: []string{"10.0.0.4"}, ports: []PortProtocol{tcp22, tcp3389}},
		{key: web02.Key, ips: []string{"10.0.0.5"}, ports: []PortProtocol{tcp22}},
	})
	if !ok {
		t.Fatal("per-machine denies")
	}

	for _, tc := range []struct {
		name     string
		rules    []NSGRule
		machines []PathMachine
		// notLocked lists the machines' ports ("web-01 3389/TCP") the plan
		// cannot lock; every other port is locked.
		notLocked []string
		// reuse: some new deny takes the priority of a rule the plan
		// removes (the plan must be written Remove first); otherwise the
		// new denies may be written before the old ones go.
		reuse bool
		// moved names the policy's denies that must leave their priority
		// (a rule of others now decides their port after them); the
		// policy's other denies that stay keep theirs.
		moved []string
	}{
		{
			// Denies of earlier versions, one per machine and port, sit at
			// 3500 and 3501; the tail after the bastion is full but for
			// 3499. Only with their priorities (Remove first) do the two
			// aggregated denies fit: a window at 3499, denies at 3500 and
			// 3501. Without the second attempt, or with it holding the
			// priorities of the rules the plan removes, nothing is locked,
			// and the plan removes the old denies all the same: applying
			// it opens both ports.
			name: "only the old per-machine denies' priorities are free",
			rules: crowdedTail([]int{3499}, bastion(3100, "22 3389"),
				ownDeny(perMachine(vmID, tcp22), 3500, tcp22, "10.0.0.4"), ownDeny(perMachine(vmID, tcp3389), 3501, tcp3389, "10.0.0.4")),
			machines: []PathMachine{web01(tcp22, tcp3389)},
			reuse:    true,
		},
		{
			// The aggregated deny of 22 sits at 3300, locking web-01; the
			// bastion's allow now decides 22 at 3400, so the deny must
			// move after it, and the tail is full but for 3499 and a
			// per-machine deny of earlier versions at 3500. The first
			// attempt finds no room (3500 is not free until that deny is
			// removed) and leaves web-01 out; the second moves the deny to
			// 3500, its window at 3499, and keeps web-01 locked, which
			// must win over the first. Without it the plan removes the
			// deny locking web-01: the port opens.
			name: "a deny that must move fits only at a removed rule's priority",
			rules: crowdedTail([]int{3499}, ownDeny(agg(tcp22), 3300, tcp22, "10.0.0.4"), bastion(3400, "22"),
				ownDeny(perMachine(vmID, tcp22), 3500, tcp22, "10.0.0.4")),
			machines: []PathMachine{web01(tcp22)},
			reuse:    true,
			moved:    []string{agg(tcp22)},
		},
		{
			// The aggregated deny of 3389 sits at 3500, but an allow of
			// others now decides 3389 at 4096: nothing can lock it there,
			// and its deny goes. Its priority (held while the deny covered
			// someone) is then free once it is removed, and the deny of
			// 22, after the bastion at 3100, fits only there, its window
			// at 3499. Held as if its deny stayed, 22 is left unlocked.
			name: "the priority of a held deny that covers no one any more is free",
			rules: crowdedTail([]int{3499}, bastion(3100, "22"), ownDeny(agg(tcp3389), 3500, tcp3389, "10.0.0.4"),
				inbound("allow-rdp", 4096, NSGAllow, NSGProtocolTCP, "10.0.0.4", "3389")),
			machines:  []PathMachine{web01(tcp22, tcp3389)},
			notLocked: []string{"web-01 3389/TCP"},
			reuse:     true,
		},
		{
			// Per-machine denies of earlier versions at 1000-1002 in an
			// NSG with room; web-01's 3389 cannot be locked (decided at
			// 4096), so the first attempt leaves a member out and the
			// second runs: it would lock no more, taking 1000, an old
			// deny's priority. The first attempt's placement stays, at
			// 1003: the new deny can be written before the old ones go,
			// and 22 never opens. A second attempt winning on a tie breaks
			// that.
			name:      "as much locked either way: the first attempt stays",
			rules:     append(slices.Clone(legacy), inbound("allow-rdp", 4096, NSGAllow, NSGProtocolTCP, "10.0.0.4", "3389")),
			machines:  []PathMachine{web01(tcp22, tcp3389), web02},
			notLocked: []string{"web-01 3389/TCP"},
		},
		{
			// The aggregated denies of 22 (at 3300, covering both
			// machines) and of 3389 (at 3310) lock web-01 and web-02;
			// the bastion's allow now decides 22 for web-01 at 3400, and
			// the tail is full but for 3499 and web-01's per-machine deny
			// of earlier versions at 3500. The second attempt moves the
			// deny of 22 there, for both machines, and must win: it keeps
			// more of what is locked (the first keeps the deny of 22 at
			// 3300 for web-02 alone, web-01 left out). The deny of 3389
			// stays where it is, and so does web-01's lock of it.
			name: "a deny that stays keeps its priority while another moves to a removed rule's",
			rules: crowdedTail([]int{3499}, ownDeny(agg(tcp22), 3300, tcp22, "10.0.0.4", "10.0.0.5"), ownDeny(agg(tcp3389), 3310, tcp3389, "10.0.0.4"),
				bastion(3400, "22"), ownDeny(perMachine(vmID, tcp22), 3500, tcp22, "10.0.0.4")),
			machines: []PathMachine{web01(tcp22, tcp3389), web02},
			reuse:    true,
			moved:    []string{agg(tcp22)},
		},
		{
			// web-01 and web-02 have 5985 locked at 4095, after the
			// allow of others deciding it at 4092, its window at 4093;
			// web-01 has 22 locked at 3300, and web-02 and web-03 join
			// it, but an allow now decides 22 at 4089 for all three. The
			// tail is full but for 4093. The first attempt cannot move
			// the deny of 22 (4095 is not free while the deny of 5985
			// holds it) and keeps 5985 locked. The second, with the deny
			// of 5985 gone, would move the deny of 22 to 4095, window at
			// 4093: three ports locked instead of two, but one of them
			// was locked, and the two of 5985 would open. The first must
			// win: a plan never unlocks what it locks to lock others.
			name: "more locked, but less of what is locked: the first attempt stays",
			rules: crowdedTail([]int{4093}, ownDeny(agg(tcp22), 3300, tcp22, "10.0.0.4"),
				withSource(inbound("allow-bastion", 4089, NSGAllow, NSGProtocolTCP, "10.0.0.0/24", "22"), "10.0.1.0/26"),
				withSource(inbound("allow-winrm", 4092, NSGAllow, NSGProtocolTCP, "10.0.0.0/24", "5985"), "10.0.1.0/26"),
				ownDeny(agg(winrm), 4095, winrm, "10.0.0.4", "10.0.0.5")),
			machines: []PathMachine{web01(tcp22, winrm), {Key: vm1, Ports: []PortProtocol{tcp22, winrm}, Interfaces: web02.Interfaces},
				{Key: vm2, Ports: []PortProtocol{tcp22}, Interfaces: []PathInterface{{IPs: []string{"10.0.0.6"}, SubnetNSG: subnetNSG}}}},
			notLocked: []string{"web-01 22/TCP", "web-02 22/TCP", "web-03 22/TCP"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := PolicyPathInput{Policy: "prod-web", NSGs: map[string][]NSGRule{subnetNSG: tc.rules}, Machines: tc.machines}
			plan := PlanPolicyPaths(in)
			if HasError(plan.Findings) {
				t.Fatalf("errors %+v", plan.Findings)
			}
			np := plan.NSGs[subnetNSG]
			checkLockedAsSaid(t, plan, tc.machines, tc.notLocked)

			// NSGPlan's contract: no new deny collides with a rule left
			// after Remove; reusing a removed rule's priority only when
			// that locks more.
			removed := map[string]bool{}
			for _, r := range np.Remove {
				removed[r.Name] = true
			}
			reuse := false
			for i, a := range np.Add {
				for _, r := range tc.rules {
					if r.inbound() && r.Priority == a.Priority && r.Name != a.Name {
						if !removed[r.Name] {
							t.Errorf("deny %s at %d collides with %s, which stays", a.Name, a.Priority, r.Name)
						}
						reuse = true
					}
				}
				if slices.ContainsFunc(np.Add[:i], func(b NSGRule) bool { return b.Priority == a.Priority }) {
					t.Errorf("two denies at %d", a.Priority)
				}
			}
			if reuse != tc.reuse {
				t.Errorf("new denies take the priorities of removed rules: %v, want %v (add %v, remove %v)", reuse, tc.reuse, priorities(np.Add), priorities(np.Remove))
			}

			// The policy's denies that need not move keep their priority.
			now := append(slices.Clone(np.Add), np.Keep...)
			for _, r := range tc.rules {
				if !ownedBy(r, "prod-web") || removed[r.Name] {
					continue
				}
				i := slices.IndexFunc(now, func(a NSGRule) bool { return a.Name == r.Name })
				if i >= 0 && (now[i].Priority != r.Priority) != slices.Contains(tc.moved, r.Name) {
					t.Errorf("deny %s at %d, now at %d; want it moved: %v", r.Name, r.Priority, now[i].Priority, slices.Contains(tc.moved, r.Name))
				}
			}

			after := applyNSGPlanRules(tc.rules, np)
			checkFirstMatches(t, tc.rules, after, plan, tc.machines)

			// Planned again once applied: nothing to do, and as much locked.
			in.NSGs[subnetNSG] = after
			again := PlanPolicyPaths(in)
			if np := again.NSGs[subnetNSG]; len(np.Add)+len(np.Remove) != 0 {
				t.Errorf("second plan adds %v, removes %v", priorities(np.Add), priorities(np.Remove))
			}
			checkLockedAsSaid(t, again, tc.machines, tc.notLocked)
		})
	}
}

// checkLockedAsSaid: every port of the machines is covered by the
// policy's deny in the subnet NSG, but those of notLocked, which are
// reported as not locked.
func checkLockedAsSaid(t *testing.T, plan PolicyPathPlan, machines []PathMachine, notLocked []string) {
	t.Helper()
	label := func(machine string, port PortProtocol) string {
		return machineShortName(machine) + " " + portLabel(port)
	}
	var locked, reported []string
	for _, d := range plan.Denies {
		for _, m := range d.MachineKeys {
			locked = append(locked, label(m, d.Port))
		}
	}
	for _, e := range exposuresOf(plan, ExposureNotLocked) {
		reported = append(reported, label(e.Machine, e.Port))
	}
	var want []string
	for _, m := range machines {
		for _, p := range m.Ports {
			if l := label(m.Key, p); !slices.Contains(notLocked, l) {
				want = append(want, l)
			}
		}
	}
	slices.Sort(locked)
	slices.Sort(reported)
	slices.Sort(want)
	if !slices.Equal(locked, want) || !slices.Equal(reported, slices.Sorted(slices.Values(notLocked))) {
		t.Errorf("locked %v, reported not locked %v; want %v locked, %v not", locked, reported, want, notLocked)
	}
}

// checkFirstMatches: traffic to the machines' ports from the bastion, from
// elsewhere in the network and from the Internet is first matched after
// the plan by the rule of others that matches it first among them alone,
// if one does (the rules of others keep precedence); else, on a port the
// plan locks, by the policy's deny.
func checkFirstMatches(t *testing.T, before, after []NSGRule, plan PolicyPathPlan, machines []PathMachine) {
	t.Helper()
	id := strings.ToLower(subnetNSG)
	others := slices.DeleteFunc(slices.Clone(before), func(r NSGRule) bool { return ownedBy(r, "prod-web") })
	wo, wa := newWorld(map[string][]NSGRule{id: others}, nil), newWorld(map[string][]NSGRule{id: after}, nil)
	lockedBy := map[string]string{}
	for _, d := range plan.Denies {
		for _, m := range d.MachineKeys {
			lockedBy[strings.ToLower(m)+"|"+portLabel(d.Port)] = d.Name
		}
	}
	for _, m := range machines {
		for _, ip := range m.Interfaces[0].IPs {
			for _, port := range m.Ports {
				for _, src := range []string{"10.0.1.5", "10.2.0.9", "203.0.113.7"} {
					pk := Packet{Direction: NSGInbound, Source: netip.MustParseAddr(src), Destination: netip.MustParseAddr(ip), Protocol: port.Protocol, SourcePort: 50000, DestinationPort: port.Number}
					o, a := wo.first(id, &resolution{all: true}, pk), wa.first(id, &resolution{all: true}, pk)
					deny := lockedBy[strings.ToLower(m.Key)+"|"+portLabel(port)]
					switch {
					case o.priority < 65000 && (a.name != o.name || a.priority != o.priority):
						t.Errorf("%s to %s:%d first matched by %q (%d) of others, by %q (%d) after the plan", src, ip, port.Number, o.name, o.priority, a.name, a.priority)
					case o.priority >= 65000 && deny != "" && a.name != deny:
						t.Errorf("%s to %s:%d first matched by %q after the plan, not the policy's deny %q", src, ip, port.Number, a.name, deny)
					}
				}
			}
		}
	}
}
