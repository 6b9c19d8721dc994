package jit

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// filterRule is one NSG security rule or one Azure Firewall network rule
// (with its collection's priority and action), seen the way the precedence
// logic needs it. Matching is deliberately conservative: whatever the core
// cannot resolve (service tags, application security groups, IP groups,
// FQDNs, protocols it does not know, malformed ranges the cloud should never
// return) is assumed to match, because wrongly believing a rule matches only
// costs a slot, while wrongly believing it does not would let the provider
// override an existing rule or write a grant that does not work.
type filterRule struct {
	priority     int
	deny         bool
	protocols    filterProtocols
	sources      []string // empty: unresolvable, matches everything
	destinations []string // empty: unresolvable, matches everything
	ports        []string // empty: "*"
}

// filterProtocols is the set of transport protocols a rule matches.
type filterProtocols uint8

const (
	filterTCP filterProtocols = 1 << iota
	filterUDP
	filterOther // ICMP, ESP, AH: never carry a JIT port
	filterAll   = filterTCP | filterUDP | filterOther
)

// filterProtocolsOf reads NSG ("Tcp", "*") and firewall ("TCP", "Any")
// protocol names alike; unknown names, and none, match everything.
func filterProtocolsOf(names ...string) filterProtocols {
	if len(names) == 0 {
		return filterAll
	}
	var set filterProtocols
	for _, n := range names {
		switch strings.ToLower(n) {
		case "tcp":
			set |= filterTCP
		case "udp":
			set |= filterUDP
		case "icmp", "icmpv6", "esp", "ah":
			set |= filterOther
		default: // "*", "Any", anything new
			set |= filterAll
		}
	}
	return set
}

// jitFilterProtocols is what a JIT port's protocol carries: "*" is TCP and UDP.
func jitFilterProtocols(p Protocol) filterProtocols {
	switch p {
	case ProtocolTCP:
		return filterTCP
	case ProtocolUDP:
		return filterUDP
	}
	return filterTCP | filterUDP
}

// decides reports whether the rule matches some traffic to the port on one
// of the machine's addresses, whatever its source. A JIT port "*" is decided
// by a rule for either of its protocols: the deny is a single rule, and
// putting it before a TCP-only rule would override that rule for TCP.
func (r filterRule) decides(ips []netip.Addr, port PortProtocol) bool {
	return r.protocols&jitFilterProtocols(port.Protocol) != 0 &&
		filterPortsContain(r.ports, port.Number) &&
		filterAddressesCoverAny(r.destinations, ips)
}

// shadows reports whether the rule is a Deny that matches some of the
// traffic a grant of the port from source to the machine would allow.
func (r filterRule) shadows(source Prefix, ips []netip.Addr, port PortProtocol) bool {
	return r.deny && r.decides(ips, port) && filterAddressesOverlap(r.sources, source)
}

func filterPortsContain(ranges []string, port int) bool {
	if len(ranges) == 0 {
		return true
	}
	for _, r := range ranges {
		lo, hi, ok := filterPortRange(strings.TrimSpace(r))
		if !ok || lo <= port && port <= hi {
			return true
		}
	}
	return false
}

// filterPortRange reads "*", "22" or "1000-2000".
func filterPortRange(r string) (lo, hi int, ok bool) {
	if r == "*" {
		return 0, 65535, true
	}
	a, b, isRange := strings.Cut(r, "-")
	lo, err := strconv.Atoi(strings.TrimSpace(a))
	if err != nil {
		return 0, 0, false
	}
	if !isRange {
		return lo, lo, true
	}
	hi, err = strconv.Atoi(strings.TrimSpace(b))
	return lo, hi, err == nil
}

// filterAddressRange reads a cloud-side address: a CIDR (host bits
// tolerated, since the cloud accepted it), a single address or a
// "first-last" range. ok is false for "*", tags and anything else.
func filterAddressRange(s string) (first, last netip.Addr, ok bool) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		p = p.Masked()
		return p.Addr(), lastAddr(p), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a, a, true
	}
	if x, y, found := strings.Cut(s, "-"); found {
		a, errA := netip.ParseAddr(strings.TrimSpace(x))
		b, errB := netip.ParseAddr(strings.TrimSpace(y))
		if errA == nil && errB == nil && a.BitLen() == b.BitLen() {
			return a, b, true
		}
	}
	return netip.Addr{}, netip.Addr{}, false
}

func filterAddressesCoverAny(addrs []string, ips []netip.Addr) bool {
	if len(addrs) == 0 {
		return true
	}
	for _, s := range addrs {
		first, last, ok := filterAddressRange(s)
		if !ok {
			return true
		}
		for _, ip := range ips {
			if ip.BitLen() == first.BitLen() && first.Compare(ip) <= 0 && ip.Compare(last) <= 0 {
				return true
			}
		}
	}
	return false
}

func filterAddressesOverlap(addrs []string, p Prefix) bool {
	if len(addrs) == 0 || p.any {
		return true
	}
	first, last := p.net.Addr(), lastAddr(p.net)
	for _, s := range addrs {
		a, b, ok := filterAddressRange(s)
		if !ok {
			return true
		}
		if a.BitLen() == first.BitLen() && a.Compare(last) <= 0 && first.Compare(b) <= 0 {
			return true
		}
	}
	return false
}

// lastAddr is the highest address of a masked prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// parseMachineIPs reads a machine's private addresses, which the cloud
// packages take from NIC / ENI configurations.
func parseMachineIPs(machine string, ips []string) ([]netip.Addr, error) {
	if len(ips) == 0 {
		return nil, fmt.Errorf("virtual machine %s has no private IP address, so no rule can target it", machine)
	}
	out := make([]netip.Addr, 0, len(ips))
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("virtual machine %s has an invalid private IP address %q", machine, s)
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}
