package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// PolicyPlan is the whole change a policy makes, computed from what the
// cloud holds now: the state it leads to, what was found on the way, and
// each backend's part, ready to write.
type PolicyPlan struct {
	// State is the policy as it will be once written.
	State    PolicyState
	Findings []jit.Finding

	tags     map[string]string
	machines []*jit.Machine
	// dropped are machines of the prior state no longer configured: their
	// policy tags go.
	dropped []string
	changes []*PolicyChange
	engine  *Engine
}

// Release releases the locks the plan holds; safe on nil.
func (p *PolicyPlan) Release() {
	if p == nil {
		return
	}
	for _, c := range p.changes {
		c.Release()
	}
}

// PlanPolicy plans spec against what the cloud holds now, without locking
// anything: what a plan shows. prior is the state, nil on create.
func (e *Engine) PlanPolicy(ctx context.Context, spec PolicySpec, prior *PolicyState) *PolicyPlan {
	return e.planPolicy(ctx, spec, prior, false)
}

// planPolicy resolves every machine's path and plans each backend's part:
// the filters on the machines' paths and every filter the prior state had
// rules or records in (a machine that left the policy, or no longer
// exists, has its rules removed there). With lock, the filters stay locked
// from their read until the plan is released. spec.Ports nil plans the
// removal of everything the policy holds.
func (e *Engine) planPolicy(ctx context.Context, spec PolicySpec, prior *PolicyState, lock bool) *PolicyPlan {
	p := &PolicyPlan{engine: e, State: PolicyState{PolicySpec: spec}}
	if spec.Ports != nil {
		for _, fe := range jit.ValidatePorts(spec.Ports) {
			p.Findings = append(p.Findings, fe.Finding())
		}
		if jit.HasError(p.Findings) {
			return p
		}
		tags, err := jit.PolicyTags(spec.Name, spec.FirewallID, spec.Ports)
		if err != nil {
			p.Findings = append(p.Findings, jit.Error("Policy settings do not fit in tags", err.Error(), pathPorts...))
			return p
		}
		p.tags = tags
	}
	p.Findings = append(p.Findings, e.claim(spec.Name, spec.MachineIDs)...)
	e.remember(spec.Name, spec.MachineIDs, spec.Ports)
	t, err := e.discover(ctx, spec.Name, spec.MachineIDs, spec.FirewallID, spec.Ports, prior, discovery{planning: true, lock: lock})
	if err != nil {
		p.Findings = append(p.Findings, jit.Error("Cannot find the policy's targets", err.Error()))
		return p
	}
	p.Findings = append(p.Findings, t.findings...)
	p.machines = t.machines
	for _, m := range t.machines {
		own := 0
		for k := range m.Tags {
			if !jit.IsPolicyTag(k) {
				own++
			}
		}
		if own+len(p.tags) > jit.MaxTags {
			p.Findings = append(p.Findings, jit.Error("Too many tags for the policy's settings",
				fmt.Sprintf("%s has %d tags of its own and policy %q adds %d (its name and one per port), over the %d a resource holds. Remove tags from the virtual machine, or lock fewer ports.",
					m.ID, own, spec.Name, len(p.tags), jit.MaxTags), pathMachines...))
		}
	}
	if prior != nil {
		for _, id := range prior.MachineIDs {
			if !slices.ContainsFunc(spec.MachineIDs, func(s string) bool { return strings.EqualFold(s, id) }) {
				p.dropped = append(p.dropped, id)
			}
		}
	}
	if jit.HasError(p.Findings) {
		return p
	}
	p.changes = make([]*PolicyChange, len(t.inputs))
	err = parallel(indexes(t.inputs), func(i int) error {
		c, err := t.backends[i].PlanPolicy(ctx, *t.inputs[i])
		p.changes[i] = c
		return err
	})
	for _, c := range p.changes {
		if c == nil {
			continue
		}
		p.Findings = append(p.Findings, c.Findings...)
		p.State.Rules = append(p.State.Rules, c.Rules...)
		p.State.Revoked = append(p.State.Revoked, c.Revoked...)
	}
	if err != nil {
		p.Findings = append(p.Findings, jit.Error("Cannot plan the policy", err.Error()))
	}
	SortRules(p.State.Rules)
	SortRevoked(p.State.Revoked)
	return p
}

