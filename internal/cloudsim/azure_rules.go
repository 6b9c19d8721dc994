package cloudsim

import (
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

const (
	maxSecurityRules         = 1000
	maxRuleDescriptionLen    = 140
	maxRuleASGsPerSide       = 10   // application security groups per rule source or destination
	maxAddressesOrPortsInNSG = 4000 // entries of one address or port field over all the rules of an NSG
	securityRuleType         = nsgType + "/securityRules"
	minRulePriority          = 100
	maxRulePriority          = 4096
	putSecurityRuleOpName    = "PutSecurityRuleOperation"
	deleteSecurityRuleOpName = "DeleteSecurityRuleOperation"
)

// armRuleName is ARM's rule for child resource names: up to 80 characters,
// starting with a word character, ending with one or '_', with '.', '-'
// and '_' allowed between.
var armRuleName = regexp.MustCompile(`^\w([\w.-]{0,78}\w)?$`)

// armServiceTag is the shape of a service tag such as VirtualNetwork or
// Storage.WestEurope.
var armServiceTag = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)?$`)

// securityRuleProps is the properties object of a rule PUT: the fields of
// AzureSecurityRule under ARM's names, so each converts to the other. The
// application security groups come as {"id"} references and are read by
// putSecurityRule.
type securityRuleProps struct {
	Name                       string   `json:"-"`
	Priority                   int32    `json:"priority"`
	Direction                  string   `json:"direction"`
	Access                     string   `json:"access"`
	Protocol                   string   `json:"protocol"`
	Description                string   `json:"description"`
	SourceAddressPrefix        string   `json:"sourceAddressPrefix"`
	SourceAddressPrefixes      []string `json:"sourceAddressPrefixes"`
	SourcePortRange            string   `json:"sourcePortRange"`
	SourcePortRanges           []string `json:"sourcePortRanges"`
	DestinationAddressPrefix   string   `json:"destinationAddressPrefix"`
	DestinationAddressPrefixes []string `json:"destinationAddressPrefixes"`
	DestinationPortRange       string   `json:"destinationPortRange"`
	DestinationPortRanges      []string `json:"destinationPortRanges"`

	SourceApplicationSecurityGroups      []string `json:"-"`
	DestinationApplicationSecurityGroups []string `json:"-"`
}

func (a *azureState) renderSecurityRule(nsg *AzureNSG, r *AzureSecurityRule) obj {
	id := nsg.ID + "/securityRules/" + r.Name
	props := obj{
		"provisioningState": a.provisioningState(id),
		"protocol":          r.Protocol, "access": r.Access, "priority": r.Priority, "direction": r.Direction,
		// ARM always sends the plural fields, empty when the singular is used.
		"sourcePortRanges": orEmpty(r.SourcePortRanges), "destinationPortRanges": orEmpty(r.DestinationPortRanges),
		"sourceAddressPrefixes": orEmpty(r.SourceAddressPrefixes), "destinationAddressPrefixes": orEmpty(r.DestinationAddressPrefixes),
	}
	for key, asgs := range map[string][]string{
		"sourceApplicationSecurityGroups": r.SourceApplicationSecurityGroups, "destinationApplicationSecurityGroups": r.DestinationApplicationSecurityGroups,
	} {
		if len(asgs) > 0 {
			props[key] = refs(asgs)
		}
	}
	for key, v := range map[string]string{
		"description": r.Description, "sourcePortRange": r.SourcePortRange, "destinationPortRange": r.DestinationPortRange,
		"sourceAddressPrefix": r.SourceAddressPrefix, "destinationAddressPrefix": r.DestinationAddressPrefix,
	} {
		if v != "" {
			props[key] = v
		}
	}
	return obj{"id": id, "name": r.Name, "etag": a.etag(id), "type": securityRuleType, "properties": props}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ruleIndex finds a rule by name, ignoring case; -1 when absent.
func ruleIndex(nsg *AzureNSG, name string) int {
	for i := range nsg.SecurityRules {
		if strings.EqualFold(nsg.SecurityRules[i].Name, name) {
			return i
		}
	}
	return -1
}

// ruleNSG resolves the NSG of a security-rule route.
func (c *armCall) ruleNSG() (*AzureNSG, *armError) {
	if nsg, found := lookup[*AzureNSG](c.a, c.parentPath(1)); found {
		return nsg, nil
	}
	return nil, c.resourceNotFound(nsgType, c.args[1])
}

func getSecurityRule(c *armCall) armReply {
	nsg, e := c.ruleNSG()
	if e != nil {
		return e.reply()
	}
	i := ruleIndex(nsg, c.args[2])
	if i < 0 {
		return c.childNotFound().reply()
	}
	return ok(c.a.renderSecurityRule(nsg, &nsg.SecurityRules[i]))
}

func listSecurityRules(c *armCall) armReply {
	nsg, found := lookup[*AzureNSG](c.a, c.path[:strings.LastIndex(c.path, "/")])
	if !found {
		return c.resourceNotFound(nsgType, c.args[1]).reply()
	}
	value := []obj{}
	for i := range nsg.SecurityRules {
		value = append(value, c.a.renderSecurityRule(nsg, &nsg.SecurityRules[i]))
	}
	return ok(obj{"value": value})
}

// putSecurityRule creates (201) or replaces (200) one rule; the NSG is held
// by the operation until it completes.
func putSecurityRule(c *armCall) armReply {
	nsg, e := c.ruleNSG()
	if e != nil {
		return e.reply()
	}
	var in struct {
		Properties struct {
			securityRuleProps
			SourceASGs      []armRef `json:"sourceApplicationSecurityGroups"`
			DestinationASGs []armRef `json:"destinationApplicationSecurityGroups"`
		} `json:"properties"`
	}
	if e := c.decodeBody(&in); e != nil {
		return e.reply()
	}
	rule := AzureSecurityRule(in.Properties.securityRuleProps)
	rule.SourceApplicationSecurityGroups = refIDs(in.Properties.SourceASGs)
	rule.DestinationApplicationSecurityGroups = refIDs(in.Properties.DestinationASGs)
	rule.Name = c.args[2]
	existing := ruleIndex(nsg, rule.Name)
	if existing >= 0 {
		rule.Name = nsg.SecurityRules[existing].Name // ARM keeps the name as first written
	}
	id := nsg.ID + "/securityRules/" + rule.Name
	if e := c.checkIfMatch(id, existing >= 0); e != nil {
		return e.reply()
	}
	if e := validateSecurityRule(c.a, nsg, &rule, id); e != nil {
		return e.reply()
	}
	after := slices.Clone(nsg.SecurityRules)
	if existing >= 0 {
		after[existing] = rule
	} else {
		after = append(after, rule)
	}
	if e := checkNSGLimits(nsg.ID, after); e != nil {
		return e.reply()
	}
	if op := c.a.holder(nsg.ID); op != nil {
		return c.busyNSG(op, nsg.ID)
	}
	status := http.StatusOK
	var undo func()
	if existing >= 0 {
		previous := nsg.SecurityRules[existing]
		nsg.SecurityRules[existing] = rule
		undo = func() { nsg.SecurityRules[ruleIndex(nsg, rule.Name)] = previous }
	} else {
		status = http.StatusCreated
		nsg.SecurityRules = append(nsg.SecurityRules, rule)
		undo = func() {
			nsg.SecurityRules = slices.Delete(nsg.SecurityRules, ruleIndex(nsg, rule.Name), ruleIndex(nsg, rule.Name)+1)
		}
	}
	c.a.touch(id, nsg.ID)
	h := c.startOperation(operationSpec{
		namespace: "Microsoft.Network", location: nsg.Location, name: putSecurityRuleOpName, lock: nsg.ID,
		targets: map[string]string{strings.ToLower(id): "Updating", strings.ToLower(nsg.ID): "Updating"},
		undo: func() {
			undo()
			c.a.touch(id, nsg.ID)
		},
	})
	return armReply{status: status, header: h, body: c.a.renderSecurityRule(nsg, &rule)}
}

// deleteSecurityRule answers 202 and removes the rule when the operation
// completes; a rule that does not exist is 204, as ARM does for deletes.
func deleteSecurityRule(c *armCall) armReply {
	nsg, e := c.ruleNSG()
	if e != nil {
		return e.reply()
	}
	i := ruleIndex(nsg, c.args[2])
	if e := c.checkIfMatch(nsg.ID+"/securityRules/"+c.args[2], i >= 0); e != nil {
		return e.reply()
	}
	if i < 0 {
		return armReply{status: http.StatusNoContent}
	}
	if op := c.a.holder(nsg.ID); op != nil {
		return c.busyNSG(op, nsg.ID)
	}
	name := nsg.SecurityRules[i].Name
	c.a.touch(nsg.ID)
	h := c.startOperation(operationSpec{
		namespace: "Microsoft.Network", location: nsg.Location, name: deleteSecurityRuleOpName, lock: nsg.ID,
		targets: map[string]string{strings.ToLower(nsg.ID + "/securityRules/" + name): "Deleting", strings.ToLower(nsg.ID): "Updating"},
		finish: func() {
			if j := ruleIndex(nsg, name); j >= 0 {
				nsg.SecurityRules = slices.Delete(nsg.SecurityRules, j, j+1)
			}
		},
	})
	return armReply{status: http.StatusAccepted, header: h}
}

// validateSecurityRule checks one rule as the network provider does and
// normalises the casing of its enumerations. id names the rule in errors.
func validateSecurityRule(a *azureState, nsg *AzureNSG, r *AzureSecurityRule, id string) *armError {
	if !armRuleName.MatchString(r.Name) {
		return newARMError(http.StatusBadRequest, "InvalidResourceName",
			"Resource name %s is invalid. The name can be up to 80 characters long. It must begin with a word character, and it must end with a word character or with '_'. The name may contain word characters or '.', '-', '_'.", r.Name)
	}
	for _, enum := range []struct {
		field, typ string
		value      *string
		allowed    []string
	}{
		{"protocol", "SecurityRuleProtocol", &r.Protocol, []string{"Tcp", "Udp", "Icmp", "Esp", "Ah", "*"}},
		{"access", "SecurityRuleAccess", &r.Access, []string{"Allow", "Deny"}},
		{"direction", "SecurityRuleDirection", &r.Direction, []string{"Inbound", "Outbound"}},
	} {
		if *enum.value == "" {
			return missingRuleParameter(strings.ToUpper(enum.field[:1])+enum.field[1:], id)
		}
		i := indexFold(enum.allowed, *enum.value)
		if i < 0 {
			e := newARMError(http.StatusBadRequest, "InvalidRequestFormat", "Cannot parse the request.")
			e.Details = []armError{{Code: "InvalidJson", Message: fmt.Sprintf(
				"Error converting value %q to type '%s'. Path 'properties.%s'.", *enum.value, enum.typ, enum.field)}}
			return e
		}
		*enum.value = enum.allowed[i]
	}
	if r.Priority < minRulePriority || r.Priority > maxRulePriority {
		return newARMError(http.StatusBadRequest, "SecurityRuleInvalidPriority",
			"Security rule has invalid Priority. Value provided: %d Allowed range %d-%d.", r.Priority, minRulePriority, maxRulePriority)
	}
	if n := len([]rune(r.Description)); n > maxRuleDescriptionLen {
		return newARMError(http.StatusBadRequest, "SecurityRuleDescriptionTooLong",
			"Security rule %s has a description of %d characters; the maximum is %d.", id, n, maxRuleDescriptionLen)
	}
	for _, pair := range []struct {
		field    string
		one      string
		many     []string
		asgs     []string // an address side's application security groups, which replace its prefixes
		validate func(v string, plural bool, field, id string) *armError
	}{
		{"SourceAddressPrefix", r.SourceAddressPrefix, r.SourceAddressPrefixes, r.SourceApplicationSecurityGroups, validateAddressPrefix},
		{"DestinationAddressPrefix", r.DestinationAddressPrefix, r.DestinationAddressPrefixes, r.DestinationApplicationSecurityGroups, validateAddressPrefix},
		{"SourcePortRange", r.SourcePortRange, r.SourcePortRanges, nil, validatePortRange},
		{"DestinationPortRange", r.DestinationPortRange, r.DestinationPortRanges, nil, validatePortRange},
	} {
		prefixed := pair.one != "" || len(pair.many) > 0
		switch {
		case pair.one != "" && len(pair.many) > 0:
			return newARMError(http.StatusBadRequest, "SecurityRuleParametersConflict",
				"Security rule %s specifies both %s and %ss; specify only one of them.", id, pair.field, pair.field)
		case prefixed && len(pair.asgs) > 0:
			side := strings.TrimSuffix(pair.field, "AddressPrefix")
			return newARMError(http.StatusBadRequest, "SecurityRuleParametersConflict",
				"Security rule %s specifies both %s(es) and %sApplicationSecurityGroups; specify only one of them.", id, pair.field, side)
		case !prefixed && len(pair.asgs) == 0:
			return missingRuleParameter(pair.field, id)
		case pair.one != "":
			if e := pair.validate(pair.one, false, pair.field, id); e != nil {
				return e
			}
		}
		for _, v := range pair.many {
			if e := pair.validate(v, true, pair.field+"s", id); e != nil {
				return e
			}
		}
		if e := validateRuleASGs(a, pair.asgs, strings.TrimSuffix(pair.field, "AddressPrefix")+"ApplicationSecurityGroups", id); e != nil {
			return e
		}
	}
	if familyOf(r.SourceAddressPrefix, r.SourceAddressPrefixes, r.DestinationAddressPrefix, r.DestinationAddressPrefixes) == mixedFamilies {
		return newARMError(http.StatusBadRequest, "ResourceCannotContainAddressPrefixesFromDifferentAddressFamilies",
			"Security rule %s contains IP addresses or prefixes that belong to different address families. All IP addresses or prefixes in the resource should belong to the same address family.", id)
	}
	for _, other := range nsg.SecurityRules {
		if other.Priority == r.Priority && strings.EqualFold(other.Direction, r.Direction) && !strings.EqualFold(other.Name, r.Name) {
			return newARMError(http.StatusBadRequest, "SecurityRuleConflict",
				"Security rule %s conflicts with rule %s. Rules cannot have the same Priority and Direction. To learn more, see aka.ms/nsgrules.",
				other.Name, r.Name)
		}
	}
	return nil
}

// validateRuleASGs checks the application security groups of one side of
// a rule: at most ten, each an existing one.
func validateRuleASGs(a *azureState, asgs []string, field, id string) *armError {
	if len(asgs) > maxRuleASGsPerSide {
		return newARMError(http.StatusBadRequest, "NumberOfApplicationSecurityGroupsReferencedInSecurityRuleLimitReached",
			"A security rule may have up to %d Application Security Group in the source or destination fields. The requested configuration has %d in the %s field.",
			maxRuleASGsPerSide, len(asgs), field)
	}
	for _, asg := range asgs {
		if a.checkRef("", asg, asgType) != nil {
			return invalidReference(asg, id)
		}
	}
	return nil
}

// The address families of a rule's prefixes; service tags and '*' have none.
const (
	noFamily = iota
	ipv4Family
	ipv6Family
	mixedFamilies
)

// familyOf is the address family of every IP address and CIDR among the
// singular and plural prefixes given, alternately: mixedFamilies when both
// occur.
func familyOf(prefixes ...any) int {
	family := noFamily
	add := func(v string) {
		addr, ok := ipOrPrefixAddr(v)
		if !ok {
			return
		}
		f := ipv4Family
		if addr.Is6() { // IPv4-mapped IPv6 addresses included
			f = ipv6Family
		}
		if family != noFamily && family != f {
			f = mixedFamilies
		}
		family = f
	}
	for _, p := range prefixes {
		switch v := p.(type) {
		case string:
			add(v)
		case []string:
			for _, s := range v {
				add(s)
			}
		}
	}
	return family
}

// ipOrPrefixAddr is the address of an IP address or CIDR; false for '*',
// service tags and anything else.
func ipOrPrefixAddr(v string) (netip.Addr, bool) {
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Addr(), true
	}
	addr, err := netip.ParseAddr(v)
	return addr, err == nil
}

// checkNSGLimits checks the limits on the rules of a whole NSG: the number
// of rules, and the entries of each address or port field over all rules
// (counted separately for source and destination, as ARM does; IP
// addresses and CIDRs count, tags and '*' do not).
func checkNSGLimits(nsgID string, rules []AzureSecurityRule) *armError {
	if len(rules) > maxSecurityRules {
		return newARMError(http.StatusBadRequest, "SecurityRuleCountLimitReached",
			"A security group cannot have more than %d security rules.", maxSecurityRules)
	}
	isAddress := func(v string) bool { _, ok := ipOrPrefixAddr(v); return ok }
	isPort := func(v string) bool { return v != "" && v != "*" }
	for _, field := range []struct {
		name   string
		values func(r *AzureSecurityRule) (string, []string)
		counts func(string) bool
	}{
		{"SourceAddressPrefixes", func(r *AzureSecurityRule) (string, []string) { return r.SourceAddressPrefix, r.SourceAddressPrefixes }, isAddress},
		{"DestinationAddressPrefixes", func(r *AzureSecurityRule) (string, []string) {
			return r.DestinationAddressPrefix, r.DestinationAddressPrefixes
		}, isAddress},
		{"SourcePortRanges", func(r *AzureSecurityRule) (string, []string) { return r.SourcePortRange, r.SourcePortRanges }, isPort},
		{"DestinationPortRanges", func(r *AzureSecurityRule) (string, []string) { return r.DestinationPortRange, r.DestinationPortRanges }, isPort},
	} {
		n := 0
		for i := range rules {
			one, many := field.values(&rules[i])
			for _, v := range append([]string{one}, many...) {
				if field.counts(v) {
					n++
				}
			}
		}
		if n > maxAddressesOrPortsInNSG {
			return newARMError(http.StatusBadRequest, "SecurityRuleAddressesOrPortsPerSecurityGroupLimitReached",
				"Network security group %s has %d %s. A security group cannot have more than %d %s as per the limit MaxSecurityRuleAddressesOrPortsPerSecurityGroup.",
				nsgID, n, field.name, maxAddressesOrPortsInNSG, field.name)
		}
	}
	return nil
}

func missingRuleParameter(field, id string) *armError {
	return newARMError(http.StatusBadRequest, "SecurityRuleParameterMissing",
		"Security rule parameter %s for rule with Id %s is missing.", field, id)
}

// validateAddressPrefix accepts "*", an address, a CIDR without host bits,
// or (singular fields only) a service tag.
func validateAddressPrefix(v string, plural bool, field, id string) *armError {
	isTag := v == "*" || armServiceTag.MatchString(v)
	if plural && isTag {
		return newARMError(http.StatusBadRequest, "SecurityRuleParameterContainsUnsupportedValue",
			"Security rule parameter %s for rule with Id %s cannot specify existing VIRTUALNETWORK, INTERNET, AZURELOADBALANCER, '*' or system tags. Unsupported value used: %s.",
			field, id, v)
	}
	if isTag {
		return nil
	}
	if p, err := netip.ParsePrefix(v); err == nil && p.Masked() == p {
		return nil
	}
	if _, err := netip.ParseAddr(v); err == nil && !strings.Contains(v, "%") {
		return nil
	}
	return newARMError(http.StatusBadRequest, "SecurityRuleInvalidAddressPrefix",
		"Security rule has invalid Address prefix. Value provided: %s", v)
}

// validatePortRange accepts "*" (singular fields only), a port or a
// low-high range within 0-65535.
func validatePortRange(v string, plural bool, field, id string) *armError {
	if v == "*" {
		if !plural {
			return nil
		}
		return newARMError(http.StatusBadRequest, "SecurityRuleParameterContainsInvalidPortRanges",
			"Security rule parameter %s for rule with Id %s contains invalid port range '*'.", field, id)
	}
	low, high, isRange := strings.Cut(v, "-")
	if !isRange {
		high = low
	}
	lo, errLo := strconv.ParseUint(low, 10, 16)
	hi, errHi := strconv.ParseUint(high, 10, 16)
	if errLo != nil || errHi != nil || lo > hi {
		return newARMError(http.StatusBadRequest, "SecurityRuleInvalidPortRange",
			"Security rule has invalid Port range. Value provided: %s. Value should be an integer OR integer range with '-' delimiter. Valid range 0-65535.", v)
	}
	return nil
}

func indexFold(list []string, s string) int {
	for i, v := range list {
		if strings.EqualFold(v, s) {
			return i
		}
	}
	return -1
}
