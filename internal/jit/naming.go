package jit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Names of the rules the provider writes. They are deterministic, so a
// resource finds its rules again from its own arguments, and fit ARM's rule
// name rules: at most 80 characters of letters, digits, "_", "." and "-",
// starting with a letter or digit and ending with a letter, digit or "_".
// Readable parts (policy, machine, port) help people in the portal; the
// hash makes the name unique however those parts were shortened.

// DenyRuleName names the deny of a port for one machine of a policy:
// "jit-deny-<policy>-<machine>-22-tcp-<hash>".
func DenyRuleName(policy, machine string, port PortProtocol) string {
	return "jit-deny-" + nameSlug(policy, 20) + "-" + nameSlug(machineShortName(machine), 20) + "-" +
		portSlug(port) + "-" + nameHash("deny", policy, strings.ToLower(machine), portLabel(port))
}

// GrantRuleName names the grant of a port to one machine by one request:
// "jit-grant-<machine>-22-tcp-<request>-<hash>". The request ID is kept
// (its first 25 characters), so that the rule tells when it was granted:
// the provider's IDs start with the start time, "20261123T094700Z-…", and
// the marker in the description has room for the end time only.
func GrantRuleName(request, machine string, port PortProtocol) string {
	return "jit-grant-" + nameSlug(machineShortName(machine), 20) + "-" + portSlug(port) + "-" +
		nameSlug(request, 25) + "-" + nameHash("grant", request, strings.ToLower(machine), portLabel(port))
}

// GrantRuleOf tells whether name is GrantRuleName(request, machine, port)
// for some request and port, and which: how a grant rule found in an NSG
// or on a firewall is traced to its machine and request. Only request IDs
// that the name keeps whole (at most 25 characters of letters, digits,
// "_", "." and single "-", as the provider's are) can be traced.
func GrantRuleOf(name, machine string) (request string, port PortProtocol, ok bool) {
	rest, found := strings.CutPrefix(name, GrantRulePrefix(machine))
	if !found {
		return "", PortProtocol{}, false
	}
	num, rest, _ := strings.Cut(rest, "-")
	proto, rest, _ := strings.Cut(rest, "-")
	n, err := strconv.Atoi(num)
	if err != nil || len(rest) <= 11 || rest[len(rest)-11] != '-' {
		return "", PortProtocol{}, false
	}
	port.Number = n
	switch proto {
	case "tcp":
		port.Protocol = ProtocolTCP
	case "udp":
		port.Protocol = ProtocolUDP
	case "any":
		port.Protocol = ProtocolAny
	default:
		return "", PortProtocol{}, false
	}
	request = rest[:len(rest)-11]
	if GrantRuleName(request, machine, port) != name {
		return "", PortProtocol{}, false
	}
	return request, port, true
}

// GrantRulePrefix begins the name of every grant rule of machine (and of
// other machines of the same name): for narrowing a search.
func GrantRulePrefix(machine string) string {
	return "jit-grant-" + nameSlug(machineShortName(machine), 20) + "-"
}

// GrantRuleRequest is the request a grant rule name carries, when its
// machine is not known: the part before the hash, as long as a request ID
// of the provider's ("20261123T094700Z-1c398f3a"). It is a guess, for
// reporting grants whose machine is gone; GrantRuleOf verifies.
func GrantRuleRequest(name string) string {
	const idLen = len("20261123T094700Z-1c398f3a")
	if !strings.HasPrefix(name, "jit-grant-") || len(name) < len("jit-grant-")+idLen+11 {
		return ""
	}
	return name[len(name)-11-idLen : len(name)-11]
}

// machineShortName is the last segment of an ARM ID (the VM name), or the
// key itself (an EC2 instance ID). Machine keys are used lower-cased
// because ARM IDs are case-insensitive and come back in varying case.
func machineShortName(machine string) string {
	return strings.ToLower(machine[strings.LastIndexByte(machine, '/')+1:])
}

func portSlug(p PortProtocol) string {
	proto := strings.ToLower(string(p.Protocol))
	if p.Protocol == ProtocolAny {
		proto = "any"
	}
	return strconv.Itoa(p.Number) + "-" + proto
}

// nameSlug keeps letters, digits, "_" and "." of s, turns every other run
// into one "-", and shortens it to at most n bytes.
func nameSlug(s string, n int) string {
	var b strings.Builder
	dash := false
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '.'):
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
	}
	slug := b.String()
	if len(slug) > n {
		slug = strings.TrimRight(slug[:n], "-")
	}
	if slug == "" {
		return "x"
	}
	return slug
}

