package jit

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// SGRule is one inbound rule of an EC2 security group as
// DescribeSecurityGroupRules returns it: one protocol, one port range and
// exactly one source.
type SGRule struct {
	// ID is the rule's sgr- ID; empty for a rule not created yet.
	ID string
	// IPProtocol is "tcp", "udp", "icmp", "icmpv6", "-1" (all protocols) or
	// an IP protocol number such as "50". EC2 accepts 6, 17, 1 and 58 but
	// reports them by name, so both spellings mean the same rule here.
	IPProtocol string
	// FromPort and ToPort bound the TCP or UDP port range (-1 and -1 mean
	// all ports); for ICMP they are the type and code (-1 for all); for
	// other protocols they are -1 and ignored.
	FromPort, ToPort int
	// Exactly one source is set.
	CIDRIPv4          string
	CIDRIPv6          string
	PrefixListID      string
	ReferencedGroupID string
	Description       string
}

// String names the rule for plan messages: "sgr-0ab (TCP 0-65535 from
// 10.0.0.0/8, "office")".
func (r SGRule) String() string {
	p := r.permission()
	var what string
	switch p.protocol {
	case sgAll:
		what = "all protocols"
	case sgTCP, sgUDP:
		what = strings.ToUpper(p.protocol) + " " + sgPortRangeText(p.from, p.to)
	case sgICMP, sgICMPv6:
		what = strings.ToUpper(p.protocol)
		if p.from != -1 {
			what += " type " + strconv.Itoa(p.from)
		}
		if p.to != -1 {
			what += " code " + strconv.Itoa(p.to)
		}
	default:
		what = "protocol " + r.IPProtocol
	}
	what += " from " + p.source.String()
	if r.Description != "" {
		what += fmt.Sprintf(", %q", r.Description)
	}
	if r.ID == "" {
		return what
	}
	return r.ID + " (" + what + ")"
}

func sgPortRangeText(from, to int) string {
	if from == to {
		return strconv.Itoa(from)
	}
	return strconv.Itoa(from) + "-" + strconv.Itoa(to)
}

// Protocols as EC2 reports them.
const (
	sgAll    = "-1"
	sgTCP    = "tcp"
	sgUDP    = "udp"
	sgICMP   = "icmp"
	sgICMPv6 = "icmpv6"
)

// canonicalSGProtocol is the protocol as EC2 stores it: numbers that have
// names become names.
func canonicalSGProtocol(p string) string {
	switch p = strings.ToLower(p); p {
	case "6":
		return sgTCP
	case "17":
		return sgUDP
	case "1":
		return sgICMP
	case "58":
		return sgICMPv6
	}
	return p
}

// sgSourceKind orders sources in canonical lists: IPv4, IPv6, prefix
// lists, groups.
type sgSourceKind int

const (
	sgFromIPv4 sgSourceKind = iota
	sgFromIPv6
	sgFromPrefixList
	sgFromGroup
)

type sgSource struct {
	kind sgSourceKind
	id   string
}

func (s sgSource) String() string {
	switch s.kind {
	case sgFromPrefixList:
		return "prefix list " + s.id
	case sgFromGroup:
		return "security group " + s.id
	}
	return s.id
}

// source is the rule's one source; the rule must have passed checkSGRule.
func (r SGRule) source() sgSource {
	switch {
	case r.CIDRIPv4 != "":
		return sgSource{sgFromIPv4, r.CIDRIPv4}
	case r.CIDRIPv6 != "":
		return sgSource{sgFromIPv6, r.CIDRIPv6}
	case r.PrefixListID != "":
		return sgSource{sgFromPrefixList, r.PrefixListID}
	}
	return sgSource{sgFromGroup, r.ReferencedGroupID}
}

// Source is the rule's one source as EC2 writes it: an IPv4 or IPv6 CIDR,
// a prefix list ID (pl-…) or a security group ID (sg-…).
func (r SGRule) Source() string { return r.source().id }

// WithSource returns r with source, written as Source returns it, as its
// only source: the kind follows from the form, as in the backup tags.
func (r SGRule) WithSource(source string) SGRule { return r.withSource(sgSourceOf(source)) }

