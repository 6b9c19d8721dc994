package aws

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// The process's reads of instances and security groups, shared by every
// resource, data source and sweep of the operation (see internal/readcache),
// and batched: EC2 reads many objects in one Describe call.

// describeBatchSize bounds the IDs of one Describe call: EC2 takes at most
// 200 values per filter.
const describeBatchSize = 200

// instanceBatches gathers concurrent reads of instances into Describe
// calls. The first read goes out at once; the reads asked for while it
// runs go out together in the next call, and so on. Nothing waits for a
// batch to fill.
type instanceBatches struct {
	mu      sync.Mutex
	waiting map[string][]chan instanceRead
	running bool
}

type instanceRead struct {
	m   *jit.Machine
	err error
}

// batchWait bounds a batch read begun for a caller that stopped waiting.
const batchWait = 5 * time.Minute

// instance reads one instance, in a batch with the others asked for at
// the same time.
func (c *Client) instance(ctx context.Context, id string) (*jit.Machine, error) {
	b := &c.batches
	ch := make(chan instanceRead, 1)
	b.mu.Lock()
	if b.waiting == nil {
		b.waiting = map[string][]chan instanceRead{}
	}
	b.waiting[id] = append(b.waiting[id], ch)
	if !b.running {
		b.running = true
		// The batches serve every caller: they run on their own time,
		// not on the first caller's.
		batchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchWait)
		go func() {
			defer cancel()
			c.runInstanceBatches(batchCtx)
		}()
	}
	b.mu.Unlock()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Client) runInstanceBatches(ctx context.Context) {
	b := &c.batches
	for {
		b.mu.Lock()
		if len(b.waiting) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		batch := b.waiting
		b.waiting = map[string][]chan instanceRead{}
		b.mu.Unlock()
		ids := slices.Sorted(maps.Keys(batch))
		for chunk := range slices.Chunk(ids, describeBatchSize) {
			found, err := c.describeInstances(ctx, chunk)
			for _, id := range chunk {
				r := instanceRead{m: found[id], err: err}
				if err == nil && r.m == nil {
					// Missing from the batch: asked for by ID alone, EC2
					// says why in its own words (InvalidInstanceID.NotFound).
					r.m, r.err = c.describeInstance(ctx, id)
				}
				for _, ch := range batch[id] {
					ch <- r
				}
			}
		}
	}
}

// describeInstances reads instances by ID in one call (a page per 1000).
// A filter, unlike InstanceIds, does not fail the call for one missing
// instance: a missing one is absent from the result.
func (c *Client) describeInstances(ctx context.Context, ids []string) (map[string]*jit.Machine, error) {
	out := map[string]*jit.Machine{}
	pager := ec2.NewDescribeInstancesPaginator(c.EC2, &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: awssdk.String("instance-id"), Values: ids}},
	})
	for pager.HasMorePages() {
		page, err := nextPage(ctx, pager.NextPage)
		if err != nil {
			if len(ids) == 1 {
				return nil, fmt.Errorf("reading EC2 instance %s: %w", ids[0], notFound(err))
			}
			return nil, fmt.Errorf("reading EC2 instances: %w", notFound(err))
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				m := machineOf(c.Region, inst)
				out[m.ID] = m
			}
		}
	}
	return out, nil
}

// describeInstance reads one instance by ID: EC2 fails the call when it
// does not exist.
func (c *Client) describeInstance(ctx context.Context, id string) (*jit.Machine, error) {
	out, err := call(ctx, c.EC2.DescribeInstances, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return nil, fmt.Errorf("reading EC2 instance %s: %w", id, notFound(err))
	}
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			if awssdk.ToString(inst.InstanceId) == id {
				return machineOf(c.Region, inst), nil
			}
		}
	}
	return nil, fmt.Errorf("reading EC2 instance %s: %w", id, ErrNotFound)
}

func machineOf(region string, inst types.Instance) *jit.Machine {
	m := &jit.Machine{Cloud: name, ID: awssdk.ToString(inst.InstanceId), Location: region, Tags: map[string]string{}}
	if inst.State != nil {
		m.State = string(inst.State.Name)
	}
	for _, t := range inst.Tags {
		m.Tags[awssdk.ToString(t.Key)] = awssdk.ToString(t.Value)
	}
	m.Name = m.Tags["Name"]
	// Primary (device index 0) first, as on Azure.
	enis := slices.Clone(inst.NetworkInterfaces)
	sort.SliceStable(enis, func(i, j int) bool { return deviceIndex(enis[i]) < deviceIndex(enis[j]) })
	for _, eni := range enis {
		nic := jit.NetworkInterface{ID: awssdk.ToString(eni.NetworkInterfaceId), SubnetID: awssdk.ToString(eni.SubnetId)}
		for _, ip := range eni.PrivateIpAddresses {
			nic.PrivateIPs = append(nic.PrivateIPs, awssdk.ToString(ip.PrivateIpAddress))
		}
		if len(nic.PrivateIPs) == 0 && eni.PrivateIpAddress != nil {
			nic.PrivateIPs = []string{*eni.PrivateIpAddress}
		}
		for _, g := range eni.Groups {
			nic.SecurityGroupIDs = append(nic.SecurityGroupIDs, awssdk.ToString(g.GroupId))
		}
		m.Interfaces = append(m.Interfaces, nic)
	}
	return m
}

func cloneMachine(m *jit.Machine) *jit.Machine {
	if m == nil {
		return nil
	}
	out := *m
	out.Tags = maps.Clone(m.Tags)
	out.Interfaces = slices.Clone(m.Interfaces)
	for i := range out.Interfaces {
		nic := &out.Interfaces[i]
		nic.PrivateIPs, nic.SecurityGroupIDs = slices.Clone(nic.PrivateIPs), slices.Clone(nic.SecurityGroupIDs)
	}
	return &out
}

func cloneGroup(g *SecurityGroup) *SecurityGroup {
	if g == nil {
		return nil
	}
	out := *g
	out.Ingress = slices.Clone(g.Ingress)
	out.Tags = maps.Clone(g.Tags)
	return &out
}
