package provider

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// The EC2 side of jit_policy. On EC2 a port is locked by revoking, from every
// security group on the instance's ENIs, the inbound rules that open it (and
// re-authorising what a wider rule opened besides); revokedIngressRule is how
// the plan shows that to a reviewer, and how state keeps the backup that
// destroy restores from, alongside the backup tags on the group itself.

// Actions of revoked_ingress_rules.
const (
	actionRevoke    = "revoke"
	actionRemainder = "re-authorize remainder"
)

// revokedIngressRule is one rule of a group as the policy holds it: an
// original rule kept revoked, or a remainder standing in for part of one.
type revokedIngressRule struct {
	SecurityGroupID   string   `tfsdk:"security_group_id"`
	VirtualMachineIDs []string `tfsdk:"virtual_machine_ids"`
	Action            string   `tfsdk:"action"`
	Rule              string   `tfsdk:"rule"`
	IPProtocol        string   `tfsdk:"ip_protocol"`
	FromPort          int64    `tfsdk:"from_port"`
	ToPort            int64    `tfsdk:"to_port"`
	Source            string   `tfsdk:"source"`
	Description       string   `tfsdk:"description"`
}

var revokedIngressRuleAttrTypes = map[string]attr.Type{
	"security_group_id":   types.StringType,
	"virtual_machine_ids": types.ListType{ElemType: types.StringType},
	"action":              types.StringType,
	"rule":                types.StringType,
	"ip_protocol":         types.StringType,
	"from_port":           types.Int64Type,
	"to_port":             types.Int64Type,
	"source":              types.StringType,
	"description":         types.StringType,
}

func revokedIngressRulesAttribute() schema.Attribute {
	return schema.ListNestedAttribute{
		Computed: true,
		MarkdownDescription: "EC2 only: every inbound security group rule the policy keeps revoked (`action = \"revoke\"`: the original " +
			"rule, restored exactly on destroy or when its port or instance leaves the policy) and every rule it authorised in " +
			"place of the part of a wider rule that opened no locked port (`action = \"re-authorize remainder\"`: removed on " +
			"restore). Sorted by security group. The same record is kept in `jit:backup:*` tags on each group, written before " +
			"any revoke, so an interrupted apply or a lost state loses nothing.",
		NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
			"security_group_id":   schema.StringAttribute{Computed: true, MarkdownDescription: "The security group holding the rule."},
			"virtual_machine_ids": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "The policy's instances with the group on one of their ENIs."},
			"action":              schema.StringAttribute{Computed: true, MarkdownDescription: "`revoke` or `re-authorize remainder`."},
			"rule":                schema.StringAttribute{Computed: true, MarkdownDescription: "The rule in words, such as `TCP 0-65535 from 10.0.0.0/8, \"office\"`."},
			"ip_protocol":         schema.StringAttribute{Computed: true, MarkdownDescription: "`tcp`, `udp`, `icmp`, `icmpv6`, `-1` (all) or a protocol number."},
			"from_port":           schema.Int64Attribute{Computed: true, MarkdownDescription: "First port (ICMP: type; -1 when not applicable)."},
			"to_port":             schema.Int64Attribute{Computed: true, MarkdownDescription: "Last port (ICMP: code; -1 when not applicable)."},
			"source":              schema.StringAttribute{Computed: true, MarkdownDescription: "IPv4 or IPv6 CIDR, prefix list ID or security group ID."},
			"description":         schema.StringAttribute{Computed: true, MarkdownDescription: "The rule's description."},
		}},
	}
}

// awsPolicyPlan is the EC2 side of a policy's plan: one plan per security
// group, on the path of the policy's instances or holding a record of it.
type awsPolicyPlan struct {
	groups []*awsGroupPlan // by group ID
	unlock func()
}

type awsGroupPlan struct {
	group              *aws.SecurityGroup
	instances          []string // the policy's instances behind the group
	recordedBackup     []jit.SGRule
	recordedRemainders []jit.SGRule
	plan               jit.SGPlan
}

