package jit

import (
	"strings"
	"testing"
	"time"
)

func TestGrantClaimFitsOnlyWhatThePolicyCouldHaveGranted(t *testing.T) {
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	request := "20261123T090000Z-7d2ca4bc"
	ports := []Port{{Number: 22, Protocol: ProtocolTCP, AllowedSourcePrefixes: []string{"203.0.113.0/24"}, MaxRequestAccessDuration: Duration(2 * time.Hour)}}
	rule := func(source string, end time.Time, name, port string, policy string) NSGRule {
		return NSGRule{Name: name, Direction: NSGInbound, Access: NSGAllow, Protocol: NSGProtocolTCP, Priority: 999,
			SourcePrefixes: []string{source}, DestinationPrefixes: []string{"10.0.1.4"}, DestinationPortRanges: []string{port},
			Description: GrantMarker(policy, end, "alice", "INC-1").String()}
	}
	name := GrantRuleName(request, "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/web", PortProtocol{22, ProtocolTCP})
	for _, tc := range []struct {
		what string
		rule NSGRule
		fits string // "" fits, else a word of the reason
	}{
		{"the provider's own grant", rule("203.0.113.7/32", start.Add(time.Hour), name, "22", "web"), ""},
		{"a narrower source at the maximum", rule("203.0.113.7", start.Add(2*time.Hour), name, "22", "web"), ""},
		{"a source outside the allowed prefixes", rule("0.0.0.0/0", start.Add(time.Hour), name, "22", "web"), "outside"},
		{"any source", rule("*", start.Add(time.Hour), name, "22", "web"), "outside"},
		{"an end past the maximum", rule("203.0.113.7/32", start.Add(2*time.Hour+time.Second), name, "22", "web"), "beyond"},
		{"a port the policy does not lock", rule("203.0.113.7/32", start.Add(time.Hour), name, "3389", "web"), "not locked"},
		{"a port range", rule("203.0.113.7/32", start.Add(time.Hour), name, "1-65535", "web"), "one port"},
		{"no request in its name", rule("203.0.113.7/32", start.Add(time.Hour), "allow-ssh-forever", "22", "web"), "no request"},
		{"another policy's marker", rule("203.0.113.7/32", start.Add(time.Hour), name, "22", "db"), "not marked"},
	} {
		m, _ := ParseMarker(tc.rule.Description)
		ok, why := NSGGrantClaim(tc.rule, m).FitsPolicy("web", ports)
		switch {
		case tc.fits == "" && !ok:
			t.Errorf("%s: refused (%s), want it honoured", tc.what, why)
		case tc.fits != "" && (ok || !strings.Contains(why, tc.fits)):
			t.Errorf("%s: fits %v (%q), want refused for %q", tc.what, ok, why, tc.fits)
		}
	}
	// A firewall's forwarding subnet is a source the caller may allow.
	m, _ := ParseMarker(rule("10.0.250.0/26", start.Add(time.Hour), name, "22", "web").Description)
	if ok, why := NSGGrantClaim(rule("10.0.250.0/26", start.Add(time.Hour), name, "22", "web"), m).FitsPolicy("web", ports, "10.0.250.0/26"); !ok {
		t.Errorf("a grant from the firewall's subnet: %s", why)
	}
}

func TestGrantClaimOutlivesAnyPolicy(t *testing.T) {
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		request string
		end     time.Time
		want    bool
	}{
		{"20261123T090000Z-7d2ca4bc", start.Add(24 * time.Hour), false},
		{"20261123T090000Z-7d2ca4bc", start.Add(24*time.Hour + time.Second), true},
		{"", start.Add(time.Hour), true},
	} {
		c := GrantClaim{Marker: Marker{Kind: MarkerGrant, End: tc.end}, Request: tc.request}
		if got := c.OutlivesAnyPolicy(); got != tc.want {
			t.Errorf("request %q ending %s: outlives %v, want %v", tc.request, tc.end, got, tc.want)
		}
	}
}
