package jit

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// SGDefaultRuleLimit is EC2's default quota of inbound rules per security
// group. EC2 counts IPv4 and IPv6 rules separately, and a prefix-list or
// group source counts in both.
const SGDefaultRuleLimit = 60

// SGPlanInput is what PlanSecurityGroup needs to know about one security
// group.
type SGPlanInput struct {
	GroupID string
	// Rules are the group's current inbound rules.
	Rules []SGRule
	// Locked are the policy's ports; "*" locks TCP and UDP.
	Locked []PortProtocol
	// Backup and Remainders are what the previous plan recorded (from state,
	// or from the group's backup tags): the original rules the policy
	// revoked, and the rules it authorised in their place. Both are empty
	// the first time.
	Backup     []SGRule
	Remainders []SGRule
	// RuleLimit is the inbound rule quota per address family; 0 means
	// SGDefaultRuleLimit.
	RuleLimit int
}

// SGPlan is what to do to one security group, and what to record about it.
//
// The caller records before it writes, so that an interrupted apply can be
// planned again and restored: first the backup tags (SGBackupTags) holding
// the recorded and the planned Backup and Remainders together, then Revoke,
// then Authorize, then the planned Backup and Remainders alone. Revoking
// first is required: a rule to authorise may share its permission with one
// being revoked (an original restored in place of a remainder), and the
// group then never holds more rules than the count checked against the
// limit.
type SGPlan struct {
	// Revoke are current rules, with their IDs.
	Revoke []SGRule
	// Authorize are rules to add; they have no ID yet.
	Authorize []SGRule
	// Backup are the original rules that stay revoked after the plan,
	// without IDs: what a restore re-adds.
	Backup []SGRule
	// Remainders are the rules standing in for backed-up ones after the
	// plan, without IDs: what a restore revokes. They carry their original's
	// description unchanged, so only this record tells them apart.
	Remainders []SGRule
	Warnings   []string
}

// PlanSecurityGroup plans the revocation of every inbound rule that opens a
// locked port, whatever its source. A rule exactly on locked ports is
// revoked; a wider one (a port range, all ports, all protocols) is revoked
// and what it opened besides the locked ports is authorised again with the
// same source and description, so only the locked ports close. All
// protocols ("-1") cannot be expressed minus a port, so such a rule is
// replaced by TCP and UDP without the locked ports and ICMP (ICMPv6 for an
// IPv6 source, both for a prefix list or group), and a warning names what
// stops being allowed.
//
// Every revoked rule joins the backup, unless the backup already holds one
// with its permission: a rule re-added out of band is revoked again, and
// the backup keeps the rule the group had before the policy. A backed-up
// rule that no longer opens a locked port (the port left the policy) is
// authorised again and leaves the backup, and remainders are recut when
// the locked ports change. Planning again after applying the plan changes
// nothing.
//
// When the plan would take the group past the rule limit, PlanSecurityGroup
// returns an error naming the group, the counts and the limit, and no plan.
func PlanSecurityGroup(in SGPlanInput) (SGPlan, error) {
	locks, err := newSGLocks(in.Locked)
	if err != nil {
		return SGPlan{}, fmt.Errorf("security group %s: %w", in.GroupID, err)
	}
	return planSG("security group "+in.GroupID+": ", in.Rules, locks, in.Backup, in.Remainders, cmp.Or(in.RuleLimit, SGDefaultRuleLimit))
}

// PlanSecurityGroupRestore plans giving a group back the rules the policy
// revoked: the recorded remainders still present are revoked, the
// backed-up rules not present are authorised. Applying it yields the
// group's original rules exactly (IDs aside), and running it again after an
// interruption finishes the job. Revoke before Authorize: a remainder may
// share its permission with a backed-up rule. A backed-up rule whose
// permission someone else's rule now holds cannot be added back; a warning
// says so. No limit is checked: the rules were there before.
func PlanSecurityGroupRestore(current, backup, remainders []SGRule) (SGPlan, error) {
	return planSG("", current, sgLocks{}, backup, remainders, 0)
}

