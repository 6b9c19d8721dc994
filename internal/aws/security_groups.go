package aws

import (
	"context"
	"fmt"
	"slices"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// SecurityGroup is what a policy reads of a group: its name, its inbound
// rules and its tags, where the policy keeps its backup of the rules it
// revoked and a grant its marker.
type SecurityGroup struct {
	ID      string
	Name    string
	Ingress []jit.SGRule
	Tags    map[string]string
}

// IsGrant tells a group tagged as a grant (jit-grant), whether or not the
// tag holds a marker and the grant fits anything: what it is worth is the
// policy's to judge (see judgeGrantGroup).
func (g *SecurityGroup) IsGrant() bool {
	_, tagged := g.Tags[jit.TagGrant]
	return tagged
}

// SecurityGroups reads the given groups, once per provider process: the
// groups nobody read yet in two calls whatever their number. A group that
// does not exist is absent from the result. Grants' groups are read like
// any other: a tag exempts nothing by itself. Callers may change what they
// get; a write to a group makes the process forget it (see ApplySGPlan).
func (c *Client) SecurityGroups(ctx context.Context, ids []string) (map[string]*SecurityGroup, error) {
	got, err := c.groups.GetMany(ctx, ids, c.readSecurityGroups)
	if err != nil {
		return nil, err
	}
	groups := map[string]*SecurityGroup{}
	for id, g := range got {
		if g != nil {
			groups[id] = g
		}
	}
	return groups, nil
}

// readSecurityGroups reads groups from EC2: two calls whatever their number.
func (c *Client) readSecurityGroups(ctx context.Context, ids []string) (map[string]*SecurityGroup, error) {
	groups := map[string]*SecurityGroup{}
	if len(ids) == 0 {
		return groups, nil
	}
	// A filter, unlike GroupIds, does not fail the whole call for one
	// missing group.
	byID := []types.Filter{{Name: awssdk.String("group-id"), Values: ids}}
	described := ec2.NewDescribeSecurityGroupsPaginator(c.EC2, &ec2.DescribeSecurityGroupsInput{Filters: byID})
	for described.HasMorePages() {
		page, err := nextPage(ctx, described.NextPage)
		if err != nil {
			return nil, fmt.Errorf("reading security groups %s: %w", strings.Join(ids, ", "), err)
		}
		for _, g := range page.SecurityGroups {
			sg := &SecurityGroup{ID: awssdk.ToString(g.GroupId), Name: awssdk.ToString(g.GroupName), Tags: map[string]string{}}
			for _, t := range g.Tags {
				sg.Tags[awssdk.ToString(t.Key)] = awssdk.ToString(t.Value)
			}
			groups[sg.ID] = sg
		}
	}
	rules, err := c.ingressRules(ctx, ids)
	if err != nil {
		return nil, err
	}
	for id, g := range groups {
		g.Ingress = rules[id]
	}
	return groups, nil
}

// ingressRules reads the inbound rules of the given groups, by group.
func (c *Client) ingressRules(ctx context.Context, ids []string) (map[string][]jit.SGRule, error) {
	out := map[string][]jit.SGRule{}
	pager := ec2.NewDescribeSecurityGroupRulesPaginator(c.EC2, &ec2.DescribeSecurityGroupRulesInput{
		Filters: []types.Filter{{Name: awssdk.String("group-id"), Values: ids}},
	})
	for pager.HasMorePages() {
		page, err := nextPage(ctx, pager.NextPage)
		if err != nil {
			return nil, fmt.Errorf("reading the rules of security groups %s: %w", strings.Join(ids, ", "), err)
		}
		for _, r := range page.SecurityGroupRules {
			if awssdk.ToBool(r.IsEgress) {
				continue
			}
			rule := jit.SGRule{
				ID:           awssdk.ToString(r.SecurityGroupRuleId),
				IPProtocol:   awssdk.ToString(r.IpProtocol),
				FromPort:     int(awssdk.ToInt32(r.FromPort)),
				ToPort:       int(awssdk.ToInt32(r.ToPort)),
				CIDRIPv4:     awssdk.ToString(r.CidrIpv4),
				CIDRIPv6:     awssdk.ToString(r.CidrIpv6),
				PrefixListID: awssdk.ToString(r.PrefixListId),
				Description:  awssdk.ToString(r.Description),
			}
			if r.ReferencedGroupInfo != nil {
				rule.ReferencedGroupID = awssdk.ToString(r.ReferencedGroupInfo.GroupId)
			}
			group := awssdk.ToString(r.GroupId)
			out[group] = append(out[group], rule)
		}
	}
	return out, nil
}

// Attachment is a network interface carrying a security group, and the
// instance it is attached to ("" when detached).
type Attachment struct {
	NetworkInterfaceID string
	InstanceID         string
}

// GroupAttachments lists, by group, every network interface carrying one of
// the given groups, in one call.
func (c *Client) GroupAttachments(ctx context.Context, ids []string) (map[string][]Attachment, error) {
	out := map[string][]Attachment{}
	if len(ids) == 0 {
		return out, nil
	}
	pager := ec2.NewDescribeNetworkInterfacesPaginator(c.EC2, &ec2.DescribeNetworkInterfacesInput{
		Filters: []types.Filter{{Name: awssdk.String("group-id"), Values: ids}},
	})
	for pager.HasMorePages() {
		page, err := nextPage(ctx, pager.NextPage)
		if err != nil {
			return nil, fmt.Errorf("listing the network interfaces of security groups %s: %w", strings.Join(ids, ", "), err)
		}
		for _, eni := range page.NetworkInterfaces {
			a := Attachment{NetworkInterfaceID: awssdk.ToString(eni.NetworkInterfaceId)}
			if eni.Attachment != nil {
				a.InstanceID = awssdk.ToString(eni.Attachment.InstanceId)
			}
			for _, g := range eni.Groups {
				if id := awssdk.ToString(g.GroupId); slices.Contains(ids, id) {
					out[id] = append(out[id], a)
				}
			}
		}
	}
	return out, nil
}

// ApplySGPlan writes one group's plan in the order jit.SGPlan prescribes, so
// that an apply interrupted at any point leaves a record from which the next
// one converges: the backup tags holding the recorded and the planned
// record together, then the revokes, then the authorisations, then the
// planned record alone. recordedBackup and recordedRemainders are what the
// plan was computed from. The caller holds the group's lock; g.Tags is
// updated as the tags are written, and the process reads the group again
// next time.
func (c *Client) ApplySGPlan(ctx context.Context, g *SecurityGroup, policy string, recordedBackup, recordedRemainders []jit.SGRule, plan jit.SGPlan) error {
	defer c.groups.Forget(g.ID)
	if len(plan.Revoke) > 0 || len(plan.Authorize) > 0 {
		during, err := jit.SGBackupTags(policy, slices.Concat(recordedBackup, plan.Backup), slices.Concat(recordedRemainders, plan.Remainders))
		if err != nil {
			return fmt.Errorf("security group %s: %w", g.ID, err)
		}
		if err := c.writeBackupTags(ctx, g, policy, during); err != nil {
			return err
		}
		if err := c.revoke(ctx, g.ID, plan.Revoke); err != nil {
			return err
		}
		if err := c.authorize(ctx, g.ID, plan.Authorize); err != nil {
			if !isEC2Code(err, "RulesPerSecurityGroupLimitExceeded") {
				return err
			}
			return c.putBack(ctx, g, policy, recordedBackup, recordedRemainders, plan, err)
		}
	}
	after, err := jit.SGBackupTags(policy, plan.Backup, plan.Remainders)
	if err != nil {
		return fmt.Errorf("security group %s: %w", g.ID, err)
	}
	return c.writeBackupTags(ctx, g, policy, after)
}

// putBack undoes a plan whose remainders the group had no room for (another
// writer filled it since the read): the rules revoked for it are authorised
// again as they were, into the room their revoke left, and the backup tags
// go back to what they recorded before. No rule of others is left narrower
// than its owner wrote it; the port stays as it was, and the error says so.
func (c *Client) putBack(ctx context.Context, g *SecurityGroup, policy string, recordedBackup, recordedRemainders []jit.SGRule, plan jit.SGPlan, refused error) error {
	tflog.Warn(ctx, "security group full: putting back the rules revoked from it", map[string]any{"group": g.ID, "rules": describeRules(plan.Revoke)})
	if err := c.authorize(ctx, g.ID, plan.Revoke); err != nil {
		return wholeStory{fmt.Errorf("%w; putting back the rules revoked from it failed too (%w): they are recorded in its backup tags, and the next apply restores them", refused, err)}
	}
	before, err := jit.SGBackupTags(policy, recordedBackup, recordedRemainders)
	if err == nil {
		err = c.writeBackupTags(ctx, g, policy, before)
	}
	if err != nil {
		return wholeStory{fmt.Errorf("%w; the rules revoked from it were put back, but not its backup tags: %w", refused, err)}
	}
	return wholeStory{fmt.Errorf("%w. Another writer filled the group since it was read; the rules revoked from it for this apply were put back as they were, so it is as before the apply", refused)}
}

// writeBackupTags makes the policy's backup tags on g exactly want. A
// record spans several tags, and a half-written one would not parse, so
// every piece is written in one CreateTags call, with the pieces a shorter
// record no longer uses emptied in the same call (empty pieces add nothing
// to the text), and only then deleted. An empty record is removed in one
// DeleteTags call.
func (c *Client) writeBackupTags(ctx context.Context, g *SecurityGroup, policy string, want map[string]string) error {
	var create, del []types.Tag
	for k, v := range want {
		if cur, ok := g.Tags[k]; !ok || cur != v {
			create = append(create, types.Tag{Key: awssdk.String(k), Value: awssdk.String(v)})
		}
	}
	for k, v := range g.Tags {
		if _, keep := want[k]; keep || !jit.IsSGBackupTag(policy, k) {
			continue
		}
		if len(want) > 0 {
			create = append(create, types.Tag{Key: awssdk.String(k), Value: awssdk.String("")})
			v = ""
		}
		// With a Value, DeleteTags removes the tag only if it still holds it.
		del = append(del, types.Tag{Key: awssdk.String(k), Value: awssdk.String(v)})
	}
	if err := c.writeTags(ctx, g.ID, create, del); err != nil {
		return fmt.Errorf("recording the backup of policy %q on security group %s: %w", policy, g.ID, notFound(err))
	}
	for _, t := range del {
		delete(g.Tags, *t.Key)
	}
	for k, v := range want {
		g.Tags[k] = v
	}
	return nil
}

// revoke removes rules by ID. A connection dropped after EC2 applied the
// revoke makes the SDK retry a call whose rules are gone; the group is
// read back, and rules that are gone are what was asked.
func (c *Client) revoke(ctx context.Context, groupID string, rules []jit.SGRule) error {
	if len(rules) == 0 {
		return nil
	}
	ids := make([]string, len(rules))
	for i, r := range rules {
		ids[i] = r.ID
	}
	tflog.Info(ctx, "revoking security group rules", map[string]any{"group": groupID, "rules": describeRules(rules)})
	_, err := call(ctx, c.EC2.RevokeSecurityGroupIngress, &ec2.RevokeSecurityGroupIngressInput{GroupId: awssdk.String(groupID), SecurityGroupRuleIds: ids})
	if err == nil {
		return nil
	}
	current, rerr := c.ingressRules(ctx, []string{groupID})
	if rerr == nil && !slices.ContainsFunc(current[groupID], func(r jit.SGRule) bool { return slices.Contains(ids, r.ID) }) {
		return nil
	}
	return fmt.Errorf("revoking %s from security group %s: %w", describeRules(rules), groupID, err)
}

// authorize adds rules in one call: EC2 adds all or none. After a dropped
// connection the SDK's retry meets InvalidPermission.Duplicate for rules the
// first attempt added; the group is read back, and rules all present, with
// their descriptions, are what was asked.
func (c *Client) authorize(ctx context.Context, groupID string, rules []jit.SGRule) error {
	if len(rules) == 0 {
		return nil
	}
	perms := make([]types.IpPermission, len(rules))
	for i, r := range rules {
		perms[i] = ipPermission(r)
	}
	tflog.Info(ctx, "authorising security group rules", map[string]any{"group": groupID, "rules": describeRules(rules)})
	_, err := call(ctx, c.EC2.AuthorizeSecurityGroupIngress, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: awssdk.String(groupID), IpPermissions: perms})
	if err == nil {
		return nil
	}
	current, rerr := c.ingressRules(ctx, []string{groupID})
	if rerr == nil && !slices.ContainsFunc(rules, func(want jit.SGRule) bool {
		return !slices.ContainsFunc(current[groupID], func(r jit.SGRule) bool { r.ID = ""; return r == want })
	}) {
		return nil
	}
	return fmt.Errorf("authorising %s in security group %s: %w", describeRules(rules), groupID, err)
}

