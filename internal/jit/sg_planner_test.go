package jit

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const sgTestGroup = "sg-0123456789abcdef0"

// sgr builds a rule; the kind of source follows from its form, as in the
// backup tags.
func sgr(id, protocol string, from, to int, source, description string) SGRule {
	return SGRule{ID: id, IPProtocol: protocol, FromPort: from, ToPort: to, Description: description}.withSource(sgSourceOf(source))
}

func sgTCPPort(n int) PortProtocol { return PortProtocol{n, ProtocolTCP} }

// sgFakeGroup does to a group's rules what EC2 does: revokes by ID,
// authorises with a new ID, stores protocols and ports the way EC2 reports
// them, and refuses a permission the group already holds.
type sgFakeGroup struct {
	rules []SGRule
	ids   int
}

func newSGFakeGroup(rules ...SGRule) *sgFakeGroup {
	g := &sgFakeGroup{}
	for _, r := range rules {
		if r.ID == "" {
			g.authorize(nil, r)
		} else {
			g.rules = append(g.rules, sgStored(r))
		}
	}
	return g
}

// sgStored is r as EC2 reports it once stored.
func sgStored(r SGRule) SGRule {
	p := r.permission()
	r.IPProtocol, r.FromPort, r.ToPort = p.protocol, p.from, p.to
	return r
}

func (g *sgFakeGroup) revoke(t *testing.T, r SGRule) {
	i := slices.IndexFunc(g.rules, func(c SGRule) bool { return c.ID == r.ID })
	if i < 0 {
		t.Fatalf("revoking %s: InvalidPermission.NotFound", r)
	}
	g.rules = slices.Delete(g.rules, i, i+1)
}

func (g *sgFakeGroup) authorize(t *testing.T, r SGRule) {
	if slices.ContainsFunc(g.rules, func(c SGRule) bool { return c.permission() == r.permission() }) {
		t.Fatalf("authorising %s: InvalidPermission.Duplicate in %v", r, g.rules)
	}
	g.ids++
	r = sgStored(r)
	r.ID = fmt.Sprintf("sgr-%017x", g.ids)
	g.rules = append(g.rules, r)
}

func (g *sgFakeGroup) apply(t *testing.T, plan SGPlan) {
	t.Helper()
	for _, r := range plan.Revoke {
		g.revoke(t, r)
	}
	for _, r := range plan.Authorize {
		g.authorize(t, r)
	}
}

// sgWithoutIDs is the multiset of rules as restore promises it: sorted,
// IDs aside, as EC2 stores them.
func sgWithoutIDs(rules []SGRule) []SGRule {
	out := make([]SGRule, len(rules))
	for i, r := range rules {
		out[i] = sgStored(r)
	}
	return canonicalSGRules(out)
}