// planSG computes the rules the group should hold (everyone else's rules
// that open no locked port, the backed-up originals that open none, and the
// remainders of the others) and the difference from what it holds. limit 0
// means none.
func planSG(where string, current []SGRule, locks sgLocks, backup, remainders []SGRule, limit int) (SGPlan, error) {
	for _, list := range []struct {
		name  string
		rules []SGRule
	}{{"inbound rule", current}, {"backed-up rule", backup}, {"recorded remainder", remainders}} {
		for _, r := range list.rules {
			if err := checkSGRule(r); err != nil {
				return SGPlan{}, fmt.Errorf("%s%s: %w", where, list.name, err)
			}
		}
	}

	// The group can hold one rule per permission, so the backup keeps one
	// too.
	var originals []SGRule
	backedUp := map[sgPermission]bool{}
	for _, r := range canonicalSGRules(backup) {
		if !backedUp[r.permission()] {
			backedUp[r.permission()] = true
			originals = append(originals, r)
		}
	}

	// A recorded remainder is the policy's only while the original it was
	// cut from is backed up. Otherwise it is treated as anyone's rule, so a
	// lost or stale record never makes the planner revoke access it could
	// not give back.
	recorded := map[sgIdentity]bool{}
	for _, r := range remainders {
		recorded[r.identity()] = true
	}
	var plan SGPlan
	var ours []SGRule
	want := map[sgPermission]SGRule{} // the rules the group should hold
	stays := map[sgIdentity]bool{}    // current rules that are not revoked
	for _, r := range current {
		if recorded[r.identity()] && slices.ContainsFunc(originals, func(o SGRule) bool { return sgCutFrom(o, r) }) {
			ours = append(ours, r)
			continue
		}
		opened := locks.opened(r)
		if len(opened) == 0 {
			want[r.permission()] = r
			stays[r.identity()] = true
			continue
		}
		plan.Revoke = append(plan.Revoke, r)
		if !backedUp[r.permission()] {
			backedUp[r.permission()] = true
			original := r
			original.ID = ""
			originals = append(originals, original)
		}
		if r.permission().protocol == sgAll {
			plan.Warnings = append(plan.Warnings, sgAllProtocolsWarning(where, r, opened))
		}
	}

	var remainderCandidates []SGRule
	for _, o := range originals {
		if len(locks.opened(o)) > 0 {
			plan.Backup = append(plan.Backup, o)
			remainderCandidates = append(remainderCandidates, locks.remainder(o)...)
			continue
		}
		if w, taken := want[o.permission()]; taken {
			if w.Description != o.Description {
				plan.Warnings = append(plan.Warnings, fmt.Sprintf("%sbacked-up rule %s cannot be added back: rule %s allows the same traffic, and a group holds one rule per permission", where, o, w))
			}
			continue
		}
		want[o.permission()] = o
	}

	// Two originals may leave the same permission; the group holds it once.
	// A remainder already present wins, so an original joining the backup
	// never swaps it for its double.
	present := map[sgIdentity]bool{}
	for _, r := range ours {
		present[r.identity()] = true
	}
	for _, preferPresent := range []bool{true, false} {
		for _, r := range remainderCandidates {
			if _, taken := want[r.permission()]; !taken && present[r.identity()] == preferPresent {
				want[r.permission()] = r
				plan.Remainders = append(plan.Remainders, r)
			}
		}
	}

	for _, r := range ours {
		if w, ok := want[r.permission()]; ok && w.identity() == r.identity() {
			stays[r.identity()] = true
		} else {
			plan.Revoke = append(plan.Revoke, r)
		}
	}
	for _, w := range want {
		if !stays[w.identity()] {
			plan.Authorize = append(plan.Authorize, w)
		}
	}

	if limit > 0 {
		if err := checkSGRuleLimit(where, current, plan, limit); err != nil {
			return SGPlan{}, err
		}
	}
	for _, list := range []*[]SGRule{&plan.Revoke, &plan.Authorize, &plan.Backup, &plan.Remainders} {
		slices.SortFunc(*list, compareSGRules)
	}
	return plan, nil
}

// sgCutFrom reports whether r can be a remainder of original o: same source
// and description, and traffic o allowed.
func sgCutFrom(o, r SGRule) bool {
	po, pr := o.permission(), r.permission()
	if po.source != pr.source || o.Description != r.Description {
		return false
	}
	return po.protocol == sgAll || po.protocol == pr.protocol && (po.protocol == sgTCP || po.protocol == sgUDP) && po.from <= pr.from && pr.to <= po.to
}

// checkSGRuleLimit refuses a plan that would take the group past the limit
// before anything is written. EC2 checks the quota only when rules are
// added, so a plan that adds no rule to an address family already over it
// is let through.
func checkSGRuleLimit(where string, current []SGRule, plan SGPlan, limit int) error {
	before4, before6 := sgRuleWeights(current)
	revoked4, revoked6 := sgRuleWeights(plan.Revoke)
	added4, added6 := sgRuleWeights(plan.Authorize)
	for _, family := range []struct {
		name                   string
		before, revoked, added int
	}{{"IPv4", before4, revoked4, added4}, {"IPv6", before6, revoked6, added6}} {
		if after := family.before - family.revoked + family.added; after > limit && after > family.before {
			return fmt.Errorf("%slocking the ports would leave %d inbound %s rules (%d now, %d revoked, %d authorised to keep the other ports open), more than the limit of %d; remove or merge rules, or have the quota raised and set the limit",
				where, after, family.name, family.before, family.revoked, family.added, limit)
		}
	}
	return nil
}

