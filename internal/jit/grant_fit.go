package jit

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A marker says who wrote a rule, but anyone who can write the rule can
// write the marker: the algorithm is public. So a grant is honoured (kept
// before the policy's deny, left out of its warnings) because it fits the
// policy, not because it is marked: a locked port, sources inside the
// prefixes the policy allows for it, and an end within the policy's
// maximum from the start its request ID records.

// GrantClaim is what a rule, a collection or a group claiming to be a
// grant says of itself.
type GrantClaim struct {
	Marker Marker
	// Request is the request ID found in the rule's name or the group's
	// tag; "" when there is none.
	Request string
	// Port is what it opens; ok false when it opens something else than
	// exactly one port (a range, several ports, all protocols).
	Port   PortProtocol
	PortOK bool
	// Sources are where it lets traffic come from.
	Sources []string
}

// requestIDPattern is how the provider names requests: their start, to the
// second, and a random suffix (see engine.NewRequestID).
var requestIDPattern = regexp.MustCompile(`\d{8}T\d{6}Z-[0-9a-f]{8}`)

// RequestIn finds a request ID in a rule's or group's name.
func RequestIn(name string) string { return requestIDPattern.FindString(name) }

// NSGGrantClaim reads a rule's claim: its one destination port and
// protocol, its sources and the request its name carries.
func NSGGrantClaim(r NSGRule, marker Marker) GrantClaim {
	c := GrantClaim{Marker: marker, Request: RequestIn(r.Name), Sources: r.SourcePrefixes}
	c.Port, c.PortOK = RulePort(r)
	return c
}

// RulePort is the one destination port and protocol of an NSG rule; ok
// false when it names a range, several ports or none.
func RulePort(r NSGRule) (port PortProtocol, ok bool) {
	if len(r.DestinationPortRanges) != 1 {
		return PortProtocol{}, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(r.DestinationPortRanges[0]))
	if err != nil {
		return PortProtocol{}, false
	}
	switch strings.ToLower(string(r.Protocol)) {
	case "tcp":
		return PortProtocol{n, ProtocolTCP}, true
	case "udp":
		return PortProtocol{n, ProtocolUDP}, true
	case "*":
		return PortProtocol{n, ProtocolAny}, true
	}
	return PortProtocol{}, false
}

// FitsPolicy tells whether the claim is a grant the policy could have
// made: written for it, for a port it locks, from sources it allows
// (extraSources are others the caller knows grants use, such as the
// subnet an Azure Firewall forwards from), ending within the port's
// maximum from its request's start. The reason says what does not fit.
func (c GrantClaim) FitsPolicy(policy string, ports []Port, extraSources ...string) (bool, string) {
	if c.Marker.Kind != MarkerGrant || !c.Marker.BelongsTo(policy) {
		return false, "it is not marked as a grant of policy " + strconv.Quote(policy)
	}
	start, ok := RequestStart(c.Request)
	if !ok {
		return false, "it names no request the provider made"
	}
	if !c.PortOK {
		return false, "it opens something else than one port"
	}
	var locked *Port
	for i, p := range ports {
		if p.Number == c.Port.Number && p.Protocol.Covers(c.Port.Protocol) {
			locked = &ports[i]
		}
	}
	if locked == nil {
		return false, fmt.Sprintf("port %s is not locked by the policy", portLabel(c.Port))
	}
	if !c.Marker.End.After(start) || c.Marker.End.Sub(start) > locked.MaxRequestAccessDuration.Std() {
		return false, fmt.Sprintf("it ends at %s, beyond the policy's maximum of %s from its start at %s",
			c.Marker.End.Format(time.RFC3339), locked.MaxRequestAccessDuration, start.Format(time.RFC3339))
	}
	if len(c.Sources) == 0 {
		return false, "it names no source (application security groups or IP groups)"
	}
	for _, s := range c.Sources {
		src, err := ParsePrefix(s)
		if err != nil {
			return false, fmt.Sprintf("source %q is not an address or CIDR", s)
		}
		if !prefixAllowed(src, append(append([]string{}, locked.AllowedSourcePrefixes...), extraSources...)) {
			return false, fmt.Sprintf("source %s lies outside the prefixes the policy allows for port %s (%s)", s, portLabel(locked.PortProtocol()), strings.Join(locked.AllowedSourcePrefixes, ", "))
		}
	}
	return true, ""
}

// OutlivesAnyPolicy tells whether a claimed grant ends later after its
// request's start than any policy allows (P1D), or names no request: what
// revoke-expired can judge without knowing the policy.
func (c GrantClaim) OutlivesAnyPolicy() bool {
	start, ok := RequestStart(c.Request)
	return !ok || c.Marker.End.Sub(start) > MaxMaxRequestAccessDuration.Std()
}
