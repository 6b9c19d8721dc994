package aws

import (
	"context"
	"fmt"
	"slices"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// The fleet view of EC2: the region's instances, and the security groups
// on their interfaces with their inbound rules. A survey lists the
// instances (filtered by tag in EC2 itself) page by page, then reads the
// groups they carry in batches of filter values: its calls grow with pages,
// never with instances.

// listPageSize is the MaxResults of the survey's paginated calls.
const listPageSize = 1000

// filterValuesPerCall bounds the values of one filter in a call.
const filterValuesPerCall = 200

// Survey lists the region's instances carrying scope.Tags, terminated ones
// included (they are reported Unsupported), and reads their groups.
func (b *Backend) Survey(ctx context.Context, scope engine.SurveyScope) ([]*engine.MachineView, error) {
	c := b.client
	in := &ec2.DescribeInstancesInput{MaxResults: awssdk.Int32(listPageSize)}
	keys := make([]string, 0, len(scope.Tags))
	for k := range scope.Tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		in.Filters = append(in.Filters, types.Filter{Name: awssdk.String("tag:" + k), Values: []string{scope.Tags[k]}})
	}
	var machines []*jit.Machine
	pager := ec2.NewDescribeInstancesPaginator(c.EC2, in)
	for pager.HasMorePages() {
		page, err := nextPage(ctx, pager.NextPage)
		if err != nil {
			return nil, fmt.Errorf("listing the EC2 instances of %s: %w", c.Region, err)
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				machines = append(machines, machineOf(c.Region, inst))
			}
		}
	}
	return c.views(ctx, machines)
}

// Inspect reads one instance and its groups.
func (b *Backend) Inspect(ctx context.Context, id, _ string) (*engine.MachineView, error) {
	m, err := b.client.Machine(ctx, id)
	if err != nil {
		return nil, err
	}
	views, err := b.client.views(ctx, []*jit.Machine{m})
	if err != nil {
		return nil, err
	}
	return views[0], nil
}

// views reads every group the machines carry, once, and sees through them
// the machines' exposure and grants.
func (c *Client) views(ctx context.Context, machines []*jit.Machine) ([]*engine.MachineView, error) {
	var ids []string
	for _, m := range machines {
		ids = append(ids, m.FilterIDs()...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	groups := map[string]types.SecurityGroup{}
	rules := map[string][]jit.SGRule{}
	for chunk := range slices.Chunk(ids, filterValuesPerCall) {
		described, err := c.describeGroups(ctx, &ec2.DescribeSecurityGroupsInput{
			Filters: []types.Filter{{Name: awssdk.String("group-id"), Values: chunk}}, MaxResults: awssdk.Int32(listPageSize),
		})
		if err != nil {
			return nil, err
		}
		for _, g := range described {
			groups[awssdk.ToString(g.GroupId)] = g
		}
		ingress, err := c.ingressRules(ctx, chunk)
		if err != nil {
			return nil, err
		}
		for id, rs := range ingress {
			rules[id] = rs
		}
	}
	views := make([]*engine.MachineView, len(machines))
	for i, m := range machines {
		v := &engine.MachineView{Machine: m}
		var exposures [][]jit.ExposedPort
		for _, nic := range m.Interfaces {
			through := map[string][]jit.SGRule{}
			for _, id := range nic.SecurityGroupIDs {
				through[id] = rules[id]
			}
			exposures = append(exposures, jit.ExposedThroughSecurityGroups(through))
		}
		v.Exposures = jit.MergeExposures(exposures...)
		for _, id := range m.FilterIDs() {
			if g, ok := groups[id]; ok && isGrantGroup(g) {
				v.Grants = append(v.Grants, groupGrants(g, rules[id])...)
			}
		}
		views[i] = v
	}
	return views, nil
}

// groupGrants are the ports a grant's group opens, one per rule, with the
// request (jit-request tag), the record of who asked and why (the group's
// tags, whole) and each port's end.
func groupGrants(g types.SecurityGroup, rules []jit.SGRule) []engine.SeenGrant {
	gg := grantGroupOf(g)
	if !gg.MarkerOK {
		return nil
	}
	start, _ := jit.RequestStart(gg.RequestID)
	record := *gg.Record // set with every grant marker
	var out []engine.SeenGrant
	for _, r := range rules {
		var proto jit.Protocol
		switch strings.ToLower(r.IPProtocol) {
		case "tcp", "6":
			proto = jit.ProtocolTCP
		case "udp", "17":
			proto = jit.ProtocolUDP
		default:
			continue
		}
		if r.FromPort != r.ToPort {
			continue
		}
		out = append(out, engine.SeenGrant{
			RequestID: gg.RequestID, Requestor: record.Requestor, OnBehalfOf: record.OnBehalfOf, Justification: record.Justification,
			Port: jit.PortProtocol{Number: r.FromPort, Protocol: proto}, Source: r.Source(),
			Start: start, End: gg.RuleEnd(r), Target: gg.ID,
		})
	}
	return out
}