// sgRuleWeights counts rules as EC2's quota does: a prefix-list or group
// source counts for both address families.
func sgRuleWeights(rules []SGRule) (ipv4, ipv6 int) {
	for _, r := range rules {
		switch r.source().kind {
		case sgFromIPv4:
			ipv4++
		case sgFromIPv6:
			ipv6++
		default:
			ipv4++
			ipv6++
		}
	}
	return ipv4, ipv6
}

func sgAllProtocolsWarning(where string, r SGRule, opened []PortProtocol) string {
	kept, numbers := "TCP, UDP and ICMP", "1, 6 and 17"
	switch r.source().kind {
	case sgFromIPv6:
		kept, numbers = "TCP, UDP and ICMPv6", "6, 17 and 58"
	case sgFromPrefixList, sgFromGroup:
		kept, numbers = "TCP, UDP, ICMP and ICMPv6", "1, 6, 17 and 58"
	}
	labels := make([]string, len(opened))
	for i, p := range opened {
		labels[i] = strconv.Itoa(p.Number) + "/" + string(p.Protocol)
	}
	return fmt.Sprintf("%srule %s allows all protocols, so also locked %s; it is replaced by %s rules without the locked ports, so every other IP protocol (ESP, AH, GRE, SCTP: every protocol number but %s) stops being allowed from %s",
		where, r, strings.Join(labels, ", "), kept, numbers, r.source())
}

// sgLocks are the locked ports by protocol, sorted.
type sgLocks struct{ tcp, udp []int }

func newSGLocks(ports []PortProtocol) (sgLocks, error) {
	var l sgLocks
	for _, p := range ports {
		if p.Number < 0 || p.Number > 65535 {
			return sgLocks{}, fmt.Errorf("locked port %d is outside 0-65535", p.Number)
		}
		if !slices.Contains(Protocols, p.Protocol) {
			return sgLocks{}, fmt.Errorf("locked port %d has protocol %q, not TCP, UDP or *", p.Number, p.Protocol)
		}
		if p.Protocol.Covers(ProtocolTCP) {
			l.tcp = append(l.tcp, p.Number)
		}
		if p.Protocol.Covers(ProtocolUDP) {
			l.udp = append(l.udp, p.Number)
		}
	}
	slices.Sort(l.tcp)
	slices.Sort(l.udp)
	l.tcp, l.udp = slices.Compact(l.tcp), slices.Compact(l.udp)
	return l, nil
}

func (l sgLocks) of(protocol string) []int {
	switch protocol {
	case sgTCP:
		return l.tcp
	case sgUDP:
		return l.udp
	}
	return nil
}

// opened lists the locked ports r opens.
func (l sgLocks) opened(r SGRule) []PortProtocol {
	var out []PortProtocol
	p := r.permission()
	for _, proto := range []struct {
		name     string
		protocol Protocol
	}{{sgTCP, ProtocolTCP}, {sgUDP, ProtocolUDP}} {
		if p.protocol != sgAll && p.protocol != proto.name {
			continue
		}
		for _, n := range l.of(proto.name) {
			if p.protocol == sgAll || p.from <= n && n <= p.to {
				out = append(out, PortProtocol{n, proto.protocol})
			}
		}
	}
	return out
}

// remainder is what r, a TCP, UDP or all-protocols rule, still allows
// once the locked ports are taken out, as rules with r's source and
// description.
func (l sgLocks) remainder(r SGRule) []SGRule {
	p := r.permission()
	var out []SGRule
	add := func(protocol string, from, to int) {
		out = append(out, SGRule{IPProtocol: protocol, FromPort: from, ToPort: to, Description: r.Description}.withSource(p.source))
	}
	addRanges := func(protocol string, from, to int) {
		for _, n := range l.of(protocol) {
			if n < from || n > to {
				continue
			}
			if from < n {
				add(protocol, from, n-1)
			}
			from = n + 1
		}
		if from <= to {
			add(protocol, from, to)
		}
	}
	switch p.protocol {
	case sgTCP, sgUDP:
		addRanges(p.protocol, p.from, p.to)
	case sgAll:
		addRanges(sgTCP, 0, 65535)
		addRanges(sgUDP, 0, 65535)
		if p.source.kind != sgFromIPv6 {
			add(sgICMP, -1, -1)
		}
		if p.source.kind != sgFromIPv4 {
			add(sgICMPv6, -1, -1)
		}
	}
	return out
}

// canonicalSGRules returns a copy sorted, without IDs.
func canonicalSGRules(rules []SGRule) []SGRule {
	out := slices.Clone(rules)
	for i := range out {
		out[i].ID = ""
	}
	slices.SortFunc(out, compareSGRules)
	return out
}