// nameHash is 40 bits of SHA-256 over the parts: enough that two rules of
// one NSG never share a name.
func nameHash(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:5])
}

// MarkerKind tells a JIT deny from a JIT grant.
type MarkerKind string

const (
	MarkerDeny  MarkerKind = "deny"
	MarkerGrant MarkerKind = "grant"
)

// Marker is what the provider writes into the description of each rule it
// owns, so it can find the rule again without state (after an import, from
// revoke-expired, from another configuration) and tell deny from grant.
//
// Its text, at most 140 bytes (Azure's description limit; bytes rather
// than characters so that no way of counting can overflow it):
//
//	jit:deny pid=<policy hash> policy=<policy name> chk=<checksum>
//	jit:grant pid=<policy hash> end=<RFC 3339 UTC> by=<requestor> why=<justification> chk=<checksum>
//
// pid is 48 bits of SHA-256 of the policy name, and is what identifies the
// policy: the name is there for people and may be shortened. by escapes
// "%" and spaces as %25 and %20; policy and why run to the next field, so
// they need no escaping; control characters and invalid UTF-8 are written
// as spaces and "?". Requestor and justification are shortened, at a
// character boundary, to what fits, and a shortened one ends with "…" so
// that nobody reads it as whole: the requestor keeps at least 40 bytes.
// The whole values live in the grant's record (GrantRecord), which the
// marker only abbreviates. chk is 32 bits of SHA-256 of everything before
// it: a description someone wrote, or one of ours they edited, is not
// mistaken for a marker.
//
// The grammar is the one the first releases wrote and parsed, so markers
// stay readable both ways: a marker written before shortening was marked
// (cut silently) parses here, and one written here parses there, since
// "…" is plain text inside by and why. An older revoke-expired beside a
// newer provider still finds and revokes every grant.
type Marker struct {
	Kind MarkerKind
	// PolicyHash identifies the policy; see PolicyHash.
	PolicyHash string
	// PolicyName is set on denies, for people; it may be shortened.
	PolicyName string
	// End, Requestor and Justification are set on grants. End is UTC, to
	// the second.
	End           time.Time
	Requestor     string
	Justification string
}

// DenyMarker is the marker of a policy's deny rules.
func DenyMarker(policy string) Marker {
	return Marker{Kind: MarkerDeny, PolicyHash: PolicyHash(policy), PolicyName: policy}
}

// GrantMarker is the marker of a grant that expires at end. The end is cut
// to the second, never rounded up: a grant must not outlive its request.
func GrantMarker(policy string, end time.Time, requestor, justification string) Marker {
	return Marker{Kind: MarkerGrant, PolicyHash: PolicyHash(policy), End: end.UTC().Truncate(time.Second),
		Requestor: requestor, Justification: justification}
}

// PolicyHash identifies a policy in markers: 12 hex digits of SHA-256 of
// its name.
func PolicyHash(policy string) string {
	sum := sha256.Sum256([]byte("jit-policy\x00" + policy))
	return hex.EncodeToString(sum[:6])
}

