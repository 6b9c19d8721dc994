package aws

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// GroupsPerInterface is EC2's default quota of security groups per
// network interface.
const GroupsPerInterface = 5

// SGGrant is a request's grant to an instance: a security group of its own
// allowing the ports from the sources, attached to the primary ENI.
type SGGrant struct {
	Request  string
	Instance string
	ENI      string
	// Marker is the grant marker (jit.GrantMarker), kept in the jit-grant
	// tag: it carries the end of the last port to end.
	Marker string
	// Ends are each port's end, kept in the jit-end-… tags (see
	// jit.GrantEndTag).
	Ends map[jit.PortProtocol]time.Time
	// Record is who asked and why, kept whole in a tag per field
	// (jit.GrantRecord.Tags): EC2 tag values hold 256 characters, where
	// the marker abbreviates.
	Record jit.GrantRecord
	Ports  []SGGrantPort
	// Again: the request's grant written again, which supersedes nothing
	// (engine.Grant.Again).
	Again bool
}

// SGGrantPort is one granted port and its source.
type SGGrantPort struct {
	Port   jit.PortProtocol
	Source string
}

// CallerIdentity names the identity the provider acts as: its ARN, asked
// once per provider process (every request of a plan asks).
func (c *Client) CallerIdentity(ctx context.Context) (string, error) {
	return c.caller.Get(ctx, "caller", func(ctx context.Context) (string, error) {
		out, err := call(ctx, c.STS.GetCallerIdentity, &sts.GetCallerIdentityInput{})
		if err != nil {
			return "", fmt.Errorf("sts:GetCallerIdentity: %w", err)
		}
		return awssdk.ToString(out.Arn), nil
	})
}

// openGrant creates the request's group (once), makes it hold exactly the
// grant's rules and ends, attaches it to the ENI beside the groups it has,
// and detaches and deletes the same requester's older grant groups on the
// ENI that open one of the same ports, which it supersedes; other people's
// grant groups stay. The ENI's group list is re-read and replaced under
// its lock, since ModifyNetworkInterfaceAttribute replaces the whole list:
// two requests never drop each other's groups. A full ENI is refused
// before anything is written.
func (c *Client) openGrant(ctx context.Context, g SGGrant) (groupID string, err error) {
	defer eniLocks.Lock(ctx, g.ENI)()
	defer c.instances.Forget(g.Instance) // its ENI's groups change
	eni, err := c.networkInterface(ctx, g.ENI)
	if err != nil {
		return "", err
	}
	sg, err := c.findGrantGroup(ctx, g.Request, g.Instance)
	if err != nil {
		return "", err
	}
	var current *GrantGroup
	var ours string
	if sg != nil {
		gg := grantGroupOf(*sg)
		current, ours = &gg, gg.ID
		defer c.groups.Forget(ours)
		if err := c.retagGrantGroup(ctx, gg, g); err != nil {
			return ours, err
		}
	}
	attached := groupIDs(eni.Groups)
	superseded, err := c.supersededGroups(ctx, attached, g)
	if err != nil {
		return "", err
	}
	keep := slices.DeleteFunc(slices.Clone(attached), func(id string) bool { return slices.Contains(superseded, id) })
	if ours == "" || !slices.Contains(keep, ours) {
		if len(keep)+1 > GroupsPerInterface {
			return "", fmt.Errorf("network interface %s of %s already has %d security groups (%s), EC2's limit per interface: "+
				"a grant needs one more. Detach a group, or raise the quota and the limit here together",
				g.ENI, g.Instance, len(keep), strings.Join(keep, ", "))
		}
	}
	if ours == "" {
		if ours, err = c.createGrantGroup(ctx, g, awssdk.ToString(eni.VpcId)); err != nil {
			return "", err
		}
		current = &GrantGroup{ID: ours}
	}
	if err := c.syncGrantRules(ctx, ours, current.Rules, g.Ports); err != nil {
		return ours, err
	}
	if want := append(keep, ours); !slices.Contains(keep, ours) || len(superseded) > 0 {
		if err := c.setGroups(ctx, g.ENI, want); err != nil {
			return ours, err
		}
	}
	for _, id := range superseded {
		if _, err := c.RevokeGrantGroup(ctx, id, always); err != nil {
			return ours, err
		}
	}
	return ours, nil
}

