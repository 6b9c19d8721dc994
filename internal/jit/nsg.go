package jit

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// NSGDirection, NSGAccess and NSGProtocol are spelled as ARM spells them;
// the planners compare them case-insensitively, as ARM does.
type (
	NSGDirection string
	NSGAccess    string
	NSGProtocol  string
)

const (
	NSGInbound  NSGDirection = "Inbound"
	NSGOutbound NSGDirection = "Outbound"

	NSGAllow NSGAccess = "Allow"
	NSGDeny  NSGAccess = "Deny"

	NSGProtocolTCP  NSGProtocol = "Tcp"
	NSGProtocolUDP  NSGProtocol = "Udp"
	NSGProtocolICMP NSGProtocol = "Icmp"
	NSGProtocolESP  NSGProtocol = "Esp"
	NSGProtocolAH   NSGProtocol = "Ah"
	NSGProtocolAny  NSGProtocol = "*"
)

// NSG rule priorities run from 100 to 4096, unique per direction.
const (
	NSGMinPriority = 100
	NSGMaxPriority = 4096
)

// NSGRule is a network security group's security rule, as the azure
// package reads and writes it (singular and plural ARM properties merged
// into the lists).
type NSGRule struct {
	Name      string
	Priority  int
	Direction NSGDirection
	Access    NSGAccess
	Protocol  NSGProtocol
	// Address lists hold "*", CIDRs, addresses or service tags. An empty
	// list means the rule uses application security groups, which the core
	// cannot resolve: it is assumed to match every address.
	SourcePrefixes      []string
	DestinationPrefixes []string
	// Port lists hold "*", "22" or "1000-2000"; empty means "*".
	SourcePortRanges      []string
	DestinationPortRanges []string
	Description           string
}

func (r NSGRule) inbound() bool { return strings.EqualFold(string(r.Direction), string(NSGInbound)) }

// Equivalent reports whether two rules have the same name, position and
// effect, ignoring the spellings ARM treats alike (case of enums, order of
// lists, "10.0.0.4" for "10.0.0.4/32", "22-22" for "22", empty port lists
// for "*"). The provider compares what it wants with what it reads this way.
func (r NSGRule) Equivalent(o NSGRule) bool {
	return r.Name == o.Name && r.Priority == o.Priority && r.Description == o.Description &&
		strings.EqualFold(string(r.Direction), string(o.Direction)) &&
		strings.EqualFold(string(r.Access), string(o.Access)) &&
		strings.EqualFold(string(r.Protocol), string(o.Protocol)) &&
		slices.Equal(addressSet(r.SourcePrefixes), addressSet(o.SourcePrefixes)) &&
		slices.Equal(addressSet(r.DestinationPrefixes), addressSet(o.DestinationPrefixes)) &&
		slices.Equal(portSet(r.SourcePortRanges), portSet(o.SourcePortRanges)) &&
		slices.Equal(portSet(r.DestinationPortRanges), portSet(o.DestinationPortRanges))
}

func addressSet(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, s := range addrs {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil && p.IsSingleIP() {
			s = p.Addr().String()
		} else if err == nil {
			s = p.String()
		} else if a, err := netip.ParseAddr(s); err == nil {
			s = a.String()
		} else {
			s = strings.ToLower(s)
		}
		out[i] = s
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func portSet(ranges []string) []string {
	if len(ranges) == 0 {
		return []string{"*"}
	}
	out := make([]string, len(ranges))
	for i, r := range ranges {
		r = strings.TrimSpace(r)
		if lo, hi, ok := readPortRange(r); ok && r != "*" {
			r = strconv.Itoa(lo)
			if hi != lo {
				r += "-" + strconv.Itoa(hi)
			}
		}
		out[i] = r
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// NSGPlan is what PlanPolicyPaths wants done to one NSG. The cloud package
// writes it rule by rule through the security-rules API: Remove first, then
// Add.
type NSGPlan struct {
	// Add holds complete rules to PUT. A rule whose name already exists in
	// the NSG (always one of the policy's own) is replaced in place, so a
	// deny being corrected or moved never leaves its port open. Add
	// priorities collide with no rule left after Remove, including the
	// old priority of a rule being moved, so the PUTs may run in any order.
	Add []NSGRule
	// Keep holds the policy's denies that are already right.
	Keep []NSGRule
	// Remove holds the policy's denies that are no longer wanted: a port
	// left the policy, a machine left it or no longer crosses this NSG.
	Remove []NSGRule
}

// NSGProtocolOf is the NSG protocol that carries a policy protocol.
func NSGProtocolOf(p Protocol) NSGProtocol {
	switch p {
	case ProtocolTCP:
		return NSGProtocolTCP
	case ProtocolUDP:
		return NSGProtocolUDP
	}
	return NSGProtocolAny
}

// checkLockedPorts rejects ports a policy's validation would have rejected,
// so a planner never writes a rule for them.
func checkLockedPorts(machine string, ports []PortProtocol) error {
	for i, p := range ports {
		if p.Number < 0 || p.Number > 65535 || !validProtocol(p.Protocol) {
			return fmt.Errorf("virtual machine %s: invalid locked port %s", machine, portLabel(p))
		}
		for _, q := range ports[:i] {
			if q.Number == p.Number && protocolsOverlap(p.Protocol, q.Protocol) {
				return fmt.Errorf("virtual machine %s: locked ports %s and %s overlap", machine, portLabel(q), portLabel(p))
			}
		}
	}
	return nil
}

func isGrant(description string) bool {
	m, ok := ParseMarker(description)
	return ok && m.Kind == MarkerGrant
}

// NSGGrant describes the grant of one port of one machine, by one request,
// in one NSG on the machine's path.
type NSGGrant struct {
	NSG        string
	Rules      []NSGRule
	Policy     string
	Request    string
	Machine    string
	PrivateIPs []string
	Port       PortProtocol
	// Source is the prefix the traffic arrives from: the requester's, or
	// the Azure Firewall's private addresses when a DNAT rule forwards it.
	Source                   string
	End                      time.Time
	Requestor, Justification string
	// HonouredGrant tells, for PlanNSGGrants, the other grants the caller
	// judged valid for the policy: the policy's own, never in this grant's
	// way. Nil: every inbound Allow carrying the policy's grant marker.
	HonouredGrant func(NSGRule) bool
}
