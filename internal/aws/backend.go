package aws

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Backend is EC2 as the engine drives it.
type Backend struct {
	client *Client
}

var _ engine.Backend = (*Backend)(nil)

// NewBackend serves the engine through client, in the client's region.
func NewBackend(client *Client) *Backend { return &Backend{client: client} }

// Client is the backend's EC2 client.
func (b *Backend) Client() *Client { return b.client }

func (b *Backend) Name() string { return name }

// Unsupported names each ENI of a live instance with no security group:
// nothing a rule could be revoked from or attached beside.
func (b *Backend) Unsupported(m *jit.Machine) []string {
	var reasons []string
	for _, nic := range m.Interfaces {
		if len(nic.SecurityGroupIDs) == 0 && !m.Terminated() {
			reasons = append(reasons, fmt.Sprintf("network interface %s has no security group", nic.ID))
		}
	}
	return reasons
}

// Owns tells EC2 IDs (instances, security groups, network interfaces) from
// anything else.
func (b *Backend) Owns(id string) bool {
	for _, prefix := range []string{"i-", "sg-", "eni-"} {
		if strings.HasPrefix(id, prefix) {
			return true
		}
	}
	return false
}

func (b *Backend) Machine(ctx context.Context, id string) (*jit.Machine, error) {
	return b.client.Machine(ctx, id)
}

func (b *Backend) Requestor(ctx context.Context) (string, error) { return b.client.CallerIdentity(ctx) }

func (b *Backend) SetMachineTags(ctx context.Context, m *jit.Machine, set map[string]string, remove func(string) bool) error {
	return b.client.UpdateInstanceTags(ctx, m, set, remove)
}

func (b *Backend) TaggedMachines(ctx context.Context, tag, value string) ([]string, error) {
	return b.client.TaggedInstances(ctx, tag, value)
}

// GrantTargets is one: the request's own security group.
func (b *Backend) GrantTargets(*jit.Machine) int { return 1 }

// CheckGrant refuses a grant whose group would not fit on the primary ENI.
// The older grant groups this request supersedes leave the ENI as its
// group joins, so they do not count.
func (b *Backend) CheckGrant(ctx context.Context, m *jit.Machine, g engine.Grant) []jit.Finding {
	if len(m.Interfaces) == 0 || len(m.Interfaces[0].SecurityGroupIDs) < GroupsPerInterface {
		return nil
	}
	eni := m.Interfaces[0]
	superseded, err := b.client.supersededGroups(ctx, eni.SecurityGroupIDs, sgGrant(m, g))
	if err != nil {
		return []jit.Finding{jit.Error("Cannot read security groups", err.Error(), "virtual_machine_id")}
	}
	if kept := len(eni.SecurityGroupIDs) - len(superseded); kept >= GroupsPerInterface {
		return []jit.Finding{jit.Error("No room for the grant's security group",
			fmt.Sprintf("The primary network interface %s of %s already has %d security groups, EC2's default limit per interface; a grant attaches one more. Detach a group first.",
				eni.ID, m.ID, kept), "virtual_machine_id")}
	}
	return nil
}

// sgGrant is a grant as the request's own group on the primary ENI holds
// it. One group holds every port, each ending at its own time: the marker
// carries the last end, and a tag per port its own (see jit.GrantEndTag).
func sgGrant(m *jit.Machine, g engine.Grant) SGGrant {
	sg := SGGrant{Request: g.ID, Instance: m.ID, ENI: primaryENI(m), Ends: map[jit.PortProtocol]time.Time{}, Again: g.Again}
	var end time.Time
	for _, gp := range g.Ports {
		sg.Ports = append(sg.Ports, SGGrantPort{Port: gp.Port, Source: gp.Source})
		sg.Ends[gp.Port] = gp.End
		if gp.End.After(end) {
			end = gp.End
		}
	}
	sg.Marker = jit.GrantMarker(g.Policy, end, g.Requestor, g.Justification).String()
	sg.Record = g.Record()
	return sg
}