// retagGrantGroup makes an existing grant group's marker and port ends
// those of g, in one call: a renewal moves the ends the grant carries,
// which revoke-expired and the policy's sweep go by, and a reader never
// sees the marker and the ends of two different openings.
func (c *Client) retagGrantGroup(ctx context.Context, have GrantGroup, g SGGrant) error {
	want := jit.GrantEndTags(g.Ends)
	want[jit.TagGrant] = g.Marker
	var set []types.Tag
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if cur, ok := have.Tags[k]; !ok || cur != want[k] {
			set = append(set, types.Tag{Key: awssdk.String(k), Value: awssdk.String(want[k])})
		}
	}
	if len(set) == 0 {
		return nil
	}
	tflog.Info(ctx, "recording the grant's ends on its security group", map[string]any{"group": have.ID, "tags": len(set)})
	if err := c.writeTags(ctx, have.ID, set, nil); err != nil {
		return fmt.Errorf("recording the new ends of grant group %s: %w", have.ID, err)
	}
	return nil
}

// syncGrantRules makes a grant group hold exactly the rules of ports:
// the missing ones are authorised first, so that a port stays open
// throughout, then every other rule (one widened or added out of band, or
// of a port no longer granted) is revoked. have is what the group held
// when read.
func (c *Client) syncGrantRules(ctx context.Context, group string, have []jit.SGRule, ports []SGGrantPort) error {
	want := grantRules(ports)
	var missing, extra []jit.SGRule
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h jit.SGRule) bool { return jit.SamePermission(h, w) }) {
			missing = append(missing, w)
		}
	}
	for _, h := range have {
		if !slices.ContainsFunc(want, func(w jit.SGRule) bool { return jit.SamePermission(h, w) }) {
			extra = append(extra, h)
		}
	}
	if err := c.authorizeGrantRules(ctx, group, missing); err != nil {
		return err
	}
	if len(extra) > 0 {
		tflog.Warn(ctx, "revoking rules a grant's security group holds beyond the grant", map[string]any{"group": group, "rules": describeRules(extra)})
	}
	return c.revokePermissions(ctx, group, extra)
}

// authorizeGrantRules adds rules to a grant group in one call: EC2 adds
// all or none. After a dropped connection the retry meets
// InvalidPermission.Duplicate for rules the first attempt added; the group
// is read again (with the request flow's DescribeSecurityGroups), and
// rules all present are what was asked.
func (c *Client) authorizeGrantRules(ctx context.Context, group string, rules []jit.SGRule) error {
	if len(rules) == 0 {
		return nil
	}
	perms := make([]types.IpPermission, len(rules))
	for i, r := range rules {
		perms[i] = ipPermission(r)
	}
	tflog.Info(ctx, "authorising a grant's ingress rules", map[string]any{"group": group, "rules": describeRules(rules)})
	_, err := call(ctx, c.EC2.AuthorizeSecurityGroupIngress, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: awssdk.String(group), IpPermissions: perms})
	if err == nil {
		return nil
	}
	if current, rerr := c.readGrantGroup(ctx, group); rerr == nil && current != nil && !slices.ContainsFunc(rules, func(want jit.SGRule) bool {
		return !slices.ContainsFunc(current.Rules, func(r jit.SGRule) bool { return jit.SamePermission(r, want) })
	}) {
		return nil
	}
	return fmt.Errorf("allowing %s in %s: %w", describeRules(rules), group, err)
}

// grantRules are the ingress rules a grant's ports want: one per protocol
// and source.
func grantRules(ports []SGGrantPort) []jit.SGRule {
	var out []jit.SGRule
	for _, p := range ports {
		out = append(out, grantPortRules(p.Port, p.Source)...)
	}
	return out
}

// grantPortRules are the rules granting port from source.
func grantPortRules(port jit.PortProtocol, source string) []jit.SGRule {
	var out []jit.SGRule
	for _, proto := range sgProtocols(port.Protocol) {
		for _, src := range sgSources(source) {
			out = append(out, jit.SGRule{IPProtocol: proto, FromPort: port.Number, ToPort: port.Number}.WithSource(src))
		}
	}
	return out
}

