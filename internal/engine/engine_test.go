package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// firewallCloud is a third cloud, written here the way a new backend
// package would be: machines named "projects/…/instances/…", each behind
// one firewall whose rules the policy writes. The engine drives it exactly
// as it drives Azure and EC2, which is the point of the test.
type firewallCloud struct {
	machines map[string]*jit.Machine
	rules    map[string]map[string]OwnedRule // firewall → rule name → rule
	writes   int
	// grants and exposed are what the fleet view sees, by machine.
	grants  map[string][]SeenGrant
	exposed map[string][]jit.ExposedPort
}

func newFirewallCloud(names ...string) *firewallCloud {
	c := &firewallCloud{machines: map[string]*jit.Machine{}, rules: map[string]map[string]OwnedRule{}}
	for i, n := range names {
		id := "projects/p/instances/" + n
		c.machines[id] = &jit.Machine{Cloud: "gcp", ID: id, Tags: map[string]string{}, Interfaces: []jit.NetworkInterface{{
			ID: id + "/nic0", PrivateIPs: []string{fmt.Sprintf("10.9.0.%d", i+4)}, SecurityGroupIDs: []string{"projects/p/firewalls/" + n},
		}}}
	}
	return c
}

func (c *firewallCloud) Name() string                      { return "gcp" }
func (c *firewallCloud) Owns(id string) bool               { return strings.HasPrefix(id, "projects/") }
func (c *firewallCloud) Unsupported(*jit.Machine) []string { return nil }

func (c *firewallCloud) Machine(_ context.Context, id string) (*jit.Machine, error) {
	m, ok := c.machines[id]
	if !ok {
		return nil, fmt.Errorf("instance %s: %w", id, ErrNotFound)
	}
	return m, nil
}

func (c *firewallCloud) Requestor(context.Context) (string, error) { return "ci@p.iam", nil }

// Survey and Inspect see the machines; grants are set by the fleet tests.
func (c *firewallCloud) Survey(_ context.Context, scope SurveyScope) ([]*MachineView, error) {
	var out []*MachineView
	for _, id := range slices.Sorted(maps.Keys(c.machines)) {
		if m := c.machines[id]; MatchesTags(m.Tags, scope.Tags) {
			out = append(out, &MachineView{Machine: m, Grants: c.grants[id], Exposures: c.exposed[id]})
		}
	}
	return out, nil
}

func (c *firewallCloud) Inspect(ctx context.Context, id, _ string) (*MachineView, error) {
	m, err := c.Machine(ctx, id)
	if err != nil {
		return nil, err
	}
	return &MachineView{Machine: m, Grants: c.grants[id], Exposures: c.exposed[id]}, nil
}

func (c *firewallCloud) SetMachineTags(_ context.Context, m *jit.Machine, set map[string]string, remove func(string) bool) error {
	maps.DeleteFunc(m.Tags, func(k, _ string) bool { _, keep := set[k]; return !keep && remove(k) })
	maps.Copy(m.Tags, set)
	c.writes++
	return nil
}

