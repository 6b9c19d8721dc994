package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
	"github.com/jitaccess/terraform-provider-jit/internal/locks"
	"github.com/jitaccess/terraform-provider-jit/internal/retry"
)

// GrantGroup is a JIT grant as EC2 holds it: a security group tagged with
// the grant's marker (see jit.TagGrant), and each port's end (see
// jit.GrantEndTag).
type GrantGroup struct {
	ID, Name, VPCID string
	// RequestID is the jit-request tag.
	RequestID string
	Marker    jit.Marker
	// MarkerOK is false when the jit-grant tag is not a grant marker
	// (written or edited by hand): such a group is not revoked.
	MarkerOK bool
	// Record is who asked and why, from the group's record tags and its
	// marker; RecordWhole tells whether every field is whole. Nil when
	// the group has neither.
	Record      *jit.GrantRecord
	RecordWhole bool
	// Permissions are the group's ingress rules, one per protocol, port
	// and source.
	Permissions []GrantPermission
	// Tags are all of the group's tags; Rules its ingress rules, one per
	// source, without IDs.
	Tags  map[string]string
	Rules []jit.SGRule
}

// Request is the request the group claims to grant: its jit-request tag,
// when its name was made for that request too; "" otherwise.
func (g GrantGroup) Request() string {
	if g.RequestID == "" || !strings.HasPrefix(g.Name, grantGroupName(g.RequestID, "")) {
		return ""
	}
	return g.RequestID
}

// Claim is what the group as a whole claims: its marker and request. A
// claim that OutlivesAnyPolicy is no policy's grant.
func (g GrantGroup) Claim() jit.GrantClaim {
	return jit.GrantClaim{Marker: g.Marker, Request: g.Request()}
}

// RuleEnd is when the group's rule r stops being granted (jit.SGGrantEnd).
func (g GrantGroup) RuleEnd(r jit.SGRule) time.Time { return jit.SGGrantEnd(g.Marker, g.Tags, r) }

// GrantPermission is one port a grant group opens to one source, and
// when it ends there (its port's end: see jit.SGGrantEnd).
type GrantPermission struct {
	Port   jit.PortProtocol
	Source string
	End    time.Time
}

// wholeRecord is the group's record when whole, else nil.
func (g GrantGroup) wholeRecord() *jit.GrantRecord {
	if g.RecordWhole {
		return g.Record
	}
	return nil
}

// Instance is the instance a grant group was made for, from its name.
func (g GrantGroup) Instance() string {
	if g.RequestID == "" {
		return ""
	}
	instance, ok := strings.CutPrefix(g.Name, grantGroupName(g.RequestID, ""))
	if !ok {
		return ""
	}
	return instance
}

// GrantGroups lists the region's security groups carrying a jit-grant tag.
func (c *Client) GrantGroups(ctx context.Context) ([]GrantGroup, error) {
	var out []GrantGroup
	pager := ec2.NewDescribeSecurityGroupsPaginator(c.EC2, &ec2.DescribeSecurityGroupsInput{
		Filters: []types.Filter{{Name: awssdk.String("tag-key"), Values: []string{jit.TagGrant}}},
	})
	for pager.HasMorePages() {
		page, err := nextPage(ctx, pager.NextPage)
		if err != nil {
			return nil, fmt.Errorf("listing security groups tagged %s in %s: %w", jit.TagGrant, c.Region, err)
		}
		for _, g := range page.SecurityGroups {
			out = append(out, grantGroupOf(g))
		}
	}
	return out, nil
}

func grantGroupOf(g types.SecurityGroup) GrantGroup {
	out := GrantGroup{ID: awssdk.ToString(g.GroupId), Name: awssdk.ToString(g.GroupName), VPCID: awssdk.ToString(g.VpcId)}
	tags := map[string]string{}
	for _, t := range g.Tags {
		tags[awssdk.ToString(t.Key)] = awssdk.ToString(t.Value)
	}
	if v, ok := tags[jit.TagGrant]; ok {
		m, ok := jit.ParseMarker(v)
		out.Marker, out.MarkerOK = m, ok && m.Kind == jit.MarkerGrant
	}
	out.RequestID = tags[jit.TagRequest]
	switch r, tagged := jit.RecordFromTags(tags, ""); {
	case out.MarkerOK:
		r, whole := jit.RecordOf(out.Marker, tags, "")
		out.Record, out.RecordWhole = &r, whole
	case tagged:
		out.Record = &r // with a marker nobody vouches for
	}
	out.Tags = tags
	out.Rules = rulesOfPermissions(g.IpPermissions)
	for _, r := range out.Rules {
		if r.CIDRIPv4 == "" && r.CIDRIPv6 == "" {
			continue
		}
		port := jit.PortProtocol{Number: max(r.FromPort, 0), Protocol: jit.ProtocolAny}
		switch r.IPProtocol {
		case "tcp":
			port.Protocol = jit.ProtocolTCP
		case "udp":
			port.Protocol = jit.ProtocolUDP
		}
		end := out.Marker.End
		if out.MarkerOK {
			end = out.RuleEnd(r)
		}
		out.Permissions = append(out.Permissions, GrantPermission{Port: port, Source: r.Source(), End: end})
	}
	return out
}