func always(jit.Marker) bool { return true }

// closeGrant detaches the request's group from every ENI and deletes it.
// A group already gone is fine.
func (c *Client) closeGrant(ctx context.Context, request, instance string) error {
	group, err := c.grantGroup(ctx, request, instance)
	if err != nil || group == "" {
		return err
	}
	_, err = c.RevokeGrantGroup(ctx, group, always)
	return err
}

// GrantState is a request's grant as EC2 shows it.
type GrantState struct {
	// GroupID is the request's group, empty when it is gone.
	GroupID string
	// Record is what the group's tags record of who asked; nil without.
	Record *jit.GrantRecord
	// Attached tells whether the group is on the ENI.
	Attached bool
	// Held are the ports the attached group grants as the request made
	// them (see heldPorts).
	Held []jit.PortProtocol
	// Superseded are the ports another request's grant group on the ENI opens.
	Superseded []jit.PortProtocol
}

// observeGrant finds the request's group, the ports it grants, and whether
// a newer grant of the same requester took its ports over.
func (c *Client) observeGrant(ctx context.Context, ref engine.GrantRef, eniID string) (GrantState, error) {
	var st GrantState
	sg, err := c.findGrantGroup(ctx, ref.RequestID, ref.MachineID)
	if err != nil {
		return st, err
	}
	var group GrantGroup
	if sg != nil {
		group = grantGroupOf(*sg)
		st.GroupID, st.Record = group.ID, group.wholeRecord()
	}
	if eniID == "" {
		return st, nil // the instance is gone
	}
	eni, err := c.networkInterface(ctx, eniID)
	if errors.Is(err, ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	attached := groupIDs(eni.Groups)
	st.Attached = st.GroupID != "" && slices.Contains(attached, st.GroupID)
	if st.Attached {
		st.Held = heldPorts(group.Rules, ref)
		return st, nil
	}
	others, err := c.describeGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: attached})
	if err != nil {
		return st, err
	}
	for _, port := range ref.Ports {
		if slices.ContainsFunc(others, func(sg types.SecurityGroup) bool {
			gg := grantGroupOf(sg)
			return isGrantGroup(sg) && opensPort(sg, port) && gg.MarkerOK && jit.SameRequesterOf(gg.wholeRecord(), gg.Marker, ref.Requestor, ref.OnBehalfOf)
		}) {
			st.Superseded = append(st.Superseded, port)
		}
	}
	return st, nil
}

// heldPorts are the ports of ref a grant group's rules still grant: a
// port whose rules were revoked (it ended first) is not held. With the
// ports' sources known, a port is held only while the group grants it
// exactly as requested: each of its rules there, nothing else in the
// group opening it (a range, another source, all protocols), and nothing
// in the group that no port of the request wants. A group widened out of
// band so holds no port, and the request's next plan repairs it.
func heldPorts(rules []jit.SGRule, ref engine.GrantRef) []jit.PortProtocol {
	var held []jit.PortProtocol
	exact := len(ref.Sources) > 0
	var wanted []jit.SGRule
	for _, port := range ref.Ports {
		source, known := ref.Sources[port]
		if !known {
			exact = false
			break
		}
		wanted = append(wanted, grantPortRules(port, source)...)
	}
	isWanted := func(r jit.SGRule) bool {
		return slices.ContainsFunc(wanted, func(w jit.SGRule) bool { return jit.SamePermission(r, w) })
	}
	stray := exact && slices.ContainsFunc(rules, func(r jit.SGRule) bool { return !isWanted(r) })
	for _, port := range ref.Ports {
		opening := slices.DeleteFunc(slices.Clone(rules), func(r jit.SGRule) bool { return !r.OpensPort(port) })
		switch {
		case len(opening) == 0:
			continue // revoked: the port ended first, or was closed
		case !exact:
			held = append(held, port)
			continue
		case stray:
			continue
		}
		want := grantPortRules(port, ref.Sources[port])
		if len(opening) == len(want) && !slices.ContainsFunc(want, func(w jit.SGRule) bool {
			return !slices.ContainsFunc(opening, func(r jit.SGRule) bool { return jit.SamePermission(r, w) })
		}) {
			held = append(held, port)
		}
	}
	return held
}

