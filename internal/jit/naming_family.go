package jit

import "strings"

// Names of the rules written per address family (Azure refuses a rule
// mixing IPv4 and IPv6 addresses). Same rules as naming.go: at most 80
// characters, deterministic, a readable part and a hash.

// AggregateDenyRuleName names a policy's one deny of a port for one address
// family in an NSG (or in its firewall deny collection), covering every
// machine of the policy behind it: "jit-deny-<policy>-22-tcp-v4-<hash>".
// Machines joining or leaving rewrite the rule under the same name, in
// place, so the port never opens.
func AggregateDenyRuleName(policy string, port PortProtocol, family AddressFamily) string {
	return "jit-deny-" + nameSlug(policy, 40) + "-" + portSlug(port) + "-" + familySlug(family) + "-" +
		nameHash("deny-aggregate", policy, portLabel(port), string(family))
}

// GrantRuleNameFamily names the grant of a port to one machine by one
// request for one address family. The IPv4 rule keeps GrantRuleName's
// name, so grants written before rules were split per family are found and
// rewritten in place; the IPv6 rule is "jit-grant-<machine>-22-tcp-v6-…".
func GrantRuleNameFamily(request, machine string, port PortProtocol, family AddressFamily) string {
	if family == IPv4 {
		return GrantRuleName(request, machine, port)
	}
	return "jit-grant-" + nameSlug(machineShortName(machine), 20) + "-" + portSlug(port) + "-v6-" +
		nameSlug(request, 25) + "-" + nameHash("grant-v6", request, strings.ToLower(machine), portLabel(port))
}

func familySlug(f AddressFamily) string {
	if f == IPv6 {
		return "v6"
	}
	return "v4"
}
