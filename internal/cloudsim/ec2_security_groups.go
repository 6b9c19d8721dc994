package cloudsim

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// EC2's default quotas: inbound rules per group (counted separately for IPv4
// and IPv6; a group or prefix-list reference counts in both) and groups per
// network interface.
const (
	maxRulesPerGroup = 60
	maxGroupsPerENI  = 5
)

// ec2TextPattern is the character set EC2 allows in VPC security group names,
// group descriptions and rule descriptions.
var ec2TextPattern = regexp.MustCompile(`^[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]*$`)

func validGroupText(field, s string) *awsError {
	if s == "" || len(s) > 255 || !ec2TextPattern.MatchString(s) {
		return ec2ClientError("InvalidParameterValue", "Invalid security group %s %q: up to 255 characters from a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*", field, s)
	}
	return nil
}

// normalizeRule validates r (with from/to as requested, nil when absent) as
// AuthorizeSecurityGroupIngress does, and rewrites it the way EC2 stores and
// reports it: protocol numbers 6/17/1/58 become names, ports are -1 where
// they do not apply, CIDRs lose their host bits.
func (a *awsState) normalizeRule(r *AWSRule, from, to *int32) *awsError {
	switch p := strings.ToLower(r.Protocol); p {
	case "-1", "tcp", "udp", "icmp", "icmpv6":
		r.Protocol = p
	case "6", "17", "1", "58":
		r.Protocol = map[string]string{"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}[p]
	default:
		if n, err := strconv.Atoi(p); err != nil || strconv.Itoa(n) != p || n < 0 || n > 255 {
			return ec2ClientError("InvalidParameterValue", "Invalid value '%s' for IP protocol. Unknown protocol.", r.Protocol)
		}
	}
	switch r.Protocol {
	case "tcp", "udp":
		if from == nil || to == nil {
			return ec2ClientError("InvalidParameterValue", "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange")
		}
		if *from < 0 || *to > 65535 || *from > *to {
			return ec2ClientError("InvalidParameterValue", "Invalid TCP/UDP port range %d-%d", *from, *to)
		}
		r.FromPort, r.ToPort = *from, *to
	case "icmp", "icmpv6":
		r.FromPort, r.ToPort = -1, -1
		if from != nil {
			r.FromPort = *from
		}
		if to != nil {
			r.ToPort = *to
		}
		if r.FromPort < -1 || r.FromPort > 255 || r.ToPort < -1 || r.ToPort > 255 || (r.FromPort == -1 && r.ToPort != -1) {
			return ec2ClientError("InvalidParameterValue", "Invalid ICMP type %d and code %d: each is -1 (all) or 0-255, and all types need all codes", r.FromPort, r.ToPort)
		}
	default: // all protocols, or one without ports: EC2 ignores any ports given
		r.FromPort, r.ToPort = -1, -1
	}

	sources := 0
	for _, s := range []string{r.CIDRIPv4, r.CIDRIPv6, r.PrefixListID, r.ReferencedGroupID} {
		if s != "" {
			sources++
		}
	}
	if sources != 1 {
		return ec2ClientError("InvalidParameterValue", "A rule needs exactly one source: an IPv4 or IPv6 CIDR, a prefix list or a security group")
	}
	switch {
	case r.CIDRIPv4 != "" || r.CIDRIPv6 != "":
		cidr := &r.CIDRIPv4
		if r.CIDRIPv6 != "" {
			cidr = &r.CIDRIPv6
		}
		p, err := parseAWSPrefix(*cidr, cidr == &r.CIDRIPv6)
		if err != nil {
			return ec2ClientError("InvalidParameterValue", "CIDR block %s is malformed", *cidr)
		}
		*cidr = p.String()
	case r.PrefixListID != "":
		if err := checkEC2IDs("pl", "InvalidPrefixListId.Malformed", []string{r.PrefixListID}); err != nil {
			return err
		}
	default:
		if err := checkEC2IDs("sg", "InvalidGroupId.Malformed", []string{r.ReferencedGroupID}); err != nil {
			return err
		}
		if a.group(r.ReferencedGroupID) == nil {
			return ec2ClientError("InvalidGroup.NotFound", "The security group '%s' does not exist", r.ReferencedGroupID)
		}
	}
	if len(r.Description) > 255 || !ec2TextPattern.MatchString(r.Description) {
		return ec2ClientError("InvalidParameterValue", "Invalid rule description. Valid descriptions are strings less than 256 characters from the following set:  a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*")
	}
	return nil
}

// ruleKey is what makes two rules the same to EC2: everything but the
// description, tags and ID.
func ruleKey(r AWSRule) string {
	return fmt.Sprintf("%s|%d|%d|%s|%s|%s|%s", r.Protocol, r.FromPort, r.ToPort, r.CIDRIPv4, r.CIDRIPv6, r.PrefixListID, r.ReferencedGroupID)
}

func rulePeer(r AWSRule) string {
	return r.CIDRIPv4 + r.CIDRIPv6 + r.PrefixListID + r.ReferencedGroupID
}

// ruleText is how EC2 names a rule in InvalidPermission.Duplicate.
func ruleText(r AWSRule) string {
	switch r.Protocol {
	case "tcp", "udp":
		return fmt.Sprintf("peer: %s, %s, from port: %d, to port: %d, ALLOW", rulePeer(r), strings.ToUpper(r.Protocol), r.FromPort, r.ToPort)
	case "icmp", "icmpv6":
		return fmt.Sprintf("peer: %s, %s, type: %d, code: %d, ALLOW", rulePeer(r), strings.ToUpper(r.Protocol), r.FromPort, r.ToPort)
	case "-1":
		return fmt.Sprintf("peer: %s, ALL, ALLOW", rulePeer(r))
	}
	return fmt.Sprintf("peer: %s, %s, ALLOW", rulePeer(r), r.Protocol)
}

// ruleWeights counts rules against the per-family quota.
func ruleWeights(rules []AWSRule) (v4, v6 int) {
	for _, r := range rules {
		if r.CIDRIPv6 == "" {
			v4++
		}
		if r.CIDRIPv4 == "" {
			v6++
		}
	}
	return v4, v6
}

// targetGroup resolves GroupId, or GroupName, which EC2 looks up in the
// default VPC only.
func (a *awsState) targetGroup(p awsParams) (*AWSSecurityGroup, *awsError) {
	if id := p.get("GroupId"); id != "" {
		if err := checkEC2IDs("sg", "InvalidGroupId.Malformed", []string{id}); err != nil {
			return nil, err
		}
		if g := a.group(id); g != nil {
			return g, nil
		}
		return nil, ec2ClientError("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	}
	if name := p.get("GroupName"); name != "" {
		return a.groupInDefaultVPC(name)
	}
	return nil, ec2MissingParameter("groupName or groupId")
}

func (a *awsState) groupInDefaultVPC(name string) (*AWSSecurityGroup, *awsError) {
	vpcID := "none"
	if vpc := a.defaultVPC(); vpc != nil {
		vpcID = vpc.ID
		for i := range a.fx.SecurityGroups {
			if g := &a.fx.SecurityGroups[i]; g.VPCID == vpcID && g.Name == name {
				return g, nil
			}
		}
	}
	return nil, ec2ClientError("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", name, vpcID)
}

// requestedRules reads IpPermissions.N (or the legacy top-level CidrIp /
// IpProtocol / FromPort / ToPort) into one normalised rule per source, the
// way EC2 splits a permission into stored rules.
func (a *awsState) requestedRules(p awsParams) ([]AWSRule, *awsError) {
	var out []AWSRule
	read := func(prefix string, sources []AWSRule) *awsError {
		proto := p.get(prefix + "IpProtocol")
		if proto == "" {
			return ec2MissingParameter("ipProtocol")
		}
		from, err := p.int32(prefix + "FromPort")
		if err != nil {
			return err
		}
		to, err := p.int32(prefix + "ToPort")
		if err != nil {
			return err
		}
		if len(sources) == 0 {
			return ec2MissingParameter("ipRanges, ipv6Ranges, prefixListIds or groups of ipPermissions")
		}
		for _, r := range sources {
			r.Protocol = proto
			if err := a.normalizeRule(&r, from, to); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	}
	for _, m := range p.members("IpPermissions") {
		var sources []AWSRule
		for _, s := range p.members(m + ".IpRanges") {
			sources = append(sources, AWSRule{CIDRIPv4: p.get(s + ".CidrIp"), Description: p.get(s + ".Description")})
		}
		for _, s := range p.members(m + ".Ipv6Ranges") {
			sources = append(sources, AWSRule{CIDRIPv6: p.get(s + ".CidrIpv6"), Description: p.get(s + ".Description")})
		}
		for _, s := range p.members(m + ".PrefixListIds") {
			sources = append(sources, AWSRule{PrefixListID: p.get(s + ".PrefixListId"), Description: p.get(s + ".Description")})
		}
		for _, s := range p.members(m + ".Groups") {
			id := p.get(s + ".GroupId")
			if id == "" && p.get(s+".GroupName") != "" {
				g, err := a.groupInDefaultVPC(p.get(s + ".GroupName"))
				if err != nil {
					return nil, err
				}
				id = g.ID
			}
			if user := p.get(s + ".UserId"); user != "" && user != a.fx.AccountID {
				return nil, ec2ClientError("InvalidGroup.NotFound", "The security group '%s' of account %s does not exist", id, user)
			}
			sources = append(sources, AWSRule{ReferencedGroupID: id, Description: p.get(s + ".Description")})
		}
		if err := read(m+".", sources); err != nil {
			return nil, err
		}
	}
	if p.has("IpProtocol") || p.has("CidrIp") {
		if err := read("", []AWSRule{{CIDRIPv4: p.get("CidrIp")}}); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, ec2MissingParameter("ipPermissions")
	}
	return out, nil
}

func (a *awsState) authorizeSecurityGroupIngress(p awsParams) (any, *awsError) {
	g, err := a.targetGroup(p)
	if err != nil {
		return nil, err
	}
	rules, err := a.requestedRules(p)
	if err != nil {
		return nil, err
	}
	tags, err := p.tagSpecification("security-group-rule")
	if err != nil {
		return nil, err
	}
	// The whole call fails, and nothing is added, on any duplicate or on
	// reaching the quota.
	seen := map[string]bool{}
	for _, r := range g.Ingress {
		seen[ruleKey(r)] = true
	}
	inRequest := map[string]bool{}
	for _, r := range rules {
		if inRequest[ruleKey(r)] {
			return nil, ec2ClientError("InvalidParameterValue", "The same permission must not appear multiple times")
		}
		inRequest[ruleKey(r)] = true
		if seen[ruleKey(r)] {
			return nil, ec2ClientError("InvalidPermission.Duplicate", "the specified rule %q already exists", ruleText(r))
		}
	}
	if v4, v6 := ruleWeights(append(slices.Clone(g.Ingress), rules...)); v4 > maxRulesPerGroup || v6 > maxRulesPerGroup {
		return nil, ec2ClientError("RulesPerSecurityGroupLimitExceeded", "The maximum number of rules per security group has been reached.")
	}
	out := &struct {
		ec2Meta
		Return bool        `xml:"return"`
		Rules  []ec2SGRule `xml:"securityGroupRuleSet>item"`
	}{Return: true}
	for _, r := range rules {
		r.ID, r.Tags = a.newID("sgr"), maps.Clone(tags)
		g.Ingress = append(g.Ingress, r)
		out.Rules = append(out.Rules, a.ruleXML(g, r, false))
	}
	return out, nil
}

// revokeSecurityGroupIngress removes rules by ID or by permission
// (descriptions ignored). As documented for RevokeSecurityGroupIngress, a
// permission that matches no rule fails the whole call with
// InvalidPermission.NotFound in a non-default VPC, while in the default VPC
// the call succeeds, revokes what matched and lists the rest in
// unknownIpPermissionSet.
func (a *awsState) revokeSecurityGroupIngress(p awsParams) (any, *awsError) {
	g, err := a.targetGroup(p)
	if err != nil {
		return nil, err
	}
	out := &struct {
		ec2Meta
		Return  bool              `xml:"return"`
		Unknown []ec2IPPermission `xml:"unknownIpPermissionSet>item"`
		Revoked []ec2RevokedRule  `xml:"revokedSecurityGroupRuleSet>item"`
	}{Return: true}
	revoke := map[string]bool{} // rule IDs
	if ids := p.list("SecurityGroupRuleId"); len(ids) > 0 {
		if len(p.members("IpPermissions")) > 0 {
			return nil, ec2ClientError("InvalidParameterCombination", "You may specify either security group rule IDs or IP permissions, not both")
		}
		if err := checkEC2IDs("sgr", "InvalidSecurityGroupRuleId.Malformed", ids); err != nil {
			return nil, err
		}
		isIngress := func(id string) bool {
			return slices.ContainsFunc(g.Ingress, func(r AWSRule) bool { return r.ID == id })
		}
		if err := requireIDs(ids, isIngress, "InvalidSecurityGroupRuleId.NotFound", "security group rule ID"); err != nil {
			return nil, err
		}
		for _, id := range ids {
			revoke[id] = true
		}
	} else {
		rules, err := a.requestedRules(p)
		if err != nil {
			return nil, err
		}
		var unknown []AWSRule
		for _, want := range rules {
			i := slices.IndexFunc(g.Ingress, func(r AWSRule) bool { return ruleKey(r) == ruleKey(want) })
			if i < 0 {
				unknown = append(unknown, want)
				continue
			}
			revoke[g.Ingress[i].ID] = true
		}
		if len(unknown) > 0 && !a.vpc(g.VPCID).Default {
			return nil, ec2ClientError("InvalidPermission.NotFound", "The specified rule does not exist in this security group.")
		}
		out.Unknown = ipPermissions(unknown, a.fx.AccountID)
	}
	g.Ingress = slices.DeleteFunc(g.Ingress, func(r AWSRule) bool {
		if revoke[r.ID] {
			out.Revoked = append(out.Revoked, ec2RevokedRule{
				ID: r.ID, GroupID: g.ID, IPProtocol: r.Protocol, FromPort: r.FromPort, ToPort: r.ToPort,
				CIDRIPv4: r.CIDRIPv4, CIDRIPv6: r.CIDRIPv6, PrefixListID: r.PrefixListID,
				ReferencedGroupID: r.ReferencedGroupID, Description: r.Description,
			})
		}
		return revoke[r.ID]
	})
	return out, nil
}

func (a *awsState) createSecurityGroup(p awsParams) (any, *awsError) {
	name, desc := p.get("GroupName"), p.get("GroupDescription")
	switch {
	case name == "":
		return nil, ec2MissingParameter("GroupName")
	case desc == "":
		return nil, ec2MissingParameter("GroupDescription")
	case strings.HasPrefix(name, "sg-"):
		return nil, ec2ClientError("InvalidParameterValue", "Group names may not be in the format sg-*")
	case name == "default":
		return nil, ec2ClientError("InvalidGroup.Reserved", "The security group 'default' is reserved")
	}
	if err := validGroupText("name", name); err != nil {
		return nil, err
	}
	if err := validGroupText("description", desc); err != nil {
		return nil, err
	}
	vpc := a.defaultVPC()
	if id := p.get("VpcId"); id != "" {
		if err := checkEC2IDs("vpc", "InvalidVpcID.Malformed", []string{id}); err != nil {
			return nil, err
		}
		if vpc = a.vpc(id); vpc == nil {
			return nil, ec2NotFound("InvalidVpcID.NotFound", "vpc ID", []string{id})
		}
	} else if vpc == nil {
		return nil, ec2ClientError("VPCIdNotSpecified", "No default VPC for this user")
	}
	for _, g := range a.fx.SecurityGroups {
		if g.VPCID == vpc.ID && g.Name == name {
			return nil, ec2ClientError("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", name, vpc.ID)
		}
	}
	tags, err := p.tagSpecification("security-group")
	if err != nil {
		return nil, err
	}
	g := AWSSecurityGroup{
		ID: a.newID("sg"), Name: name, Description: desc, VPCID: vpc.ID, Tags: tags,
		// Every new group starts with EC2's allow-all egress rule.
		Egress: []AWSRule{{Protocol: "-1", FromPort: -1, ToPort: -1, CIDRIPv4: "0.0.0.0/0"}},
	}
	g.Egress[0].ID = a.newID("sgr")
	a.fx.SecurityGroups = append(a.fx.SecurityGroups, g)
	return &struct {
		ec2Meta
		Return  bool     `xml:"return"`
		GroupID string   `xml:"groupId"`
		ARN     string   `xml:"securityGroupArn"`
		Tags    []ec2Tag `xml:"tagSet>item"`
	}{Return: true, GroupID: g.ID, ARN: a.arn("security-group", g.ID), Tags: ec2TagSet(g.Tags)}, nil
}

func (a *awsState) deleteSecurityGroup(p awsParams) (any, *awsError) {
	g, err := a.targetGroup(p)
	if err != nil {
		return nil, err
	}
	if g.Name == "default" {
		return nil, ec2ClientError("CannotDelete", "the specified group: \"%s\" name: \"default\" cannot be deleted by a user", g.ID)
	}
	// Attached to an ENI, or referenced by another group's rule.
	inUse := slices.ContainsFunc(a.fx.NetworkInterfaces, func(e AWSNetworkInterface) bool { return slices.Contains(e.Groups, g.ID) })
	for _, other := range a.fx.SecurityGroups {
		refers := func(r AWSRule) bool { return r.ReferencedGroupID == g.ID }
		inUse = inUse || (other.ID != g.ID && (slices.ContainsFunc(other.Ingress, refers) || slices.ContainsFunc(other.Egress, refers)))
	}
	if inUse {
		return nil, ec2ClientError("DependencyViolation", "resource %s has a dependent object", g.ID)
	}
	id := g.ID
	a.fx.SecurityGroups = slices.DeleteFunc(a.fx.SecurityGroups, func(x AWSSecurityGroup) bool { return x.ID == id })
	return &struct {
		ec2Meta
		Return  bool   `xml:"return"`
		GroupID string `xml:"groupId"`
	}{Return: true, GroupID: id}, nil
}

func (a *awsState) describeSecurityGroups(p awsParams) (any, *awsError) {
	ids, names := p.list("GroupId"), p.list("GroupName")
	if err := checkEC2IDs("sg", "InvalidGroupId.Malformed", ids); err != nil {
		return nil, err
	}
	filters, err := p.filters("group-id", "group-name", "vpc-id", "description", "owner-id")
	if err != nil {
		return nil, err
	}
	if err := requireIDs(ids, func(id string) bool { return a.group(id) != nil }, "InvalidGroup.NotFound", "security group"); err != nil {
		return nil, err
	}
	for _, name := range names {
		if _, err := a.groupInDefaultVPC(name); err != nil {
			return nil, err
		}
	}
	var selected []*AWSSecurityGroup
	for i := range a.fx.SecurityGroups {
		g := &a.fx.SecurityGroups[i]
		byName := slices.Contains(names, g.Name) && a.vpc(g.VPCID).Default
		if (len(ids) > 0 || len(names) > 0) && !slices.Contains(ids, g.ID) && !byName {
			continue
		}
		if matchEC2Filters(filters, g.Tags, func(name string) []string {
			return map[string][]string{"group-id": {g.ID}, "group-name": {g.Name}, "vpc-id": {g.VPCID}, "description": {g.Description}, "owner-id": {a.fx.AccountID}}[name]
		}) {
			selected = append(selected, g)
		}
	}
	idParam := ""
	if len(ids)+len(names) > 0 {
		idParam = "groupIds"
	}
	page, next, err := ec2Paginate(p, selected, idParam)
	if err != nil {
		return nil, err
	}
	out := &struct {
		ec2Meta
		Groups    []ec2SecurityGroup `xml:"securityGroupInfo>item"`
		NextToken string             `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, g := range page {
		out.Groups = append(out.Groups, ec2SecurityGroup{
			OwnerID: a.fx.AccountID, GroupID: g.ID, GroupName: g.Name, Description: g.Description, VpcID: g.VPCID,
			ARN: a.arn("security-group", g.ID), Ingress: ipPermissions(g.Ingress, a.fx.AccountID),
			Egress: ipPermissions(g.Egress, a.fx.AccountID), Tags: ec2TagSet(g.Tags),
		})
	}
	return out, nil
}

func (a *awsState) describeSecurityGroupRules(p awsParams) (any, *awsError) {
	ids := p.list("SecurityGroupRuleId")
	if err := checkEC2IDs("sgr", "InvalidSecurityGroupRuleId.Malformed", ids); err != nil {
		return nil, err
	}
	if err := requireIDs(ids, func(id string) bool { g, _ := a.rule(id); return g != nil }, "InvalidSecurityGroupRuleId.NotFound", "security group rule ID"); err != nil {
		return nil, err
	}
	filters, err := p.filters("group-id", "security-group-rule-id")
	if err != nil {
		return nil, err
	}
	var selected []ec2SGRule
	for i := range a.fx.SecurityGroups {
		g := &a.fx.SecurityGroups[i]
		for _, side := range []struct {
			egress bool
			rules  []AWSRule
		}{{false, g.Ingress}, {true, g.Egress}} {
			for _, r := range side.rules {
				if len(ids) > 0 && !slices.Contains(ids, r.ID) {
					continue
				}
				if matchEC2Filters(filters, r.Tags, func(name string) []string {
					return map[string][]string{"group-id": {g.ID}, "security-group-rule-id": {r.ID}}[name]
				}) {
					selected = append(selected, a.ruleXML(g, r, side.egress))
				}
			}
		}
	}
	// Unlike the other Describe calls, this one takes MaxResults with IDs.
	page, next, err := ec2Paginate(p, selected, "")
	if err != nil {
		return nil, err
	}
	return &struct {
		ec2Meta
		Rules     []ec2SGRule `xml:"securityGroupRuleSet>item"`
		NextToken string      `xml:"nextToken,omitempty"`
	}{Rules: page, NextToken: next}, nil
}

func (a *awsState) arn(kind, id string) string {
	return fmt.Sprintf("arn:aws:ec2:%s:%s:%s/%s", a.fx.Region, a.fx.AccountID, kind, id)
}

// XML shapes of security groups and rules, as the EC2 deserializers read them.

type ec2SecurityGroup struct {
	OwnerID     string            `xml:"ownerId"`
	GroupID     string            `xml:"groupId"`
	GroupName   string            `xml:"groupName"`
	Description string            `xml:"groupDescription"`
	VpcID       string            `xml:"vpcId"`
	ARN         string            `xml:"securityGroupArn"`
	Ingress     []ec2IPPermission `xml:"ipPermissions>item"`
	Egress      []ec2IPPermission `xml:"ipPermissionsEgress>item"`
	Tags        []ec2Tag          `xml:"tagSet>item"`
}

type ec2IPPermission struct {
	IPProtocol string         `xml:"ipProtocol"`
	FromPort   *int32         `xml:"fromPort,omitempty"`
	ToPort     *int32         `xml:"toPort,omitempty"`
	Groups     []ec2GroupPair `xml:"groups>item"`
	IPRanges   []ec2Range     `xml:"ipRanges>item"`
	IPv6Ranges []ec2Range     `xml:"ipv6Ranges>item"`
	PrefixIDs  []ec2Range     `xml:"prefixListIds>item"`
}

// ec2Range is an ipRanges, ipv6Ranges or prefixListIds item; exactly one of
// the source fields is set.
type ec2Range struct {
	CidrIP       string `xml:"cidrIp,omitempty"`
	CidrIPv6     string `xml:"cidrIpv6,omitempty"`
	PrefixListID string `xml:"prefixListId,omitempty"`
	Description  string `xml:"description,omitempty"`
}

type ec2GroupPair struct {
	UserID      string `xml:"userId"`
	GroupID     string `xml:"groupId"`
	Description string `xml:"description,omitempty"`
}

type ec2SGRule struct {
	ID           string        `xml:"securityGroupRuleId"`
	GroupID      string        `xml:"groupId"`
	GroupOwnerID string        `xml:"groupOwnerId"`
	IsEgress     bool          `xml:"isEgress"`
	IPProtocol   string        `xml:"ipProtocol"`
	FromPort     int32         `xml:"fromPort"`
	ToPort       int32         `xml:"toPort"`
	CIDRIPv4     string        `xml:"cidrIpv4,omitempty"`
	CIDRIPv6     string        `xml:"cidrIpv6,omitempty"`
	PrefixListID string        `xml:"prefixListId,omitempty"`
	Referenced   *ec2GroupPair `xml:"referencedGroupInfo,omitempty"`
	Description  string        `xml:"description,omitempty"`
	Tags         []ec2Tag      `xml:"tagSet>item"`
	ARN          string        `xml:"securityGroupRuleArn"`
}

type ec2RevokedRule struct {
	ID                string `xml:"securityGroupRuleId"`
	GroupID           string `xml:"groupId"`
	IsEgress          bool   `xml:"isEgress"`
	IPProtocol        string `xml:"ipProtocol"`
	FromPort          int32  `xml:"fromPort"`
	ToPort            int32  `xml:"toPort"`
	CIDRIPv4          string `xml:"cidrIpv4,omitempty"`
	CIDRIPv6          string `xml:"cidrIpv6,omitempty"`
	PrefixListID      string `xml:"prefixListId,omitempty"`
	ReferencedGroupID string `xml:"referencedGroupId,omitempty"`
	Description       string `xml:"description,omitempty"`
}

func (a *awsState) ruleXML(g *AWSSecurityGroup, r AWSRule, egress bool) ec2SGRule {
	x := ec2SGRule{
		ID: r.ID, GroupID: g.ID, GroupOwnerID: a.fx.AccountID, IsEgress: egress, IPProtocol: r.Protocol,
		FromPort: r.FromPort, ToPort: r.ToPort, CIDRIPv4: r.CIDRIPv4, CIDRIPv6: r.CIDRIPv6,
		PrefixListID: r.PrefixListID, Description: r.Description, Tags: ec2TagSet(r.Tags),
		ARN: a.arn("security-group-rule", r.ID),
	}
	if r.ReferencedGroupID != "" {
		x.Referenced = &ec2GroupPair{UserID: a.fx.AccountID, GroupID: r.ReferencedGroupID}
	}
	return x
}

// ipPermissions folds stored rules back into the IpPermission view of
// DescribeSecurityGroups: one permission per protocol and port range, with
// every source (and its description) under it. Ports are left out where
// they do not apply, as EC2 does.
func ipPermissions(rules []AWSRule, account string) []ec2IPPermission {
	var out []ec2IPPermission
	index := map[string]int{}
	for _, r := range rules {
		key := fmt.Sprint(r.Protocol, r.FromPort, r.ToPort)
		i, ok := index[key]
		if !ok {
			perm := ec2IPPermission{IPProtocol: r.Protocol}
			if r.Protocol == "tcp" || r.Protocol == "udp" || r.Protocol == "icmp" || r.Protocol == "icmpv6" {
				perm.FromPort, perm.ToPort = &r.FromPort, &r.ToPort
			}
			i, index[key] = len(out), len(out)
			out = append(out, perm)
		}
		perm := &out[i]
		switch {
		case r.CIDRIPv4 != "":
			perm.IPRanges = append(perm.IPRanges, ec2Range{CidrIP: r.CIDRIPv4, Description: r.Description})
		case r.CIDRIPv6 != "":
			perm.IPv6Ranges = append(perm.IPv6Ranges, ec2Range{CidrIPv6: r.CIDRIPv6, Description: r.Description})
		case r.PrefixListID != "":
			perm.PrefixIDs = append(perm.PrefixIDs, ec2Range{PrefixListID: r.PrefixListID, Description: r.Description})
		default:
			perm.Groups = append(perm.Groups, ec2GroupPair{UserID: account, GroupID: r.ReferencedGroupID, Description: r.Description})
		}
	}
	return out
}