// rulesOfPermissions splits DescribeSecurityGroups' permissions into rules,
// one per source, as DescribeSecurityGroupRules would list them (without
// IDs). A permission of all protocols or a portless one reports no ports:
// -1, -1.
func rulesOfPermissions(perms []types.IpPermission) []jit.SGRule {
	var out []jit.SGRule
	port := func(p *int32) int {
		if p == nil {
			return -1
		}
		return int(*p)
	}
	for _, perm := range perms {
		base := jit.SGRule{IPProtocol: awssdk.ToString(perm.IpProtocol), FromPort: port(perm.FromPort), ToPort: port(perm.ToPort)}
		for _, r := range perm.IpRanges {
			rule := base
			rule.CIDRIPv4, rule.Description = awssdk.ToString(r.CidrIp), awssdk.ToString(r.Description)
			out = append(out, rule)
		}
		for _, r := range perm.Ipv6Ranges {
			rule := base
			rule.CIDRIPv6, rule.Description = awssdk.ToString(r.CidrIpv6), awssdk.ToString(r.Description)
			out = append(out, rule)
		}
		for _, r := range perm.PrefixListIds {
			rule := base
			rule.PrefixListID, rule.Description = awssdk.ToString(r.PrefixListId), awssdk.ToString(r.Description)
			out = append(out, rule)
		}
		for _, r := range perm.UserIdGroupPairs {
			rule := base
			rule.ReferencedGroupID, rule.Description = awssdk.ToString(r.GroupId), awssdk.ToString(r.Description)
			out = append(out, rule)
		}
	}
	return out
}

// eniLocks serialise this process's changes to an ENI's group list, which
// ModifyNetworkInterfaceAttribute replaces whole. ENI IDs are unique across
// regions, so one set serves every Client.
var eniLocks locks.Keyed

// dependencyWait bounds how long a group detached from its ENIs may keep
// failing deletion with DependencyViolation (EC2 takes a moment to see the
// detachment; a rule of another group referring to it never clears).
const dependencyWait = 2 * time.Minute

// RevokeGrantGroup removes a grant: it reads the group again and, if
// revoke still holds for its marker (a grant renewed since it was listed is
// kept, revoked false), detaches it from every ENI carrying it, keeping
// their other groups, then deletes it. A group or ENI already gone counts
// as done, so a second or concurrent run converges. DependencyViolation
// (EC2 still sees the group attached) re-checks the attachments and
// retries; throttling is retried, honouring Retry-After.
func (c *Client) RevokeGrantGroup(ctx context.Context, groupID string, revoke func(jit.Marker) bool) (revoked bool, err error) {
	return c.EndGrantGroup(ctx, groupID, func(g GrantGroup) ([]jit.SGRule, bool) {
		return nil, g.MarkerOK && revoke(g.Marker)
	})
}

// EndGrantGroup reads a grant group again and ends what decide says of it
// as it is now: the whole group (whole: detached from every ENI carrying
// it, then deleted, as RevokeGrantGroup does) or some of its rules (the
// ports that ended, revoked from it). done is false when decide ends
// nothing; a group already gone is done.
func (c *Client) EndGrantGroup(ctx context.Context, groupID string, decide func(GrantGroup) (rules []jit.SGRule, whole bool)) (done bool, err error) {
	defer c.groups.Forget(groupID)
	current, err := c.readGrantGroup(ctx, groupID)
	if err != nil {
		return false, err
	}
	if current == nil {
		return true, nil
	}
	rules, whole := decide(*current)
	switch {
	case whole:
		return true, c.deleteGrantGroup(ctx, groupID)
	case len(rules) > 0:
		tflog.Info(ctx, "revoking the ended ports of a grant's security group", map[string]any{"group": groupID, "rules": describeRules(rules)})
		return true, c.revokePermissions(ctx, groupID, rules)
	}
	return false, nil
}

