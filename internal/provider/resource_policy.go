package provider

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

var (
	_ resource.ResourceWithConfigure      = (*policyResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*policyResource)(nil)
	_ resource.ResourceWithImportState    = (*policyResource)(nil)
	_ resource.ResourceWithValidateConfig = (*policyResource)(nil)
)

func newPolicyResource() resource.Resource { return &policyResource{} }

type policyResource struct{ resourceEngine }

// policyRulesAttribute is every deny rule the policy owns: what a
// reviewer reads in the plan.
var policyRulesAttribute = schema.ListNestedAttribute{
	Computed: true,
	MarkdownDescription: "Every deny rule the policy owns, sorted by target, port and name: what a reviewer reads in the plan. " +
		"In each NSG one rule per locked port and address family covers every VM of the policy behind that NSG. " +
		"Rules written by others into the same NSGs are never altered, renumbered or removed.",
	NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
		"virtual_machine_ids": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "The VMs the rule locks (whose private addresses are its destinations)."},
		"target_id":           schema.StringAttribute{Computed: true, MarkdownDescription: "The network security group, or Azure Firewall, holding the rule."},
		"name":                schema.StringAttribute{Computed: true, MarkdownDescription: "Rule name."},
		"priority": schema.Int64Attribute{Computed: true, MarkdownDescription: "Rule priority, or on a firewall the priority of the policy's rule collection (lower is evaluated first). " +
			"Known in the plan where the rule already sits; a new or moved rule is placed when it is written, against the NSG as it is then, so the plan shows it as known after apply."},
		"port":     schema.Int64Attribute{Computed: true, MarkdownDescription: "Locked port."},
		"protocol": schema.StringAttribute{Computed: true, MarkdownDescription: "Locked protocol."},
	}},
}

