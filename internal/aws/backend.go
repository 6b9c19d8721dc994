package aws

import (
	"context"
	"errors"
	"fmt"
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

func (b *Backend) Name() string { return "aws" }

// Owns tells EC2 IDs (instances, security groups, network interfaces) from
// anything else.
func (b *Backend) Owns(id string) bool { return OwnsID(id) }

// OwnsID tells EC2 IDs (instances, security groups, network interfaces)
// from anything else.
func OwnsID(id string) bool {
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
// it. One group holds every port: it ends with the first to end.
func sgGrant(m *jit.Machine, g engine.Grant) SGGrant {
	sg := SGGrant{Request: g.ID, Instance: m.ID, ENI: primaryENI(m)}
	var end time.Time
	for i, gp := range g.Ports {
		sg.Ports = append(sg.Ports, SGGrantPort{Port: gp.Port, Source: gp.Source})
		if i == 0 || gp.End.Before(end) {
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

// ObserveGrant finds the request's group and whether a newer grant of the
// same requester took its ports over.
func (b *Backend) ObserveGrant(ctx context.Context, ref engine.GrantRef) (engine.ObservedGrant, error) {
	o := engine.ObservedGrant{Superseded: map[jit.PortProtocol]bool{}}
	eni := primaryENI(ref.Machine)
	st, err := b.client.observeGrant(ctx, ref, eni)
	if err != nil {
		return o, err
	}
	for _, port := range ref.Ports {
		if st.Attached {
			o.Rules = append(o.Rules, engine.GrantRule{TargetID: st.GroupID, Name: eni, Port: port})
		}
	}
	for _, port := range st.Superseded {
		o.Superseded[port] = true
	}
	o.Record = st.Record
	return o, nil
}

// CloseGrant revokes the ports from the request's group, and the group once
// it opens nothing.
func (b *Backend) CloseGrant(ctx context.Context, ref engine.GrantRef) error {
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

// ScanGrants lists the region's grant security groups.
func (b *Backend) ScanGrants(ctx context.Context) (engine.Scope, []engine.FoundGrant, error) {
	scope := engine.Scope{Cloud: b.Name(), Region: b.client.Region}
	groups, err := b.client.GrantGroups(ctx)
	if err != nil {
		return scope, nil, err
	}
	found := make([]engine.FoundGrant, len(groups))
	for i, g := range groups {
		found[i] = engine.FoundGrant{Kind: engine.KindSecurityGroup, Target: g.ID, Name: g.Name, Request: g.RequestID, Marker: g.Marker, Vouched: g.MarkerOK,
			Record: g.Record, RecordWhole: g.RecordWhole}
	}
	return scope, found, nil
}

// RevokeGrant removes a grant group if its marker, read again, still
// satisfies still.
func (b *Backend) RevokeGrant(ctx context.Context, g engine.FoundGrant, still func(jit.Marker) bool) (bool, error) {
	return b.client.RevokeGrantGroup(ctx, g.Target, still)
}

// ScanMachines lists every instance of the region and the grant groups
// made for each, for audit: two paged list calls, whatever the region's
// size.
func (b *Backend) ScanMachines(ctx context.Context) (engine.Scope, []engine.ScannedMachine, error) {
	scope := engine.Scope{Cloud: b.Name(), Region: b.client.Region}
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
			sg := engine.ScannedGrant{Request: g.RequestID, Port: p.Port, Source: p.Source, RequesterSource: true,
				Marker: g.Marker, Vouched: g.MarkerOK, Record: g.Record, RecordWhole: g.RecordWhole, Target: g.ID, Name: g.Name}
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