// readGrantGroup reads one group as a grant, nil when it is gone.
func (c *Client) readGrantGroup(ctx context.Context, groupID string) (*GrantGroup, error) {
	var current *GrantGroup
	err := retryEC2(ctx, func(ctx context.Context) error {
		// A filter, unlike GroupIds, answers an empty list for a gone group.
		out, err := c.EC2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{
			Filters: []types.Filter{{Name: awssdk.String("group-id"), Values: []string{groupID}}},
		})
		if err != nil {
			return err
		}
		current = nil
		for _, g := range out.SecurityGroups {
			if awssdk.ToString(g.GroupId) == groupID {
				gg := grantGroupOf(g)
				current = &gg
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading security group %s: %w", groupID, err)
	}
	return current, nil
}

// deleteGrantGroup detaches a grant group from every ENI carrying it,
// keeping their other groups, then deletes it; gone is done.
func (c *Client) deleteGrantGroup(ctx context.Context, groupID string) error {
	deleteCtx, cancel := context.WithTimeout(ctx, dependencyWait)
	defer cancel()
	err := describeEC2(retry.Do(deleteCtx, retry.DefaultBackoff, classifyGroupDelete, func(ctx context.Context) error {
		if err := c.detachEverywhere(ctx, groupID); err != nil {
			return err
		}
		tflog.Info(ctx, "deleting a grant's security group", map[string]any{"group": groupID})
		_, err := c.EC2.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: awssdk.String(groupID)})
		if isEC2Code(err, "InvalidGroup.NotFound") {
			return nil
		}
		return err
	}))
	if err != nil {
		return fmt.Errorf("revoking grant security group %s: %w", groupID, err)
	}
	return nil
}

// revokePermissions revokes rules from a group by their permissions
// (descriptions aside). EC2 fails the whole call, in a VPC that is not the
// default, when one of them is gone (InvalidPermission.NotFound, also what
// a retry after a dropped connection meets): the group is read again and
// what it still holds of them revoked, until nothing is left.
func (c *Client) revokePermissions(ctx context.Context, groupID string, rules []jit.SGRule) error {
	for attempt := 0; len(rules) > 0; attempt++ {
		perms := make([]types.IpPermission, len(rules))
		for i, r := range rules {
			r.Description = ""
			perms[i] = ipPermission(r)
		}
		tflog.Info(ctx, "revoking security group rules", map[string]any{"group": groupID, "rules": describeRules(rules)})
		_, err := call(ctx, c.EC2.RevokeSecurityGroupIngress, &ec2.RevokeSecurityGroupIngressInput{GroupId: awssdk.String(groupID), IpPermissions: perms})
		if err == nil || isEC2Code(err, "InvalidGroup.NotFound") {
			return nil
		}
		if !isEC2Code(err, "InvalidPermission.NotFound") || attempt >= 2 {
			return fmt.Errorf("revoking %s from security group %s: %w", describeRules(rules), groupID, err)
		}
		current, rerr := c.readGrantGroup(ctx, groupID)
		if rerr != nil {
			return rerr
		}
		if current == nil {
			return nil
		}
		rules = slices.DeleteFunc(rules, func(r jit.SGRule) bool {
			return !slices.ContainsFunc(current.Rules, func(cur jit.SGRule) bool { return jit.SamePermission(cur, r) })
		})
	}
	return nil
}

// detachEverywhere detaches a group from every ENI of the region carrying it.
func (c *Client) detachEverywhere(ctx context.Context, groupID string) error {
	var enis []string
	pager := ec2.NewDescribeNetworkInterfacesPaginator(c.EC2, &ec2.DescribeNetworkInterfacesInput{
		Filters: []types.Filter{{Name: awssdk.String("group-id"), Values: []string{groupID}}},
	})
	for pager.HasMorePages() {
		page, err := nextPage(ctx, pager.NextPage)
		if err != nil {
			return fmt.Errorf("listing network interfaces carrying security group %s: %w", groupID, err)
		}
		for _, eni := range page.NetworkInterfaces {
			enis = append(enis, awssdk.ToString(eni.NetworkInterfaceId))
		}
	}
	for _, eni := range enis {
		if err := c.detachGroup(ctx, eni, groupID); err != nil {
			return err
		}
	}
	return nil
}

