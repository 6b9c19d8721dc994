package jit

import (
	"strings"
	"time"
)

// firewallGrantPrefix starts the name of every firewall grant collection
// (FirewallGrantCollectionName).
const firewallGrantPrefix = "jit-grant-"

// IsFirewallGrantCollection tells whether a rule collection is named as
// a grant's NAT or network collection.
func IsFirewallGrantCollection(name string) bool {
	return strings.HasPrefix(name, firewallGrantPrefix)
}

// FirewallGrantEnd reads the end of a firewall grant from the descriptions
// of its collections' rules: the earliest end among their markers, as one
// grant's collections hold every port of the request under one marker and
// no port may outlive its end. ok is false when there is no rule or some
// rule's description is not a grant marker: then the collections are not
// a grant jit can vouch for, and must be left alone.
func FirewallGrantEnd(descriptions []string) (end time.Time, requestor string, ok bool) {
	for i, d := range descriptions {
		m, isMarker := ParseMarker(d)
		if !isMarker || m.Kind != MarkerGrant {
			return time.Time{}, "", false
		}
		if i == 0 || m.End.Before(end) {
			end, requestor = m.End, m.Requestor
		}
	}
	return end, requestor, len(descriptions) > 0
}