// claim records that this process plans policy name with ids, and refuses
// the machines another policy of the same configuration lists: applying
// both would leave one half written.
func (e *Engine) claim(name string, ids []string) []jit.Finding {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.claims == nil {
		e.claims = map[string]string{}
	}
	var findings []jit.Finding
	for _, id := range ids {
		key := strings.ToLower(id)
		if other, ok := e.claims[key]; ok && other != name {
			findings = append(findings, jit.Error("Virtual machine in two policies",
				fmt.Sprintf("%s is listed by policy %q and by policy %q of this configuration; a VM belongs to at most one policy. Remove it from one of them.", id, other, name), pathMachines...))
			continue
		}
		e.claims[key] = name
	}
	return findings
}

// Expect is what a plan showed, to compare the apply's own plan with:
// a known list the apply would change means the cloud moved under it.
type Expect struct {
	Rules        []OwnedRule
	RulesKnown   bool
	Revoked      []RevokedRule
	RevokedKnown bool
}

// ApplyPolicy plans spec again under the filters' locks and writes the
// difference. The state returned is what the policy holds after the writes.
//
// It plans from what this provider process has already read rather than
// reading the clouds again. In an apply Terraform plans each resource once
// more (its final plan), in the same process, right before applying it:
// every read this plan needs was just made, and the backends' read caches
// hold it, with this process's own writes since applied to it. Reading
// again would not make the apply safer: another writer can change an NSG
// or a group after any read, the last one included, and only the clouds'
// answers to the writes can tell. They do: ARM refuses a priority taken
// meanwhile (SecurityRuleConflict) and a tag write on a VM changed since
// its read (412 on its ETag), EC2 a permission already there or already
// gone; the backend then forgets the object, so the next read sees the
// change. A grant is then placed again at once; a policy's deny, whose
// priority the reviewer approved, fails with the reason and the next plan
// places it anew.
//
// The planned rules are what the reviewer approved: when what this
// process knows moved them since the plan (another resource of the same
// apply wrote the same NSG), the apply stops before writing anything and
// the next plan shows the new placement.
func (e *Engine) ApplyPolicy(ctx context.Context, spec PolicySpec, prior *PolicyState, expect Expect) (PolicyState, []jit.Finding) {
	p := e.planPolicy(ctx, spec, prior, true)
	defer p.Release()
	if jit.HasError(p.Findings) {
		return p.State, p.Findings
	}
	if expect.RulesKnown && !slices.EqualFunc(expect.Rules, p.State.Rules, sameOwnedRule) {
		return p.State, append(p.Findings, jit.Error("Network security groups changed since the plan",
			"The rules this apply would write differ from the planned ones (another writer changed an NSG or the firewall on the path in between). "+
				"Nothing was written; run plan again to see the new placement."))
	}
	if expect.RevokedKnown && !slices.EqualFunc(expect.Revoked, p.State.Revoked, sameRevokedRule) {
		return p.State, append(p.Findings, jit.Error("Security groups changed since the plan",
			"The inbound rules this apply would revoke or authorise differ from the planned ones (another writer changed a security group on the path in between). "+
				"Nothing was written; run plan again to see the change."))
	}
	written := p.write(ctx)
	if !jit.HasError(written) {
		return p.State, append(p.Findings, written...)
	}
	// Part of the plan may be written, part not: the state says what the
	// cloud holds, so the next plan shows what is left to do.
	observed, err := e.ObservePolicy(ctx, p.State)
	if err != nil {
		written = append(written, jit.Error("Cannot read what the policy holds after a failed write", err.Error()))
		return p.State, append(p.Findings, written...)
	}
	state := p.State
	state.Rules, state.Revoked, state.ExpiredGrants = observed.State.Rules, observed.State.Revoked, observed.State.ExpiredGrants
	return state, append(p.Findings, written...)
}

