package jit

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// GrantRecord is who asked for a grant and why, in full: the identity the
// provider authenticated as, the person it acted for (a CI pipeline
// applying a reviewed pull request acts for the request's author), and
// the justification. A grant's marker abbreviates the first and the last
// to fit 140 bytes and has no room for the second; the record is what
// audit, revoke-expired and a request's refresh read back.
//
// Where a record lives is the backend's choice. On a resource of the
// grant's own (an EC2 grant group) every field is a tag (Tags). Where many
// grants share a resource's 50 tags (an Azure VM), only what the marker
// cannot hold whole is a tag (TagsBeside), and RecordOf reads the two
// together. Each tag value holds at most 256 characters, the limit both
// clouds share; a value that does not fit is cut visibly (FitTagValue):
// its beginning, CutMark, and the SHA-256 of the whole, so the whole can
// still be verified against another copy (the pull request, a CI log, the
// platform's audit log).
type GrantRecord struct {
	Requestor     string
	OnBehalfOf    string
	Justification string
}

// Tag names of a record's fields on a grant of its own (an EC2 grant
// group). RecordTagPrefix names them for records kept together, per
// request, on a machine.
const (
	TagRequestor     = "jit-requestor"
	TagOnBehalfOf    = "jit-on-behalf-of"
	TagJustification = "jit-justification"
)

// MaxTagValueLength is the longest tag value both clouds accept: 256
// characters, which ARM counts in UTF-16 code units and EC2 in Unicode
// characters, never fewer than code units; so values are measured in
// UTF-16 code units.
const MaxTagValueLength = 256

// hashMark introduces the hash of a cut value: "<beginning>…sha256:<hex>".
const hashMark = "sha256:"

// cutSuffixLength is what a cut value's mark and hash take.
var cutSuffixLength = utf16Length(CutMark + hashMark + strings.Repeat("0", sha256.Size*2))

// FitTagValue returns s when it fits a tag value, and otherwise its
// beginning, CutMark and the SHA-256 of the whole in hex: visibly cut,
// and verifiable with RecordedMatches.
func FitTagValue(s string) string { return fitText(s, MaxTagValueLength) }

func fitText(s string, n int) string {
	if utf16Length(s) <= n {
		return s
	}
	keep := n - cutSuffixLength
	var b strings.Builder
	used := 0
	for _, r := range s {
		w := utf16.RuneLen(r)
		if w < 0 {
			w = 1 // invalid UTF-8 is written as U+FFFD
		}
		if used+w > keep {
			break
		}
		used += w
		b.WriteRune(r)
	}
	return b.String() + CutMark + hashMark + textHash(s)
}

func textHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TagValueLength is the length of s as a tag value: in UTF-16 code units.
func TagValueLength(s string) int { return utf16Length(s) }

func utf16Length(s string) int {
	n := 0
	for _, r := range s {
		if w := utf16.RuneLen(r); w > 0 {
			n += w
		} else {
			n++
		}
	}
	return n
}

// CutValue reads a value FitTagValue cut: its beginning and the hash of
// the whole. ok is false for a value written whole.
func CutValue(v string) (beginning, hash string, ok bool) {
	i := strings.LastIndex(v, CutMark+hashMark)
	if i < 0 {
		return "", "", false
	}
	hash = v[i+len(CutMark+hashMark):]
	if len(hash) != sha256.Size*2 || strings.Trim(hash, "0123456789abcdef") != "" {
		return "", "", false
	}
	return v[:i], hash, true
}

// RecordedMatches tells whether a recorded value is whole, or the visibly
// cut form of whole (its beginning and hash agree).
func RecordedMatches(recorded, whole string) bool {
	if recorded == whole {
		return true
	}
	beginning, hash, ok := CutValue(recorded)
	// The beginning was written as text: an invalid byte became U+FFFD.
	return ok && strings.HasPrefix(string([]rune(whole)), beginning) && hash == textHash(whole)
}

// Tags renders the record as tag values under prefix ("" on a grant's own
// resource, RecordTagPrefix(request) on a machine): one tag per field, the
// on-behalf-of one only when set.
func (r GrantRecord) Tags(prefix string) map[string]string {
	tags := map[string]string{
		prefix + TagRequestor:     FitTagValue(r.Requestor),
		prefix + TagJustification: FitTagValue(r.Justification),
	}
	if r.OnBehalfOf != "" {
		tags[prefix+TagOnBehalfOf] = FitTagValue(r.OnBehalfOf)
	}
	return tags
}

// RecordFromTags reads back what Tags wrote under prefix; ok is false
// when there is no record (a grant written before records were kept).
func RecordFromTags(tags map[string]string, prefix string) (GrantRecord, bool) {
	requestor, ok := tags[prefix+TagRequestor]
	if !ok {
		return GrantRecord{}, false
	}
	return GrantRecord{Requestor: requestor, OnBehalfOf: tags[prefix+TagOnBehalfOf], Justification: tags[prefix+TagJustification]}, true
}