func (c *Client) networkInterface(ctx context.Context, eniID string) (types.NetworkInterface, error) {
	out, err := call(ctx, c.EC2.DescribeNetworkInterfaces, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{eniID}})
	if err != nil {
		return types.NetworkInterface{}, fmt.Errorf("reading network interface %s: %w", eniID, notFound(err))
	}
	if len(out.NetworkInterfaces) != 1 {
		return types.NetworkInterface{}, fmt.Errorf("reading network interface %s: %w", eniID, ErrNotFound)
	}
	return out.NetworkInterfaces[0], nil
}

// grantGroup finds the request's group for the instance, "" if none.
func (c *Client) grantGroup(ctx context.Context, request, instance string) (string, error) {
	sg, err := c.findGrantGroup(ctx, request, instance)
	if err != nil || sg == nil {
		return "", err
	}
	return awssdk.ToString(sg.GroupId), nil
}

// findGrantGroup finds the request's group for the instance, nil if none.
func (c *Client) findGrantGroup(ctx context.Context, request, instance string) (*types.SecurityGroup, error) {
	groups, err := c.describeGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{
		{Name: awssdk.String("tag:" + jit.TagRequest), Values: []string{request}},
		{Name: awssdk.String("group-name"), Values: []string{grantGroupName(request, instance)}},
	}})
	if err != nil || len(groups) == 0 {
		return nil, err
	}
	return &groups[0], nil
}

func (c *Client) describeGroups(ctx context.Context, in *ec2.DescribeSecurityGroupsInput) ([]types.SecurityGroup, error) {
	var groups []types.SecurityGroup
	pages := ec2.NewDescribeSecurityGroupsPaginator(c.EC2, in)
	for pages.HasMorePages() {
		page, err := nextPage(ctx, pages.NextPage)
		if err != nil {
			return nil, fmt.Errorf("reading security groups: %w", notFound(err))
		}
		groups = append(groups, page.SecurityGroups...)
	}
	return groups, nil
}

// supersededGroups are the same requester's other requests' grant groups
// among attached that open one of the grant's ports.
func (c *Client) supersededGroups(ctx context.Context, attached []string, g SGGrant) ([]string, error) {
	if g.Again {
		return nil, nil
	}
	groups, err := c.describeGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: attached})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, sg := range groups {
		if !isGrantGroup(sg) || awssdk.ToString(sg.GroupName) == grantGroupName(g.Request, g.Instance) {
			continue
		}
		// A newer request supersedes only the same requester's grant.
		if gg := grantGroupOf(sg); !gg.MarkerOK || !jit.SameRequesterOf(gg.wholeRecord(), gg.Marker, g.Record.Requestor, g.Record.OnBehalfOf) {
			continue
		}
		if slices.ContainsFunc(g.Ports, func(p SGGrantPort) bool { return opensPort(sg, p.Port) }) {
			out = append(out, awssdk.ToString(sg.GroupId))
		}
	}
	return out, nil
}

func (c *Client) createGrantGroup(ctx context.Context, g SGGrant, vpc string) (string, error) {
	tflog.Info(ctx, "creating the grant's security group", map[string]any{"request": g.Request, "instance": g.Instance, "vpc": vpc})
	out, err := call(ctx, c.EC2.CreateSecurityGroup, &ec2.CreateSecurityGroupInput{
		GroupName:         awssdk.String(grantGroupName(g.Request, g.Instance)),
		Description:       awssdk.String("JIT access grant " + g.Request + " to " + g.Instance),
		VpcId:             awssdk.String(vpc),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: grantGroupTags(g)}},
	})
	if isEC2Code(err, "InvalidGroup.Duplicate") {
		// A retry after a dropped connection meets the group the first
		// attempt created: the request's own, by its name and tag.
		sg, ferr := c.findGrantGroup(ctx, g.Request, g.Instance)
		if ferr == nil && sg != nil {
			tflog.Info(ctx, "the grant's security group was created by an attempt whose answer was lost", map[string]any{"group": awssdk.ToString(sg.GroupId)})
			return awssdk.ToString(sg.GroupId), nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("creating the grant's security group in %s: %w", vpc, err)
	}
	return awssdk.ToString(out.GroupId), nil
}

