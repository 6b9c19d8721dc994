package aws

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
	"github.com/jitaccess/terraform-provider-jit/internal/locks"
)

// The EC2 side of a policy. On EC2 a port is locked by revoking, from every
// security group on the instance's ENIs, the inbound rules that open it (and
// re-authorising what a wider rule opened besides); engine.RevokedRule is
// how the plan shows that to a reviewer, and how state keeps the backup
// that destroy restores from, alongside the backup tags on the group itself.

var pathMachines = []any{"virtual_machine_ids"}

// groupPlan is the plan of one security group.
type groupPlan struct {
	group              *SecurityGroup
	instances          []string // the policy's instances behind the group
	recordedBackup     []jit.SGRule
	recordedRemainders []jit.SGRule
	plan               jit.SGPlan
	// grant: the group is one of the policy's grants (its marker says so),
	// of which the apply ends, as the group is then, what ended or does
	// not fit: the ports that ended, or the whole group (remove).
	grant  bool
	remove bool
}

// policyGroups are the security groups a policy plans or observes: those on
// its instances' ENIs and those its prior state holds records in.
type policyGroups struct {
	ids    []string
	behind map[string][]string // group → the policy's instances
}

// groupsOf is the one way plan and observe find a policy's groups. left are
// instances of the prior state no longer in the policy: their groups are
// read too, so a group planned without a record in state (an apply that
// stopped before saving it) is restored from its tags.
func (c *Client) groupsOf(ctx context.Context, in engine.PolicyInput, left bool) (policyGroups, error) {
	g := policyGroups{behind: map[string][]string{}}
	for _, m := range in.Machines {
		for _, id := range m.FilterIDs() {
			if !slices.Contains(g.behind[id], m.ID) {
				g.behind[id] = append(g.behind[id], m.ID)
			}
		}
	}
	g.ids = slices.Collect(maps.Keys(g.behind))
	if in.Prior != nil {
		for _, r := range in.Prior.Revoked {
			g.ids = append(g.ids, r.SecurityGroupID)
		}
	}
	if left {
		for _, id := range in.Left {
			m, err := c.Machine(ctx, id)
			if err == nil && !m.Terminated() {
				g.ids = append(g.ids, m.FilterIDs()...)
			} else if err != nil && !errors.Is(err, ErrNotFound) {
				return g, fmt.Errorf("reading EC2 instance %s: %w", id, err)
			}
		}
	}
	slices.Sort(g.ids)
	g.ids = slices.Compact(g.ids)
	return g, nil
}

