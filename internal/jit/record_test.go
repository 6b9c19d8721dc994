package jit

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
)

func TestFitTagValue_keepsWhatFitsWhole(t *testing.T) {
	for _, s := range []string{
		"",
		"arn:aws:sts::123456789012:assumed-role/GitHubActions-Deploy-Production-Role/run-8812345678-attempt-1-pull-request-4711-of-jitaccess-requests",
		strings.Repeat("j", 256),
		strings.Repeat("é", 256), // 256 code units, 512 bytes
		strings.Repeat("🙂", 128), // 256 code units
	} {
		if got := FitTagValue(s); got != s {
			t.Errorf("%d code units changed to %q", utf16Length(s), got)
		}
	}
}

func TestFitTagValue_cutsVisiblyWithAHashOfTheWhole(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 3000 {
		whole := randomText(rng, 1200)
		if utf16Length(whole) <= MaxTagValueLength {
			continue
		}
		got := FitTagValue(whole)
		if n := len(utf16.Encode([]rune(got))); n > MaxTagValueLength {
			t.Fatalf("case %d: %d code units", i, n)
		}
		beginning, hash, ok := CutValue(got)
		sum := sha256.Sum256([]byte(whole))
		if !ok || hash != hex.EncodeToString(sum[:]) || !strings.HasSuffix(got, CutMark+"sha256:"+hash) {
			t.Fatalf("case %d: %q does not end with the mark and the whole's SHA-256", i, got)
		}
		if !strings.HasPrefix(string([]rune(whole)), beginning) || len(beginning) < 100 {
			t.Fatalf("case %d: beginning %q is not the whole's", i, beginning)
		}
		if !RecordedMatches(got, whole) || RecordedMatches(got, whole+"x") || RecordedMatches(got, beginning) {
			t.Fatalf("case %d: the cut value verifies the wrong wholes", i)
		}
	}
}

func TestRecord_tagsRoundTrip(t *testing.T) {
	longARN := "arn:aws:iam::123456789012:user/" + strings.Repeat("team/", 60) + "operator"
	r := GrantRecord{Requestor: longARN, OnBehalfOf: "octocat", Justification: strings.Repeat("w", 256)}
	tags := r.Tags(RecordTagPrefix("20300301T120000Z-0a1b2c3d"))
	if len(tags) != 3 {
		t.Fatalf("tags %v", tags)
	}
	for name := range tags {
		if !IsRecordTagOf(name, "20300301T120000Z-0a1b2c3d") || IsRecordTagOf(name, "20300301T120000Z-0a1b2c3e") || IsPolicyTag(name) {
			t.Errorf("tag %s is not told apart", name)
		}
	}
	got, ok := RecordFromTags(tags, RecordTagPrefix("20300301T120000Z-0a1b2c3d"))
	if !ok || got.Justification != r.Justification || got.OnBehalfOf != "octocat" {
		t.Fatalf("record %+v, %v", got, ok)
	}
	if got.Requestor == longARN || !RecordedMatches(got.Requestor, longARN) {
		t.Errorf("a requestor of %d characters is recorded as %q", len(longARN), got.Requestor)
	}
	if reqs := RecordRequests(tags); len(reqs) != 1 || reqs[0] != "20300301T120000Z-0a1b2c3d" {
		t.Errorf("requests %v", reqs)
	}
	if _, ok := RecordFromTags(map[string]string{"jit-policy": "p"}, ""); ok {
		t.Error("a record found where there is none")
	}
	if tags := (GrantRecord{Requestor: "a", Justification: "b"}).Tags(""); len(tags) != 2 {
		t.Errorf("no on-behalf-of still writes %v", tags)
	}
}

func TestSameRequester(t *testing.T) {
	ci := "arn:aws:sts::123456789012:assumed-role/ci/run-1"
	rec := GrantRecord{Requestor: ci, OnBehalfOf: "alice"}
	for _, tc := range []struct {
		requestor, obo string
		want           bool
	}{
		{ci, "alice", true},
		{ci, "bob", false},
		{ci, "", false},
		{"arn:aws:sts::123456789012:assumed-role/ci/run-2", "alice", false},
	} {
		if got := SameRequester(rec, tc.requestor, tc.obo); got != tc.want {
			t.Errorf("SameRequester(%q, %q) = %v", tc.requestor, tc.obo, got)
		}
	}
	long := "arn:aws:iam::123456789012:user/" + strings.Repeat("x/", 200) + "op"
	if !SameRequester(GrantRecord{Requestor: FitTagValue(long)}, long, "") || SameRequester(GrantRecord{Requestor: FitTagValue(long)}, long+"2", "") {
		t.Error("a cut requestor must match its whole only")
	}
}

