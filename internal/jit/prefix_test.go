package jit

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParsePrefix_normalises(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"*", "*"},
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"203.0.113.7", "203.0.113.7/32"},
		{"203.0.113.7/32", "203.0.113.7/32"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"2001:DB8::1", "2001:db8::1/128"},
		{"::/0", "::/0"},
	} {
		p, err := ParsePrefix(tc.in)
		if err != nil || p.String() != tc.want {
			t.Errorf("ParsePrefix(%q) = %q, %v; want %q", tc.in, p, err, tc.want)
		}
	}
}

func TestParsePrefix_rejectsGarbage(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "not an IP address"},
		{" 10.0.0.1", "no spaces"},
		{"10.0.0.1 ", "no spaces"},
		{"10.0.0.256", "not an IP address"},
		{"010.0.0.1", "not an IP address"},
		{"10.0.0.0/33", "not a valid CIDR"},
		{"10.0.0.0/", "not a valid CIDR"},
		{"10.0.0.5/8", "write 10.0.0.0/8 for the network or 10.0.0.5/32 for the single address"},
		{"2001:db8::1/32", "write 2001:db8::/32 for the network or 2001:db8::1/128"},
		{"fe80::1%eth0", "not an IP address"},
		{"fe80::1%eth0/64", "not a valid CIDR"},
		{"VirtualNetwork", "not an IP address"},
		{"Internet", "not an IP address"},
		{"**", "not an IP address"},
		{"10.0.0.1-10.0.0.9", "not an IP address"},
	} {
		_, err := ParsePrefix(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParsePrefix(%q) error = %v; want one containing %q", tc.in, err, tc.msg)
		}
	}
}

func TestPrefixContains(t *testing.T) {
	for _, tc := range []struct {
		outer, inner string
		want         bool
	}{
		{"*", "*", true},
		{"*", "10.0.0.0/8", true},
		{"*", "2001:db8::/32", true},
		{"10.0.0.0/8", "*", false},
		{"0.0.0.0/0", "*", false},
		{"10.0.0.0/8", "10.1.2.3", true},
		{"10.0.0.0/8", "10.1.0.0/16", true},
		{"10.0.0.0/8", "10.0.0.0/8", true},
		{"10.0.0.0/16", "10.0.0.0/8", false},
		{"10.0.0.0/8", "11.0.0.1", false},
		{"203.0.113.7", "203.0.113.7/32", true},
		{"0.0.0.0/0", "2001:db8::1", false},
		{"::/0", "10.0.0.1", false},
		{"::/0", "::ffff:10.0.0.1", true},
		{"10.0.0.0/8", "::ffff:10.0.0.1", false},
		{"2001:db8::/32", "2001:db8:1::/48", true},
	} {
		o, err1 := ParsePrefix(tc.outer)
		i, err2 := ParsePrefix(tc.inner)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad test prefixes %q %q: %v %v", tc.outer, tc.inner, err1, err2)
		}
		if got := o.Contains(i); got != tc.want {
			t.Errorf("%s.Contains(%s) = %v; want %v", tc.outer, tc.inner, got, tc.want)
		}
	}
	var zero Prefix
	if zero.Contains(AnyPrefix) || AnyPrefix.Contains(zero) || zero.Contains(zero) || zero.String() != "" {
		t.Error("the zero Prefix must contain nothing and render empty")
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