// PlanPolicy plans every security group on the instances' ENIs, locking
// the policy's ports, and restores every other group the policy holds a
// record in: one that left the instances' path, or whose instance left the
// policy or no longer exists.
func (b *Backend) PlanPolicy(ctx context.Context, in engine.PolicyInput) (*engine.PolicyChange, error) {
	c := b.client
	change := &engine.PolicyChange{}
	g, err := c.groupsOf(ctx, in, true)
	if err != nil || len(g.ids) == 0 {
		return change, err
	}
	var held *locks.Held
	if in.Lock {
		held = c.locks.LockAll(ctx, g.ids...)
		change.Unlock = held.ReleaseAll
	}
	groups, err := c.SecurityGroups(ctx, g.ids)
	if err != nil {
		return change, err
	}
	var existing []string
	for _, id := range g.ids {
		if groups[id] != nil && len(g.behind[id]) > 0 {
			existing = append(existing, id)
		}
	}
	attachments, err := c.GroupAttachments(ctx, existing)
	if err != nil {
		return change, err
	}
	locked := make([]jit.PortProtocol, len(in.Ports))
	for i, p := range in.Ports {
		locked[i] = p.PortProtocol()
	}
	var plans []*groupPlan
	for _, id := range g.ids {
		sg := groups[id]
		if sg == nil {
			continue // gone with whatever rules it held
		}
		// A group tagged as a grant is exempt from the lock only if it is
		// a grant of this policy that fits it; one of ours that ended or
		// does not fit goes, any other is an ordinary group.
		var verdict jit.SGGrantVerdict
		if len(g.behind[id]) > 0 && sg.IsGrant() {
			verdict = judgeGrantGroup(sg.Name, sg.Tags, sg.Ingress, in)
		}
		if verdict.Ours && (verdict.Unfit != "" || verdict.Over) {
			if verdict.Unfit != "" {
				change.Findings = append(change.Findings, jit.Warning("Security group claims to be a grant of the policy but does not fit it",
					fmt.Sprintf("Security group %s (%s) on %s is tagged as a grant of policy %q, but %s. The apply detaches it from every network interface carrying it and deletes it.",
						id, sg.Name, strings.Join(g.behind[id], ", "), in.Name, verdict.Unfit), pathMachines...))
			} else {
				tflog.Info(ctx, "the policy removes an expired grant", map[string]any{"group": id, "end": verdict.Marker.End.Format(time.RFC3339)})
			}
			plans = append(plans, &groupPlan{group: sg, instances: g.behind[id], grant: true, remove: true})
			continue
		}
		backup, remainders, err := jit.ParseSGBackupTags(in.Name, sg.Tags)
		if err != nil {
			change.Findings = append(change.Findings, jit.Error("Cannot read the backup of revoked rules",
				fmt.Sprintf("security group %s: %s. Nothing was written; restore the tags from state (revoked_ingress_rules) or remove them.", id, err)))
			return change, nil
		}
		if in.Prior != nil {
			for _, rule := range in.Prior.Revoked {
				if rule.SecurityGroupID != id {
					continue
				}
				if rule.Action == engine.ActionRevoke {
					backup = append(backup, sgRuleOf(rule))
				} else {
					remainders = append(remainders, sgRuleOf(rule))
				}
			}
		}
		gp := &groupPlan{group: sg, instances: g.behind[id], recordedBackup: backup, recordedRemainders: remainders, grant: len(verdict.Ended) > 0}
		switch {
		case verdict.Ours:
			// A grant the policy honours keeps its rules, less the ports
			// that ended; anything the policy revoked there before is put
			// back.
			if len(verdict.Ended) > 0 {
				tflog.Info(ctx, "the policy removes the ended ports of a grant", map[string]any{"group": id, "rules": describeRules(verdict.Ended)})
			}
			live := slices.DeleteFunc(slices.Clone(sg.Ingress), func(r jit.SGRule) bool { return slices.Contains(verdict.Ended, r) })
			gp.plan, err = jit.PlanSecurityGroupRestore(live, backup, remainders)
		case len(gp.instances) > 0:
			gp.plan, err = jit.PlanSecurityGroup(jit.SGPlanInput{GroupID: id, Rules: sg.Ingress, Locked: locked, Backup: backup, Remainders: remainders})
		default:
			gp.plan, err = jit.PlanSecurityGroupRestore(sg.Ingress, backup, remainders)
		}
		if err != nil {
			change.Findings = append(change.Findings, jit.Error("Cannot lock the ports in a security group", err.Error(), pathMachines...))
			return change, nil
		}
		for _, w := range gp.plan.Warnings {
			change.Findings = append(change.Findings, jit.Warning("Security group rule not kept as it was", w, pathMachines...))
		}
		if sg.IsGrant() && !verdict.Ours && len(gp.instances) > 0 && len(gp.plan.Backup) > 0 {
			change.Findings = append(change.Findings, jit.Warning("Security group tagged as a grant is not one of the policy's",
				fmt.Sprintf("Security group %s (%s) on %s is tagged %s, but %s: it is no grant the policy honours, so its rules opening locked ports are revoked like any other group's (%s), and restored when the policy is destroyed.",
					id, sg.Name, strings.Join(gp.instances, ", "), jit.TagGrant, foreignGrantReason(sg, in.Name), describeRules(gp.plan.Backup)), pathMachines...))
		}
		if outside := outsiders(attachments[id], gp.instances); len(gp.plan.Backup) > 0 && len(outside) > 0 {
			change.Findings = append(change.Findings, jit.Warning("Security group shared outside the policy",
				fmt.Sprintf("Security group %s is also attached to %s, which policy %q does not cover: the rules it revokes there (%s) stop allowing that traffic to them too.",
					id, strings.Join(outside, ", "), in.Name, describeRules(gp.plan.Backup)), pathMachines...))
		}
		change.Revoked = append(change.Revoked, revokedRules(id, gp.instances, gp.plan.Backup, gp.plan.Remainders)...)
		plans = append(plans, gp)
	}
	if len(plans) > 0 {
		change.Write = func(ctx context.Context) error { return c.writeGroupPlans(ctx, in, plans, held) }
	}
	return change, nil
}

