package jit

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// A policy's record of a security group (the rules it revoked and the
// remainders it authorised, see SGPlan) is kept in the group's tags as well
// as in state, written before any rule is revoked, so the original rules
// survive a lost state or an interrupted apply:
//
//	jit:backup:<pid>:0 = v1=3+b=tcp=0=65535=10.0.0.0/8=office_VPN+r=tcp=0=21=.=.+r=tcp=23=65535=.=.
//	jit:backup:<pid>:1 = …the rest, when the text is longer than 256 characters
//
// <pid> is the policy's hash (PolicyHash), as in rule markers: a policy
// name may be longer than a tag key allows or hold characters keys refuse.
// The text is "v1=<number of rules>", then one record per rule, each after a
// "+": kind (b backed up, r remainder), protocol, from port, to port,
// source and description, separated by "=". The kind of source follows from
// its form (pl-…, sg-…, an IPv6 CIDR holds ":"). A source or description
// equal to the previous record's is written ".". Records are sorted by
// source and description, then backed-up rules first, so an original comes
// just before its remainders. Only characters every AWS service takes in
// tags are used, and no whitespace that a tool might trim: a space is
// written "_", and every other byte but letters, digits and ". : / -" as
// "@" and two hex digits ("a_b (x)" is written "a@5Fb_@28x@29").
const (
	sgBackupTagPrefix = "jit:backup:"
	sgBackupVersion   = "v1"
	sgTagValueMax     = 256
	// EC2 takes 50 tags per resource; 10 are left to the group's own.
	sgBackupMaxTags = 40
)

const (
	sgBackedUp    = "b"
	sgRemainder   = "r"
	sgSameAsAbove = "."
)

// SGBackupTags renders a policy's record of a security group as tags. The
// lists may overlap (a caller writing the recorded and the planned record
// together simply appends them): rules come back from ParseSGBackupTags
// sorted, without duplicates and without IDs, which restore has no use
// for. No rule gives no tags. It fails when the text would need more than
// 40 tags.
func SGBackupTags(policy string, backup, remainders []SGRule) (map[string]string, error) {
	type record struct {
		kind string
		rule SGRule
	}
	var records []record
	for _, list := range []struct {
		kind  string
		rules []SGRule
	}{{sgBackedUp, backup}, {sgRemainder, remainders}} {
		for _, r := range list.rules {
			if err := checkSGRule(r); err != nil {
				return nil, fmt.Errorf("recording the backup of policy %q: %w", policy, err)
			}
			if s := r.source(); sgSourceOf(s.id) != s {
				return nil, fmt.Errorf("recording the backup of policy %q: rule %s: source %q is not written like a %s", policy, r, s.id, s.kindName())
			}
			r.ID = ""
			records = append(records, record{list.kind, r})
		}
	}
	// An original, then its remainders: same source and description.
	slices.SortFunc(records, func(a, b record) int {
		sa, sb := a.rule.source(), b.rule.source()
		return cmp.Or(cmp.Compare(sa.kind, sb.kind), strings.Compare(sa.id, sb.id), strings.Compare(a.rule.Description, b.rule.Description),
			strings.Compare(a.kind, b.kind), compareSGRules(a.rule, b.rule))
	})
	records = slices.Compact(records)
	if len(records) == 0 {
		return map[string]string{}, nil
	}

	var b strings.Builder
	b.WriteString(sgBackupVersion + "=" + strconv.Itoa(len(records)))
	var previous SGRule
	for i, rec := range records {
		r := rec.rule
		source, description := escapeSGTagText(r.source().id), escapeSGTagText(r.Description)
		if i > 0 && r.source() == previous.source() {
			source = sgSameAsAbove
		}
		if i > 0 && r.Description == previous.Description && len(description) > len(sgSameAsAbove) {
			description = sgSameAsAbove
		}
		fmt.Fprintf(&b, "+%s=%s=%d=%d=%s=%s", rec.kind, escapeSGTagText(r.IPProtocol), r.FromPort, r.ToPort, source, description)
		previous = r
	}

	text := b.String()
	n := (len(text) + sgTagValueMax - 1) / sgTagValueMax
	if n > sgBackupMaxTags {
		return nil, fmt.Errorf("the backup of policy %q holds %d rules and takes %d characters, %d tags of %d characters; a group leaves at most %d tags to it. Shorten the rules' descriptions, or lock fewer ports in groups with many wide rules",
			policy, len(records), len(text), n, sgTagValueMax, sgBackupMaxTags)
	}
	tags := make(map[string]string, n)
	for i := range n {
		tags[sgBackupTagKey(policy, i)] = text[i*sgTagValueMax : min(len(text), (i+1)*sgTagValueMax)]
	}
	return tags, nil
}

// IsSGBackupTag tells the tags SGBackupTags writes for the policy, so that
// those a shorter backup no longer uses can be deleted.
func IsSGBackupTag(policy, key string) bool {
	_, ok := sgBackupTagIndex(policy, key)
	return ok
}

