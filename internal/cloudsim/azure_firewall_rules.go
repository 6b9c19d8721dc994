package cloudsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Classic Azure Firewall rules, checked as the network provider checks them
// on a firewall PUT. Codes and messages follow the ones Azure Firewall is
// seen to answer ("AzureFirewallRule <name>: Invalid DNat port value or
// range. …"), and, where none was seen, the Firewall Policy rule checks
// they mirror ("Firewall Policy Nat Rule <name>: …").

// firewallRuleProtocols are the protocols of network and NAT rules, in
// ARM's casing; DNAT allows only TCP and UDP.
var (
	firewallRuleProtocols = []string{"TCP", "UDP", "Any", "ICMP"}
	dnatProtocols         = []string{"TCP", "UDP"}
)

// Ports a rule may name. Firewall Policy answers "User ports must be in
// [1, 64000]"; the 64000 bound was lifted in 2020, the lower one stands.
const (
	minFirewallPort = 1
	maxFirewallPort = 65535
)

// firewallRuleIn is a network or NAT rule as the emulator checks it.
type firewallRuleIn struct {
	Name                 string   `json:"name"`
	Protocols            []string `json:"protocols"`
	SourceAddresses      []string `json:"sourceAddresses"`
	SourceIPGroups       []string `json:"sourceIpGroups"`
	DestinationAddresses []string `json:"destinationAddresses"`
	DestinationIPGroups  []string `json:"destinationIpGroups"`
	DestinationFqdns     []string `json:"destinationFqdns"`
	DestinationPorts     []string `json:"destinationPorts"`
	TranslatedAddress    string   `json:"translatedAddress"`
	TranslatedFqdn       string   `json:"translatedFqdn"`
	TranslatedPort       string   `json:"translatedPort"`
}

// checkFirewallRules checks every rule of a collection's properties with
// check, and writes the protocols back in ARM's casing. path locates the
// rules in the request body, for errors.
func checkFirewallRules(props obj, path string, check func(r *firewallRuleIn, path string, publicIPs []string) *armError, publicIPs []string) *armError {
	if props["rules"] == nil {
		return nil
	}
	rules, ok := props["rules"].([]any)
	if !ok {
		return invalidJSON(fmt.Errorf("Unexpected value for an array. Path '%s'.", path))
	}
	for i, raw := range rules {
		rulePath := fmt.Sprintf("%s[%d]", path, i)
		rule, ok := raw.(obj)
		b, err := json.Marshal(raw)
		var in firewallRuleIn
		if err == nil {
			err = json.Unmarshal(b, &in)
		}
		if !ok || err != nil {
			return invalidJSON(fmt.Errorf("Cannot read the rule at path '%s': %w", rulePath, err))
		}
		if in.Name == "" {
			return invalidJSON(fmt.Errorf("Required property 'name' not found in JSON. Path '%s'.", rulePath))
		}
		for j, p := range in.Protocols {
			k := indexFold(firewallRuleProtocols, p)
			if k < 0 {
				return invalidJSON(fmt.Errorf("Error converting value %q to type 'AzureFirewallNetworkRuleProtocol'. Path '%s.protocols[%d]'.", p, rulePath, j))
			}
			in.Protocols[j] = firewallRuleProtocols[k]
		}
		if e := check(&in, rulePath, publicIPs); e != nil {
			return e
		}
		if rule["protocols"] != nil {
			rule["protocols"] = in.Protocols
		}
	}
	return nil
}

// checkNetworkRule checks a rule of a network rule collection.
func checkNetworkRule(r *firewallRuleIn, _ string, _ []string) *armError {
	if len(r.Protocols) == 0 {
		return atLeastOneProtocol(r)
	}
	if len(r.SourceAddresses)+len(r.SourceIPGroups) == 0 || len(r.DestinationAddresses)+len(r.DestinationIPGroups)+len(r.DestinationFqdns) == 0 ||
		len(r.DestinationPorts) == 0 {
		return addressesAndPortsRequired(r)
	}
	for _, v := range r.SourceAddresses {
		if e := checkFirewallAddress(r, v, false); e != nil {
			return e
		}
	}
	for _, v := range r.DestinationAddresses {
		if e := checkFirewallAddress(r, v, true); e != nil {
			return e
		}
	}
	for _, v := range r.DestinationPorts {
		if !validFirewallPorts(v) {
			return firewallRuleError("AzureFirewallRuleInvalidPortOrRangeFormat", r,
				"Invalid port value or range. User ports must be in [%d, %d]", minFirewallPort, maxFirewallPort)
		}
	}
	return nil
}

