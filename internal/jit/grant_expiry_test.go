package jit

import (
	"strings"
	"testing"
	"time"
)

func TestFirewallGrantEndIsTheEarliestMarker(t *testing.T) {
	early := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	late := early.Add(time.Hour)
	descs := []string{
		GrantMarker("prod", late, "bob@example.com", "INC-2").String(),
		GrantMarker("prod", early, "alice@example.com", "INC-1").String(),
	}
	end, by, ok := FirewallGrantEnd(descs)
	if !ok || !end.Equal(early) || by != "alice@example.com" {
		t.Fatalf("FirewallGrantEnd = %v %q %v, want %v alice@example.com true", end, by, ok, early)
	}
}

func TestFirewallGrantEndRefusesWhatIsNotAGrant(t *testing.T) {
	grant := GrantMarker("prod", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), "a", "b").String()
	for name, descs := range map[string][]string{
		"no rules":        nil,
		"hand-written":    {grant, "opened by hand"},
		"deny marker":     {DenyMarker("prod").String()},
		"edited marker":   {strings.Replace(grant, "why=b", "why=c", 1)},
		"only hand rules": {""},
	} {
		if _, _, ok := FirewallGrantEnd(descs); ok {
			t.Errorf("%s: FirewallGrantEnd accepted %q", name, descs)
		}
	}
}

func TestIsFirewallGrantCollection(t *testing.T) {
	if !IsFirewallGrantCollection(FirewallGrantCollectionName("req-1", "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/web")) {
		t.Error("a grant collection's name is not recognised")
	}
	if IsFirewallGrantCollection(FirewallDenyCollectionName("prod")) || IsFirewallGrantCollection("allow-web") {
		t.Error("a deny or hand-made collection is taken for a grant")
	}
}