func ipPermission(r jit.SGRule) types.IpPermission {
	p := types.IpPermission{
		IpProtocol: awssdk.String(r.IPProtocol),
		FromPort:   awssdk.Int32(int32(r.FromPort)),
		ToPort:     awssdk.Int32(int32(r.ToPort)),
	}
	var description *string
	if r.Description != "" {
		description = awssdk.String(r.Description)
	}
	switch {
	case r.CIDRIPv4 != "":
		p.IpRanges = []types.IpRange{{CidrIp: awssdk.String(r.CIDRIPv4), Description: description}}
	case r.CIDRIPv6 != "":
		p.Ipv6Ranges = []types.Ipv6Range{{CidrIpv6: awssdk.String(r.CIDRIPv6), Description: description}}
	case r.PrefixListID != "":
		p.PrefixListIds = []types.PrefixListId{{PrefixListId: awssdk.String(r.PrefixListID), Description: description}}
	default:
		p.UserIdGroupPairs = []types.UserIdGroupPair{{GroupId: awssdk.String(r.ReferencedGroupID), Description: description}}
	}
	return p
}

func describeRules(rules []jit.SGRule) string {
	texts := make([]string, len(rules))
	for i, r := range rules {
		texts[i] = r.String()
	}
	return strings.Join(texts, "; ")
}

// wholeStory is an error that says itself what became of the group:
// callers add nothing to it.
type wholeStory struct{ error }

func (w wholeStory) Unwrap() error { return w.error }
