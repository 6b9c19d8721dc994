package jit

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf16"
)

// GrantRecord is who asked for a grant and why, in full: the identity the
// provider authenticated as, the person it acted for (a CI pipeline
// applying a reviewed pull request acts for the request's author), and
// the justification. A grant's marker only abbreviates the first and the
// last; the record is what audit, revoke-expired and a request's refresh
// read back.
//
// Where a record lives is the backend's choice (an EC2 grant group's tags;
// an Azure VM's tags): each field is one tag value of at most 256
// characters, the limit both clouds share. A value that does not fit is
// cut visibly (FitTagValue): its beginning, CutMark, and the SHA-256 of the
// whole, so the whole can still be verified against another copy (the
// pull request, a CI log, the platform's audit log).
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

// RecordTagPrefix prefixes the tags of one request's record kept on a
// machine beside other requests': "jit-record-<request>-".
func RecordTagPrefix(request string) string { return recordTagStart + request + "-" }

const recordTagStart = "jit-record-"

// RecordRequests lists the requests whose records a machine's tags hold.
func RecordRequests(tags map[string]string) []string {
	var out []string
	for name := range tags {
		if rest, ok := strings.CutPrefix(name, recordTagStart); ok {
			if request, ok := strings.CutSuffix(rest, "-"+TagRequestor); ok {
				out = append(out, request)
			}
		}
	}
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