// OpenGrant opens an instance's ports with a security group of the
// request's own on its primary ENI.
func (b *Backend) OpenGrant(ctx context.Context, m *jit.Machine, g engine.Grant) (engine.OpenedGrant, error) {
	opened := engine.OpenedGrant{Connect: map[jit.PortProtocol]string{}}
	if len(m.Interfaces) == 0 {
		return opened, fmt.Errorf("%s has no network interface to attach a grant to", m.ID)
	}
	sg := sgGrant(m, g)
	for _, gp := range g.Ports {
		opened.Connect[gp.Port] = engine.ConnectionDetails(m, gp.Port)
	}
	group, err := b.client.openGrant(ctx, sg)
	if group != "" {
		for _, gp := range g.Ports {
			opened.Rules = append(opened.Rules, engine.GrantRule{TargetID: group, Name: sg.ENI, Port: gp.Port})
		}
	}
	return opened, err
}

// ObserveGrant finds the request's group, the ports it still grants as
// requested (not those whose rules were revoked as they ended, nor any
// its rules were widened for), and whether a newer grant of the same
// requester took its ports over.
func (b *Backend) ObserveGrant(ctx context.Context, ref engine.GrantRef) (engine.ObservedGrant, error) {
	o := engine.ObservedGrant{Superseded: map[jit.PortProtocol]bool{}}
	eni := primaryENI(ref.Machine)
	st, err := b.client.observeGrant(ctx, ref, eni)
	if err != nil {
		return o, err
	}
	for _, port := range st.Held {
		o.Rules = append(o.Rules, engine.GrantRule{TargetID: st.GroupID, Name: eni, Port: port})
	}
	for _, port := range st.Superseded {
		o.Superseded[port] = true
	}
	o.Record = st.Record
	return o, nil
}

// CloseGrant revokes the ports from the request's group, and the group once
// it opens nothing; closing the request for good deletes the group,
// whatever it holds.
func (b *Backend) CloseGrant(ctx context.Context, ref engine.GrantRef) error {
	if ref.Final {
		return b.client.closeGrant(ctx, ref.RequestID, ref.MachineID)
	}
	if len(ref.Ports) == 0 {
		return nil
	}
	return b.client.revokeGrantPorts(ctx, ref.RequestID, ref.MachineID, ref.Ports)
}

// primaryENI is the network interface grants attach to; "" when the
// instance is gone.
func primaryENI(m *jit.Machine) string {
	if m == nil || len(m.Interfaces) == 0 {
		return ""
	}
	return m.Interfaces[0].ID
}

// ScanGrants lists the region's grant security groups: one found grant per
// group, ending when its last port ends, and, for a group whose ports end
// apart, one more per earlier end naming the ports that end then. A group
// whose claim cannot fit any policy (no request, or an end later than
// P1D after its start) is found Unfit.
func (b *Backend) ScanGrants(ctx context.Context) (engine.Scope, []engine.FoundGrant, error) {
	scope := engine.Scope{ID: b.client.Region, Cloud: b.Name(), Region: b.client.Region}
	groups, err := b.client.GrantGroups(ctx)
	if err != nil {
		return scope, nil, err
	}
	var found []engine.FoundGrant
	for _, g := range groups {
		whole := engine.FoundGrant{Kind: engine.KindSecurityGroup, Target: g.ID, Name: g.Name, Request: g.RequestID, Marker: g.Marker, Vouched: g.MarkerOK,
			Record: g.Record, RecordWhole: g.RecordWhole}
		if !g.MarkerOK {
			found = append(found, whole)
			continue
		}
		if g.Claim().OutlivesAnyPolicy() {
			whole.Unfit = unfitReason(g)
			found = append(found, whole)
			continue
		}
		// The ports by end; the group goes with the last.
		byEnd := map[time.Time][]jit.PortProtocol{}
		for _, r := range g.Rules {
			end := g.RuleEnd(r)
			if _, seen := byEnd[end]; !seen {
				byEnd[end] = nil // a rule of no one port ends with the group
			}
			if port, ok := jit.SGRulePort(r); ok && !slices.Contains(byEnd[end], port) {
				byEnd[end] = append(byEnd[end], port)
			}
		}
		ends := slices.SortedFunc(maps.Keys(byEnd), time.Time.Compare)
		if len(ends) > 0 {
			whole.Marker.End = ends[len(ends)-1]
		}
		for _, end := range ends[:max(len(ends)-1, 0)] {
			part := whole
			part.Marker.End, part.Ports = end, byEnd[end]
			found = append(found, part)
		}
		found = append(found, whole)
	}
	return scope, found, nil
}