// revokedIngressRulesAttribute is the EC2 side: what the policy holds in
// security groups.
var revokedIngressRulesAttribute = schema.ListNestedAttribute{
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

func (r *policyResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_policy"
}

func (r *policyResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Locks management ports of Azure VMs behind JIT deny rules: in every network security group on the VMs' " +
			"paths (their NICs' and their subnets'), one inbound Deny per port and address family covering the private " +
			"IPs of every VM of the policy behind that NSG, so a subnet of hundreds of VMs needs a few rules, not one per VM. " +
			"Rules that already decide a locked port keep precedence; otherwise the deny takes top precedence, leaving " +
			"priorities before it free for grants. The plan lists every rule in `rules`, with the VMs each covers; " +
			"a port that an existing rule keeps from being locked is a warning naming that rule, and the other ports are locked. The policy's settings are also " +
			"written as tags on each VM, so access requests from other configurations can be validated against them. " +
			"On EC2 instances, the inbound rules of their security groups that open a locked port are revoked instead, and " +
			"restored exactly on destroy: see `revoked_ingress_rules`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, MarkdownDescription: "The policy name.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "Policy name, unique among your policies; it marks the rules and tags the policy owns. Changing it replaces the policy.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators: []validator.String{
					stringvalidator.LengthBetween(1, 80),
					stringvalidator.RegexMatches(policyNamePattern, "may hold letters, digits, '-', '_' and '.' only"),
				},
			},
			"virtual_machine_ids": schema.SetAttribute{
				Required: true, ElementType: types.StringType,
				MarkdownDescription: "Azure VM resource IDs and EC2 instance IDs to lock. A VM belongs to at most one policy.",
				Validators: []validator.Set{
					setvalidator.SizeAtLeast(1),
					setvalidator.ValueStringsAre(virtualMachineIDValidator),
				},
			},
			"azure_firewall_id": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "A classic Azure Firewall (rules in the firewall resource, not a Firewall Policy) in front of the VMs. " +
					"The policy adds a network rule collection there denying the locked ports to the VMs' private IPs, placed " +
					"like the NSG denies: after collections that already decide those ports, with a free priority before it for grants.",
				Validators: []validator.String{azureFirewallIDValidator},
			},
			"expired_grants": schema.ListAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "Grants to the policy's VMs whose end time has passed but whose rules a refresh still found, " +
					"and rules or groups that claim to be the policy's grants without fitting it (a port it does not lock, a source " +
					"outside its prefixes, an end beyond its maximum from the request's start): NSG rule or firewall NAT collection IDs; " +
					"on EC2, a grant security group, or `<group>/securityGroupRules/<rule>` for the port of a grant that ended before " +
					"its other ports. The plan shows them going: applying the policy removes them (an EC2 group is detached and deleted); " +
					"the next plan of the request and `revoke-expired` remove those that ended.",
			},
			"revoked_ingress_rules": revokedIngressRulesAttribute,
			"rules":                 policyRulesAttribute,
		},
		Blocks: map[string]schema.Block{
			"port": schema.ListNestedBlock{
				MarkdownDescription: "A port to lock. Without any `port` block the policy locks Defender's defaults: " +
					"22, 3389, 5985 and 5986, TCP, from any source, for at most `PT3H`.",
				NestedObject: schema.NestedBlockObject{Attributes: map[string]schema.Attribute{
					"number": schema.Int64Attribute{
						Required: true, MarkdownDescription: "Port number, 0–65535, unique per protocol.",
						Validators: []validator.Int64{int64validator.Between(0, 65535)},
					},
					"protocol": schema.StringAttribute{
						Optional: true, Computed: true, Default: stringdefault.StaticString("TCP"),
						MarkdownDescription: "`TCP` (default), `UDP` or `*` (both).",
						Validators:          []validator.String{protocolValidator},
					},
					"allowed_source_address_prefixes": schema.ListAttribute{
						Optional: true, Computed: true, ElementType: types.StringType,
						Default:             listdefault.StaticValue(types.ListValueMust(types.StringType, []attr.Value{types.StringValue("*")})),
						MarkdownDescription: "Sources a request may open the port to: CIDRs, IPs, or `*` for any (default).",
						Validators:          []validator.List{listvalidator.SizeAtLeast(1), listvalidator.ValueStringsAre(sourcePrefixValidator)},
					},
					"max_request_access_duration": schema.StringAttribute{
						Optional: true, Computed: true, Default: stringdefault.StaticString("PT3H"),
						MarkdownDescription: "Longest access a request may get, as an ISO 8601 duration from `PT5M` to `P1D` (default `PT3H`).",
						Validators:          []validator.String{maxRequestAccessDurationValidator},
					},
				}},
			},
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Read: true, Update: true, Delete: true}),
		},
	}
}

// ValidateConfig checks the ports together (a number locked twice for one
// protocol), once every port is known; each attribute has its own validator.
func (r *policyResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var cfg policyModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// ARM IDs are case-insensitive: one VM written twice in different case
	// is two elements of the set but one VM.
	seen := map[string]string{}
	for _, id := range cfg.vmIDs() {
		key := strings.ToLower(id)
		if first, dup := seen[key]; dup {
			resp.Diagnostics.AddAttributeError(path.Root("virtual_machine_ids"), "Virtual machine listed twice",
				fmt.Sprintf("%s and %s name the same virtual machine (resource IDs are case-insensitive); list it once.", first, id))
		}
		seen[key] = id
	}
	if !cfg.portsKnown() {
		return
	}
	ports := make([]jit.PortProtocol, len(cfg.Ports))
	for i, p := range cfg.Ports {
		// The protocol's default is not applied to the configuration.
		ports[i] = jit.PortProtocol{Number: int(p.Number.ValueInt64()), Protocol: jit.Protocol(cmp.Or(p.Protocol.ValueString(), string(jit.ProtocolTCP)))}
	}
	for _, fe := range jit.DuplicatePorts(ports) {
		addFindings(&resp.Diagnostics, fe.Finding())
	}
}

