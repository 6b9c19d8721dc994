package jit

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// An EC2 grant is a security group of the request's own (see TagGrant),
// holding every port of the request. Ports of one request may end at
// different times (each its own duration, or a renewal capped by each
// port's own maximum), so the group records each port's end, and its
// marker the latest of them:
//
//	jit-grant       = the marker: policy, requestor, justification and the
//	                  END OF THE LAST PORT, with its checksum
//	jit-end-22-tcp  = when port 22/TCP ends (RFC 3339, UTC), one tag per port
//
// Why the marker carries the latest end, and the tags the earlier ones:
//
//   - The marker bounds the whole group: nothing of it outlives the marker's
//     end, whatever its other tags say. A port's end is its tag's, capped by
//     the marker's; a port without a readable tag ends with the marker. So
//     the per-port tags, which carry no checksum, can only make a port end
//     earlier: someone who edits or deletes them gains no time, and
//     FitsPolicy, which judges each rule by its port's end, sees any port
//     whose end was pushed back to the marker's past its own maximum.
//   - Markers stay readable both ways. The marker's grammar is unchanged. An
//     older reader (revoke-expired, a policy's plan, audit of an earlier
//     release) ignores the jit-end tags and takes the marker's end for every
//     port: it closes the whole group at the last port's end, never a port
//     before its end, so no access anyone was granted is cut short; an
//     earlier port stays open until then, which running a current
//     revoke-expired avoids. A group written by an older release has no
//     jit-end tags and its marker holds the earliest end: read here, every
//     port ends then, exactly as that release meant.
//   - Putting the earliest end in the marker instead would let the tags
//     extend access beyond what the checksummed marker says, and an older
//     reader would cut every port at the first end (the defect this
//     replaces).
//
// revoke-expired and a policy's sweep therefore revoke the rules of the
// ports that ended from the group, and detach and delete the group once
// every port ended. Renewing a grant rewrites the marker and the ports'
// end tags together, in one CreateTags call.

// grantEndTagPrefix begins the tag holding one port's end.
const grantEndTagPrefix = "jit-end-"

// GrantEndTag names the tag holding when port ends in a grant's group:
// "jit-end-22-tcp", "jit-end-53-udp", "jit-end-22-any".
func GrantEndTag(port PortProtocol) string { return grantEndTagPrefix + portSlug(port) }

// IsGrantEndTag tells the tags GrantEndTag names.
func IsGrantEndTag(key string) bool { return strings.HasPrefix(key, grantEndTagPrefix) }