func sgIDs(rules []SGRule) []string {
	var ids []string
	for _, r := range rules {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestPlanSecurityGroup_revokesOnlyTheLockedPorts(t *testing.T) {
	const office, any4, any6 = "10.0.0.0/8", "0.0.0.0/0", "2001:db8::/32"
	const pl, group = "pl-0123456789abcdef0", "sg-0fedcba9876543210"
	tests := []struct {
		name          string
		rules         []SGRule
		locked        []PortProtocol
		wantRevoke    []string
		wantAuthorize []SGRule
		wantWarnings  []string // substrings of the only warning
	}{{
		name:       "rule exactly on the port: revoked, no remainder",
		rules:      []SGRule{sgr("sgr-1", "tcp", 22, 22, any4, "ssh")},
		locked:     []PortProtocol{sgTCPPort(22)},
		wantRevoke: []string{"sgr-1"},
	}, {
		name:          "all TCP ports: split around the port",
		rules:         []SGRule{sgr("sgr-1", "tcp", 0, 65535, office, "office")},
		locked:        []PortProtocol{sgTCPPort(22)},
		wantRevoke:    []string{"sgr-1"},
		wantAuthorize: []SGRule{sgr("", "tcp", 0, 21, office, "office"), sgr("", "tcp", 23, 65535, office, "office")},
	}, {
		name:       "several locked ports in one range: one piece between each",
		rules:      []SGRule{sgr("sgr-1", "tcp", 1, 10000, office, "admin")},
		locked:     []PortProtocol{sgTCPPort(5986), sgTCPPort(22), sgTCPPort(3389), sgTCPPort(5985)},
		wantRevoke: []string{"sgr-1"},
		wantAuthorize: []SGRule{sgr("", "tcp", 1, 21, office, "admin"), sgr("", "tcp", 23, 3388, office, "admin"),
			sgr("", "tcp", 3390, 5984, office, "admin"), sgr("", "tcp", 5987, 10000, office, "admin")},
	}, {
		name:          "edge port 0: one piece",
		rules:         []SGRule{sgr("sgr-1", "tcp", 0, 65535, office, "")},
		locked:        []PortProtocol{sgTCPPort(0)},
		wantRevoke:    []string{"sgr-1"},
		wantAuthorize: []SGRule{sgr("", "tcp", 1, 65535, office, "")},
	}, {
		name:          "edge port 65535: one piece",
		rules:         []SGRule{sgr("sgr-1", "udp", 0, 65535, office, "")},
		locked:        []PortProtocol{{65535, ProtocolUDP}},
		wantRevoke:    []string{"sgr-1"},
		wantAuthorize: []SGRule{sgr("", "udp", 0, 65534, office, "")},
	}, {
		name:          "ranges starting and ending on the port: one piece each",
		rules:         []SGRule{sgr("sgr-1", "tcp", 22, 80, office, "a"), sgr("sgr-2", "tcp", 1, 22, office, "b")},
		locked:        []PortProtocol{sgTCPPort(22)},
		wantRevoke:    []string{"sgr-1", "sgr-2"},
		wantAuthorize: []SGRule{sgr("", "tcp", 23, 80, office, "a"), sgr("", "tcp", 1, 21, office, "b")},
	}, {
		name:          "TCP -1 -1 means all ports",
		rules:         []SGRule{sgr("sgr-1", "tcp", -1, -1, office, "")},
		locked:        []PortProtocol{sgTCPPort(22)},
		wantRevoke:    []string{"sgr-1"},
		wantAuthorize: []SGRule{sgr("", "tcp", 0, 21, office, ""), sgr("", "tcp", 23, 65535, office, "")},
	}, {
		name: "UDP and TCP are told apart",
		rules: []SGRule{sgr("sgr-1", "udp", 22, 22, office, ""), sgr("sgr-2", "tcp", 53, 53, office, ""),
			sgr("sgr-3", "udp", 53, 53, office, "dns")},
		locked:     []PortProtocol{sgTCPPort(22), {53, ProtocolUDP}},
		wantRevoke: []string{"sgr-3"},
	}, {
		name: `"*" locks TCP and UDP`,
		rules: []SGRule{sgr("sgr-1", "tcp", 22, 22, office, ""), sgr("sgr-2", "udp", 22, 22, office, ""),
			sgr("sgr-3", "udp", 0, 65535, any4, "")},
		locked:        []PortProtocol{{22, ProtocolAny}},
		wantRevoke:    []string{"sgr-1", "sgr-2", "sgr-3"},
		wantAuthorize: []SGRule{sgr("", "udp", 0, 21, any4, ""), sgr("", "udp", 23, 65535, any4, "")},
	}, {
		name:       "all protocols from IPv4: TCP, UDP and ICMP kept, the rest named",
		rules:      []SGRule{sgr("sgr-1", "-1", -1, -1, office, "vpn")},
		locked:     []PortProtocol{sgTCPPort(22), {53, ProtocolUDP}},
		wantRevoke: []string{"sgr-1"},
		wantAuthorize: []SGRule{sgr("", "tcp", 0, 21, office, "vpn"), sgr("", "tcp", 23, 65535, office, "vpn"),
			sgr("", "udp", 0, 52, office, "vpn"), sgr("", "udp", 54, 65535, office, "vpn"), sgr("", "icmp", -1, -1, office, "vpn")},
		wantWarnings: []string{sgTestGroup, "sgr-1", "all protocols", "22/TCP, 53/UDP", "TCP, UDP and ICMP rules", "ESP", "GRE", "but 1, 6 and 17", "from 10.0.0.0/8"},
	}, {
		name:       "all protocols from IPv6: ICMPv6 kept",
		rules:      []SGRule{sgr("sgr-1", "-1", -1, -1, any6, "")},
		locked:     []PortProtocol{sgTCPPort(22)},
		wantRevoke: []string{"sgr-1"},
		wantAuthorize: []SGRule{sgr("", "tcp", 0, 21, any6, ""), sgr("", "tcp", 23, 65535, any6, ""),
			sgr("", "udp", 0, 65535, any6, ""), sgr("", "icmpv6", -1, -1, any6, "")},
		wantWarnings: []string{"sgr-1", "TCP, UDP and ICMPv6 rules", "ESP", "but 6, 17 and 58", "from 2001:db8::/32"},
	}, {
		name:       "all protocols from a prefix list: both ICMPs kept",
		rules:      []SGRule{sgr("sgr-1", "-1", -1, -1, pl, "")},
		locked:     []PortProtocol{{22, ProtocolAny}},
		wantRevoke: []string{"sgr-1"},
		wantAuthorize: []SGRule{sgr("", "tcp", 0, 21, pl, ""), sgr("", "tcp", 23, 65535, pl, ""),
			sgr("", "udp", 0, 21, pl, ""), sgr("", "udp", 23, 65535, pl, ""),
			sgr("", "icmp", -1, -1, pl, ""), sgr("", "icmpv6", -1, -1, pl, "")},
		wantWarnings: []string{"22/TCP, 22/UDP", "TCP, UDP, ICMP and ICMPv6", "but 1, 6, 17 and 58", "from prefix list " + pl},
	}, {
		name:          "prefix-list and group sources are revoked like CIDRs",
		rules:         []SGRule{sgr("sgr-1", "tcp", 22, 22, pl, "bastions"), sgr("sgr-2", "tcp", 0, 1024, group, "peers")},
		locked:        []PortProtocol{sgTCPPort(22)},
		wantRevoke:    []string{"sgr-1", "sgr-2"},
		wantAuthorize: []SGRule{sgr("", "tcp", 0, 21, group, "peers"), sgr("", "tcp", 23, 1024, group, "peers")},
	}, {
		name: "unrelated rules are untouched",
		rules: []SGRule{sgr("sgr-1", "tcp", 80, 80, any4, "web"), sgr("sgr-2", "tcp", 443, 443, any6, "web"),
			sgr("sgr-3", "tcp", 23, 3388, office, ""), sgr("sgr-4", "tcp", 0, 21, office, ""),
			sgr("sgr-5", "icmp", 8, -1, any4, "ping"), sgr("sgr-6", "icmpv6", -1, -1, any6, ""),
			sgr("sgr-7", "50", -1, -1, office, "esp"), sgr("sgr-8", "47", -1, -1, pl, "gre"), sgr("sgr-9", "udp", 1000, 2000, group, "")},
		locked: []PortProtocol{sgTCPPort(22), sgTCPPort(3389)},
	}, {
		name: "protocol numbers 6 and 17 are TCP and UDP; 1 and 58 are ICMP",
		rules: []SGRule{sgr("sgr-1", "6", 0, 65535, office, ""), sgr("sgr-2", "17", 53, 53, office, ""),
			sgr("sgr-3", "1", -1, -1, office, ""), sgr("sgr-4", "58", -1, -1, any6, "")},
		locked:        []PortProtocol{sgTCPPort(22), {53, ProtocolUDP}},
		wantRevoke:    []string{"sgr-1", "sgr-2"},
		wantAuthorize: []SGRule{sgr("", "tcp", 0, 21, office, ""), sgr("", "tcp", 23, 65535, office, "")},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := PlanSecurityGroup(SGPlanInput{GroupID: sgTestGroup, Rules: tt.rules, Locked: tt.locked})
			if err != nil {
				t.Fatal(err)
			}
			if got := sgIDs(plan.Revoke); !slices.Equal(got, tt.wantRevoke) {
				t.Errorf("revoke %v, want %v", got, tt.wantRevoke)
			}
			if want := canonicalSGRules(tt.wantAuthorize); !slices.Equal(plan.Authorize, want) {
				t.Errorf("authorize\n%v\nwant\n%v", plan.Authorize, want)
			}
			if !slices.Equal(plan.Remainders, plan.Authorize) {
				t.Errorf("remainders %v, want what is authorised, %v", plan.Remainders, plan.Authorize)
			}
			if want := canonicalSGRules(plan.Revoke); !slices.Equal(plan.Backup, want) {
				t.Errorf("backup %v, want the revoked rules without IDs, %v", plan.Backup, want)
			}
			switch {
			case tt.wantWarnings == nil && len(plan.Warnings) > 0:
				t.Errorf("unexpected warnings %q", plan.Warnings)
			case tt.wantWarnings != nil && len(plan.Warnings) != 1:
				t.Errorf("warnings %q, want one", plan.Warnings)
			case tt.wantWarnings != nil:
				for _, s := range tt.wantWarnings {
					if !strings.Contains(plan.Warnings[0], s) {
						t.Errorf("warning %q does not say %q", plan.Warnings[0], s)
					}
				}
			}

			g := newSGFakeGroup(tt.rules...)
			g.apply(t, plan)
			again, err := PlanSecurityGroup(SGPlanInput{GroupID: sgTestGroup, Rules: g.rules, Locked: tt.locked, Backup: plan.Backup, Remainders: plan.Remainders})
			if err != nil || len(again.Revoke)+len(again.Authorize)+len(again.Warnings) > 0 ||
				!slices.Equal(again.Backup, plan.Backup) || !slices.Equal(again.Remainders, plan.Remainders) {
				t.Errorf("planning again after applying: %+v, %v; want nothing to do and the same record", again, err)
			}
			restore, err := PlanSecurityGroupRestore(g.rules, plan.Backup, plan.Remainders)
			if err != nil {
				t.Fatal(err)
			}
			g.apply(t, restore)
			if got, want := sgWithoutIDs(g.rules), sgWithoutIDs(tt.rules); !slices.Equal(got, want) {
				t.Errorf("restored\n%v\nwant\n%v", got, want)
			}
		})
	}
}

func TestPlanSecurityGroup_ruleLimitRefusesBeforeAnyWrite(t *testing.T) {
	unrelated := func(n int, source string) []SGRule {
		var rules []SGRule
		for i := range n {
			rules = append(rules, sgr(fmt.Sprintf("sgr-u%d", i), "tcp", 1000+i, 1000+i, source, ""))
		}
		return rules
	}
	wide := func(source string) SGRule { return sgr("sgr-wide", "tcp", 0, 65535, source, "") }
	locked := []PortProtocol{sgTCPPort(22), sgTCPPort(3389), sgTCPPort(5985)} // 1 wide rule becomes 4

	_, err := PlanSecurityGroup(SGPlanInput{GroupID: sgTestGroup, Rules: append(unrelated(56, "10.0.0.0/8"), wide("10.0.0.0/8")), Locked: locked})
	if err != nil {
		t.Errorf("56 + 4 rules: %v, want a plan: 60 is the limit, not past it", err)
	}

	plan, err := PlanSecurityGroup(SGPlanInput{GroupID: sgTestGroup, Rules: append(unrelated(57, "10.0.0.0/8"), wide("10.0.0.0/8")), Locked: locked})
	if err == nil || !reflect.DeepEqual(plan, SGPlan{}) {
		t.Fatalf("57 + 4 rules: plan %+v, error %v; want an error and an empty plan", plan, err)
	}
	for _, s := range []string{sgTestGroup, "61 inbound IPv4 rules", "58 now", "1 revoked", "4 authorised", "limit of 60"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}

	if _, err := PlanSecurityGroup(SGPlanInput{GroupID: sgTestGroup, Rules: append(unrelated(57, "10.0.0.0/8"), wide("10.0.0.0/8")), Locked: locked, RuleLimit: 61}); err != nil {
		t.Errorf("with a raised limit: %v", err)
	}
	// EC2 counts IPv4 and IPv6 rules apart, and a group source in both.
	if _, err := PlanSecurityGroup(SGPlanInput{GroupID: sgTestGroup, Rules: append(unrelated(57, "10.0.0.0/8"), wide("2001:db8::/32")), Locked: locked}); err != nil {
		t.Errorf("57 IPv4 rules and an IPv6 one becoming 4: %v", err)
	}
	if _, err := PlanSecurityGroup(SGPlanInput{GroupID: sgTestGroup, Rules: append(unrelated(57, "2001:db8::/32"), wide(sgTestGroup)), Locked: locked}); err == nil || !strings.Contains(err.Error(), "IPv6") {
		t.Errorf("57 IPv6 rules and a group-sourced one becoming 4: %v, want the IPv6 quota exceeded", err)
	}
	// A group already past the limit (a raised quota the caller did not
	// pass) is not refused a plan that adds nothing.
	if _, err := PlanSecurityGroup(SGPlanInput{GroupID: sgTestGroup, Rules: append(unrelated(65, "10.0.0.0/8"), sgr("sgr-ssh", "tcp", 22, 22, "10.0.0.0/8", "")), Locked: locked}); err != nil {
		t.Errorf("65 rules, one revoked: %v", err)
	}
}

// apply plans, applies and returns the plan, failing on any error.
func sgPlanAndApply(t *testing.T, g *sgFakeGroup, locked []PortProtocol, record SGPlan) SGPlan {
	t.Helper()
	plan, err := PlanSecurityGroup(SGPlanInput{GroupID: sgTestGroup, Rules: g.rules, Locked: locked, Backup: record.Backup, Remainders: record.Remainders})
	if err != nil {
		t.Fatal(err)
	}
	g.apply(t, plan)
	return plan
}

func TestPlanSecurityGroup_driftIsRevokedAgain(t *testing.T) {
	original := []SGRule{sgr("sgr-1", "tcp", 0, 65535, "10.0.0.0/8", "office"), sgr("sgr-2", "tcp", 22, 22, "0.0.0.0/0", "ssh")}
	locked := []PortProtocol{sgTCPPort(22)}
	g := newSGFakeGroup(original...)
	first := sgPlanAndApply(t, g, locked, SGPlan{})

	// The same rules re-added by hand, one with another description, and a
	// new one on the locked port.
	g.authorize(t, sgr("", "tcp", 0, 65535, "10.0.0.0/8", "office"))
	g.authorize(t, sgr("", "tcp", 22, 22, "0.0.0.0/0", "re-added"))
	g.authorize(t, sgr("", "tcp", 20, 30, "192.0.2.0/24", "new"))
	second := sgPlanAndApply(t, g, locked, first)
	if len(second.Revoke) != 3 {
		t.Errorf("revoke %v, want the three re-added rules", second.Revoke)
	}
	if want := []SGRule{sgr("", "tcp", 20, 21, "192.0.2.0/24", "new"), sgr("", "tcp", 23, 30, "192.0.2.0/24", "new")}; !slices.Equal(second.Authorize, want) {
		t.Errorf("authorize %v, want only the new rule's remainder %v", second.Authorize, want)
	}
	wantBackup := canonicalSGRules(append(slices.Clone(original), sgr("", "tcp", 20, 30, "192.0.2.0/24", "new")))
	if !slices.Equal(second.Backup, wantBackup) {
		t.Errorf("backup\n%v\nwant the originals, as they were, and the new rule\n%v", second.Backup, wantBackup)
	}

	restore, err := PlanSecurityGroupRestore(g.rules, second.Backup, second.Remainders)
	if err != nil {
		t.Fatal(err)
	}
	g.apply(t, restore)
	if got := sgWithoutIDs(g.rules); !slices.Equal(got, wantBackup) {
		t.Errorf("restored %v, want %v", got, wantBackup)
	}
}

func TestPlanSecurityGroup_deletedRemainderIsAddedBack(t *testing.T) {
	g := newSGFakeGroup(sgr("sgr-1", "tcp", 0, 65535, "10.0.0.0/8", "office"))
	locked := []PortProtocol{sgTCPPort(22)}
	first := sgPlanAndApply(t, g, locked, SGPlan{})
	g.revoke(t, g.rules[0])
	second := sgPlanAndApply(t, g, locked, first)
	if len(second.Revoke) != 0 || len(second.Authorize) != 1 || !slices.Equal(second.Remainders, first.Remainders) {
		t.Errorf("plan %+v, want the deleted remainder authorised again", second)
	}
}

func TestPlanSecurityGroup_lockedPortsChange(t *testing.T) {
	original := []SGRule{sgr("sgr-1", "tcp", 0, 65535, "10.0.0.0/8", "office")}
	g := newSGFakeGroup(original...)
	record := sgPlanAndApply(t, g, []PortProtocol{sgTCPPort(22)}, SGPlan{})

	record = sgPlanAndApply(t, g, []PortProtocol{sgTCPPort(22), sgTCPPort(3389)}, record)
	if want := []SGRule{sgr("", "tcp", 0, 21, "10.0.0.0/8", "office"), sgr("", "tcp", 23, 3388, "10.0.0.0/8", "office"), sgr("", "tcp", 3390, 65535, "10.0.0.0/8", "office")}; !slices.Equal(sgWithoutIDs(g.rules), want) {
		t.Errorf("after locking 3389 too: %v, want %v", g.rules, want)
	}
	if !slices.Equal(record.Backup, canonicalSGRules(original)) {
		t.Errorf("backup %v, want only the original: a remainder is never backed up", record.Backup)
	}

	record = sgPlanAndApply(t, g, []PortProtocol{sgTCPPort(3389)}, record)
	if want := []SGRule{sgr("", "tcp", 0, 3388, "10.0.0.0/8", "office"), sgr("", "tcp", 3390, 65535, "10.0.0.0/8", "office")}; !slices.Equal(sgWithoutIDs(g.rules), want) {
		t.Errorf("after unlocking 22: %v, want %v", g.rules, want)
	}

	record = sgPlanAndApply(t, g, nil, record)
	if !slices.Equal(sgWithoutIDs(g.rules), sgWithoutIDs(original)) || len(record.Backup)+len(record.Remainders) > 0 {
		t.Errorf("after unlocking everything: %v, record %+v; want the original back and nothing recorded", g.rules, record)
	}
}

func TestPlanSecurityGroup_sharedRemainderIsAuthorisedOnce(t *testing.T) {
	// Both rules leave TCP 23-65535 from the office; the group can hold it
	// once, and restore must still give both back.
	original := []SGRule{sgr("sgr-1", "tcp", 0, 65535, "10.0.0.0/8", "a"), sgr("sgr-2", "tcp", 20, 65535, "10.0.0.0/8", "b")}
	g := newSGFakeGroup(original...)
	plan := sgPlanAndApply(t, g, []PortProtocol{sgTCPPort(22)}, SGPlan{})
	want := []SGRule{sgr("", "tcp", 0, 21, "10.0.0.0/8", "a"), sgr("", "tcp", 23, 65535, "10.0.0.0/8", "a"), sgr("", "tcp", 20, 21, "10.0.0.0/8", "b")}
	if !slices.Equal(plan.Authorize, canonicalSGRules(want)) {
		t.Errorf("authorize %v, want %v", plan.Authorize, want)
	}
	restore, err := PlanSecurityGroupRestore(g.rules, plan.Backup, plan.Remainders)
	if err != nil {
		t.Fatal(err)
	}
	g.apply(t, restore)
	if !slices.Equal(sgWithoutIDs(g.rules), sgWithoutIDs(original)) {
		t.Errorf("restored %v, want %v", g.rules, original)
	}
}

func TestPlanSecurityGroup_keepsAnExistingRuleThatEqualsARemainder(t *testing.T) {
	original := []SGRule{sgr("sgr-1", "tcp", 0, 65535, "10.0.0.0/8", "office"), sgr("sgr-2", "tcp", 0, 21, "10.0.0.0/8", "low ports")}
	g := newSGFakeGroup(original...)
	plan := sgPlanAndApply(t, g, []PortProtocol{sgTCPPort(22)}, SGPlan{})
	if want := []SGRule{sgr("", "tcp", 23, 65535, "10.0.0.0/8", "office")}; !slices.Equal(plan.Authorize, want) || !slices.Equal(plan.Remainders, want) {
		t.Errorf("authorize %v, remainders %v; want only %v: TCP 0-21 is already allowed", plan.Authorize, plan.Remainders, want)
	}
	restore, err := PlanSecurityGroupRestore(g.rules, plan.Backup, plan.Remainders)
	if err != nil {
		t.Fatal(err)
	}
	g.apply(t, restore)
	if !slices.Equal(sgWithoutIDs(g.rules), sgWithoutIDs(original)) {
		t.Errorf("restored %v, want %v", g.rules, original)
	}
}

func TestPlanSecurityGroupRestore_finishesAfterAnInterruption(t *testing.T) {
	original := []SGRule{sgr("sgr-1", "-1", -1, -1, "10.0.0.0/8", "vpn"), sgr("sgr-2", "tcp", 0, 65535, "2001:db8::/32", ""),
		sgr("sgr-3", "tcp", 3389, 3389, "pl-0123456789abcdef0", "rdp"), sgr("sgr-4", "tcp", 80, 80, "0.0.0.0/0", "web")}
	g := newSGFakeGroup(original...)
	plan := sgPlanAndApply(t, g, []PortProtocol{sgTCPPort(22), sgTCPPort(3389)}, SGPlan{})
	for cut := range 20 {
		h := &sgFakeGroup{rules: slices.Clone(g.rules), ids: 1000}
		restore, err := PlanSecurityGroupRestore(h.rules, plan.Backup, plan.Remainders)
		if err != nil {
			t.Fatal(err)
		}
		ops := len(restore.Revoke) + len(restore.Authorize)
		for i := range min(cut, ops) {
			if i < len(restore.Revoke) {
				h.revoke(t, restore.Revoke[i])
			} else {
				h.authorize(t, restore.Authorize[i-len(restore.Revoke)])
			}
		}
		rest, err := PlanSecurityGroupRestore(h.rules, plan.Backup, plan.Remainders)
		if err != nil {
			t.Fatal(err)
		}
		h.apply(t, rest)
		if got := sgWithoutIDs(h.rules); !slices.Equal(got, sgWithoutIDs(original)) {
			t.Fatalf("interrupted after %d of %d writes, restored %v, want %v", cut, ops, got, original)
		}
		if done, _ := PlanSecurityGroupRestore(h.rules, plan.Backup, plan.Remainders); len(done.Revoke)+len(done.Authorize) > 0 {
			t.Fatalf("restore again after restoring: %+v, want nothing", done)
		}
	}
}

func TestPlanSecurityGroupRestore_warnsWhenARuleCannotComeBack(t *testing.T) {
	g := newSGFakeGroup(sgr("sgr-1", "tcp", 22, 22, "0.0.0.0/0", "ssh"))
	plan := sgPlanAndApply(t, g, []PortProtocol{sgTCPPort(22)}, SGPlan{})
	// Someone else's rule now holds the permission, under another description.
	g.authorize(t, sgr("", "tcp", 22, 22, "0.0.0.0/0", "someone"))
	restore, err := PlanSecurityGroupRestore(g.rules, plan.Backup, plan.Remainders)
	if err != nil {
		t.Fatal(err)
	}
	if len(restore.Revoke)+len(restore.Authorize) > 0 || len(restore.Warnings) != 1 || !strings.Contains(restore.Warnings[0], `"someone"`) {
		t.Errorf("restore %+v, want no write and a warning naming the rule in the way", restore)
	}
}

func TestPlanSecurityGroup_lostBackupNeverRevokesRemainders(t *testing.T) {
	// With the backup gone, recorded remainders are anyone's rules: revoking
	// them would close ports nothing gives back.
	rules := []SGRule{sgr("sgr-1", "tcp", 0, 21, "10.0.0.0/8", "office"), sgr("sgr-2", "tcp", 23, 65535, "10.0.0.0/8", "office")}
	plan, err := PlanSecurityGroup(SGPlanInput{GroupID: sgTestGroup, Rules: rules, Locked: []PortProtocol{sgTCPPort(3389)}, Remainders: canonicalSGRules(rules)})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"sgr-2"}; !slices.Equal(sgIDs(plan.Revoke), want) || len(plan.Backup) != 1 {
		t.Errorf("plan %+v, want only the rule opening 3389 revoked and backed up", plan)
	}
}

