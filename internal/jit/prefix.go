package jit

import (
	"fmt"
	"net/netip"
	"strings"
)

// Prefix is a source address range of a JIT port or request: an IPv4 or
// IPv6 CIDR, a single address, or "*" for any address of either family.
// The zero value is no prefix: it contains nothing and nothing contains it.
type Prefix struct {
	any bool
	net netip.Prefix
}

// AnyPrefix is "*": every address of both families.
var AnyPrefix = Prefix{any: true}

// ParsePrefix reads a user-written prefix. A single address becomes a /32
// (or /128) prefix. A CIDR with host bits set ("10.0.0.5/8") is rejected
// rather than silently masked: the user meant either the network or the
// host, and guessing could open a port to far more sources than intended;
// the error names both readings. Zones ("fe80::1%eth0") are rejected: cloud
// rules have no use for them.
func ParsePrefix(s string) (Prefix, error) {
	if s == "*" {
		return AnyPrefix, nil
	}
	if strings.TrimSpace(s) != s || s == "" {
		return Prefix{}, fmt.Errorf(`%q is not an IP address, a CIDR or "*" (no spaces allowed)`, s)
	}
	if addrPart, _, ok := strings.Cut(s, "/"); ok {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Prefix{}, fmt.Errorf("%q is not a valid CIDR", s)
		}
		if p.Masked() != p {
			return Prefix{}, fmt.Errorf("%q has host bits set: write %s for the network or %s/%d for the single address",
				s, p.Masked(), addrPart, p.Addr().BitLen())
		}
		return Prefix{net: p}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return Prefix{}, fmt.Errorf(`%q is not an IP address, a CIDR or "*"`, s)
	}
	return Prefix{net: netip.PrefixFrom(a, a.BitLen())}, nil
}

// IsAny reports whether p is "*".
func (p Prefix) IsAny() bool { return p.any }

// Contains reports whether every address of inner lies in p: "*" contains
// everything, a prefix contains any narrower or equal prefix of its own
// family inside it, and no prefix of one family contains one of the other.
// This is the check that a request's source lies inside an allowed prefix.
func (p Prefix) Contains(inner Prefix) bool {
	switch {
	case !inner.any && !inner.net.IsValid():
		return false
	case p.any:
		return true
	case inner.any || !p.net.IsValid():
		return false
	}
	return p.net.Addr().Is4() == inner.net.Addr().Is4() &&
		p.net.Bits() <= inner.net.Bits() && p.net.Contains(inner.net.Addr())
}

// String is "*" or the canonical CIDR ("203.0.113.7/32", "2001:db8::/32"),
// the form both NSG rules and security-group rules accept.
func (p Prefix) String() string {
	switch {
	case p.any:
		return "*"
	case p.net.IsValid():
		return p.net.String()
	}
	return ""
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
