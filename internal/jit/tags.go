package jit

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// A policy's settings are also kept on each machine it covers, as tags, so
// that a request made from another configuration, with read-only rights,
// can be validated against the policy, and an import can find the policy's
// machines. Tag names avoid the characters Azure forbids in them
// (< > % & \ ? /); values stay within the 256 characters both clouds allow.
//
//	jit-policy        = <policy name>
//	jit-port-22-tcp   = "PT3H 10.0.0.0/8 192.168.0.0/16"   (maximum duration, then allowed sources)
//	jit-port-53-any   = "PT1H *"
//	jit-firewall      = <Azure Firewall resource ID>   (Azure VMs, when the policy also denies through one)
const (
	TagPolicy     = "jit-policy"
	TagFirewall   = "jit-firewall"
	tagPortPrefix = "jit-port-"
	maxTagValue   = 256
	// MaxTags is how many tags an Azure resource or an EC2 resource holds.
	MaxTags = 50
)

// PolicyTags renders the policy's settings as machine tags; firewall is
// empty when the policy denies through NSGs only.
func PolicyTags(policy, firewall string, ports []Port) (map[string]string, error) {
	tags := map[string]string{TagPolicy: policy}
	if len(policy) > maxTagValue {
		return nil, fmt.Errorf("policy name is longer than %d characters, the limit of a tag value", maxTagValue)
	}
	if len(firewall) > maxTagValue {
		return nil, fmt.Errorf("Azure Firewall ID is longer than %d characters, the limit of a tag value", maxTagValue)
	}
	if firewall != "" {
		tags[TagFirewall] = firewall
	}
	for _, p := range ports {
		value := p.MaxRequestAccessDuration.String() + " " + strings.Join(p.AllowedSourcePrefixes, " ")
		if len(value) > maxTagValue {
			return nil, fmt.Errorf("port %s: its maximum duration and allowed sources take %d characters, more than the %d a machine tag holds; use fewer or wider prefixes",
				portLabel(p.PortProtocol()), len(value), maxTagValue)
		}
		tags[portTagName(p.PortProtocol())] = value
	}
	return tags, nil
}

// IsPolicyTag tells the tags PolicyTags writes, so stale ones can be removed.
func IsPolicyTag(name string) bool {
	return name == TagPolicy || name == TagFirewall || strings.HasPrefix(name, tagPortPrefix)
}

// PolicyFromTags reads back what PolicyTags wrote. ok is false when the
// machine carries no policy. Ports come sorted by number, then protocol.
func PolicyFromTags(tags map[string]string) (policy string, ports []Port, ok bool, err error) {
	policy, ok = tags[TagPolicy]
	if !ok {
		return "", nil, false, nil
	}
	for name, value := range tags {
		if !strings.HasPrefix(name, tagPortPrefix) {
			continue
		}
		pp, perr := parsePortTagName(name)
		fields := strings.Fields(value)
		if perr != nil || len(fields) < 2 {
			return policy, nil, true, fmt.Errorf("tag %s=%q is not a jit port setting", name, value)
		}
		d, derr := ParseDuration(fields[0])
		if derr != nil {
			return policy, nil, true, fmt.Errorf("tag %s: %w", name, derr)
		}
		ports = append(ports, Port{Number: pp.Number, Protocol: pp.Protocol, MaxRequestAccessDuration: d, AllowedSourcePrefixes: fields[1:]})
	}
	slices.SortFunc(ports, func(a, b Port) int {
		if a.Number != b.Number {
			return a.Number - b.Number
		}
		return strings.Compare(string(a.Protocol), string(b.Protocol))
	})
	return policy, ports, true, nil
}

func portTagName(p PortProtocol) string {
	proto := strings.ToLower(string(p.Protocol))
	if p.Protocol == ProtocolAny {
		proto = "any"
	}
	return tagPortPrefix + strconv.Itoa(p.Number) + "-" + proto
}

func parsePortTagName(name string) (PortProtocol, error) {
	num, proto, ok := strings.Cut(strings.TrimPrefix(name, tagPortPrefix), "-")
	n, err := strconv.Atoi(num)
	if !ok || err != nil {
		return PortProtocol{}, fmt.Errorf("bad port tag %q", name)
	}
	switch proto {
	case "tcp":
		return PortProtocol{n, ProtocolTCP}, nil
	case "udp":
		return PortProtocol{n, ProtocolUDP}, nil
	case "any":
		return PortProtocol{n, ProtocolAny}, nil
	}
	return PortProtocol{}, fmt.Errorf("bad port tag %q", name)
}