// DestroyPolicy removes everything the policy holds: planning it with no
// machines and no ports removes its rules and restores what it revoked.
func (e *Engine) DestroyPolicy(ctx context.Context, prior *PolicyState) []jit.Finding {
	p := e.planPolicy(ctx, PolicySpec{Name: prior.Name}, prior, true)
	defer p.Release()
	if jit.HasError(p.Findings) {
		return p.Findings
	}
	return append(p.Findings, p.write(ctx)...)
}

// write applies the plan: the policy's settings go onto the machines
// while every backend writes its part, all in parallel, so that tagging
// is never on the rules' critical path; then the settings leave the
// machines that left the policy. A request racing this apply may find the
// rules a moment before the settings that explain them and be refused
// ("no JIT policy"), or the settings a moment before the rules (its grant
// is then placed before denies still to come, which is where a grant goes
// anyway); either way a retry after the apply works. A machine whose tags
// could not be written keeps its rules: the next refresh leaves it out of
// the policy's machines (its settings differ) and the next apply tags it.
func (p *PolicyPlan) write(ctx context.Context) []jit.Finding {
	var tagErr, writeErr error
	var wg sync.WaitGroup
	tagsBefore := make(map[string]map[string]string, len(p.machines))
	for _, m := range p.machines {
		tagsBefore[m.ID] = maps.Clone(m.Tags)
		maps.DeleteFunc(tagsBefore[m.ID], func(k, _ string) bool { return !jit.IsPolicyTag(k) })
	}
	wg.Go(func() {
		tagErr = parallelN(p.machines, tagParallelism, func(m *jit.Machine) error {
			b, err := p.engine.backendFor(m.ID)
			if err != nil {
				return err
			}
			tags := p.tags
			if fw := p.State.FirewallID; fw != "" && !b.Owns(fw) {
				tags = maps.Clone(tags)
				delete(tags, jit.TagFirewall)
			}
			return b.SetMachineTags(ctx, m, tags, jit.IsPolicyTag)
		})
	})
	wg.Go(func() {
		writeErr = parallel(p.changes, func(c *PolicyChange) error {
			if c == nil || c.Write == nil {
				return nil
			}
			return c.Write(ctx)
		})
	})
	wg.Wait()
	var findings []jit.Finding
	if tagErr != nil {
		findings = append(findings, jit.Error("Cannot tag virtual machine with the policy", tagErr.Error()))
	}
	findings = append(findings, failureFindings("Cannot write the policy's rules", writeErr)...)
	if errors.Is(writeErr, ErrRolledBack) {
		// The rules were taken back: so are the settings, and the machines
		// that were leaving keep theirs.
		return append(findings, p.restoreTags(ctx, tagsBefore)...)
	}
	// The writes know the priorities the plan left to them.
	p.State.Rules = nil
	for _, c := range p.changes {
		if c != nil {
			p.State.Rules = append(p.State.Rules, c.Rules...)
		}
	}
	SortRules(p.State.Rules)
	var mu sync.Mutex
	p.engine.prefetch(ctx, p.dropped)
	_ = parallelN(p.dropped, tagParallelism, func(id string) error {
		if err := p.engine.untagMachine(ctx, id, p.State.Name); err != nil && !IsNotFound(err) {
			mu.Lock()
			findings = append(findings, jit.Error("Cannot remove the policy's tags", err.Error()))
			mu.Unlock()
		}
		return nil
	})
	return findings
}