func (c *firewallCloud) TaggedMachines(_ context.Context, tag, value string) ([]string, error) {
	var ids []string
	for id, m := range c.machines {
		if m.Tags[tag] == value {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// PlanPolicy wants one rule per machine and port in the machine's firewall,
// and none of the policy's anywhere else the prior state names.
func (c *firewallCloud) PlanPolicy(_ context.Context, in PolicyInput) (*PolicyChange, error) {
	want := map[string]map[string]OwnedRule{}
	for _, m := range in.Machines {
		fw := m.FilterIDs()[0]
		for _, p := range in.Ports {
			name := fmt.Sprintf("%s-%d", in.Name, p.Number)
			if want[fw] == nil {
				want[fw] = map[string]OwnedRule{}
			}
			want[fw][name] = OwnedRule{MachineIDs: []string{m.ID}, TargetID: fw, Name: name, Priority: 1000, Port: p.PortProtocol()}
		}
	}
	targets := slices.Collect(maps.Keys(want))
	if in.Prior != nil {
		for _, r := range in.Prior.Rules {
			targets = append(targets, r.TargetID)
		}
	}
	change := &PolicyChange{}
	for _, fws := range want {
		change.Rules = append(change.Rules, slices.Collect(maps.Values(fws))...)
	}
	change.Write = func(context.Context) error {
		for _, fw := range targets {
			if !maps.EqualFunc(c.rules[fw], want[fw], sameOwnedRule) {
				c.rules[fw] = want[fw]
				c.writes++
			}
		}
		return nil
	}
	return change, nil
}

func (c *firewallCloud) ObservePolicy(_ context.Context, in PolicyInput) (*PolicyObservation, error) {
	o := &PolicyObservation{}
	for _, m := range in.Machines {
		o.Rules = append(o.Rules, slices.Collect(maps.Values(c.rules[m.FilterIDs()[0]]))...)
	}
	return o, nil
}

func (c *firewallCloud) GrantTargets(*jit.Machine) int { return 1 }
func (c *firewallCloud) CheckGrant(context.Context, *jit.Machine, Grant) []jit.Finding {
	return nil
}
func (c *firewallCloud) OpenGrant(_ context.Context, m *jit.Machine, g Grant) (OpenedGrant, error) {
	o := OpenedGrant{Connect: map[jit.PortProtocol]string{}}
	for _, p := range g.Ports {
		o.Rules = append(o.Rules, GrantRule{TargetID: m.FilterIDs()[0], Name: g.ID, Port: p.Port})
		o.Connect[p.Port] = ConnectionDetails(m, p.Port)
	}
	return o, nil
}
func (c *firewallCloud) ObserveGrant(context.Context, GrantRef) (ObservedGrant, error) {
	return ObservedGrant{}, nil
}
func (c *firewallCloud) CloseGrant(context.Context, GrantRef) error { return nil }
func (c *firewallCloud) ScanGrants(context.Context) (Scope, []FoundGrant, error) {
	return Scope{Cloud: c.Name()}, nil, nil
}
func (c *firewallCloud) RevokeGrant(context.Context, FoundGrant, func(jit.Marker) bool) (bool, error) {
	return false, nil
}
func (c *firewallCloud) ScanMachines(context.Context) (Scope, []ScannedMachine, error) {
	var out []ScannedMachine
	for _, id := range slices.Sorted(maps.Keys(c.machines)) {
		out = append(out, ScannedMachine{Machine: c.machines[id]})
	}
	return Scope{Cloud: c.Name()}, out, nil
}

var ssh = []jit.Port{{Number: 22, Protocol: jit.ProtocolTCP, AllowedSourcePrefixes: []string{"*"}, MaxRequestAccessDuration: jit.Duration(time.Hour)}}

func TestEngine_aThirdCloudIsOneBackendAway(t *testing.T) {
	ctx := t.Context()
	cloud := newFirewallCloud("a", "b")
	e := New(clocktest.New(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)), []Backend{cloud})
	spec := PolicySpec{Name: "web", MachineIDs: []string{"projects/p/instances/a", "projects/p/instances/b"}, Ports: ssh}

	plan := e.PlanPolicy(ctx, spec, nil)
	if jit.HasError(plan.Findings) || len(plan.State.Rules) != 2 || cloud.writes != 0 {
		t.Fatalf("plan: %d rules, findings %v, %d writes; want 2 rules and nothing written", len(plan.State.Rules), plan.Findings, cloud.writes)
	}
	state, findings := e.ApplyPolicy(ctx, spec, nil, Expect{Rules: plan.State.Rules, RulesKnown: true})
	if jit.HasError(findings) || cloud.writes != 4 { // two firewalls, two machines' tags
		t.Fatalf("apply: findings %v, %d writes, want 4", findings, cloud.writes)
	}
	for _, id := range spec.MachineIDs {
		if policy, ports, ok, _ := jit.PolicyFromTags(cloud.machines[id].Tags); !ok || policy != "web" || len(ports) != 1 {
			t.Errorf("%s tags %v do not carry the policy", id, cloud.machines[id].Tags)
		}
	}

	o, err := e.ObservePolicy(ctx, state)
	if err != nil || o.Gone || !slices.Equal(o.State.MachineIDs, spec.MachineIDs) || len(o.State.Rules) != 2 {
		t.Fatalf("observe: %+v, %v", o, err)
	}
	// An import finds the machines by their tags.
	imported, err := e.ObservePolicy(ctx, PolicyState{PolicySpec: PolicySpec{Name: "web"}})
	if err != nil || !slices.Equal(imported.State.MachineIDs, spec.MachineIDs) {
		t.Fatalf("import: %+v, %v", imported, err)
	}

	if findings := e.DestroyPolicy(ctx, &state); jit.HasError(findings) {
		t.Fatal(findings)
	}
	for fw, rules := range cloud.rules {
		if len(rules) != 0 {
			t.Errorf("destroy left %v in %s", rules, fw)
		}
	}
	for id, m := range cloud.machines {
		if _, _, ok, _ := jit.PolicyFromTags(m.Tags); ok {
			t.Errorf("destroy left the policy's tags on %s", id)
		}
	}
}

func TestEngine_aMachineThatDoesNotExistIsAnErrorOnlyWhenItJoins(t *testing.T) {
	ctx := t.Context()
	cloud := newFirewallCloud("a")
	e := New(jit.NewClock(), []Backend{cloud})
	typo := PolicySpec{Name: "web", MachineIDs: []string{"projects/p/instances/a", "projects/p/instances/aa"}, Ports: ssh}
	p := e.PlanPolicy(ctx, typo, nil)
	if !jit.HasError(p.Findings) || !strings.Contains(p.Findings[0].Detail, "instances/aa does not exist") {
		t.Fatalf("a typo'd machine joining a policy: %v, want an error naming it", p.Findings)
	}
	// Locked before, deleted since: a warning, and the policy goes on.
	prior := &PolicyState{PolicySpec: typo}
	p = e.PlanPolicy(ctx, typo, prior)
	if jit.HasError(p.Findings) || len(p.Findings) != 1 || p.Findings[0].Severity != jit.SeverityWarning {
		t.Fatalf("a machine gone since it was locked: %v, want one warning", p.Findings)
	}
}

func TestEngine_anUnconfiguredCloudNamesItsBlock(t *testing.T) {
	ec2 := Cloud{Name: "aws", Title: "AWS", OwnsMachineID: func(id string) bool { return strings.HasPrefix(id, "i-") }}
	e := New(jit.NewClock(), []Backend{newFirewallCloud("a")}, ec2)
	_, err := e.Machine(t.Context(), "i-0abc1234def567890")
	if err == nil || !strings.Contains(err.Error(), "has no aws block") {
		t.Fatalf("err = %v, want the missing aws block named", err)
	}
}

// A request written again is held to the policy of this configuration, as
// a new one is, not to the machine's tags: someone who may write tags
// cannot widen what a deleted grant comes back as.
func TestRegrant_followsTheConfiguredPolicyNotTheTags(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	cloud := newFirewallCloud("a")
	e := New(clocktest.New(now), []Backend{cloud})
	id := "projects/p/instances/a"
	narrow := []jit.Port{{Number: 22, Protocol: jit.ProtocolTCP, AllowedSourcePrefixes: []string{"10.0.0.0/8"}, MaxRequestAccessDuration: jit.Duration(time.Hour)}}
	spec := PolicySpec{Name: "web", MachineIDs: []string{id}, Ports: narrow}
	plan := e.PlanPolicy(ctx, spec, nil)
	if _, findings := e.ApplyPolicy(ctx, spec, nil, Expect{Rules: plan.State.Rules, RulesKnown: true}); jit.HasError(findings) {
		t.Fatal(findings)
	}
	cloud.machines[id].Tags["jit-port-22-tcp"] = "P1D *" // widened by a tag writer

	port := jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}
	outside := Grant{ID: NewRequestID(now), Policy: "web", Requestor: "mallory", Justification: "x",
		Ports: []GrantPort{{Port: port, Source: "198.51.100.7/32", End: now.Add(20 * time.Hour)}}}
	if _, err := e.Regrant(ctx, outside, id); err == nil || !strings.Contains(err.Error(), "not granted again") {
		t.Errorf("a grant outside the configured policy written again: err %v, want it refused", err)
	}
	inside := Grant{ID: NewRequestID(now), Policy: "web", Requestor: "alice", Justification: "x",
		Ports: []GrantPort{{Port: port, Source: "10.1.2.3/32", End: now.Add(30 * time.Minute)}}}
	if opened, err := e.Regrant(ctx, inside, id); err != nil || len(opened.Rules) != 1 {
		t.Errorf("a grant the policy allows written again: %+v, %v; want its rule", opened, err)
	}
}
