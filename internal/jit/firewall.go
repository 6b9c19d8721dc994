package jit

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Azure Firewall classic rules (a firewall managed by a Firewall Policy is
// refused before planning). Collections are part of the firewall resource
// and written with it in one read-modify-write, so unlike NSG plans these
// need no ordering of writes.

// FirewallAction is a network rule collection's action.
type FirewallAction string

const (
	FirewallAllow FirewallAction = "Allow"
	FirewallDeny  FirewallAction = "Deny"
)

// Rule collection priorities run from 100 to 65000, unique per collection type.
const (
	FirewallMinPriority = 100
	FirewallMaxPriority = 65000
)

// FirewallNetworkRule is one rule of a network rule collection. Protocols
// are "TCP", "UDP", "ICMP" or "Any". Addresses are "*", CIDRs, addresses
// or "first-last" ranges; an empty list means IP groups or FQDNs, which the
// core cannot resolve and assumes match everything.
type FirewallNetworkRule struct {
	Name                 string
	Description          string
	Protocols            []string
	SourceAddresses      []string
	DestinationAddresses []string
	DestinationPorts     []string
}

// FirewallNetworkCollection is a network rule collection.
type FirewallNetworkCollection struct {
	Name     string
	Priority int
	Action   FirewallAction
	Rules    []FirewallNetworkRule
}

// FirewallNATRule is one DNAT rule: traffic from the sources to a firewall
// address and port is forwarded to the translated address and port.
type FirewallNATRule struct {
	Name                 string
	Description          string
	Protocols            []string
	SourceAddresses      []string
	DestinationAddresses []string
	DestinationPorts     []string
	TranslatedAddress    string
	TranslatedPort       string
}

// FirewallNATCollection is a NAT rule collection (action Dnat).
type FirewallNATCollection struct {
	Name     string
	Priority int
	Rules    []FirewallNATRule
}

// FirewallDenyCollectionName names a policy's deny collection.
func FirewallDenyCollectionName(policy string) string {
	return "jit-deny-" + nameSlug(policy, 40) + "-" + nameHash("firewall-deny", policy)
}

// FirewallDenyPlan is the policy's deny collection on one firewall.
type FirewallDenyPlan struct {
	// Want is the collection the policy needs, nil when it locks nothing
	// behind this firewall.
	Want *FirewallNetworkCollection
	// Have is the policy's collection as the firewall holds it, nil if absent.
	Have *FirewallNetworkCollection
	// Changed tells whether the firewall must be written.
	Changed bool
}

// PlanFirewallDenyRemoval plans the removal of the policy's deny
// collection from a firewall none of its machines is behind any more: Have
// is the collection, nil when the firewall holds none, and Changed tells
// whether it must go. A collection of that name holding a rule without the
// policy's deny marker is not jit's: it is refused, never removed.
func PlanFirewallDenyRemoval(firewall string, collections []FirewallNetworkCollection, policy string) (FirewallDenyPlan, error) {
	name := FirewallDenyCollectionName(policy)
	for i, c := range collections {
		if c.Name != name {
			continue
		}
		if r, foreign := foreignRuleIn(c, DenyMarker(policy).String()); foreign {
			return FirewallDenyPlan{}, fmt.Errorf("Azure Firewall %s already has a network rule collection named %q that jit does not manage (rule %q lacks the policy's marker); rename or delete that collection", firewall, name, r)
		}
		return FirewallDenyPlan{Have: &collections[i], Changed: true}, nil
	}
	return FirewallDenyPlan{}, nil
}

// foreignRuleIn names the first rule of a collection named as the policy's
// deny collection that lacks the policy's deny marker: such a collection
// is someone else's.
func foreignRuleIn(c FirewallNetworkCollection, marker string) (string, bool) {
	for _, r := range c.Rules {
		if r.Description != marker {
			return r.Name, true
		}
	}
	return "", false
}

func firewallProtocolsOf(p Protocol) []string {
	switch p {
	case ProtocolTCP:
		return []string{"TCP"}
	case ProtocolUDP:
		return []string{"UDP"}
	}
	return []string{"TCP", "UDP"}
}

func addrStrings(ips []netip.Addr) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// firewallNetworkCollectionsEquivalent compares as ARM does: enums without
// case, lists and rules in any order.
func firewallNetworkCollectionsEquivalent(a, b FirewallNetworkCollection) bool {
	if a.Name != b.Name || a.Priority != b.Priority || !strings.EqualFold(string(a.Action), string(b.Action)) || len(a.Rules) != len(b.Rules) {
		return false
	}
	key := func(r FirewallNetworkRule) string {
		return strings.Join([]string{r.Name, r.Description, strings.Join(addressSet(r.Protocols), ","),
			strings.Join(addressSet(r.SourceAddresses), ","), strings.Join(addressSet(r.DestinationAddresses), ","),
			strings.Join(portSet(r.DestinationPorts), ",")}, "\x00")
	}
	ka, kb := make([]string, len(a.Rules)), make([]string, len(b.Rules))
	for i := range a.Rules {
		ka[i], kb[i] = key(a.Rules[i]), key(b.Rules[i])
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

// FirewallGrant describes a request's grant through a firewall: clients
// connect to the firewall's public address, a DNAT rule forwards them to
// the machine. Azure Firewall lets DNAT'd traffic pass through an implicit
// network rule unless a network rule collection denies it, which the
// policy's deny collection does; so the grant also needs a network Allow
// collection before it. The firewall also source-NATs that traffic to its
// own private addresses, so the NSGs on the machine's path need grants for
// those (PlanNSGGrants with the firewall's prefix as source).
type FirewallGrant struct {
	Firewall string
	// PublicIP is the firewall address clients connect to.
	PublicIP      string
	NAT           []FirewallNATCollection
	Network       []FirewallNetworkCollection
	Policy        string
	Request       string
	Machine       string
	PrivateIP     string // where DNAT forwards to
	Ports         []FirewallGrantPort
	End           time.Time
	Requestor     string
	Justification string
	// HonouredGrant tells, for PlanFirewallGrants, the other grants' Allow
	// collections the caller judged valid for the policy. Nil: every
	// collection named and marked as a JIT grant.
	HonouredGrant func(FirewallNetworkCollection) bool
}

// FirewallGrantPort is one granted port and the requester's source for it.
type FirewallGrantPort struct {
	Port   PortProtocol
	Source string
}

// FirewallGrantPlan is the two collections of one grant.
type FirewallGrantPlan struct {
	NAT   FirewallNATCollection
	Allow FirewallNetworkCollection
	// MappedPorts[i] is the firewall port that reaches Ports[i]: the
	// request's connection details are PublicIP:MappedPorts[i].
	MappedPorts []int
}

// Mapped ports come from the dynamic range, away from well-known services.
const (
	firstMappedPort = 49152
	lastMappedPort  = 65535
)

// FirewallGrantCollectionName names both collections of a request's grant
// to a machine (NAT and network collections have separate namespaces).
func FirewallGrantCollectionName(request, machine string) string {
	return "jit-grant-" + nameSlug(machineShortName(machine), 20) + "-" + nameHash("firewall-grant", request, strings.ToLower(machine))
}

// planFirewallDNAT plans the DNAT part of a grant through a firewall (see
// PlanFirewallGrants): the NAT collection at any free NAT priority and,
// for each port, the lowest mapped port in 49152–65535 that no other DNAT
// rule uses on that public address, kept while still free when the grant
// is planned again; and the rules of the network Allow collection, whose
// priority PlanFirewallGrants decides.
func planFirewallDNAT(g FirewallGrant) (FirewallGrantPlan, error) {
	name := FirewallGrantCollectionName(g.Request, g.Machine)
	fail := func(format string, args ...any) (FirewallGrantPlan, error) {
		return FirewallGrantPlan{}, fmt.Errorf("granting access to virtual machine %s through Azure Firewall %s: "+format, append([]any{g.Machine, g.Firewall}, args...)...)
	}
	ips, err := parseMachineIPs(g.Machine, []string{g.PrivateIP})
	if err != nil {
		return fail("%w", err)
	}
	publicIP, err := netip.ParseAddr(g.PublicIP)
	if err != nil {
		return fail("public IP %q is not an IP address", g.PublicIP)
	}
	if len(g.Ports) == 0 {
		return fail("no port to grant")
	}
	ports := make([]PortProtocol, len(g.Ports))
	sources := make([]Prefix, len(g.Ports))
	for i, gp := range g.Ports {
		ports[i] = gp.Port
		if sources[i], err = ParsePrefix(gp.Source); err != nil {
			return fail("%w", err)
		}
	}
	if err := checkLockedPorts(g.Machine, ports); err != nil {
		return fail("%w", err)
	}
	marker := GrantMarker(g.Policy, g.End, g.Requestor, g.Justification).String()

	// DNAT collection and mapped ports.
	natSlots := newPrioritySlots(FirewallMinPriority, FirewallMaxPriority)
	var haveNAT *FirewallNATCollection
	usedPorts := map[int]bool{}
	for i, c := range g.NAT {
		if c.Name == name {
			for _, r := range c.Rules {
				if !isGrant(r.Description) {
					return fail("NAT rule collection %q exists but is not a JIT grant; rename or delete it", name)
				}
			}
			haveNAT = &g.NAT[i]
			continue
		}
		natSlots.take(c.Priority)
		for _, r := range c.Rules {
			if !natMayHold(r.DestinationAddresses, publicIP) {
				continue
			}
			for _, pr := range r.DestinationPorts {
				lo, hi, ok := readPortRange(strings.TrimSpace(pr))
				if !ok {
					lo, hi = 0, 65535
				}
				for p := max(lo, firstMappedPort); p <= min(hi, lastMappedPort); p++ {
					usedPorts[p] = true
				}
			}
		}
	}
	plan := FirewallGrantPlan{
		NAT:         FirewallNATCollection{Name: name},
		Allow:       FirewallNetworkCollection{Name: name, Action: FirewallAllow},
		MappedPorts: make([]int, len(ports)),
	}
	if haveNAT != nil && natSlots.free(haveNAT.Priority) {
		plan.NAT.Priority = haveNAT.Priority
	} else if p := natSlots.lowestFree(); p <= FirewallMaxPriority {
		plan.NAT.Priority = p
	} else {
		return fail("no free NAT rule collection priority")
	}
	for i, port := range ports {
		ruleName := GrantRuleName(g.Request, g.Machine, port)
		mapped := 0
		if haveNAT != nil {
			for _, r := range haveNAT.Rules {
				if r.Name != ruleName || len(r.DestinationPorts) != 1 {
					continue
				}
				if p, err := strconv.Atoi(r.DestinationPorts[0]); err == nil && firstMappedPort <= p && p <= lastMappedPort && !usedPorts[p] {
					mapped = p
				}
			}
		}
		for p := firstMappedPort; mapped == 0 && p <= lastMappedPort; p++ {
			if !usedPorts[p] {
				mapped = p
			}
		}
		if mapped == 0 {
			return fail("no free port in %d–%d on %s for DNAT", firstMappedPort, lastMappedPort, g.PublicIP)
		}
		usedPorts[mapped] = true
		plan.MappedPorts[i] = mapped
		plan.NAT.Rules = append(plan.NAT.Rules, FirewallNATRule{
			Name:                 ruleName,
			Description:          marker,
			Protocols:            firewallProtocolsOf(port.Protocol),
			SourceAddresses:      []string{sources[i].String()},
			DestinationAddresses: []string{g.PublicIP},
			DestinationPorts:     []string{strconv.Itoa(mapped)},
			TranslatedAddress:    ips[0].String(),
			TranslatedPort:       strconv.Itoa(port.Number),
		})
		plan.Allow.Rules = append(plan.Allow.Rules, FirewallNetworkRule{
			Name:                 ruleName,
			Description:          marker,
			Protocols:            firewallProtocolsOf(port.Protocol),
			SourceAddresses:      []string{sources[i].String()},
			DestinationAddresses: []string{ips[0].String()},
			DestinationPorts:     []string{strconv.Itoa(port.Number)},
		})
	}
	return plan, nil
}

// natMayHold tells whether a DNAT rule's destinations may hold the
// address: none, "*" or one the core cannot read are assumed to (its ports
// are then taken as used, which costs only a mapped port).
func natMayHold(addrs []string, a netip.Addr) bool {
	if len(addrs) == 0 {
		return true
	}
	for _, s := range addrs {
		first, last, ok := readAddressRange(s)
		if !ok || (addrRange{first, last}).contains(a) {
			return true
		}
	}
	return false
}