// TagsBeside renders, under prefix, the fields of r that marker does not
// hold whole: the on-behalf-of (a marker has no room for it), and the
// requestor and justification when the marker shortens them. Releases
// before records shortened silently, so a marker of full length with no
// visible cut is ambiguous: then both go beside it, whole or not.
func (r GrantRecord) TagsBeside(marker Marker, prefix string) map[string]string {
	text := marker.String()
	held, _ := ParseMarker(text)
	ambiguous := silentlyShortened(held, text)
	tags := map[string]string{}
	if ambiguous || held.Requestor != r.Requestor {
		tags[prefix+TagRequestor] = FitTagValue(r.Requestor)
	}
	if ambiguous || held.Justification != r.Justification {
		tags[prefix+TagJustification] = FitTagValue(r.Justification)
	}
	if r.OnBehalfOf != "" {
		tags[prefix+TagOnBehalfOf] = FitTagValue(r.OnBehalfOf)
	}
	return tags
}

// silentlyShortened tells whether a marker may have been shortened by a
// release before records, which marked nothing: it takes (almost) all of
// its 140 bytes and shows no CutMark.
func silentlyShortened(m Marker, text string) bool {
	return len(text) > markerMaxLen-utf8.UTFMax && !strings.HasSuffix(m.Requestor, CutMark) && !strings.HasSuffix(m.Justification, CutMark)
}

// RecordOf reads a grant's record from its marker and the tags TagsBeside
// wrote under prefix: a field from its tag when there is one, else from
// the marker. whole is false when a field is known only shortened: the
// marker marks it (CutMark) and its tag is missing, or the marker may have
// been cut silently by an older release. An on-behalf-of tag that is
// missing reads as nobody.
func RecordOf(m Marker, tags map[string]string, prefix string) (r GrantRecord, whole bool) {
	r = MarkerRecord(m)
	whole = true
	silent := silentlyShortened(m, m.String())
	if v, ok := tags[prefix+TagRequestor]; ok {
		r.Requestor = v
	} else if silent || strings.HasSuffix(m.Requestor, CutMark) {
		whole = false
	}
	if v, ok := tags[prefix+TagJustification]; ok {
		r.Justification = v
	} else if silent || strings.HasSuffix(m.Justification, CutMark) {
		whole = false
	}
	r.OnBehalfOf = tags[prefix+TagOnBehalfOf]
	return r, whole
}

// RecordTagPrefix prefixes the tags of one request's record kept on a
// machine beside other requests': "jit-record-<request>-".
func RecordTagPrefix(request string) string { return recordTagStart + request + "-" }

const recordTagStart = "jit-record-"

// RecordRequests lists, once each, the requests whose records a
// machine's tags hold.
func RecordRequests(tags map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for name := range tags {
		rest, ok := strings.CutPrefix(name, recordTagStart)
		if !ok {
			continue
		}
		for _, field := range []string{TagRequestor, TagOnBehalfOf, TagJustification} {
			if request, ok := strings.CutSuffix(rest, "-"+field); ok && !seen[request] {
				seen[request] = true
				out = append(out, request)
			}
		}
	}
	slices.Sort(out)
	return out
}

// IsRecordTagOf tells whether a tag name belongs to the record of request.
func IsRecordTagOf(name, request string) bool {
	prefix := RecordTagPrefix(request)
	switch name {
	case prefix + TagRequestor, prefix + TagOnBehalfOf, prefix + TagJustification:
		return true
	}
	return false
}

// SameRequester tells whether a grant recorded as recorded was asked for by
// the same requester as one by requestor on behalf of onBehalfOf: both the
// authenticated identity and the person it acted for agree. A newer
// request supersedes only the same requester's older grant; different
// people's grants coexist.
func SameRequester(recorded GrantRecord, requestor, onBehalfOf string) bool {
	return RecordedMatches(recorded.Requestor, requestor) && RecordedMatches(recorded.OnBehalfOf, onBehalfOf)
}

// MarkerRecord is the record of a grant written before records were kept:
// its marker's requestor, and no one acted for. A requestor its marker
// shortened (silently then) matches any requestor it begins; see
// SameRequesterAsMarker.
func MarkerRecord(m Marker) GrantRecord {
	return GrantRecord{Requestor: m.Requestor, Justification: m.Justification}
}

// SameRequesterAsMarker is SameRequester for a grant with no record: the
// marker's requestor is the whole one, or its shortened beginning.
func SameRequesterAsMarker(m Marker, requestor, onBehalfOf string) bool {
	if onBehalfOf != "" {
		return false
	}
	if m.Requestor == requestor {
		return true
	}
	beginning := strings.TrimSuffix(m.Requestor, CutMark)
	// A marker keeps at least markerRequestorMin bytes of a requestor it
	// shortens; anything shorter was whole, and different.
	return len(escapeRequestor(beginning, markerMaxLen)) >= markerRequestorMin-len(CutMark)-len("%20") && strings.HasPrefix(requestor, beginning)
}

// SameRequesterOf is SameRequester for a grant found in the cloud: by its
// record when it is whole (non-nil), else by its marker.
func SameRequesterOf(record *GrantRecord, m Marker, requestor, onBehalfOf string) bool {
	if record != nil {
		return SameRequester(*record, requestor, onBehalfOf)
	}
	return SameRequesterAsMarker(m, requestor, onBehalfOf)
}