// withSource returns r with s as its only source.
func (r SGRule) withSource(s sgSource) SGRule {
	r.CIDRIPv4, r.CIDRIPv6, r.PrefixListID, r.ReferencedGroupID = "", "", "", ""
	switch s.kind {
	case sgFromIPv4:
		r.CIDRIPv4 = s.id
	case sgFromIPv6:
		r.CIDRIPv6 = s.id
	case sgFromPrefixList:
		r.PrefixListID = s.id
	default:
		r.ReferencedGroupID = s.id
	}
	return r
}

// sgPermission is what makes two rules the same to EC2: everything but the
// ID and description. A group never holds two rules with one permission
// (InvalidPermission.Duplicate), so the planner keys rules by it.
type sgPermission struct {
	protocol string // canonical
	from, to int    // 0-65535 for all TCP/UDP ports, -1 -1 for portless protocols
	source   sgSource
}

func (r SGRule) permission() sgPermission {
	p := sgPermission{protocol: canonicalSGProtocol(r.IPProtocol), from: r.FromPort, to: r.ToPort, source: r.source()}
	switch p.protocol {
	case sgTCP, sgUDP:
		if p.from == -1 && p.to == -1 {
			p.from, p.to = 0, 65535
		}
	case sgICMP, sgICMPv6:
	default:
		p.from, p.to = -1, -1
	}
	return p
}

// sgIdentity is a rule as the planner compares rules: its permission and
// its description, whatever its ID or protocol spelling.
type sgIdentity struct {
	sgPermission
	description string
}

func (r SGRule) identity() sgIdentity { return sgIdentity{r.permission(), r.Description} }

// checkSGRule rejects what the planner cannot reason about, rather than
// guess and open or close the wrong traffic.
func checkSGRule(r SGRule) error {
	sources := 0
	for _, s := range []string{r.CIDRIPv4, r.CIDRIPv6, r.PrefixListID, r.ReferencedGroupID} {
		if s != "" {
			sources++
		}
	}
	if sources != 1 {
		return fmt.Errorf("rule %s (%s %d-%d, %q) has %d sources; a security group rule has exactly one: an IPv4 CIDR, an IPv6 CIDR, a prefix list or a group",
			r.ID, r.IPProtocol, r.FromPort, r.ToPort, r.Description, sources)
	}
	switch p := canonicalSGProtocol(r.IPProtocol); p {
	case sgAll:
	case sgTCP, sgUDP:
		if !(r.FromPort == -1 && r.ToPort == -1) && !(0 <= r.FromPort && r.FromPort <= r.ToPort && r.ToPort <= 65535) {
			return fmt.Errorf("rule %s: port range %d-%d is not within 0-65535", r, r.FromPort, r.ToPort)
		}
	case sgICMP, sgICMPv6:
		if r.FromPort < -1 || r.FromPort > 255 || r.ToPort < -1 || r.ToPort > 255 {
			return fmt.Errorf("rule %s: ICMP type %d and code %d are not each -1 or 0-255", r, r.FromPort, r.ToPort)
		}
	default:
		if n, err := strconv.Atoi(p); err != nil || strconv.Itoa(n) != p || n < 0 || n > 255 {
			return fmt.Errorf("rule %s: IP protocol %q is not tcp, udp, icmp, icmpv6, -1 or a number 0-255", r, r.IPProtocol)
		}
	}
	return nil
}

// compareSGRules is the canonical order of rule lists: by source, then
// description, so that a rule's remainders sit next to it, then protocol and
// ports. Every field takes part, so sorting is deterministic.
func compareSGRules(a, b SGRule) int {
	pa, pb := a.permission(), b.permission()
	return cmp.Or(
		cmp.Compare(pa.source.kind, pb.source.kind),
		strings.Compare(pa.source.id, pb.source.id),
		strings.Compare(a.Description, b.Description),
		strings.Compare(pa.protocol, pb.protocol),
		cmp.Compare(pa.from, pb.from),
		cmp.Compare(pa.to, pb.to),
		strings.Compare(a.IPProtocol, b.IPProtocol),
		cmp.Compare(a.FromPort, b.FromPort),
		cmp.Compare(a.ToPort, b.ToPort),
		strings.Compare(a.ID, b.ID),
	)
}