// grantGroupTags are a grant group's tags, written with it in one call:
// the marker, the request, a Name for the console, each port's end, and
// the record.
func grantGroupTags(g SGGrant) []types.Tag {
	tags := []types.Tag{
		{Key: awssdk.String(jit.TagGrant), Value: awssdk.String(g.Marker)},
		{Key: awssdk.String(jit.TagRequest), Value: awssdk.String(g.Request)},
		{Key: awssdk.String("Name"), Value: awssdk.String(grantGroupName(g.Request, g.Instance))},
	}
	more := g.Record.Tags("")
	maps.Copy(more, jit.GrantEndTags(g.Ends))
	for _, k := range slices.Sorted(maps.Keys(more)) {
		tags = append(tags, types.Tag{Key: awssdk.String(k), Value: awssdk.String(more[k])})
	}
	return tags
}

func (c *Client) setGroups(ctx context.Context, eniID string, groups []string) error {
	tflog.Info(ctx, "setting the security groups of a network interface", map[string]any{"eni": eniID, "groups": groups})
	_, err := call(ctx, c.EC2.ModifyNetworkInterfaceAttribute, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: awssdk.String(eniID), Groups: groups})
	if err != nil {
		return fmt.Errorf("setting the security groups of %s: %w", eniID, err)
	}
	return nil
}

// grantGroupName names a request's group for an instance; EC2 group names
// are unique per VPC.
func grantGroupName(request, instance string) string { return "jit-grant-" + request + "-" + instance }

func isGrantGroup(sg types.SecurityGroup) bool {
	return slices.ContainsFunc(sg.Tags, func(t types.Tag) bool { return awssdk.ToString(t.Key) == jit.TagGrant })
}

// opensPort tells whether a group has an ingress permission for port.
func opensPort(sg types.SecurityGroup, port jit.PortProtocol) bool {
	for _, perm := range sg.IpPermissions {
		proto := awssdk.ToString(perm.IpProtocol)
		if !slices.Contains(sgProtocols(port.Protocol), proto) && proto != "-1" {
			continue
		}
		from, to := awssdk.ToInt32(perm.FromPort), awssdk.ToInt32(perm.ToPort)
		if proto == "-1" || (int(from) <= port.Number && port.Number <= int(to)) {
			return true
		}
	}
	return false
}

func sgProtocols(p jit.Protocol) []string {
	switch p {
	case jit.ProtocolTCP:
		return []string{"tcp"}
	case jit.ProtocolUDP:
		return []string{"udp"}
	}
	return []string{"tcp", "udp"}
}

// sgSources turns a request's source into EC2 CIDRs: "*" is every IPv4
// and IPv6 address, a bare address its /32 or /128.
func sgSources(source string) []string {
	if source == "*" {
		return []string{"0.0.0.0/0", "::/0"}
	}
	if p, err := jit.ParsePrefix(source); err == nil {
		return []string{p.String()}
	}
	return []string{source}
}

func groupIDs(groups []types.GroupIdentifier) []string {
	ids := make([]string, len(groups))
	for i, g := range groups {
		ids[i] = awssdk.ToString(g.GroupId)
	}
	return ids
}

// revokeGrantPorts removes the ingress rules opening ports from the
// request's group, and the group itself once it opens nothing: what is
// left of a request whose ports end at different times.
func (c *Client) revokeGrantPorts(ctx context.Context, request, instance string, ports []jit.PortProtocol) error {
	group, err := c.grantGroup(ctx, request, instance)
	if err != nil || group == "" {
		return err
	}
	_, err = c.EndGrantGroup(ctx, group, func(g GrantGroup) ([]jit.SGRule, bool) {
		closing := slices.DeleteFunc(slices.Clone(g.Rules), func(r jit.SGRule) bool {
			return !slices.ContainsFunc(ports, r.OpensPort)
		})
		return closing, len(closing) == len(g.Rules)
	})
	return err
}