func TestPlanSecurityGroup_rejectsWhatItCannotReasonAbout(t *testing.T) {
	ok := sgr("sgr-1", "tcp", 22, 22, "10.0.0.0/8", "")
	twoSources := ok
	twoSources.PrefixListID = "pl-0123456789abcdef0"
	noSource := ok.withSource(sgSource{})
	tests := []struct {
		name   string
		in     SGPlanInput
		wantIn string
	}{
		{"two sources", SGPlanInput{Rules: []SGRule{twoSources}}, "2 sources"},
		{"no source", SGPlanInput{Rules: []SGRule{noSource}}, "0 sources"},
		{"reversed ports", SGPlanInput{Rules: []SGRule{sgr("sgr-1", "tcp", 30, 20, "10.0.0.0/8", "")}}, "30-20"},
		{"port past 65535", SGPlanInput{Rules: []SGRule{sgr("sgr-1", "udp", 0, 65536, "10.0.0.0/8", "")}}, "0-65536"},
		{"unknown protocol", SGPlanInput{Rules: []SGRule{sgr("sgr-1", "sctp", -1, -1, "10.0.0.0/8", "")}}, `"sctp"`},
		{"protocol number past 255", SGPlanInput{Rules: []SGRule{sgr("sgr-1", "256", -1, -1, "10.0.0.0/8", "")}}, `"256"`},
		{"bad backup", SGPlanInput{Rules: []SGRule{ok}, Backup: []SGRule{noSource}}, "backed-up rule"},
		{"locked port out of range", SGPlanInput{Rules: []SGRule{ok}, Locked: []PortProtocol{sgTCPPort(65536)}}, "65536"},
		{"locked protocol", SGPlanInput{Rules: []SGRule{ok}, Locked: []PortProtocol{{22, "ICMP"}}}, `"ICMP"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.GroupID = sgTestGroup
			plan, err := PlanSecurityGroup(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) || !strings.Contains(err.Error(), sgTestGroup) || !reflect.DeepEqual(plan, SGPlan{}) {
				t.Errorf("plan %+v, error %v; want an error naming the group and saying %q", plan, err, tt.wantIn)
			}
		})
	}
}

func TestSGRule_String(t *testing.T) {
	for _, tt := range []struct {
		rule SGRule
		want string
	}{
		{sgr("sgr-1", "6", 0, 65535, "10.0.0.0/8", "office"), `sgr-1 (TCP 0-65535 from 10.0.0.0/8, "office")`},
		{sgr("", "udp", 53, 53, "2001:db8::/32", ""), `UDP 53 from 2001:db8::/32`},
		{sgr("", "-1", -1, -1, "pl-0123456789abcdef0", ""), `all protocols from prefix list pl-0123456789abcdef0`},
		{sgr("", "icmp", 3, 4, "sg-0123456789abcdef0", ""), `ICMP type 3 code 4 from security group sg-0123456789abcdef0`},
		{sgr("", "50", -1, -1, "10.0.0.0/8", ""), `protocol 50 from 10.0.0.0/8`},
	} {
		if got := tt.rule.String(); got != tt.want {
			t.Errorf("String() = %s, want %s", got, tt.want)
		}
	}
}
