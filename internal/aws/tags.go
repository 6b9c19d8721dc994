package aws

import (
	"context"
	"fmt"
	"maps"
	"slices"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// UpdateInstanceTags sets and removes tags on an instance, keeping every
// other tag. EC2 writes tags key by key (CreateTags, DeleteTags), so unlike a
// VM PATCH nothing written meanwhile by others is lost; m.Tags, as read for
// this apply, decides what differs, so a no-op makes no call.
func (c *Client) UpdateInstanceTags(ctx context.Context, m *jit.Machine, set map[string]string, remove func(string) bool) error {
	var create, del []types.Tag
	for k, v := range set {
		if cur, ok := m.Tags[k]; !ok || cur != v {
			create = append(create, types.Tag{Key: awssdk.String(k), Value: awssdk.String(v)})
		}
	}
	for k := range m.Tags {
		if _, keep := set[k]; !keep && remove != nil && remove(k) {
			del = append(del, types.Tag{Key: awssdk.String(k)})
		}
	}
	// The settings are written before stale ones go, so a request never
	// finds the instance without a policy it still has.
	if err := c.writeTags(ctx, m.ID, create, del); err != nil {
		return fmt.Errorf("tagging EC2 instance %s: %w", m.ID, notFound(err))
	}
	apply := func(m *jit.Machine) *jit.Machine {
		if m == nil {
			return nil
		}
		if m.Tags == nil {
			m.Tags = map[string]string{}
		}
		maps.Copy(m.Tags, set)
		for _, t := range del {
			delete(m.Tags, *t.Key)
		}
		return m
	}
	apply(m)
	c.instances.Update(m.ID, apply)
	return nil
}

// writeTags creates, then deletes, tags of one resource; empty lists make no call.
func (c *Client) writeTags(ctx context.Context, id string, create, del []types.Tag) error {
	byKey := func(a, b types.Tag) int {
		if *a.Key < *b.Key {
			return -1
		}
		if *a.Key > *b.Key {
			return 1
		}
		return 0
	}
	if len(create)+len(del) > 0 {
		tflog.Info(ctx, "writing tags", map[string]any{"resource": id, "set": len(create), "removed": len(del)})
	}
	slices.SortFunc(create, byKey)
	slices.SortFunc(del, byKey)
	if len(create) > 0 {
		if _, err := call(ctx, c.EC2.CreateTags, &ec2.CreateTagsInput{Resources: []string{id}, Tags: create}); err != nil {
			return err
		}
	}
	if len(del) > 0 {
		if _, err := call(ctx, c.EC2.DeleteTags, &ec2.DeleteTagsInput{Resources: []string{id}, Tags: del}); err != nil {
			return err
		}
	}
	return nil
}

// TaggedInstances lists the instances of the region carrying tag=value,
// terminated ones aside.
func (c *Client) TaggedInstances(ctx context.Context, tag, value string) ([]string, error) {
	var ids []string
	pager := ec2.NewDescribeInstancesPaginator(c.EC2, &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: awssdk.String("tag:" + tag), Values: []string{value}}},
	})
	for pager.HasMorePages() {
		page, err := nextPage(ctx, pager.NextPage)
		if err != nil {
			return nil, fmt.Errorf("listing EC2 instances tagged %s=%s in %s: %w", tag, value, c.Region, err)
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				if inst.State != nil && (inst.State.Name == types.InstanceStateNameTerminated || inst.State.Name == types.InstanceStateNameShuttingDown) {
					continue
				}
				ids = append(ids, awssdk.ToString(inst.InstanceId))
			}
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Instances lists the instances of the region with their names, states,
// tags and the security groups of their network interfaces (no
// addresses): what an audit needs.
func (c *Client) Instances(ctx context.Context) ([]*jit.Machine, error) {
	var out []*jit.Machine
	pager := ec2.NewDescribeInstancesPaginator(c.EC2, &ec2.DescribeInstancesInput{})
	for pager.HasMorePages() {
		page, err := nextPage(ctx, pager.NextPage)
		if err != nil {
			return out, fmt.Errorf("listing EC2 instances in %s: %w", c.Region, err)
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				m := &jit.Machine{Cloud: name, ID: awssdk.ToString(inst.InstanceId), Location: c.Region, Tags: map[string]string{}}
				if inst.State != nil {
					m.State = string(inst.State.Name)
				}
				for _, t := range inst.Tags {
					m.Tags[awssdk.ToString(t.Key)] = awssdk.ToString(t.Value)
				}
				m.Name = m.Tags["Name"]
				for _, eni := range inst.NetworkInterfaces {
					nic := jit.NetworkInterface{ID: awssdk.ToString(eni.NetworkInterfaceId)}
					for _, g := range eni.Groups {
						nic.SecurityGroupIDs = append(nic.SecurityGroupIDs, awssdk.ToString(g.GroupId))
					}
					m.Interfaces = append(m.Interfaces, nic)
				}
				out = append(out, m)
			}
		}
	}
	return out, nil
}
