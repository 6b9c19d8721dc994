package jit

import (
	"cmp"
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
// with private addresses ips traffic from the internet at large reaches.
// Azure evaluates inbound traffic against the subnet's NSG, then the
// NIC's, and each that exists must allow it; the evaluator answers for
// every remote address at once (Path.Evaluate, default rules included).
// A port is exposed when, to one of the interface's addresses, traffic
// from some public address (publicAddresses) passes every NSG by a rule
// whose sources hold the internet at large ("*", "Any", "Internet",
// 0.0.0.0/0, ::/0): in each NSG, such an Allow is, or may be, the first
// rule to match that traffic. A rule from narrower sources never exposes a
// port, but where it certainly matches first it decides for its sources:
// a Deny of some addresses leaves the others exposed, a Deny of every
// public address closes the port.
//
// The question settles two things the evaluator leaves open: the traffic
// comes from the internet, so the Internet tag holds its source; and it
// goes to the interface's own address, which the VirtualNetwork tag holds.
// Anything else unresolved (other tags, application security groups,
// source ports, unknown protocols or port ranges) is assumed to match: an
// Allow so assumed exposes the port, which errs on the side of reporting,
// and a Deny hides an exposure only when it certainly matches.
//
// Rules names, per NSG, the first Allow from the internet at large among
// the deciders of the first exposed address and remote interval found.
func ExposedThroughNSGs(ips []string, levels ...*NSGLevel) []ExposedPort {
	addrs := make([]netip.Addr, 0, len(ips))
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil {
			addrs = append(addrs, a.Unmap())
		}
	}
	var path Path
	var atLarge []map[string]bool // per NSG: its inbound rules from the internet at large, by name
	for _, nsg := range levels {
		if nsg == nil {
			continue
		}
		rules := make([]NSGRule, len(nsg.Rules))
		names := map[string]bool{}
		for i, r := range nsg.Rules {
			rules[i] = fromTheInternet(r)
			if r.inbound() && fromInternetAtLarge(r.SourcePrefixes) {
				names[r.Name] = true
			}
		}
		path = append(path, NSGFilter(nsg.ID, rules))
		atLarge = append(atLarge, names)
	}
	var out []ExposedPort
	for _, port := range ManagementPorts {
		if len(path) == 0 {
			out = append(out, ExposedPort{Port: port, Rules: []string{NoNSGOnPath}})
		} else if rules := exposingRules(path, atLarge, addrs, port); rules != nil {
			out = append(out, ExposedPort{Port: port, Rules: rules})
		}
	}
	return out
}

// exposingRules names, per filter of the path, a rule from the internet at
// large letting public traffic to the port on one of addrs through; nil
// when no public traffic gets through every filter by such rules.
func exposingRules(path Path, atLarge []map[string]bool, addrs []netip.Addr, port PortProtocol) []string {
	for _, ip := range addrs {
		for _, proto := range portProtocols(port) {
			for _, s := range path.Evaluate(Query{Direction: NSGInbound, Local: ip, Protocol: proto, Port: port.Number}) {
				if s.Verdict == VerdictDeny || !holdsPublicAddress(s.First, s.Last) {
					continue
				}
				rules := make([]string, len(path))
				for i, ds := range s.Deciders {
					j := slices.IndexFunc(ds, func(d Decider) bool {
						return d.Rule.Access == NSGAllow && !d.Rule.Default && atLarge[i][d.Rule.Name]
					})
					if j < 0 {
						rules = nil
						break
					}
					rules[i] = path[i].ID + "/securityRules/" + ds[j].Rule.Name
				}
				if rules != nil {
					return rules
				}
			}
		}
	}
	return nil
}

// fromTheInternet is a rule as it applies to traffic from a public address
// to the interface: the Internet tag holds every such source, and the
// VirtualNetwork tag holds the interface's private address.
func fromTheInternet(r NSGRule) NSGRule {
	r.SourcePrefixes = tagAsAny(r.SourcePrefixes, "Internet")
	r.DestinationPrefixes = tagAsAny(r.DestinationPrefixes, "VirtualNetwork")
	return r
}

func tagAsAny(list []string, tag string) []string {
	isTag := func(s string) bool { return strings.EqualFold(strings.TrimSpace(s), tag) }
	if !slices.ContainsFunc(list, isTag) {
		return list
	}
	out := slices.Clone(list)
	for i, s := range out {
		if isTag(s) {
			out[i] = "*"
		}
	}
	return out
}

// internetAtLarge are the sources that hold every internet address.
var internetAtLarge = []string{"*", "any", "internet", "0.0.0.0/0", "::/0"}

func fromInternetAtLarge(sources []string) bool {
	return slices.ContainsFunc(sources, func(s string) bool {
		return slices.Contains(internetAtLarge, strings.ToLower(strings.TrimSpace(s)))
	})
}

// notPublic are the addresses no client on the internet has, in address
// order: of IPv4, "this network", private (RFC 1918), shared (RFC 6598),
// loopback, link-local, multicast and reserved; of IPv6, everything but
// global unicast (2000::/3).
var notPublic = func() []addrRange {
	var out []addrRange
	for _, s := range []string{"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/3",
		"::/3", "4000::/2", "8000::/1"} {
		p := netip.MustParsePrefix(s)
		out = append(out, addrRange{p.Addr(), lastAddr(p)})
	}
	return out
}()

// holdsPublicAddress tells whether the interval [first, last] holds an
// address of the internet.
func holdsPublicAddress(first, last netip.Addr) bool {
	cur := first
	for _, r := range notPublic {
		if r.first.BitLen() != cur.BitLen() || r.last.Less(cur) {
			continue
		}
		if cur.Less(r.first) {
			break
		}
		if cur = r.last.Next(); !cur.IsValid() {
			return false
		}
	}
	return !last.Less(cur)
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
					rules = append(rules, id+"/"+cmp.Or(r.ID, r.String()))
				}
			}
		}
		if len(rules) > 0 {
			out = append(out, ExposedPort{Port: port, Rules: rules})
		}
	}
	return out
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
