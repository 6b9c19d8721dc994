package jit

import (
	"strings"
	"testing"
	"time"
)

// A marker keeps what fits of a long requestor; the same person's grants
// match whatever the justification beside the requestor cut off, other
// people's never do.
func TestSameRequester(t *testing.T) {
	end := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	stored := func(requestor, why string) Marker {
		m, ok := ParseMarker(GrantMarker("web", end, requestor, why).String())
		if !ok {
			t.Fatalf("marker of %q does not parse", requestor)
		}
		return m
	}
	role := "arn:aws:sts::123456789012:assumed-role/ci-deployer/github-actions-run-4242"
	long := strings.Repeat("why not ", 8)
	for _, tc := range []struct {
		name string
		a, b Marker
		same bool
	}{
		{"one person", stored("alice@example.com", "INC-1"), stored("alice@example.com", "INC-2"), true},
		{"two people", stored("alice@example.com", "INC-1"), stored("bob@example.com", "INC-1"), false},
		{"one a prefix of the other, neither cut", stored("alice@example.com", "x"), stored("alice@example.co", "x"), false},
		{"long requestor cut differently", stored(role, long), stored(role, "INC-1"), true},
		{"long requestor, stored against the full one", stored(role, long), GrantMarker("web", end, role, long), true},
		{"two roles sharing what a cut marker kept", stored(role, long), stored(role+"-other", "INC-1"), true},
		{"two roles differing within what is kept", stored(role, long), stored(strings.Replace(role, "123456789012", "210987654321", 1), long), false},
	} {
		if got := SameRequester(tc.a, tc.b); got != tc.same {
			t.Errorf("%s: SameRequester(%q, %q) = %v, want %v", tc.name, tc.a.Requestor, tc.b.Requestor, got, tc.same)
		}
		if got := SameRequester(tc.b, tc.a); got != tc.same {
			t.Errorf("%s, reversed: got %v, want %v", tc.name, got, tc.same)
		}
	}
}