// policyMachine resolves a machine of a policy. A terminated instance is
// one that is gone: EC2 lists it for a while after it is deleted.
func (r *policyResource) policyMachine(ctx context.Context, id string) (*jit.Machine, error) {
	m, err := r.clients.machine(ctx, id)
	if err == nil && m.Cloud == jit.CloudAWS && (m.State == "terminated" || m.State == "shutting-down") {
		return nil, fmt.Errorf("EC2 instance %s is %s: %w", id, m.State, aws.ErrNotFound)
	}
	return m, err
}

// azureFilterIDs are the NSGs on an Azure VM's path; EC2 security groups are
// planned apart.
func azureFilterIDs(m *jit.Machine) []string {
	if m.Cloud != jit.CloudAzure {
		return nil
	}
	return m.FilterIDs()
}

// planAWS plans every security group on the instances' ENIs, locking the
// given ports, and restores every other group the policy holds a record
// in: one that left the instances' path, or whose instance left the policy
// or no longer exists. With lock, the groups are locked before they are
// read and stay locked until release.
func (r *policyResource) planAWS(ctx context.Context, name string, machines []*jit.Machine, locked []jit.PortProtocol, prior *policyModel, lock bool) (*awsPolicyPlan, diag.Diagnostics) {
	var diags diag.Diagnostics
	p := &awsPolicyPlan{}
	vmPath := path.Root("virtual_machine_ids")

	behind := map[string][]string{} // group → the policy's instances
	for _, m := range machines {
		for _, g := range m.FilterIDs() {
			if !slices.Contains(behind[g], m.ID) {
				behind[g] = append(behind[g], m.ID)
			}
		}
	}
	groupIDs := slices.Collect(maps.Keys(behind))
	var stateRecord []revokedIngressRule
	if prior != nil {
		stateRecord = prior.revokedIngressRules()
		for _, rule := range stateRecord {
			groupIDs = append(groupIDs, rule.SecurityGroupID)
		}
		// An instance that left the policy may have been planned with no
		// record in state (an apply that stopped before saving it): its
		// groups are restored from their tags.
		for _, id := range prior.vmIDs() {
			if cloud, _ := jit.CloudOf(id); cloud != jit.CloudAWS || slices.ContainsFunc(machines, func(m *jit.Machine) bool { return m.ID == id }) {
				continue
			}
			m, err := r.policyMachine(ctx, id)
			if err == nil {
				groupIDs = append(groupIDs, m.FilterIDs()...)
			} else if !isNotFound(err) {
				diags.AddError("Cannot read EC2 instance", err.Error())
				return p, diags
			}
		}
	}
	slices.Sort(groupIDs)
	groupIDs = slices.Compact(groupIDs)
	if len(groupIDs) == 0 {
		return p, diags
	}
	if r.clients.aws == nil {
		diags.AddError("AWS is not configured", errNoBlock("aws", groupIDs[0]).Error())
		return p, diags
	}
	client := r.clients.aws
	if lock {
		p.unlock = client.LockGroups(groupIDs...)
	}
	groups, err := client.SecurityGroups(ctx, groupIDs)
	if err != nil {
		diags.AddError("Cannot read security groups", err.Error())
		return p, diags
	}
	var existing []string
	for _, id := range groupIDs {
		if groups[id] != nil && len(behind[id]) > 0 {
			existing = append(existing, id)
		}
	}
	attachments, err := client.GroupAttachments(ctx, existing)
	if err != nil {
		diags.AddError("Cannot list the network interfaces of security groups", err.Error())
		return p, diags
	}

	for _, id := range groupIDs {
		g := groups[id]
		if g == nil {
			continue // gone with whatever rules it held
		}
		backup, remainders, err := jit.ParseSGBackupTags(name, g.Tags)
		if err != nil {
			diags.AddError("Cannot read the backup of revoked rules", fmt.Sprintf("security group %s: %s. Nothing was written; restore the tags from state (revoked_ingress_rules) or remove them.", id, err))
			return p, diags
		}
		for _, rule := range stateRecord {
			if rule.SecurityGroupID == id {
				if rule.Action == actionRevoke {
					backup = append(backup, rule.sgRule())
				} else {
					remainders = append(remainders, rule.sgRule())
				}
			}
		}
		gp := &awsGroupPlan{group: g, instances: behind[id], recordedBackup: backup, recordedRemainders: remainders}
		if len(gp.instances) > 0 {
			gp.plan, err = jit.PlanSecurityGroup(jit.SGPlanInput{GroupID: id, Rules: g.Ingress, Locked: locked, Backup: backup, Remainders: remainders})
		} else {
			gp.plan, err = jit.PlanSecurityGroupRestore(g.Ingress, backup, remainders)
		}
		if err != nil {
			diags.AddAttributeError(vmPath, "Cannot lock the ports in a security group", err.Error())
			return p, diags
		}
		for _, w := range gp.plan.Warnings {
			diags.AddAttributeWarning(vmPath, "Security group rule not kept as it was", w)
		}
		if outside := outsiders(attachments[id], gp.instances); len(gp.plan.Backup) > 0 && len(outside) > 0 {
			diags.AddAttributeWarning(vmPath, "Security group shared outside the policy",
				fmt.Sprintf("Security group %s is also attached to %s, which policy %q does not cover: the rules it revokes there (%s) stop allowing that traffic to them too.",
					id, strings.Join(outside, ", "), name, describeSGRules(gp.plan.Backup)))
		}
		p.groups = append(p.groups, gp)
	}
	return p, diags
}