// restoreTags puts back the policy tags each machine had before the apply.
func (p *PolicyPlan) restoreTags(ctx context.Context, before map[string]map[string]string) []jit.Finding {
	err := parallelN(p.machines, tagParallelism, func(m *jit.Machine) error {
		b, err := p.engine.backendFor(m.ID)
		if err != nil {
			return err
		}
		now, err := b.Machine(ctx, m.ID)
		if err != nil {
			return err
		}
		return b.SetMachineTags(ctx, now, before[m.ID], jit.IsPolicyTag)
	})
	if err != nil {
		return []jit.Finding{jit.Error("Cannot restore the machines' tags after the rollback", err.Error())}
	}
	return nil
}

// untagMachine removes a policy's settings from a machine, if they are that policy's.
func (e *Engine) untagMachine(ctx context.Context, id, policy string) error {
	b, err := e.backendFor(id)
	if err != nil {
		return err
	}
	m, err := b.Machine(ctx, id)
	if err != nil {
		return err
	}
	if owner, _, ok, _ := jit.PolicyFromTags(m.Tags); !ok || owner != policy {
		return nil
	}
	return b.SetMachineTags(ctx, m, nil, jit.IsPolicyTag)
}

// Observation is a policy as the cloud shows it.
type Observation struct {
	State PolicyState
	// Gone: no machine of the policy exists and none of its rules is left.
	Gone     bool
	Findings []jit.Finding
}

// ObservePolicy reads a policy from the cloud. state is what the state
// holds; a state without machine IDs is an import by name, found by the
// machines' tags. A machine whose tags were removed or edited is left out
// of the observed machines, so the next plan puts them back.
func (e *Engine) ObservePolicy(ctx context.Context, state PolicyState) (*Observation, error) {
	o := &Observation{State: state}
	importing := state.MachineIDs == nil
	ids := state.MachineIDs
	e.remember(state.Name, state.MachineIDs, state.Ports)
	if importing {
		var err error
		if ids, err = e.taggedMachines(ctx, state.Name); err != nil {
			return nil, fmt.Errorf("finding the policy's virtual machines: %w", err)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("no virtual machine carries the tag %s=%q in the configured subscription or region", jit.TagPolicy, state.Name)
		}
	}
	t, err := e.discover(ctx, state.Name, ids, "", state.Ports, &state, discovery{})
	if err != nil {
		return nil, err
	}
	o.Findings = t.findings
	if importing {
		for _, m := range t.machines {
			if policy, ports, ok, _ := jit.PolicyFromTags(m.Tags); ok && policy == state.Name {
				if !samePorts(ports, jit.DefaultPorts()) {
					o.State.Ports = ports
				}
				break
			}
		}
		for _, m := range t.machines {
			if fw := m.Tags[jit.TagFirewall]; fw != "" {
				o.State.FirewallID = fw
				break
			}
		}
	}
	if fw := o.State.FirewallID; fw != "" {
		if b, err := e.backendFor(fw); err == nil {
			for i := range t.inputs {
				if t.backends[i] == b {
					t.inputs[i].FirewallID = fw
				}
			}
		}
	}
	ports := o.State.Ports
	if ports == nil {
		ports = jit.DefaultPorts()
	}
	o.State.MachineIDs = []string{}
	for _, m := range t.machines {
		if e.carriesSettings(m, state.Name, o.State.FirewallID, ports) {
			o.State.MachineIDs = append(o.State.MachineIDs, m.ID)
		}
	}
	o.State.Rules, o.State.Revoked, o.State.ExpiredGrants = []OwnedRule{}, []RevokedRule{}, []string{}
	for i, in := range t.inputs {
		in.Ports = ports
		obs, err := t.backends[i].ObservePolicy(ctx, *in)
		if err != nil {
			return nil, err
		}
		o.Findings = append(o.Findings, obs.Findings...)
		o.State.Rules = append(o.State.Rules, obs.Rules...)
		o.State.Revoked = append(o.State.Revoked, obs.Revoked...)
		o.State.ExpiredGrants = append(o.State.ExpiredGrants, obs.Expired...)
	}
	SortRules(o.State.Rules)
	SortRevoked(o.State.Revoked)
	slices.Sort(o.State.ExpiredGrants)
	o.Gone = len(t.machines) == 0 && len(o.State.Rules) == 0 && len(o.State.Revoked) == 0
	return o, nil
}