// checkNATRule checks a rule of a DNAT collection: TCP and/or UDP, from
// sources, to exactly one of the firewall's public IPs on exactly one
// port, translated to one address (or FQDN) and one port.
func checkNATRule(r *firewallRuleIn, _ string, publicIPs []string) *armError {
	if len(r.Protocols) == 0 {
		return atLeastOneProtocol(r)
	}
	for _, p := range r.Protocols {
		if !slices.Contains(dnatProtocols, p) {
			return firewallRuleError("AzureFirewallRuleInvalidDnatProtocol", r, "Invalid DNat protocol %s. Only TCP and UDP are supported.", p)
		}
	}
	if len(r.SourceAddresses)+len(r.SourceIPGroups) == 0 || len(r.DestinationAddresses) == 0 || len(r.DestinationPorts) == 0 ||
		(r.TranslatedAddress == "" && r.TranslatedFqdn == "") || r.TranslatedPort == "" {
		return addressesAndPortsRequired(r)
	}
	for _, v := range r.SourceAddresses {
		if e := checkFirewallAddress(r, v, false); e != nil {
			return e
		}
	}
	if len(r.DestinationAddresses) > 1 {
		return firewallRuleError("AzureFirewallRuleInvalidDnatDestinationAddress", r, "Invalid DNat destination address. Multiple values are not supported.")
	}
	if !slices.Contains(publicIPs, r.DestinationAddresses[0]) {
		return firewallRuleError("AzureFirewallRuleInvalidDnatDestinationAddress", r,
			"Invalid DNat destination address, destination address other than AzureFirewall PublicIP address is not supported.")
	}
	if len(r.DestinationPorts) > 1 || !validFirewallPort(r.DestinationPorts[0]) {
		return firewallRuleError("AzureFirewallRuleInvalidDnatPortOrRangeFormat", r,
			"Invalid DNat port value or range. Multiple values, * and ranges are not supported for DNAT destination port.")
	}
	if r.TranslatedAddress != "" {
		addr, err := netip.ParseAddr(r.TranslatedAddress)
		switch {
		case err != nil || addr.Zone() != "":
			return firewallRuleError("AzureFirewallRuleInvalidIpAddressOrRangeFormat", r, "Invalid IP address value or range %s.", r.TranslatedAddress)
		case addr.Is6():
			return invalidAddressFamily(r.TranslatedAddress)
		}
	}
	if !validFirewallPort(r.TranslatedPort) {
		return firewallRuleError("AzureFirewallRuleInvalidDnatPortOrRangeFormat", r,
			"Invalid DNat port value or range. Multiple values, * and ranges are not supported for DNAT translated port.")
	}
	return nil
}

func firewallRuleError(code string, r *firewallRuleIn, format string, args ...any) *armError {
	return newARMError(http.StatusBadRequest, code, "AzureFirewallRule %s: %s", r.Name, fmt.Sprintf(format, args...))
}

func atLeastOneProtocol(r *firewallRuleIn) *armError {
	return newARMError(http.StatusBadRequest, "AzureFirewallRuleAtLeastOneProtocolRequired",
		"AzureFirewallRule %s should have atleast one protocol specified.", r.Name)
}

func addressesAndPortsRequired(r *firewallRuleIn) *armError {
	return newARMError(http.StatusBadRequest, "AzureFirewallRuleIpAddressesAndPortsMustBeSpecified",
		"AzureFirewallRule %s should have IP addresses and ports specified. * is used to match all.", r.Name)
}

// invalidAddressFamily: Azure Firewall rules take IPv4 addresses only.
func invalidAddressFamily(v string) *armError {
	return newARMError(http.StatusBadRequest, "InvalidIPAddressFamily",
		"The IPAddress or prefix %s has invalid address family. Only IPv4 addresses are permitted.", v)
}

// checkFirewallAddress accepts '*', an IPv4 address, CIDR (without host
// bits) or range (low-high), and, where tags says so, a service tag.
func checkFirewallAddress(r *firewallRuleIn, v string, tags bool) *armError {
	if v == "*" || (tags && armServiceTag.MatchString(v)) {
		return nil
	}
	var addrs []netip.Addr
	if p, err := netip.ParsePrefix(v); err == nil && p.Masked() == p {
		addrs = []netip.Addr{p.Addr()}
	} else if low, high, isRange := strings.Cut(v, "-"); isRange {
		lo, errLo := netip.ParseAddr(low)
		hi, errHi := netip.ParseAddr(high)
		if errLo == nil && errHi == nil && lo.Is4() == hi.Is4() && lo.Compare(hi) <= 0 {
			addrs = []netip.Addr{lo, hi}
		}
	} else if addr, err := netip.ParseAddr(v); err == nil {
		addrs = []netip.Addr{addr}
	}
	if len(addrs) == 0 || addrs[0].Zone() != "" {
		return firewallRuleError("AzureFirewallRuleInvalidIpAddressOrRangeFormat", r, "Invalid IP address value or range %s.", v)
	}
	if addrs[0].Is6() {
		return invalidAddressFamily(v)
	}
	return nil
}

// validFirewallPorts accepts '*', a port or a low-high range of ports.
func validFirewallPorts(v string) bool {
	if v == "*" {
		return true
	}
	low, high, isRange := strings.Cut(v, "-")
	if !isRange {
		return validFirewallPort(v)
	}
	lo, errLo := strconv.ParseUint(low, 10, 16)
	hi, errHi := strconv.ParseUint(high, 10, 16)
	return errLo == nil && errHi == nil && validFirewallPort(low) && validFirewallPort(high) && lo <= hi
}

// validFirewallPort accepts one port, minFirewallPort-maxFirewallPort.
func validFirewallPort(v string) bool {
	n, err := strconv.ParseUint(v, 10, 16)
	return err == nil && n >= minFirewallPort && n <= maxFirewallPort
}