// unfitReason says why a group tagged as a grant is no policy's grant.
func unfitReason(g GrantGroup) string {
	if g.Request() == "" {
		return fmt.Sprintf("it names no request the provider made (jit-request %q, name %q)", g.RequestID, g.Name)
	}
	start, _ := jit.RequestStart(g.Request())
	return fmt.Sprintf("it ends at %s, more than %s after its request's start at %s: longer than any policy allows",
		g.Marker.End.Format(time.RFC3339), jit.MaxMaxRequestAccessDuration, start.Format(time.RFC3339))
}

// RevokeGrant ends what of a grant group ended, read again right before
// the write: the rules of the ports whose ends still passes, or the whole
// group once every port ended (or when it can fit no policy). Entries of
// one group are serialised, so the last one deletes it.
func (b *Backend) RevokeGrant(ctx context.Context, g engine.FoundGrant, still func(jit.Marker) bool) (bool, error) {
	defer b.client.locks.Lock(ctx, g.Target)()
	return b.client.EndGrantGroup(ctx, g.Target, func(cur GrantGroup) ([]jit.SGRule, bool) {
		if !cur.MarkerOK {
			return nil, false
		}
		if cur.Claim().OutlivesAnyPolicy() {
			return nil, true
		}
		var ended []jit.SGRule
		for _, r := range cur.Rules {
			m := cur.Marker
			m.End = cur.RuleEnd(r)
			if still(m) {
				ended = append(ended, r)
			}
		}
		if len(cur.Rules) == 0 {
			return nil, still(cur.Marker)
		}
		return ended, len(ended) == len(cur.Rules)
	})
}

// ScanMachines lists every instance of the region and the grant groups
// made for each, for audit: two paged list calls, whatever the region's
// size.
func (b *Backend) ScanMachines(ctx context.Context) (engine.Scope, []engine.ScannedMachine, error) {
	scope := engine.Scope{ID: b.client.Region, Cloud: b.Name(), Region: b.client.Region}
	instances, instErr := b.client.Instances(ctx)
	groups, groupErr := b.client.GrantGroups(ctx)
	machines := make([]engine.ScannedMachine, 0, len(instances)+1)
	index := map[string]int{}    // instance → machine
	attached := map[string]int{} // group → the machine it is attached to
	for i, m := range instances {
		machines = append(machines, engine.ScannedMachine{Machine: m})
		index[m.ID] = i
		for _, id := range m.FilterIDs() {
			attached[id] = i
		}
	}
	var orphans []engine.ScannedGrant
	for _, g := range groups {
		// A group grants the instance it is attached to; a detached one,
		// the instance its name was made for.
		i, ok := attached[g.ID]
		if !ok {
			i, ok = index[g.Instance()]
		}
		for _, p := range g.Permissions {
			marker := g.Marker
			marker.End = p.End // each port ends at its own time
			sg := engine.ScannedGrant{Request: g.RequestID, Port: p.Port, Source: p.Source, RequesterSource: true,
				Marker: marker, Vouched: g.MarkerOK, Record: g.Record, RecordWhole: g.RecordWhole, Target: g.ID, Name: g.Name}
			if ok {
				machines[i].Grants = append(machines[i].Grants, sg)
			} else {
				orphans = append(orphans, sg)
			}
		}
	}
	if len(orphans) > 0 {
		machines = append(machines, engine.ScannedMachine{Grants: orphans})
	}
	return scope, machines, errors.Join(instErr, groupErr)
}