// detachGroup removes one group from an ENI's list. The list is replaced
// whole by EC2, so it is re-read under the ENI's lock right before the
// write: groups attached meanwhile by others in this process are kept.
func (c *Client) detachGroup(ctx context.Context, eniID, groupID string) error {
	defer eniLocks.Lock(ctx, eniID)()
	err := retryEC2(ctx, func(ctx context.Context) error {
		out, err := c.EC2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{eniID}})
		if err != nil {
			return err
		}
		var groups []string
		for _, eni := range out.NetworkInterfaces {
			for _, g := range eni.Groups {
				groups = append(groups, awssdk.ToString(g.GroupId))
			}
			if eni.Attachment != nil {
				c.instances.Forget(awssdk.ToString(eni.Attachment.InstanceId)) // its ENI's groups change
			}
		}
		if !slices.Contains(groups, groupID) {
			return nil
		}
		rest := slices.DeleteFunc(groups, func(g string) bool { return g == groupID })
		if len(rest) == 0 {
			return fmt.Errorf("network interface %s has no security group but grant %s, and EC2 requires one: attach another group to it, then run again", eniID, groupID)
		}
		tflog.Info(ctx, "detaching a grant's security group from a network interface", map[string]any{"eni": eniID, "group": groupID})
		_, err = c.EC2.ModifyNetworkInterfaceAttribute(ctx, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: awssdk.String(eniID), Groups: rest})
		return err
	})
	if err != nil && !isEC2Code(err, "InvalidNetworkInterfaceID.NotFound") {
		return fmt.Errorf("detaching security group %s from network interface %s: %w", groupID, eniID, err)
	}
	return nil
}

// retryEC2 runs an EC2 or STS call until it succeeds, fails for good, or
// ctx (the resource's timeout) ends. It is the only retry: the SDK's own is
// off (see New), so attempts never multiply.
func retryEC2(ctx context.Context, op func(context.Context) error) error {
	return describeEC2(retry.Do(ctx, retry.DefaultBackoff, classifyEC2, op))
}

// call runs one EC2 or STS call under retryEC2.
func call[I, O, Opt any](ctx context.Context, op func(context.Context, I, ...Opt) (O, error), in I) (O, error) {
	var out O
	err := retryEC2(ctx, func(ctx context.Context) (err error) {
		out, err = op(ctx, in)
		return err
	})
	return out, err
}

// nextPage reads a paginator's next page under retryEC2: a page that
// failed is asked for again, as the paginator moves on only on success.
func nextPage[P, Opt any](ctx context.Context, next func(context.Context, ...Opt) (P, error)) (P, error) {
	var page P
	err := retryEC2(ctx, func(ctx context.Context) (err error) {
		page, err = next(ctx)
		return err
	})
	return page, err
}

// classifyEC2 retries what EC2 means as "later": throttling, a tag write
// meeting another, and server errors, after the Retry-After the response
// carries, if any.
func classifyEC2(err error) (bool, time.Duration) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false, 0
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		if _, throttled := awsretry.DefaultThrottleErrorCodes[api.ErrorCode()]; throttled {
			return true, ec2RetryAfter(err)
		}
		// EC2 refuses a tag write while another one on the same resource
		// is under way, and says to retry.
		if api.ErrorCode() == "ConcurrentTagAccess" {
			return true, ec2RetryAfter(err)
		}
	}
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() != 0 {
		return resp.HTTPStatusCode() >= http.StatusInternalServerError, ec2RetryAfter(err)
	}
	// No response at all: the connection failed or dropped, possibly after
	// a write was applied; callers of writes read back what holds.
	var sendErr *smithyhttp.RequestSendError
	var netErr net.Error
	return errors.As(err, &sendErr) || errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF), 0
}

// classifyGroupDelete also retries DependencyViolation: the next attempt
// detaches the group again from whatever still carries it.
func classifyGroupDelete(err error) (bool, time.Duration) {
	if isEC2Code(err, "DependencyViolation") {
		return true, 0
	}
	return classifyEC2(err)
}

func ec2RetryAfter(err error) time.Duration {
	var resp *smithyhttp.ResponseError
	if !errors.As(err, &resp) || resp.Response == nil {
		return 0
	}
	return retry.After(resp.Response.Header, time.Now())
}

func isEC2Code(err error, code string) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == code
}
