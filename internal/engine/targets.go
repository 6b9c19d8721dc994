package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Attribute paths the engine's findings name.
var (
	pathMachines = []any{"virtual_machine_ids"}
	pathFirewall = []any{"azure_firewall_id"}
	pathPorts    = []any{"port"}
)

// targets is what discovery found of a policy: its machines and, per
// backend, what that backend plans or observes.
type targets struct {
	// machines exist and belong to the policy, in the order configured.
	machines []*jit.Machine
	// inputs are per backend, in the order the backends were configured.
	inputs   []*PolicyInput
	backends []Backend
	findings []jit.Finding
}

// discovery says how discover treats what it finds.
type discovery struct {
	// planning checks each machine can join the policy; observing only
	// reads what is there.
	planning bool
	lock     bool
}

// discover resolves the policy's machines and assigns them, the prior
// state's rules and records, and the firewall to the backends owning
// them. It is the one way plan, apply, destroy and observe find a policy's
// targets. ids are the machines to look at (the configuration's when
// planning, the state's when observing); prior may be nil.
func (e *Engine) discover(ctx context.Context, name string, ids []string, firewall string, ports []jit.Port, prior *PolicyState, how discovery) (*targets, error) {
	t := &targets{}
	input := func(b Backend) *PolicyInput {
		i := slices.Index(t.backends, b)
		if i < 0 {
			t.backends = append(t.backends, b)
			t.inputs = append(t.inputs, &PolicyInput{Name: name, Ports: ports, Lock: how.lock, Clock: e.clock})
			i = len(t.inputs) - 1
		}
		return t.inputs[i]
	}
	// Every machine is read at once (at most readParallelism at a time),
	// after the backends that can read many together did, then judged in
	// the order configured.
	e.prefetch(ctx, ids)
	machines := make([]*jit.Machine, len(ids))
	errs := make([]error, len(ids))
	_ = parallelN(indexes(ids), readParallelism, func(i int) error {
		machines[i], errs[i] = e.policyMachine(ctx, ids[i])
		return nil
	})
	for i, id := range ids {
		m, err := machines[i], errs[i]
		switch {
		case IsNotFound(err) && how.planning && !prior.hasMachine(id):
			t.findings = append(t.findings, jit.Error("Virtual machine not found",
				fmt.Sprintf("%s does not exist, so policy %q could not protect it. Check the ID: a virtual machine must exist when it enters a policy.", id, name), pathMachines...))
			continue
		case IsNotFound(err) && how.planning:
			t.findings = append(t.findings, jit.Warning("Virtual machine not found",
				fmt.Sprintf("%s no longer exists; it is left out of policy %q and its rules are removed. Remove it from virtual_machine_ids.", id, name), pathMachines...))
			continue
		case IsNotFound(err):
			t.findings = append(t.findings, jit.Warning("Virtual machine not found",
				fmt.Sprintf("%s no longer exists; it is dropped from policy %q and its rules are removed by the next apply.", id, name)))
			continue
		case err != nil && how.planning:
			t.findings = append(t.findings, jit.Error("Cannot read virtual machine", err.Error(), pathMachines...))
			continue
		case err != nil:
			return nil, fmt.Errorf("reading virtual machine %s: %w", id, err)
		}
		b, err := e.backendFor(m.ID)
		if err != nil {
			return nil, err
		}
		if how.planning {
			if other, _, ok, _ := jit.PolicyFromTags(m.Tags); ok && other != name {
				t.findings = append(t.findings, jit.Error("Virtual machine already in another policy",
					fmt.Sprintf("%s belongs to policy %q (tag %s); a VM belongs to at most one policy. Remove it from that policy first.", id, other, jit.TagPolicy), pathMachines...))
				continue
			}
			if class, reasons := jit.Classify(m, false, b.Unsupported(m)...); class == jit.Unsupported {
				t.findings = append(t.findings, jit.Error("Virtual machine cannot be protected", fmt.Sprintf("%s: %s.", id, strings.Join(reasons, "; ")), pathMachines...))
				continue
			}
		}
		in := input(b)
		in.Machines = append(in.Machines, m)
		t.machines = append(t.machines, m)
	}
	if firewall != "" {
		b, err := e.backendFor(firewall)
		if err != nil {
			t.findings = append(t.findings, jit.Error("Cannot use the firewall", err.Error(), pathFirewall...))
		} else {
			input(b).FirewallID = firewall
		}
	}
	if prior == nil {
		return t, nil
	}
	// Every backend holding something of the prior state gets its part,
	// so what left the policy is removed or restored.
	for _, r := range prior.Rules {
		b, err := e.backendFor(r.TargetID)
		if err != nil {
			return nil, err
		}
		part := input(b).priorPart(prior)
		part.Rules = append(part.Rules, r)
	}
	for _, r := range prior.Revoked {
		b, err := e.backendFor(r.SecurityGroupID)
		if err != nil {
			return nil, err
		}
		part := input(b).priorPart(prior)
		part.Revoked = append(part.Revoked, r)
	}
	if prior.FirewallID != "" {
		if b, err := e.backendFor(prior.FirewallID); err == nil {
			input(b).priorPart(prior).FirewallID = prior.FirewallID
		}
	}
	for _, id := range prior.MachineIDs {
		if slices.ContainsFunc(t.machines, func(m *jit.Machine) bool { return strings.EqualFold(m.ID, id) }) {
			continue
		}
		if b, err := e.backendFor(id); err == nil {
			input(b).Left = append(input(b).Left, id)
		}
	}
	return t, nil
}

// prefetch hands each backend that reads many machines together its share
// of ids.
func (e *Engine) prefetch(ctx context.Context, ids []string) {
	for _, b := range e.backends {
		p, ok := b.(MachinePrefetcher)
		if !ok {
			continue
		}
		var mine []string
		for _, id := range ids {
			if b.Owns(id) {
				mine = append(mine, id)
			}
		}
		if len(mine) > 0 {
			p.PrefetchMachines(ctx, mine)
		}
	}
}

// priorPart is the backend's part of the prior state, made on first use.
func (in *PolicyInput) priorPart(prior *PolicyState) *PolicyState {
	if in.Prior == nil {
		in.Prior = &PolicyState{PolicySpec: PolicySpec{Name: prior.Name, Ports: prior.Ports}}
	}
	return in.Prior
}

func (s *PolicyState) hasMachine(id string) bool {
	return s != nil && slices.ContainsFunc(s.MachineIDs, func(p string) bool { return strings.EqualFold(p, id) })
}

// policyMachine resolves a machine of a policy. A terminated instance is
// one that is gone: EC2 lists it for a while after it is deleted.
func (e *Engine) policyMachine(ctx context.Context, id string) (*jit.Machine, error) {
	m, err := e.Machine(ctx, id)
	if err == nil && m.Terminated() {
		return nil, fmt.Errorf("%s is %s: %w", id, m.State, ErrNotFound)
	}
	return m, err
}