func isPolicyHash(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// BelongsTo reports whether the marker was written for the named policy.
func (m Marker) BelongsTo(policy string) bool { return m.PolicyHash == PolicyHash(policy) }

const (
	markerMaxLen       = 140
	markerChecksumSep  = " chk="
	markerChecksumLen  = 8
	markerRequestorMin = 40
)

// String renders the marker's description, shortening free text to fit.
// ParseMarker(m.String()) gives back m when nothing had to be shortened or
// cleaned, and otherwise a marker whose String is the same description.
func (m Marker) String() string {
	var body string
	switch m.Kind {
	case MarkerDeny:
		head := "jit:deny pid=" + m.PolicyHash + " policy="
		body = head + truncateBytes(cleanText(m.PolicyName), markerMaxLen-len(head)-len(markerChecksumSep)-markerChecksumLen)
	case MarkerGrant:
		head := "jit:grant pid=" + m.PolicyHash + " end=" + m.End.UTC().Format(time.RFC3339) + " by="
		room := grantMarkerRoom()
		why := cleanText(m.Justification)
		by := escapeRequestor(cleanText(m.Requestor), max(markerRequestorMin, room-len(why)))
		body = head + by + " why=" + cutBytes(why, room-len(by))
	default:
		return ""
	}
	return body + markerChecksumSep + markerChecksum(body)
}

// grantMarkerRoom is the room a grant marker leaves for its requestor and
// justification together: the rest has a fixed length (the policy hash,
// an RFC 3339 end in UTC, the field names, the checksum).
func grantMarkerRoom() int {
	const head = len("jit:grant pid=") + 12 + len(" end=") + len("2006-01-02T15:04:05Z") + len(" by=")
	return markerMaxLen - head - len(" why=") - len(markerChecksumSep) - markerChecksumLen
}

// ParseMarker reads a rule description written by Marker.String. Anything
// else, including a marker edited by hand, is not a marker.
func ParseMarker(description string) (Marker, bool) {
	body, sum, ok := cutLast(description, markerChecksumSep)
	if !ok || len(description) > markerMaxLen || sum != markerChecksum(body) {
		return Marker{}, false
	}
	var m Marker
	var rest string
	switch {
	case strings.HasPrefix(body, "jit:deny pid="):
		m.Kind = MarkerDeny
		m.PolicyHash, rest, ok = strings.Cut(strings.TrimPrefix(body, "jit:deny pid="), " policy=")
		m.PolicyName = rest
	case strings.HasPrefix(body, "jit:grant pid="):
		m.Kind = MarkerGrant
		var end, by string
		m.PolicyHash, rest, ok = strings.Cut(strings.TrimPrefix(body, "jit:grant pid="), " end=")
		end, rest, _ = strings.Cut(rest, " by=")
		by, m.Justification, _ = strings.Cut(rest, " why=")
		var err error
		if m.End, err = time.Parse(time.RFC3339, end); err != nil {
			return Marker{}, false
		}
		if m.Requestor, err = unescapeRequestor(by); err != nil {
			return Marker{}, false
		}
	default:
		return Marker{}, false
	}
	// Only the canonical rendering is a marker: this rejects every variation
	// the field parsing above would tolerate.
	if !ok || !isPolicyHash(m.PolicyHash) || m.String() != description {
		return Marker{}, false
	}
	return m, true
}

func markerChecksum(body string) string {
	sum := sha256.Sum256([]byte(body))
	return hex.EncodeToString(sum[:markerChecksumLen/2])
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// cleanText makes free text safe for a one-line description: what
// CheckFreeText refuses, should it come from elsewhere (a token's claims),
// becomes a space or "?".
func cleanText(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == utf8.RuneError:
			return '?'
		case hiddenRune(r):
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

// hiddenRune tells the characters that do not show as themselves: control
// characters (a newline splits a description) and formatting ones, among
// them the bidirectional overrides (U+202E makes "4211-CNI" read as
// "INC-1124") and zero-width characters.
func hiddenRune(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

// CheckFreeText refuses text that would be written into the cloud for
// people to read (a justification, who a request is for) and would read
// differently from what it is: invalid UTF-8, control characters, and
// formatting characters such as bidirectional overrides.
func CheckFreeText(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("the text is not valid UTF-8")
	}
	for i, r := range s {
		if hiddenRune(r) {
			return fmt.Errorf("the text holds the invisible character U+%04X at byte %d (control and formatting characters, such as bidirectional overrides, make a rule read differently to a reviewer); remove it", r, i)
		}
	}
	return nil
}

// truncateBytes shortens s to at most n bytes at a character boundary.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:max(n, 0)]
}

// CutMark ends a value shortened to fit, wherever the provider writes one.
const CutMark = "…"

// cutBytes shortens s to at most n bytes at a character boundary, ending
// it with CutMark when anything was left out.
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return truncateBytes(s, n-len(CutMark)) + CutMark
}

// escapeRequestor escapes s and shortens it, by whole characters, to at
// most n bytes, ending it with CutMark when anything was left out.
func escapeRequestor(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteString(escapeRune(r))
	}
	if b.Len() <= n {
		return b.String()
	}
	b.Reset()
	for _, r := range s {
		e := escapeRune(r)
		if b.Len()+len(e) > n-len(CutMark) {
			break
		}
		b.WriteString(e)
	}
	return b.String() + CutMark
}

func escapeRune(r rune) string {
	switch r {
	case '%':
		return "%25"
	case ' ':
		return "%20"
	}
	return string(r)
}

func unescapeRequestor(s string) (string, error) {
	r := strings.NewReplacer("%20", " ", "%25", "%")
	out := r.Replace(s)
	if escapeRequestor(out, len(s)) != s {
		return "", strconv.ErrSyntax
	}
	return out, nil
}