// writeGroupPlans applies each group's plan, groups in parallel, one write
// at a time within each; each group's lock is released as soon as its own
// writes end. A grant of the policy is read again first and judged as it
// is then (a renewal made elsewhere since the plan keeps its ports): its
// ended ports are revoked, or the whole group detached and deleted.
func (c *Client) writeGroupPlans(ctx context.Context, in engine.PolicyInput, plans []*groupPlan, held *locks.Held) error {
	errs := make(chan error, len(plans))
	for _, gp := range plans {
		go func() {
			var err error
			if gp.grant {
				_, err = c.EndGrantGroup(ctx, gp.group.ID, func(cur GrantGroup) ([]jit.SGRule, bool) {
					v := judgeGrantGroup(cur.Name, cur.Tags, cur.Rules, in)
					if !v.Ours {
						return nil, false
					}
					return v.Ended, v.Unfit != "" || v.Over
				})
			}
			if err == nil && !gp.remove {
				err = c.ApplySGPlan(ctx, gp.group, in.Name, gp.recordedBackup, gp.recordedRemainders, gp.plan)
			}
			held.Release(gp.group.ID)
			errs <- err
		}()
	}
	var all []error
	for range plans {
		err := <-errs
		var whole wholeStory
		switch {
		case err == nil:
		case errors.As(err, &whole):
			all = append(all, engine.Fail("Cannot write security group rules", err))
		default:
			all = append(all, engine.Fail("Cannot write security group rules",
				fmt.Errorf("%w. Every rule revoked so far is recorded in the group's backup tags; apply again to finish", err)))
		}
	}
	return errors.Join(all...)
}

// outsiders names the network interfaces carrying a group that are not
// attached to one of the policy's instances.
func outsiders(attached []Attachment, instances []string) []string {
	var out []string
	for _, a := range attached {
		switch {
		case a.InstanceID == "":
			out = append(out, a.NetworkInterfaceID+" (detached)")
		case !slices.Contains(instances, a.InstanceID):
			out = append(out, a.NetworkInterfaceID+" (instance "+a.InstanceID+")")
		}
	}
	return out
}

// revokedRules is a group's record as the plan shows it.
func revokedRules(groupID string, instances []string, backup, remainders []jit.SGRule) []engine.RevokedRule {
	vms := slices.Sorted(slices.Values(instances))
	if vms == nil {
		vms = []string{}
	}
	var out []engine.RevokedRule
	for _, list := range []struct {
		action string
		rules  []jit.SGRule
	}{{engine.ActionRevoke, backup}, {engine.ActionRemainder, remainders}} {
		for _, r := range list.rules {
			r.ID = ""
			out = append(out, engine.RevokedRule{
				SecurityGroupID: groupID, MachineIDs: vms, Action: list.action, Rule: r.String(),
				IPProtocol: r.IPProtocol, FromPort: r.FromPort, ToPort: r.ToPort, Source: r.Source(), Description: r.Description,
			})
		}
	}
	return out
}