// GrantEndTags are the tags recording each port's end, to the second.
func GrantEndTags(ends map[PortProtocol]time.Time) map[string]string {
	out := make(map[string]string, len(ends))
	for port, end := range ends {
		out[GrantEndTag(port)] = end.UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	return out
}

// SGRulePort is the one port a rule opens: ok is false for a range, all
// protocols, ICMP or any other protocol.
func SGRulePort(r SGRule) (port PortProtocol, ok bool) {
	p := r.permission()
	if p.from != p.to {
		return PortProtocol{}, false
	}
	switch p.protocol {
	case sgTCP:
		return PortProtocol{Number: p.from, Protocol: ProtocolTCP}, true
	case sgUDP:
		return PortProtocol{Number: p.from, Protocol: ProtocolUDP}, true
	}
	return PortProtocol{}, false
}

// OpensPort tells whether the rule lets traffic reach port (its number,
// under its protocol; "*" is TCP and UDP), whatever its source: a rule of
// all protocols opens every port.
func (r SGRule) OpensPort(port PortProtocol) bool {
	p := r.permission()
	switch p.protocol {
	case sgAll:
		return true
	case sgTCP, sgUDP:
		proto := Protocol(strings.ToUpper(p.protocol))
		return (port.Protocol == proto || port.Protocol == ProtocolAny) && p.from <= port.Number && port.Number <= p.to
	}
	return false
}

// SamePermission tells two rules EC2 would call duplicates: everything but
// their IDs and descriptions alike, whatever the spelling of the protocol.
func SamePermission(a, b SGRule) bool { return a.permission() == b.permission() }

// SGGrantEnd is when a grant group's rule stops being granted: its port's
// end tag (of its protocol, or of "*"), never later than the marker's end;
// the marker's end when no tag is readable or the rule opens no one port.
func SGGrantEnd(marker Marker, tags map[string]string, r SGRule) time.Time {
	end := marker.End
	port, ok := SGRulePort(r)
	if !ok {
		return end
	}
	for _, key := range []string{GrantEndTag(port), GrantEndTag(PortProtocol{Number: port.Number, Protocol: ProtocolAny})} {
		v, found := tags[key]
		if !found {
			continue
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil && t.Before(end) {
			end = t.UTC()
		}
	}
	return end
}

// SGGrantClaim is what one inbound rule of a group tagged as a grant
// claims: its port and source, the request, and its port's end.
func SGGrantClaim(marker Marker, tags map[string]string, request string, r SGRule) GrantClaim {
	m := marker
	m.End = SGGrantEnd(marker, tags, r)
	c := GrantClaim{Marker: m, Request: request}
	c.Port, c.PortOK = SGRulePort(r)
	if cidr := r.CIDRIPv4 + r.CIDRIPv6; cidr != "" && r.PrefixListID == "" && r.ReferencedGroupID == "" {
		c.Sources = []string{cidr}
	}
	return c
}

// SGGrantEnded are the rules of a grant group whose ports ended, and
// whether nothing of the grant is live any more: every rule ended, or,
// with no rule, the marker's end passed.
func SGGrantEnded(marker Marker, tags map[string]string, rules []SGRule, clock Clock) (ended []SGRule, over bool) {
	for _, r := range rules {
		if ExpiryStatus(SGGrantEnd(marker, tags, r), clock) == GrantExpired {
			ended = append(ended, r)
		}
	}
	if len(rules) == 0 {
		return nil, ExpiryStatus(marker.End, clock) == GrantExpired
	}
	return ended, len(ended) == len(rules)
}

// SGGrantVerdict is a policy's judgement of a security group on its
// machines' paths tagged as a grant.
type SGGrantVerdict struct {
	// Ours: its marker is a grant marker of the policy. A group tagged as
	// a grant that is not ours is an ordinary group to the policy.
	Ours   bool
	Marker Marker
	// Unfit says, naming the rule, why a group of ours is no grant the
	// policy could have made; "" when every live rule fits.
	Unfit string
	// Ended are its rules whose ports ended; Over tells that nothing of it
	// is live (see SGGrantEnded).
	Ended []SGRule
	Over  bool
}

// JudgeSGGrant judges a group tagged as a grant: markerText is its
// jit-grant tag, request the request ID its jit-request tag and its name
// agree on ("" when they do not), rules its inbound rules. A grant the
// policy honours is ours, fits the policy (FitsPolicy, rule by rule, each
// with its port's end) and is not over.
func JudgeSGGrant(markerText, request string, tags map[string]string, rules []SGRule, policy string, ports []Port, clock Clock) SGGrantVerdict {
	m, ok := ParseMarker(markerText)
	if !ok || m.Kind != MarkerGrant || !m.BelongsTo(policy) {
		return SGGrantVerdict{}
	}
	v := SGGrantVerdict{Ours: true, Marker: m}
	v.Ended, v.Over = SGGrantEnded(m, tags, rules, clock)
	for _, r := range rules {
		if slices.ContainsFunc(v.Ended, func(e SGRule) bool { return e == r }) {
			continue
		}
		if fits, why := SGGrantClaim(m, tags, request, r).FitsPolicy(policy, ports); !fits {
			r.Description = ""
			v.Unfit = fmt.Sprintf("its rule %s does not fit the policy: %s", r, why)
			break
		}
	}
	return v
}

// Honoured tells whether the policy keeps the group as its grant.
func (v SGGrantVerdict) Honoured() bool { return v.Ours && v.Unfit == "" && !v.Over }
