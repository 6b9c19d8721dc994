package jit

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// armRuleName is ARM's rule for security rule (and rule collection) names.
var armRuleName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$`)

const vmID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-prod/providers/Microsoft.Compute/virtualMachines/web-01"

func TestRuleNames_areValidReadableAndDeterministic(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{DenyRuleName("prod-web", vmID, PortProtocol{22, ProtocolTCP}), "jit-deny-prod-web-web-01-22-tcp-"},
		{DenyRuleName("prod web/α", "i-0123456789abcdef0", PortProtocol{3389, ProtocolAny}), "jit-deny-prod-web-i-0123456789abcdef0-3389-any-"},
		{GrantRuleName("req-1", vmID, PortProtocol{53, ProtocolUDP}), "jit-grant-web-01-53-udp-req-1-"},
		{GrantRuleName("20261123T094700Z-1c398f3a", vmID, PortProtocol{22, ProtocolTCP}), "jit-grant-web-01-22-tcp-20261123T094700Z-1c398f3a-"},
		{DenyRuleName("ααα", "///", PortProtocol{0, ProtocolTCP}), "jit-deny-x-x-0-tcp-"},
	} {
		if !strings.HasPrefix(tc.got, tc.want) || len(tc.got) != len(tc.want)+10 {
			t.Errorf("name %q; want %q followed by a 10-digit hash", tc.got, tc.want)
		}
	}
	if DenyRuleName("p", vmID, PortProtocol{22, ProtocolTCP}) != DenyRuleName("p", strings.ToUpper(vmID), PortProtocol{22, ProtocolTCP}) {
		t.Error("the machine key's case changes the name, but ARM IDs are case-insensitive")
	}
}

func TestRuleNames_randomInputsStayValidAndDistinct(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]string{}
	for i := range 5000 {
		policy, machine, request := randomText(rng, 200), randomText(rng, 300), randomText(rng, 100)
		p := PortProtocol{rng.IntN(65536), Protocols[rng.IntN(3)]}
		for _, n := range []string{DenyRuleName(policy, machine, p), GrantRuleName(request, machine, p)} {
			if len(n) > 80 || !armRuleName.MatchString(n) {
				t.Fatalf("case %d: invalid name %q", i, n)
			}
			key := policy + "\x00" + strings.ToLower(machine) + "\x00" + request + "\x00" + portLabel(p) + n[:8]
			if other, ok := seen[n]; ok && other != key {
				t.Fatalf("two inputs share the name %q", n)
			}
			seen[n] = key
		}
	}
	for _, n := range []string{FirewallDenyCollectionName(randomText(rng, 300)), FirewallGrantCollectionName("r", vmID)} {
		if len(n) > 80 || !armRuleName.MatchString(n) {
			t.Errorf("invalid collection name %q", n)
		}
	}
}

// randomAlphabets mix plain text, markup of markers, non-ASCII and bytes
// that are not UTF-8 at all.
var randomAlphabets = [][]rune{
	[]rune("abcdefghijklmnopqrstuvwxyz"),
	[]rune("ABCxyz0123456789 -_./:@%="),
	[]rune("äöüéαβγ日本語中文🙂"),
	[]rune("\x00\x01\t\n\x7f"),
	[]rune("jit:deny grant pid= policy= chk= by= why= end="),
}

func randomText(rng *rand.Rand, maxLen int) string {
	var b strings.Builder
	n := rng.IntN(maxLen + 1)
	for b.Len() < n {
		a := randomAlphabets[rng.IntN(len(randomAlphabets))]
		if rng.IntN(8) == 0 {
			b.WriteByte(byte(rng.IntN(256)))
			continue
		}
		b.WriteRune(a[rng.IntN(len(a))])
	}
	return b.String()
}

var testEnd = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

func TestMarker_format(t *testing.T) {
	deny := DenyMarker("prod-web").String()
	if want := "jit:deny pid=" + PolicyHash("prod-web") + " policy=prod-web chk="; !strings.HasPrefix(deny, want) || len(deny) != len(want)+8 {
		t.Errorf("deny marker %q", deny)
	}
	grant := GrantMarker("prod-web", testEnd.Add(999*time.Millisecond).In(time.FixedZone("CET", 3600)), "alice smith@contoso.com", "INC-4211 disk full").String()
	if want := "jit:grant pid=" + PolicyHash("prod-web") + " end=2025-03-04T05:06:07Z by=alice%20smith@contoso.com why=INC-4211 disk full chk="; !strings.HasPrefix(grant, want) {
		t.Errorf("grant marker %q; want prefix %q", grant, want)
	}
	if (Marker{}).String() != "" {
		t.Error("a marker without kind must render empty")
	}
}

func TestMarker_roundTrips(t *testing.T) {
	for _, m := range []Marker{
		DenyMarker("prod-web"),
		DenyMarker(""),
		DenyMarker("policy with spaces and policy= chk=deadbeef inside"),
		GrantMarker("p", testEnd, "alice@contoso.com", "INC-4211 disk full"),
		GrantMarker("p", testEnd, "", ""),
		GrantMarker("p", testEnd, "100% sure why=", "why= by= chk=00000000"),
		GrantMarker("p", testEnd, "arn:aws:sts::123456789012:assumed-role/ops/al", "日本語の理由"),
	} {
		got, ok := ParseMarker(m.String())
		if !ok || !sameMarker(got, m) {
			t.Errorf("ParseMarker(%q) = %+v, %v; want %+v", m.String(), got, ok, m)
		}
	}
}

func sameMarker(a, b Marker) bool {
	return a.Kind == b.Kind && a.PolicyHash == b.PolicyHash && a.PolicyName == b.PolicyName && a.End.Equal(b.End) &&
		a.Requestor == b.Requestor && a.Justification == b.Justification
}

func TestMarker_shortensToFit(t *testing.T) {
	long := strings.Repeat("é", 200)
	for _, tc := range []struct {
		name             string
		m                Marker
		requestorAtLeast int
	}{
		{"long policy", DenyMarker(long), 0},
		{"long both", GrantMarker("p", testEnd, strings.Repeat("r", 300), long), 40},
		{"long requestor, short why", GrantMarker("p", testEnd, strings.Repeat("r", 300), "short"), 62},
		{"short requestor, long why", GrantMarker("p", testEnd, "bob", long), 3},
		{"spaces escape within the budget", GrantMarker("p", testEnd, strings.Repeat(" ", 100), long), 39},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.m.String()
			if len(s) > 140 || !utf8.ValidString(s) {
				t.Fatalf("%d bytes, valid UTF-8 %v: %q", len(s), utf8.ValidString(s), s)
			}
			got, ok := ParseMarker(s)
			if !ok || got.String() != s {
				t.Fatalf("shortened marker %q does not parse back to itself", s)
			}
			if !strings.HasPrefix(tc.m.PolicyName, got.PolicyName) || !strings.HasPrefix(tc.m.Requestor, got.Requestor) || !strings.HasPrefix(tc.m.Justification, got.Justification) {
				t.Errorf("fields are not prefixes of the originals: %+v", got)
			}
			if len(escapeRequestor(got.Requestor, 1000)) < tc.requestorAtLeast {
				t.Errorf("requestor kept %d bytes; want at least %d", len(got.Requestor), tc.requestorAtLeast)
			}
			if got.Kind == MarkerGrant && len(s) < 139 && len(got.Justification) < len(tc.m.Justification) {
				t.Errorf("justification cut although room was left: %q", s)
			}
		})
	}
}

func TestMarker_cleansControlCharacters(t *testing.T) {
	m := GrantMarker("p", testEnd, "al\nice", "line1\nline2\x00\xff")
	got, ok := ParseMarker(m.String())
	if !ok || got.Requestor != "al ice" || got.Justification != "line1 line2 ?" {
		t.Errorf("got %+v, %v", got, ok)
	}
}

func TestMarker_belongsTo(t *testing.T) {
	m, ok := ParseMarker(DenyMarker(strings.Repeat("long-policy-", 20)).String())
	if !ok || !m.BelongsTo(strings.Repeat("long-policy-", 20)) || m.BelongsTo(strings.Repeat("long-policy-", 19)) {
		t.Error("a shortened name must still identify its policy, and only it")
	}
}

func TestParseMarker_neverMistakesAForeignDescription(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	valid := []string{
		DenyMarker("prod-web").String(),
		GrantMarker("prod-web", testEnd, "alice@contoso.com", "INC-4211").String(),
		GrantMarker("p", testEnd, strings.Repeat("x", 100), strings.Repeat("y", 100)).String(),
	}
	foreign := []string{
		"", "Allow SSH from the office", "SecurityCenter-JITRule-1234-Deny",
		"jit:deny pid=000000000000 policy=prod-web chk=00000000",
		strings.Replace(valid[0], "policy=prod-web", "policy=prod-wex", 1),
		strings.Replace(valid[1], "2025", "2026", 1),
		strings.ToUpper(valid[0]),
		valid[0] + " ",
		" " + valid[0],
		strings.Replace(valid[1], "end=2025-03-04T05:06:07Z", "end=2025-03-04T06:06:07+01:00", 1),
	}
	cases := len(foreign)
	for _, s := range foreign {
		if m, ok := ParseMarker(s); ok {
			t.Errorf("foreign description %q parsed as %+v", s, m)
		}
	}
	for range 100000 {
		var s string
		switch base := valid[rng.IntN(len(valid))]; rng.IntN(4) {
		case 0:
			s = randomText(rng, 160)
		case 1: // one byte changed
			b := []byte(base)
			i := rng.IntN(len(b))
			b[i] ^= byte(1 + rng.IntN(255))
			s = string(b)
		case 2: // cut short or extended
			if rng.IntN(2) == 0 {
				s = base[:rng.IntN(len(base))]
			} else {
				s = base + randomText(rng, 10) + "x"
			}
		case 3: // a plausible forgery with a random checksum
			s = "jit:deny pid=" + PolicyHash(randomText(rng, 10)) + " policy=" + randomText(rng, 20) + " chk=" + hexString(rng, 8)
		}
		cases++
		if m, ok := ParseMarker(s); ok {
			t.Fatalf("foreign description %q parsed as %+v", s, m)
		}
	}
	t.Logf("%d foreign descriptions rejected", cases)
}

func hexString(rng *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[rng.IntN(16)]
	}
	return string(b)
}

func FuzzParseMarker(f *testing.F) {
	f.Add(DenyMarker("prod-web").String())
	f.Add(GrantMarker("p", testEnd, "alice", "why").String())
	f.Add("jit:grant pid=000000000000 end=2025-03-04T05:06:07Z by=a why=b chk=00000000")
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := ParseMarker(s)
		if !ok {
			return
		}
		if m.String() != s {
			t.Fatalf("ParseMarker accepted %q, which is not the canonical %q", s, m.String())
		}
		if len(s) > 140 {
			t.Fatalf("accepted %d bytes", len(s))
		}
	})
}

func FuzzMarkerRoundTrip(f *testing.F) {
	f.Add("prod-web", "alice@contoso.com", "INC-4211 disk full", int64(1741064767))
	f.Fuzz(func(t *testing.T, policy, requestor, justification string, unix int64) {
		for _, m := range []Marker{DenyMarker(policy), GrantMarker(policy, time.Unix(unix%253402300799, 0), requestor, justification)} {
			s := m.String()
			if unix < 0 && m.Kind == MarkerGrant {
				continue // years before 0000 have no RFC 3339 form
			}
			got, ok := ParseMarker(s)
			if len(s) > 140 || !ok || got.String() != s || !got.BelongsTo(policy) {
				t.Fatalf("marker %q (%d bytes) parsed %v as %+v", s, len(s), ok, got)
			}
		}
	})
}

func TestCheckFreeTextRefusesWhatReadsDifferently(t *testing.T) {
	for _, ok := range []string{"INC-4211 disk full", "Zugriff für Ärztin", "修复 INC-7", "émoji 🚀"} {
		if err := CheckFreeText(ok); err != nil {
			t.Errorf("CheckFreeText(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"INC-\u202e1124", "line\nbreak", "tab\there", "zero\u200bwidth", "isolate\u2066x\u2069", "\xff\xfe"} {
		if err := CheckFreeText(bad); err == nil {
			t.Errorf("CheckFreeText(%q) = nil, want an error", bad)
		}
	}
	// Should such text reach a marker anyway, it is written visibly plain.
	m := GrantMarker("p", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), "a\u202eb", "why\u202e")
	if s := m.String(); strings.ContainsRune(s, '\u202e') {
		t.Errorf("marker %q keeps U+202E", s)
	}
}