// ParseSGBackupTags reads back what SGBackupTags wrote for the policy,
// ignoring every other tag. No backup tag gives no rules and no error; a
// missing piece or a damaged text is an error.
func ParseSGBackupTags(policy string, tags map[string]string) (backup, remainders []SGRule, err error) {
	pieces := map[int]string{}
	for key, value := range tags {
		if i, ok := sgBackupTagIndex(policy, key); ok {
			pieces[i] = value
		}
	}
	if len(pieces) == 0 {
		return nil, nil, nil
	}
	var b strings.Builder
	for i := range len(pieces) {
		piece, ok := pieces[i]
		if !ok {
			return nil, nil, fmt.Errorf("the backup tags of policy %q are incomplete: %s is missing", policy, sgBackupTagKey(policy, i))
		}
		b.WriteString(piece)
	}
	fail := func(format string, args ...any) ([]SGRule, []SGRule, error) {
		return nil, nil, fmt.Errorf("the backup tags of policy %q are damaged: "+format, append([]any{policy}, args...)...)
	}

	records := strings.Split(b.String(), "+")
	count, ok := strings.CutPrefix(records[0], sgBackupVersion+"=")
	if n, err := strconv.Atoi(count); !ok || err != nil || n != len(records)-1 {
		return fail("the text starts %q, not %s=%d", records[0], sgBackupVersion, len(records)-1)
	}
	var previous SGRule
	for i, rec := range records[1:] {
		f := strings.Split(rec, "=")
		if len(f) != 6 || (i == 0 && (f[4] == sgSameAsAbove || f[5] == sgSameAsAbove)) {
			return fail("record %d, %q, is not kind=protocol=from=to=source=description", i+1, rec)
		}
		protocol, err1 := unescapeSGTagText(f[1])
		from, err2 := strconv.Atoi(f[2])
		to, err3 := strconv.Atoi(f[3])
		source, err4 := unescapeSGTagText(f[4])
		description, err5 := unescapeSGTagText(f[5])
		if err := cmp.Or(err1, err2, err3, err4, err5); err != nil {
			return fail("record %d, %q: %v", i+1, rec, err)
		}
		r := SGRule{IPProtocol: protocol, FromPort: from, ToPort: to, Description: description}
		if f[4] == sgSameAsAbove {
			r = r.withSource(previous.source())
		} else {
			r = r.withSource(sgSourceOf(source))
		}
		if f[5] == sgSameAsAbove {
			r.Description = previous.Description
		}
		if err := checkSGRule(r); err != nil {
			return fail("record %d: %v", i+1, err)
		}
		switch f[0] {
		case sgBackedUp:
			backup = append(backup, r)
		case sgRemainder:
			remainders = append(remainders, r)
		default:
			return fail("record %d, %q, is of kind %q, not %s or %s", i+1, rec, f[0], sgBackedUp, sgRemainder)
		}
		previous = r
	}
	return backup, remainders, nil
}

func sgBackupTagKey(policy string, i int) string {
	return sgBackupTagPrefix + PolicyHash(policy) + ":" + strconv.Itoa(i)
}

func sgBackupTagIndex(policy, key string) (int, bool) {
	rest, ok := strings.CutPrefix(key, sgBackupTagPrefix+PolicyHash(policy)+":")
	i, err := strconv.Atoi(rest)
	return i, ok && err == nil && strconv.Itoa(i) == rest && i >= 0
}

// sgSourceOf tells a source's kind from its form, as EC2 IDs and CIDRs
// allow.
func sgSourceOf(s string) sgSource {
	switch {
	case strings.HasPrefix(s, "pl-"):
		return sgSource{sgFromPrefixList, s}
	case strings.HasPrefix(s, "sg-"):
		return sgSource{sgFromGroup, s}
	case strings.Contains(s, ":"):
		return sgSource{sgFromIPv6, s}
	}
	return sgSource{sgFromIPv4, s}
}

func (s sgSource) kindName() string {
	return [...]string{"IPv4 CIDR", "IPv6 CIDR", "prefix list ID", "security group ID"}[s.kind]
}

func escapeSGTagText(s string) string {
	if s == sgSameAsAbove {
		return "@2E"
	}
	var b strings.Builder
	for i := range len(s) {
		switch c := s[i]; {
		case c == ' ':
			b.WriteByte('_')
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == ':', c == '/', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "@%02X", c)
		}
	}
	return b.String()
}

func unescapeSGTagText(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '_':
			b.WriteByte(' ')
		case c == '@':
			if i+2 >= len(s) {
				return "", fmt.Errorf("%q ends inside an escape", s)
			}
			n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf("%q holds a bad escape %q", s, s[i:i+3])
			}
			b.WriteByte(byte(n))
			i += 2
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == ':', c == '/', c == '-':
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("%q holds %q, which the encoding never writes", s, c)
		}
	}
	return b.String(), nil
}
