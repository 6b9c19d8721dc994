package jit

import (
	"strings"
)

// GrantVerdict is the one answer, for every caller (the policy's plan and
// refresh, the request's refresh, revoke-expired), to "is this a grant,
// whose is it, and is it over".
type GrantVerdict struct {
	Marker Marker
	// IsGrant: the text is a grant marker, on something that can grant
	// (an inbound Allow rule, a DNAT rule, a grant's security group).
	IsGrant bool
	// OfPolicy: a grant written for the policy named in the question (any
	// policy when the question names none).
	OfPolicy bool
	// Expired: a grant whose end has passed.
	Expired bool
}

// JudgeGrant judges the marker text of a rule or group. canGrant tells
// whether what carries it can grant access at all: a description copied
// onto a Deny or an outbound rule is not a grant. With a nil clock,
// nothing is expired.
func JudgeGrant(text string, canGrant bool, policy string, clock Clock) GrantVerdict {
	m, ok := ParseMarker(text)
	if !ok || m.Kind != MarkerGrant || !canGrant {
		return GrantVerdict{}
	}
	v := GrantVerdict{Marker: m, IsGrant: true, OfPolicy: policy == "" || m.BelongsTo(policy)}
	v.Expired = clock != nil && ExpiryStatus(m.End, clock) == GrantExpired
	return v
}

// JudgeNSGGrant judges an NSG rule: only an inbound Allow can be a grant.
func JudgeNSGGrant(r NSGRule, policy string, clock Clock) GrantVerdict {
	return JudgeGrant(r.Description, r.inbound() && strings.EqualFold(string(r.Access), string(NSGAllow)), policy, clock)
}

// IsDenyOf tells whether a rule description is the deny marker of policy.
func IsDenyOf(description, policy string) bool {
	m, ok := ParseMarker(description)
	return ok && m.Kind == MarkerDeny && m.BelongsTo(policy)
}
