package jit

import (
	"net/netip"
	"strings"
	"testing"
)

func TestFilterPortsContain(t *testing.T) {
	for _, tc := range []struct {
		ranges string
		port   int
		want   bool
	}{
		{"", 22, true},
		{"*", 0, true},
		{"22", 22, true},
		{"22", 23, false},
		{"20-25", 20, true},
		{"20-25", 25, true},
		{"20-25", 26, false},
		{"80 443", 22, false},
		{"80 22", 22, true},
		{"1-65535", 65535, true},
		{"garbage", 22, true}, // unresolvable: assumed to match
	} {
		if got := filterPortsContain(strings.Fields(tc.ranges), tc.port); got != tc.want {
			t.Errorf("ports %q contain %d = %v; want %v", tc.ranges, tc.port, got, tc.want)
		}
	}
}

func TestFilterAddresses(t *testing.T) {
	ips := []netip.Addr{netip.MustParseAddr("10.0.0.4"), netip.MustParseAddr("fd00::4")}
	for _, tc := range []struct {
		addrs string
		cover bool // covers one of ips
		src   string
		over  bool // overlaps src
	}{
		{"", true, "203.0.113.7/32", true},
		{"*", true, "203.0.113.7/32", true},
		{"VirtualNetwork", true, "203.0.113.7/32", true},
		{"10.0.0.4", true, "10.0.0.0/8", true},
		{"10.0.0.5", false, "10.0.0.4/32", false},
		{"10.0.0.0/24", true, "10.0.1.0/24", false},
		{"10.0.0.9/24", true, "10.0.0.128/25", true},
		{"10.0.0.1-10.0.0.4", true, "10.0.0.4/32", true},
		{"10.0.0.5-10.0.0.9", false, "10.0.0.0/29", true},
		{"10.0.0.5-10.0.0.9", false, "10.0.0.0/30", false},
		{"fd00::/64", true, "2001:db8::/32", false},
		{"0.0.0.0/0", true, "2001:db8::/32", false},
		{"::/0", true, "10.0.0.0/8", false},
		{"192.0.2.1 198.51.100.0/24", false, "198.51.100.7/32", true},
		{"10.0.0.1-fd00::9", true, "10.0.0.0/8", true}, // a range across families is no range: a tag
	} {
		addrs := strings.Fields(tc.addrs)
		if got := filterAddressesCoverAny(addrs, ips); got != tc.cover {
			t.Errorf("%q covers %v = %v; want %v", tc.addrs, ips, got, tc.cover)
		}
		src, err := ParsePrefix(tc.src)
		if err != nil {
			t.Fatal(err)
		}
		if got := filterAddressesOverlap(addrs, src); got != tc.over {
			t.Errorf("%q overlaps %s = %v; want %v", tc.addrs, tc.src, got, tc.over)
		}
	}
	if !filterAddressesOverlap([]string{"10.0.0.1"}, AnyPrefix) {
		t.Error("every address overlaps *")
	}
}

func TestFilterProtocols(t *testing.T) {
	for _, tc := range []struct {
		names []string
		port  Protocol
		want  bool
	}{
		{[]string{"Tcp"}, ProtocolTCP, true},
		{[]string{"TCP"}, ProtocolUDP, false},
		{[]string{"Udp"}, ProtocolAny, true},
		{[]string{"*"}, ProtocolUDP, true},
		{[]string{"Any"}, ProtocolTCP, true},
		{[]string{"Icmp"}, ProtocolAny, false},
		{[]string{"ICMP", "Esp", "Ah"}, ProtocolTCP, false},
		{[]string{"ICMP", "UDP"}, ProtocolUDP, true},
		{[]string{"Gre"}, ProtocolTCP, true}, // unknown: assumed to match
		{nil, ProtocolTCP, true},
	} {
		if got := filterProtocolsOf(tc.names...)&jitFilterProtocols(tc.port) != 0; got != tc.want {
			t.Errorf("%v matches %s = %v; want %v", tc.names, tc.port, got, tc.want)
		}
	}
}

func TestLastAddr(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8":    "10.255.255.255",
		"10.0.0.128/25": "10.0.0.255",
		"10.0.0.7/32":   "10.0.0.7",
		"0.0.0.0/0":     "255.255.255.255",
		"2001:db8::/32": "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
	} {
		if got := lastAddr(netip.MustParsePrefix(in)).String(); got != want {
			t.Errorf("lastAddr(%s) = %s; want %s", in, got, want)
		}
	}
}

func TestPrioritySlots(t *testing.T) {
	s := newPrioritySlots(100, 4096)
	if p, _ := s.placeDeny(100); p != DenyPriorityBase {
		t.Errorf("first deny at %d", p)
	}
	if p, _ := s.placeDeny(3000); p != 3000 {
		t.Errorf("deny after 2999 at %d", p)
	}
	for q := 1000; q <= 4096; q++ {
		s.take(q)
	}
	if p, _ := s.placeDeny(500); p != 999 {
		t.Errorf("deny with the base range full at %d; want the highest free below it", p)
	}
	if p, _ := s.placeGrant(999); p != 998 {
		t.Errorf("grant at %d", p)
	}
	for q := 101; q <= 997; q++ {
		s.take(q)
	}
	if _, ok := s.placeDeny(100); ok {
		t.Error("the last free priority went to a deny, leaving none before it")
	}
	if p, ok := s.placeGrant(4097); !ok || p != 100 {
		t.Errorf("grant at %d, %v", p, ok)
	}
	if _, ok := s.placeGrant(4097); ok {
		t.Error("grant placed in a full list")
	}
	s.take(99999) // out of range: ignored
}