// ModifyPlan validates the policy against the cloud and shows the rules it
// will own, so the plan of a pull request is the review of the change.
func (r *policyResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowConfigure)
	if req.Plan.Raw.IsNull() || r.engine == nil {
		return // destroy, or a validate without a configured provider
	}
	var plan policyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || plan.Name.IsUnknown() || plan.VirtualMachineIDs.IsUnknown() || !setKnown(plan.VirtualMachineIDs) || !plan.portsKnown() {
		return
	}
	spec, diags := plan.spec(ctx)
	resp.Diagnostics.Append(diags...)
	var prior *engine.PolicyState
	if !req.State.Raw.IsNull() {
		var state policyModel
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
		prior, diags = state.state(ctx)
		resp.Diagnostics.Append(diags...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	p := r.engine.PlanPolicy(ctx, spec, prior)
	addFindings(&resp.Diagnostics, p.Findings...)
	if resp.Diagnostics.HasError() {
		return
	}
	planned := p.State
	if prior == nil {
		// A create may follow the destroy of this policy's tainted
		// instance (an apply that failed half way), which removes the
		// rules found here: each is placed again when written, and a
		// priority shown now could change between plan and apply.
		planned.Rules = slices.Clone(planned.Rules)
		for i := range planned.Rules {
			planned.Rules[i].Priority = 0
		}
	}
	resp.Diagnostics.Append(plan.setComputed(ctx, planned, true)...)
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

func (r *policyResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowConfigure)
	var plan policyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := withTimeout(ctx, plan.Timeouts.Create, &resp.Diagnostics)
	defer cancel()
	resp.Diagnostics.Append(r.apply(ctx, &plan, nil)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *policyResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowConfigure)
	var plan, state policyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := withTimeout(ctx, plan.Timeouts.Update, &resp.Diagnostics)
	defer cancel()
	prior, diags := state.state(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.apply(ctx, &plan, prior)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// apply writes the plan through the engine, which plans again under the
// locks and refuses to write when the cloud moved under the reviewed plan.
func (r *policyResource) apply(ctx context.Context, plan *policyModel, prior *engine.PolicyState) diag.Diagnostics {
	spec, diags := plan.spec(ctx)
	expect, d := plan.expect(ctx)
	diags.Append(d...)
	if diags.HasError() {
		return diags
	}
	state, findings := r.engine.ApplyPolicy(ctx, spec, prior, expect)
	diags.Append(plan.setComputed(ctx, state, false)...)
	addFindings(&diags, findings...)
	return diags
}

func (r *policyResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowConfigure)
	var state policyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := withTimeout(ctx, state.Timeouts.Read, &resp.Diagnostics)
	defer cancel()
	if state.Name.IsNull() {
		state.Name = state.ID // import
	}
	importing := state.VirtualMachineIDs.IsNull()
	st, diags := state.state(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	o, err := r.engine.ObservePolicy(ctx, *st)
	if err != nil {
		summary := "Cannot read the policy"
		if importing {
			summary = "Policy not found"
		}
		resp.Diagnostics.AddError(summary, err.Error())
		return
	}
	addFindings(&resp.Diagnostics, o.Findings...)
	if o.Gone {
		resp.Diagnostics.AddWarning("Policy gone", "None of the VMs of policy \""+st.Name+"\" exists any more and none of its rules is left; it is removed from state.")
		resp.State.RemoveResource(ctx)
		return
	}
	if importing {
		if o.State.Ports != nil {
			state.Ports = portModels(o.State.Ports)
		}
		if o.State.FirewallID != "" {
			state.AzureFirewallID = types.StringValue(o.State.FirewallID)
		}
	}
	state.VirtualMachineIDs, diags = types.SetValueFrom(ctx, types.StringType, o.State.MachineIDs)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(state.setComputed(ctx, o.State, false)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *policyResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowConfigure)
	var state policyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := withTimeout(ctx, state.Timeouts.Delete, &resp.Diagnostics)
	defer cancel()
	prior, diags := state.state(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	addFindings(&resp.Diagnostics, r.engine.DestroyPolicy(ctx, prior)...)
}

func (r *policyResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowConfigure)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), req.ID)...)
}

func setKnown(s types.Set) bool {
	for _, v := range s.Elements() {
		if v.IsUnknown() {
			return false
		}
	}
	return true
}
