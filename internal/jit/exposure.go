package jit

import (
	"net/netip"
	"slices"
	"strings"
)

// ManagementPorts are the ports Defender for Cloud recommends locking and
// jit_policy locks by default: SSH, RDP and WinRM (HTTP and HTTPS), TCP.
var ManagementPorts = []PortProtocol{{22, ProtocolTCP}, {3389, ProtocolTCP}, {5985, ProtocolTCP}, {5986, ProtocolTCP}}

// ExposedPort is a management port that traffic from any internet address
// reaches through every filter on a machine's path.
type ExposedPort struct {
	Port PortProtocol
	// Rules name what lets the traffic through, one per filter on the
	// path: "<filter ID>/securityRules/<rule>" for an NSG rule,
	// "<group ID>/<rule ID>" for a security group rule, or a sentence
	// when a path has no filter at all.
	Rules []string
}

// NSGLevel is one NSG on a network interface's path: the subnet's or the
// NIC's. A nil *NSGLevel is a level without an NSG, which lets everything
// through.
type NSGLevel struct {
	ID    string
	Rules []NSGRule
}

// NoNSGOnPath is the reason an exposure gives when no NSG filters the path.
const NoNSGOnPath = "no network security group on the path"

// ExposedThroughNSGs tells which management ports of a network interface
// with private addresses ips traffic from the internet at large reaches:
// Azure evaluates inbound traffic against the subnet's NSG, then the
// NIC's, and each that exists must allow it. In each NSG the first rule,
// by priority, that decides the port for the interface and whose source is
// the internet at large ("*", "Any", "Internet", 0.0.0.0/0, ::/0) settles
// it: an Allow exposes the port, a Deny closes it; rules from narrower
// sources neither expose nor close it. Past the custom rules, the default
// DenyAllInBound closes it (AllowVnetInBound and
// AllowAzureLoadBalancerInBound do not match the internet).
//
// Matching is the precedence logic's (filterRule.decides), which assumes
// that what it cannot resolve (an application security group, a service
// tag on the destination) matches: an Allow so assumed exposes the port,
// which errs on the side of reporting. A Deny closes the port only when its
// destinations certainly cover the interface ("*", "Any",
// "VirtualNetwork", or a prefix holding one of ips), so that an unresolved
// Deny never hides an exposure.
func ExposedThroughNSGs(ips []string, levels ...*NSGLevel) []ExposedPort {
	addrs := make([]netip.Addr, 0, len(ips))
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil {
			addrs = append(addrs, a.Unmap())
		}
	}
	var out []ExposedPort
	for _, port := range ManagementPorts {
		var rules []string
		open, filtered := true, false
		for _, nsg := range levels {
			if nsg == nil {
				continue
			}
			filtered = true
			rule, allowed := firstInternetDecision(nsg.Rules, addrs, port)
			if !allowed {
				open = false
				break
			}
			rules = append(rules, nsg.ID+"/securityRules/"+rule)
		}
		if !open {
			continue
		}
		if !filtered {
			rules = []string{NoNSGOnPath}
		}
		out = append(out, ExposedPort{Port: port, Rules: rules})
	}
	return out
}

// firstInternetDecision is the rule of one NSG that lets internet traffic
// to port on addrs through, if one does before a Deny stops it.
func firstInternetDecision(rules []NSGRule, addrs []netip.Addr, port PortProtocol) (string, bool) {
	inbound := slices.DeleteFunc(slices.Clone(rules), func(r NSGRule) bool { return !r.inbound() })
	slices.SortStableFunc(inbound, func(a, b NSGRule) int { return a.Priority - b.Priority })
	for _, r := range inbound {
		f := r.filter()
		if !f.decides(addrs, port) || !fromInternetAtLarge(r.SourcePrefixes) {
			continue
		}
		if !f.deny {
			return r.Name, true
		}
		if certainlyCovers(r.DestinationPrefixes, addrs) {
			return "", false
		}
	}
	return "", false // DenyAllInBound
}

// internetAtLarge are the sources that hold every internet address.
var internetAtLarge = []string{"*", "any", "internet", "0.0.0.0/0", "::/0"}

func fromInternetAtLarge(sources []string) bool {
	return slices.ContainsFunc(sources, func(s string) bool {
		return slices.Contains(internetAtLarge, strings.ToLower(strings.TrimSpace(s)))
	})
}

// certainlyCovers tells whether a rule's destinations surely include one
// of addrs. VirtualNetwork holds every private address of the network.
func certainlyCovers(destinations []string, addrs []netip.Addr) bool {
	for _, d := range destinations {
		switch strings.ToLower(strings.TrimSpace(d)) {
		case "*", "any", "virtualnetwork":
			return true
		}
		first, last, ok := filterAddressRange(d)
		if !ok {
			continue
		}
		for _, a := range addrs {
			if a.BitLen() == first.BitLen() && first.Compare(a) <= 0 && a.Compare(last) <= 0 {
				return true
			}
		}
	}
	return false
}

// ExposedThroughSecurityGroups tells which management ports an EC2
// network interface opens to the internet at large. Security groups only
// allow, and an interface allows what any of its groups allows: a port is
// exposed by each inbound rule that opens it (as the policy planner reads
// rules: all protocols, or TCP over a range holding the port) from
// 0.0.0.0/0 or ::/0. A prefix list or a referenced group is not the
// internet at large, whatever it holds. groups maps a group ID to its
// inbound rules.
func ExposedThroughSecurityGroups(groups map[string][]SGRule) []ExposedPort {
	locks, _ := newSGLocks(ManagementPorts)
	ids := make([]string, 0, len(groups))
	for id := range groups {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []ExposedPort
	for _, port := range ManagementPorts {
		var rules []string
		for _, id := range ids {
			for _, r := range groups[id] {
				if src := r.Source(); src != "0.0.0.0/0" && src != "::/0" {
					continue
				}
				if slices.Contains(locks.opened(r), port) {
					rules = append(rules, id+"/"+cmpOrString(r.ID, r.String()))
				}
			}
		}
		if len(rules) > 0 {
			out = append(out, ExposedPort{Port: port, Rules: rules})
		}
	}
	return out
}

func cmpOrString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// MergeExposures joins the exposures of a machine's interfaces: a port is
// exposed when it is through any interface, by every rule that exposes it.
func MergeExposures(lists ...[]ExposedPort) []ExposedPort {
	var out []ExposedPort
	for _, port := range ManagementPorts {
		var rules []string
		for _, l := range lists {
			for _, e := range l {
				if e.Port == port {
					rules = append(rules, e.Rules...)
				}
			}
		}
		if len(rules) > 0 {
			slices.Sort(rules)
			out = append(out, ExposedPort{Port: port, Rules: slices.Compact(rules)})
		}
	}
	return out
}

// DefenderJITRulePrefix starts the names of the rules Microsoft Defender
// for Cloud's own JIT writes into NSGs.
const DefenderJITRulePrefix = "SecurityCenter-JITRule"

// HasDefenderJITRules tells whether an NSG holds Defender for Cloud's JIT
// rules: two JIT engines on one NSG would fight over its priorities and
// undo each other's grants.
func HasDefenderJITRules(rules []NSGRule) bool {
	return slices.ContainsFunc(rules, func(r NSGRule) bool { return IsDefenderJITRule(r.Name) })
}

// IsDefenderJITRule tells Defender for Cloud's JIT rules by their names.
func IsDefenderJITRule(name string) bool {
	return len(name) >= len(DefenderJITRulePrefix) && strings.EqualFold(name[:len(DefenderJITRulePrefix)], DefenderJITRulePrefix)
}