func TestSameRequesterAsMarker_grantsWithoutRecord(t *testing.T) {
	arn := "arn:aws:sts::123456789012:assumed-role/GitHubActions-Deploy/run-8812345678"
	legacy, ok := ParseMarker(legacyGrantMarker(PolicyHash("p"), testEnd, arn, strings.Repeat("y", 100)))
	if !ok || legacy.Requestor == arn {
		t.Fatalf("the legacy marker keeps %q", legacy.Requestor)
	}
	current, _ := ParseMarker(GrantMarker("p", testEnd, arn, strings.Repeat("y", 100)).String())
	for _, m := range []Marker{legacy, current} {
		if !SameRequesterAsMarker(m, arn, "") {
			t.Errorf("marker by=%q does not match its own requestor", m.Requestor)
		}
		if SameRequesterAsMarker(m, arn, "alice") {
			t.Errorf("a grant without record acted for nobody")
		}
	}
	short, _ := ParseMarker(GrantMarker("p", testEnd, "al", "x").String())
	if SameRequesterAsMarker(short, "alice", "") {
		t.Error("a short whole requestor matched a longer one")
	}
}

func TestRecordBesideAMarker_onlyWhatTheMarkerCannotHold(t *testing.T) {
	prefix := RecordTagPrefix("20300301T120000Z-0a1b2c3d")
	arn := "arn:aws:sts::123456789012:assumed-role/GitHubActions-Deploy-Production/run-8812345678-attempt-1"
	why := strings.Repeat("INC-4211 the disk of the primary filled up overnight; ", 5)[:256]
	for _, tc := range []struct {
		name string
		r    GrantRecord
		tags []string
	}{
		{"short fields need no tag", GrantRecord{Requestor: "alice@contoso.com", Justification: "INC-1"}, nil},
		{"on-behalf-of has no room in a marker", GrantRecord{Requestor: "app:1b2c", OnBehalfOf: "octocat", Justification: "INC-1"}, []string{TagOnBehalfOf}},
		{"a long requestor", GrantRecord{Requestor: arn, Justification: "INC-1"}, []string{TagRequestor}},
		{"a long justification", GrantRecord{Requestor: "alice@contoso.com", Justification: why}, []string{TagJustification}},
		{"everything", GrantRecord{Requestor: arn, OnBehalfOf: "octocat", Justification: why}, []string{TagJustification, TagOnBehalfOf, TagRequestor}},
		// 40 + 27 bytes fill the marker exactly: both go beside it, so
		// that a full marker without them tells an older, silent cut.
		{"a marker filled exactly", GrantRecord{Requestor: strings.Repeat("r", 40), Justification: strings.Repeat("w", 27)}, []string{TagJustification, TagRequestor}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := GrantMarker("p", testEnd, tc.r.Requestor, tc.r.Justification)
			tags := tc.r.TagsBeside(m, prefix)
			var names []string
			for name := range tags {
				names = append(names, strings.TrimPrefix(name, prefix))
			}
			slices.Sort(names)
			if !slices.Equal(names, tc.tags) {
				t.Fatalf("tags %v, want %v", names, tc.tags)
			}
			parsed, _ := ParseMarker(m.String())
			got, whole := RecordOf(parsed, tags, prefix)
			if !whole || got != tc.r {
				t.Errorf("read back %+v (whole %v), want %+v", got, whole, tc.r)
			}
			// Without the requestor's or justification's tag, a record
			// whose marker shortened them is not whole.
			_, cutWho := tags[prefix+TagRequestor]
			_, cutWhy := tags[prefix+TagJustification]
			if got, whole := RecordOf(parsed, nil, prefix); (cutWho || cutWhy) && whole {
				t.Errorf("without its tags the record reads whole: %+v", got)
			}
		})
	}
	// An older release's marker, filled and cut silently, is not whole.
	legacy, _ := ParseMarker(legacyGrantMarker(PolicyHash("p"), testEnd, arn, why))
	if _, whole := RecordOf(legacy, nil, prefix); whole {
		t.Error("a silently cut marker reads as whole")
	}
	if r := (GrantRecord{Requestor: "a", Justification: "b"}).TagsBeside(GrantMarker("p", testEnd, "a", "b"), prefix); len(r) != 0 {
		t.Errorf("tags %v", r)
	}
}