func sgRuleOf(r engine.RevokedRule) jit.SGRule {
	return jit.SGRule{IPProtocol: r.IPProtocol, FromPort: r.FromPort, ToPort: r.ToPort, Description: r.Description}.WithSource(r.Source)
}

// ObservePolicy reads what the policy holds in the security groups of its
// instances and of its state: the record in each group's backup tags, less
// what no longer holds in the group. A revoked rule whose permission the
// group holds again (re-added out of band) and a remainder that is gone are
// left out, so the next plan, which has them revoked and authorised again,
// shows the repair.
func (b *Backend) ObservePolicy(ctx context.Context, in engine.PolicyInput) (*engine.PolicyObservation, error) {
	c := b.client
	o := &engine.PolicyObservation{}
	g, err := c.groupsOf(ctx, in, false)
	if err != nil || len(g.ids) == 0 {
		return o, err
	}
	groups, err := c.SecurityGroups(ctx, g.ids)
	if err != nil {
		return nil, err
	}
	for _, id := range g.ids {
		sg := groups[id]
		if sg == nil {
			continue
		}
		if len(g.behind[id]) > 0 && sg.IsGrant() {
			switch v := judgeGrantGroup(sg.Name, sg.Tags, sg.Ingress, in); {
			case v.Ours && (v.Unfit != "" || v.Over):
				o.Expired = append(o.Expired, id)
				continue
			case v.Ours:
				for _, r := range v.Ended {
					o.Expired = append(o.Expired, id+"/securityGroupRules/"+r.ID)
				}
			}
		}
		backup, remainders, err := jit.ParseSGBackupTags(in.Name, sg.Tags)
		if err != nil {
			o.Findings = append(o.Findings, jit.Warning("Damaged backup of revoked rules", fmt.Sprintf("security group %s: %s", id, err)))
			continue
		}
		backup = slices.DeleteFunc(backup, func(b jit.SGRule) bool {
			return slices.ContainsFunc(sg.Ingress, func(cur jit.SGRule) bool { return samePermission(cur, b) })
		})
		remainders = slices.DeleteFunc(remainders, func(rem jit.SGRule) bool {
			return !slices.ContainsFunc(sg.Ingress, func(cur jit.SGRule) bool {
				return samePermission(cur, rem) && cur.Description == rem.Description
			})
		})
		o.Revoked = append(o.Revoked, revokedRules(id, g.behind[id], backup, remainders)...)
	}
	return o, nil
}

// judgeGrantGroup judges a group tagged as a grant for the policy: the
// request it claims is its jit-request tag, when its name was made for
// that request too.
func judgeGrantGroup(name string, tags map[string]string, rules []jit.SGRule, in engine.PolicyInput) jit.SGGrantVerdict {
	request := tags[jit.TagRequest]
	if request == "" || !strings.HasPrefix(name, grantGroupName(request, "")) {
		request = ""
	}
	clock := in.Clock
	if clock == nil {
		clock = jit.NewClock()
	}
	return jit.JudgeSGGrant(tags[jit.TagGrant], request, tags, rules, in.Name, in.Ports, clock)
}

// foreignGrantReason says why a group tagged as a grant is not the policy's.
func foreignGrantReason(sg *SecurityGroup, policy string) string {
	m, ok := jit.ParseMarker(sg.Tags[jit.TagGrant])
	switch {
	case !ok || m.Kind != jit.MarkerGrant:
		return "the tag holds no grant marker"
	case !m.BelongsTo(policy):
		return "its marker names another policy"
	}
	return "it is not a grant of the policy"
}

// samePermission tells two rules EC2 would call duplicates. Both are as EC2
// reports rules (or as the core wrote them from such rules), so protocol
// and ports are spelt alike.
func samePermission(a, b jit.SGRule) bool {
	a.ID, b.ID, a.Description, b.Description = "", "", "", ""
	return a == b
}