// outsiders names the network interfaces carrying a group that are not
// attached to one of the policy's instances.
func outsiders(attached []aws.Attachment, instances []string) []string {
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

func describeSGRules(rules []jit.SGRule) string {
	texts := make([]string, len(rules))
	for i, r := range rules {
		texts[i] = r.String()
	}
	return strings.Join(texts, "; ")
}

// revokedValue is the plan as revoked_ingress_rules shows it.
func (p *awsPolicyPlan) revokedValue() (types.List, diag.Diagnostics) {
	var rules []revokedIngressRule
	if p != nil {
		for _, gp := range p.groups {
			rules = append(rules, revokedIngressRules(gp.group.ID, gp.instances, gp.plan.Backup, gp.plan.Remainders)...)
		}
	}
	return revokedIngressRulesValue(rules)
}

func revokedIngressRules(groupID string, instances []string, backup, remainders []jit.SGRule) []revokedIngressRule {
	vms := slices.Sorted(slices.Values(instances))
	if vms == nil {
		vms = []string{}
	}
	var out []revokedIngressRule
	for _, list := range []struct {
		action string
		rules  []jit.SGRule
	}{{actionRevoke, backup}, {actionRemainder, remainders}} {
		for _, r := range list.rules {
			r.ID = ""
			out = append(out, revokedIngressRule{
				SecurityGroupID: groupID, VirtualMachineIDs: vms, Action: list.action, Rule: r.String(),
				IPProtocol: r.IPProtocol, FromPort: int64(r.FromPort), ToPort: int64(r.ToPort), Source: r.Source(), Description: r.Description,
			})
		}
	}
	return out
}

// revokedIngressRulesValue sorts by group, originals before remainders;
// within each, the core's canonical order is kept.
func revokedIngressRulesValue(rules []revokedIngressRule) (types.List, diag.Diagnostics) {
	slices.SortStableFunc(rules, func(a, b revokedIngressRule) int {
		return cmpOr(strings.Compare(a.SecurityGroupID, b.SecurityGroupID), actionRank(a.Action)-actionRank(b.Action))
	})
	if rules == nil {
		rules = []revokedIngressRule{}
	}
	return types.ListValueFrom(context.Background(), types.ObjectType{AttrTypes: revokedIngressRuleAttrTypes}, rules)
}

func actionRank(action string) int {
	if action == actionRevoke {
		return 0
	}
	return 1
}

func (r revokedIngressRule) sgRule() jit.SGRule {
	return jit.SGRule{IPProtocol: r.IPProtocol, FromPort: int(r.FromPort), ToPort: int(r.ToPort), Description: r.Description}.WithSource(r.Source)
}

func (m *policyModel) revokedIngressRules() []revokedIngressRule {
	var rules []revokedIngressRule
	if !m.RevokedIngressRules.IsNull() && !m.RevokedIngressRules.IsUnknown() {
		_ = m.RevokedIngressRules.ElementsAs(context.Background(), &rules, false)
	}
	return rules
}

// write applies each group's plan, groups in parallel, one write at a time
// within each.
func (p *awsPolicyPlan) write(ctx context.Context, c *clients, name string) diag.Diagnostics {
	var diags diag.Diagnostics
	if p == nil || len(p.groups) == 0 {
		return diags
	}
	errs := make(chan error, len(p.groups))
	for _, gp := range p.groups {
		go func() {
			errs <- c.aws.ApplySGPlan(ctx, gp.group, name, gp.recordedBackup, gp.recordedRemainders, gp.plan)
		}()
	}
	for range p.groups {
		if err := <-errs; err != nil {
			diags.AddError("Cannot write security group rules", err.Error()+". Every rule revoked so far is recorded in the group's backup tags; apply again to finish.")
		}
	}
	return diags
}

func (p *awsPolicyPlan) release() {
	if p != nil && p.unlock != nil {
		p.unlock()
		p.unlock = nil
	}
}

// observeAWS reads what the policy holds in the security groups of its
// instances and of its state: the record in each group's backup tags, less
// what no longer holds in the group. A revoked rule whose permission the
// group holds again (re-added out of band) and a remainder that is gone are
// left out, so the next plan, which has them revoked and authorised again,
// shows the repair.
func (r *policyResource) observeAWS(ctx context.Context, name string, machines []*jit.Machine, state *policyModel) (types.List, diag.Diagnostics) {
	var diags diag.Diagnostics
	behind := map[string][]string{}
	var groupIDs []string
	for _, m := range machines {
		if m.Cloud != jit.CloudAWS {
			continue
		}
		for _, g := range m.FilterIDs() {
			behind[g] = append(behind[g], m.ID)
			groupIDs = append(groupIDs, g)
		}
	}
	for _, rule := range state.revokedIngressRules() {
		groupIDs = append(groupIDs, rule.SecurityGroupID)
	}
	slices.Sort(groupIDs)
	groupIDs = slices.Compact(groupIDs)
	var rules []revokedIngressRule
	if len(groupIDs) > 0 && r.clients.aws == nil {
		diags.AddError("AWS is not configured", errNoBlock("aws", groupIDs[0]).Error())
	}
	if len(groupIDs) == 0 || diags.HasError() {
		v, d := revokedIngressRulesValue(rules)
		return v, append(diags, d...)
	}
	groups, err := r.clients.aws.SecurityGroups(ctx, groupIDs)
	if err != nil {
		diags.AddError("Cannot read security groups", err.Error())
		return types.ListNull(types.ObjectType{AttrTypes: revokedIngressRuleAttrTypes}), diags
	}
	for _, id := range groupIDs {
		g := groups[id]
		if g == nil {
			continue
		}
		backup, remainders, err := jit.ParseSGBackupTags(name, g.Tags)
		if err != nil {
			diags.AddWarning("Damaged backup of revoked rules", fmt.Sprintf("security group %s: %s", id, err))
			continue
		}
		backup = slices.DeleteFunc(backup, func(b jit.SGRule) bool {
			return slices.ContainsFunc(g.Ingress, func(cur jit.SGRule) bool { return samePermission(cur, b) })
		})
		remainders = slices.DeleteFunc(remainders, func(rem jit.SGRule) bool {
			return !slices.ContainsFunc(g.Ingress, func(cur jit.SGRule) bool {
				return samePermission(cur, rem) && cur.Description == rem.Description
			})
		})
		rules = append(rules, revokedIngressRules(id, behind[id], backup, remainders)...)
	}
	v, d := revokedIngressRulesValue(rules)
	return v, append(diags, d...)
}

// samePermission tells two rules EC2 would call duplicates. Both are as EC2
// reports rules (or as the core wrote them from such rules), so protocol
// and ports are spelt alike.
func samePermission(a, b jit.SGRule) bool {
	a.ID, b.ID, a.Description, b.Description = "", "", "", ""
	return a == b
}