// carriesSettings tells whether a machine's policy tags are exactly what
// applying the policy writes there.
func (e *Engine) carriesSettings(m *jit.Machine, name, firewall string, ports []jit.Port) bool {
	policy, have, ok, err := jit.PolicyFromTags(m.Tags)
	if !ok || err != nil || policy != name || !samePorts(have, ports) {
		return false
	}
	wantFirewall := firewall
	if b, err := e.backendFor(m.ID); err != nil || firewall == "" || !b.Owns(firewall) {
		wantFirewall = ""
	}
	return m.Tags[jit.TagFirewall] == wantFirewall
}

// taggedMachines finds, for an import, the machines tagged with a policy
// in every configured cloud.
func (e *Engine) taggedMachines(ctx context.Context, policy string) ([]string, error) {
	var ids []string
	for _, b := range e.backends {
		found, err := b.TaggedMachines(ctx, jit.TagPolicy, policy)
		if err != nil {
			return nil, err
		}
		ids = append(ids, found...)
	}
	return ids, nil
}

// samePorts compares settings as the tags hold them (sorted by number, then protocol).
func samePorts(a, b []jit.Port) bool {
	sorted := func(ports []jit.Port) []jit.Port {
		out := slices.Clone(ports)
		slices.SortFunc(out, func(x, y jit.Port) int {
			return cmp.Or(cmp.Compare(x.Number, y.Number), strings.Compare(string(x.Protocol), string(y.Protocol)))
		})
		return out
	}
	return slices.EqualFunc(sorted(a), sorted(b), func(x, y jit.Port) bool {
		return x.Number == y.Number && x.Protocol == y.Protocol && x.MaxRequestAccessDuration == y.MaxRequestAccessDuration &&
			slices.Equal(x.AllowedSourcePrefixes, y.AllowedSourcePrefixes)
	})
}

// SortRules orders rules as the plan shows them: by target, port, name.
// Not by priority, which a plan may not know yet: the order must be the
// same before and after the apply.
func SortRules(rules []OwnedRule) {
	slices.SortFunc(rules, func(a, b OwnedRule) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.TargetID), strings.ToLower(b.TargetID)),
			cmp.Compare(a.Port.Number, b.Port.Number), strings.Compare(string(a.Port.Protocol), string(b.Port.Protocol)), strings.Compare(a.Name, b.Name))
	})
}

// SortRevoked orders records by group, originals before remainders; within
// each, the core's canonical order is kept.
func SortRevoked(rules []RevokedRule) {
	rank := func(action string) int {
		if action == ActionRevoke {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(rules, func(a, b RevokedRule) int {
		return cmp.Or(strings.Compare(a.SecurityGroupID, b.SecurityGroupID), rank(a.Action)-rank(b.Action))
	})
}

// sameOwnedRule compares a planned rule with the apply's: a priority the
// plan left to the apply (0) matches any.
func sameOwnedRule(planned, b OwnedRule) bool {
	return slices.Equal(planned.MachineIDs, b.MachineIDs) && planned.TargetID == b.TargetID && planned.Name == b.Name &&
		(planned.Priority == 0 || planned.Priority == b.Priority) && planned.Port == b.Port
}

func sameRevokedRule(a, b RevokedRule) bool {
	return a.SecurityGroupID == b.SecurityGroupID && slices.Equal(a.MachineIDs, b.MachineIDs) && a.Action == b.Action && a.Rule == b.Rule &&
		a.IPProtocol == b.IPProtocol && a.FromPort == b.FromPort && a.ToPort == b.ToPort && a.Source == b.Source && a.Description == b.Description
}

func indexes[T any](s []T) []int {
	out := make([]int, len(s))
	for i := range s {
		out[i] = i
	}
	return out
}
