package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

var (
	_ resource.ResourceWithConfigure  = (*accessRequestResource)(nil)
	_ resource.ResourceWithModifyPlan = (*accessRequestResource)(nil)
)

func newAccessRequestResource() resource.Resource { return &accessRequestResource{} }

type accessRequestResource struct {
	clients *clients
}

type accessRequestModel struct {
	ID               types.String      `tfsdk:"id"`
	VirtualMachineID types.String      `tfsdk:"virtual_machine_id"`
	Justification    types.String      `tfsdk:"justification"`
	Ports            []accessPort      `tfsdk:"port"`
	Requestor        types.String      `tfsdk:"requestor"`
	StartTimeUTC     timetypes.RFC3339 `tfsdk:"start_time_utc"`
	Rules            types.List        `tfsdk:"rules"`
	Timeouts         timeouts.Value    `tfsdk:"timeouts"`
}

type accessPort struct {
	Number                     types.Int64       `tfsdk:"number"`
	Protocol                   types.String      `tfsdk:"protocol"`
	AllowedSourceAddressPrefix types.String      `tfsdk:"allowed_source_address_prefix"`
	Duration                   types.String      `tfsdk:"duration"`
	EndTimeUTC                 timetypes.RFC3339 `tfsdk:"end_time_utc"`
	Status                     types.String      `tfsdk:"status"`
	StatusReason               types.String      `tfsdk:"status_reason"`
	ConnectionDetails          types.String      `tfsdk:"connection_details"`
}

var grantRuleAttrTypes = map[string]attr.Type{
	"target_id": types.StringType,
	"name":      types.StringType,
	"priority":  types.Int64Type,
	"port":      types.Int64Type,
	"protocol":  types.StringType,
}

// Defender's status reasons.
const (
	reasonExpired       = "Expired"
	reasonUserRequested = "UserRequested"
	reasonSuperseded    = "NewerRequestInitiated"
)

func (r *accessRequestResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_access_request"
}

func (r *accessRequestResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Opens ports of a VM locked by a `jit_policy` for one source until an end time: an inbound Allow " +
			"in every network security group on the VM's path, ahead of the JIT deny. The request is checked at plan time " +
			"against the policy as the cloud records it (so it works from a configuration without the policy). Once a " +
			"port's end time passes, the next refresh marks it `Expired` and the plan shows its rules' removal; " +
			"`terraform-provider-jit revoke-expired` removes expired grants without any state. Destroying the request " +
			"before its end revokes it; a newer request for the same VM and port supersedes this one.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true,
				MarkdownDescription: "Request ID: the start time and a random suffix. Each grant carries it in the cloud (in its rule's " +
					"name, or its security group's `jit-request` tag), with the end time, requestor and justification in its " +
					"description or `jit-grant` tag, so grants are found and revoked without state.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"virtual_machine_id": schema.StringAttribute{
				Required: true, MarkdownDescription: "The Azure VM resource ID or EC2 instance ID to open.",
				PlanModifiers: replace, Validators: []validator.String{virtualMachineIDValidator{}},
			},
			"justification": schema.StringAttribute{
				Required: true, MarkdownDescription: "Why access is needed (a ticket, an incident); recorded on every grant.",
				PlanModifiers: replace, Validators: []validator.String{stringvalidator.LengthBetween(1, 256)},
			},
			"requestor": schema.StringAttribute{
				Computed: true, MarkdownDescription: "Who asked: the identity the provider's Azure credential belongs to.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"start_time_utc": schema.StringAttribute{
				Computed: true, CustomType: timetypes.RFC3339Type{}, MarkdownDescription: "When access was granted.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"rules": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "Every grant rule the request holds in the cloud; empty once every port expired or was superseded.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"target_id": schema.StringAttribute{Computed: true, MarkdownDescription: "The network security group, or the Azure Firewall (for its DNAT rule), holding the rule."},
					"name":      schema.StringAttribute{Computed: true, MarkdownDescription: "Rule name."},
					"priority":  schema.Int64Attribute{Computed: true, MarkdownDescription: "Rule priority."},
					"port":      schema.Int64Attribute{Computed: true, MarkdownDescription: "Granted port."},
					"protocol":  schema.StringAttribute{Computed: true, MarkdownDescription: "Granted protocol."},
				}},
			},
		},
		Blocks: map[string]schema.Block{
			"port": schema.ListNestedBlock{
				MarkdownDescription: "A port to open; it must be locked by the VM's policy.",
				Validators:          []validator.List{listvalidator.IsRequired(), listvalidator.SizeAtLeast(1)},
				NestedObject: schema.NestedBlockObject{Attributes: map[string]schema.Attribute{
					"number": schema.Int64Attribute{
						Required: true, MarkdownDescription: "Port number.",
						Validators:    []validator.Int64{int64validator.Between(0, 65535)},
						PlanModifiers: []planmodifier.Int64{int64planmodifier.RequiresReplace()},
					},
					"protocol": schema.StringAttribute{
						Optional: true, Computed: true,
						MarkdownDescription: "`TCP`, `UDP` or `*`; by default the protocol the policy locks the port for.",
						Validators:          []validator.String{stringvalidator.OneOf("TCP", "UDP", "*")},
						PlanModifiers:       replace,
					},
					"allowed_source_address_prefix": schema.StringAttribute{
						Required: true, PlanModifiers: replace,
						MarkdownDescription: "The source to open the port to: a CIDR or IP inside one of the prefixes the policy allows " +
							"(`*` only when the policy allows any source).",
					},
					"duration": schema.StringAttribute{
						Optional: true, PlanModifiers: replace,
						MarkdownDescription: "How long to open the port, as an ISO 8601 duration (`PT1H`) up to the policy's maximum. " +
							"Exactly one of `duration` and `end_time_utc`.",
						Validators: []validator.String{stringvalidator.ExactlyOneOf(path.MatchRelative().AtParent().AtName("end_time_utc"))},
					},
					"end_time_utc": schema.StringAttribute{
						Optional: true, Computed: true, CustomType: timetypes.RFC3339Type{},
						MarkdownDescription: "When access ends, RFC 3339: set it instead of `duration`, or read it.",
						PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplaceIfConfigured()},
					},
					"status": schema.StringAttribute{
						Computed: true, MarkdownDescription: "`Initiated`, `Expired` or `Revoked`.",
					},
					"status_reason": schema.StringAttribute{
						Computed: true, MarkdownDescription: "`Expired` or `NewerRequestInitiated` once the port is no longer open; empty while it is.",
					},
					"connection_details": schema.StringAttribute{
						Computed: true, MarkdownDescription: "Where to connect: the VM's private IP and the port; through the policy's Azure Firewall, the firewall's public IP and the mapped port its DNAT rule listens on.",
						PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
					},
				}},
			},
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Read: true, Update: true, Delete: true}),
		},
	}
}

func (r *accessRequestResource) Configure(_ context.Context, req resource.ConfigureRequest, _ *resource.ConfigureResponse) {
	if req.ProviderData != nil {
		r.clients = req.ProviderData.(*clients)
	}
}

const defaultRequestTimeout = 30 * time.Minute

// ModifyPlan checks a new request against the VM's policy as the cloud
// records it, and shows an existing request's expired ports losing their
// rules (never a re-grant).
func (r *accessRequestResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.clients == nil {
		return
	}
	var plan accessRequestModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if req.State.Raw.IsNull() || len(resp.RequiresReplace) > 0 {
		r.planNew(ctx, &plan, &resp.Diagnostics)
	} else {
		var state accessRequestModel
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
		if resp.Diagnostics.HasError() {
			return
		}
		r.planExisting(ctx, &plan, &state, &resp.Diagnostics)
	}
	if !resp.Diagnostics.HasError() {
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	}
}

func (r *accessRequestResource) planNew(ctx context.Context, plan *accessRequestModel, diags *diag.Diagnostics) {
	for i := range plan.Ports {
		plan.Ports[i].Status = types.StringValue(string(jit.GrantInitiated))
		plan.Ports[i].StatusReason = types.StringNull()
	}
	if plan.VirtualMachineID.IsUnknown() || !plan.portsKnown() {
		return // checked at apply, once known
	}
	m, err := r.clients.machine(ctx, plan.VirtualMachineID.ValueString())
	if err != nil {
		diags.AddAttributeError(path.Root("virtual_machine_id"), "Cannot read virtual machine", err.Error())
		return
	}
	policy, policyPorts, ok, err := machinePolicy(m)
	switch {
	case err != nil:
		diags.AddAttributeError(path.Root("virtual_machine_id"), "Unreadable JIT policy", err.Error())
		return
	case !ok:
		// The policy may be created in this same apply: the checks run
		// again then, before anything is written.
		diags.AddAttributeWarning(path.Root("virtual_machine_id"), "No JIT policy on the virtual machine yet",
			fmt.Sprintf("%s carries no jit_policy. If a policy covering it is applied first in this run, the request is checked against it at apply; otherwise the apply fails.", m.ID))
		return
	}
	resolved, d := plan.validate(policyPorts, r.clients.clock.Now())
	diags.Append(d...)
	if !diags.HasError() {
		r.checkPlacement(ctx, m, policy, plan, resolved, diags)
	}
	if m.Cloud == jit.CloudAWS && len(m.Interfaces) > 0 && len(m.Interfaces[0].SecurityGroupIDs) >= aws.GroupsPerInterface {
		diags.AddAttributeError(path.Root("virtual_machine_id"), "No room for the grant's security group",
			fmt.Sprintf("The primary network interface %s of %s already has %d security groups, EC2's default limit per interface; a grant attaches one more. Detach a group first.",
				m.Interfaces[0].ID, m.ID, len(m.Interfaces[0].SecurityGroupIDs)))
	}
	for i, pp := range resolved {
		if plan.Ports[i].Protocol.IsUnknown() {
			plan.Ports[i].Protocol = types.StringValue(string(pp.Protocol))
		}
	}
}

// checkPlacement places the grants in each NSG on the path as they are now,
// without writing, so that a grant that could not work (a rule that is not
// the JIT deny shadows it with no free priority before it) fails the plan,
// naming that rule. Through a firewall the source the VM sees is the
// firewall's, which apply reads.
func (r *accessRequestResource) checkPlacement(ctx context.Context, m *jit.Machine, policy string, plan *accessRequestModel, resolved []jit.PortProtocol, diags *diag.Diagnostics) {
	if m.Cloud != jit.CloudAzure || m.Tags[jit.TagFirewall] != "" {
		return
	}
	end := r.clients.clock.Now().Add(time.Hour)
	for _, nsg := range m.FilterIDs() {
		rules, err := r.clients.azure.SecurityRules(ctx, nsg)
		if err != nil {
			diags.AddAttributeError(path.Root("virtual_machine_id"), "Cannot read network security group", err.Error())
			return
		}
		for i, pp := range resolved {
			_, err := jit.PlanNSGGrant(jit.NSGGrant{
				NSG: nsg, Rules: rules, Policy: policy, Request: "plan", Machine: m.ID, PrivateIPs: m.PrivateIPs(),
				Port: pp, Source: plan.Ports[i].AllowedSourceAddressPrefix.ValueString(), End: end,
			})
			if err != nil {
				diags.AddAttributeError(path.Root("port").AtListIndex(i), "The grant could not be placed", err.Error())
			}
		}
	}
}

func (r *accessRequestResource) planExisting(ctx context.Context, plan, state *accessRequestModel, diags *diag.Diagnostics) {
	rules := state.rules()
	var open []grantRule
	missing := false
	var m *jit.Machine
	for i := range plan.Ports {
		p := &plan.Ports[i]
		if status, reason := portStatus(p, r.clients.clock); status != jit.GrantInitiated {
			p.Status, p.StatusReason = types.StringValue(string(status)), types.StringValue(reason)
			continue
		}
		var have []grantRule
		for _, rule := range rules {
			if rule.Port == p.Number.ValueInt64() && rule.Protocol == p.Protocol.ValueString() {
				have = append(have, rule)
			}
		}
		open = append(open, have...)
		if m == nil {
			var err error
			if m, err = r.clients.machine(ctx, plan.VirtualMachineID.ValueString()); err != nil {
				diags.AddAttributeError(path.Root("virtual_machine_id"), "Cannot read virtual machine", err.Error())
				return
			}
		}
		if len(have) < grantTargetCount(m) {
			missing = true // deleted out of band: granted again, until the end time
		}
	}
	if missing {
		plan.Rules = types.ListUnknown(types.ObjectType{AttrTypes: grantRuleAttrTypes})
		return
	}
	var d diag.Diagnostics
	plan.Rules, d = grantRulesValue(open)
	diags.Append(d...)
}

// portStatus is a granted port's status now: a port revoked stays so;
// otherwise it is open until its end time.
func portStatus(p *accessPort, clock jit.Clock) (jit.GrantStatus, string) {
	if p.Status.ValueString() == string(jit.GrantRevoked) {
		return jit.GrantRevoked, p.StatusReason.ValueString()
	}
	end, _ := p.EndTimeUTC.ValueRFC3339Time()
	if status := jit.ExpiryStatus(end, clock); status == jit.GrantExpired {
		return status, reasonExpired
	}
	return jit.GrantInitiated, ""
}

func (r *accessRequestResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan accessRequestModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := plan.Timeouts.Create(ctx, defaultRequestTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	m, err := r.clients.machine(ctx, plan.VirtualMachineID.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("virtual_machine_id"), "Cannot read virtual machine", err.Error())
		return
	}
	policy, policyPorts, ok, err := machinePolicy(m)
	if err == nil && !ok {
		err = fmt.Errorf("%s is not covered by any jit_policy: there is nothing to request access to", m.ID)
	}
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("virtual_machine_id"), "No JIT policy on the virtual machine", err.Error())
		return
	}
	start := r.clients.clock.Now().UTC().Truncate(time.Second)
	resolved, d := plan.validate(policyPorts, start)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	requestor, err := r.clients.requestor(ctx, m)
	if err != nil {
		resp.Diagnostics.AddError("Cannot tell who is requesting", err.Error())
		return
	}
	g := grantRequest{ID: newRequestID(start), Justification: plan.Justification.ValueString(), Requestor: requestor}
	for i, pp := range resolved {
		end := plan.Ports[i].end(start)
		g.Ports = append(g.Ports, grantPort{Port: pp, Source: plan.Ports[i].AllowedSourceAddressPrefix.ValueString(), End: end})
		p := &plan.Ports[i]
		p.Protocol = types.StringValue(string(pp.Protocol))
		p.EndTimeUTC = timetypes.NewRFC3339TimeValue(end)
		p.Status, p.StatusReason = types.StringValue(string(jit.GrantInitiated)), types.StringNull()
	}
	plan.ID, plan.Requestor = types.StringValue(g.ID), types.StringValue(requestor)
	plan.StartTimeUTC = timetypes.NewRFC3339TimeValue(start)
	opened, err := r.clients.openGrant(ctx, m, policy, g)
	for i := range plan.Ports {
		plan.Ports[i].ConnectionDetails = types.StringValue(opened.connect[resolved[i]])
	}
	var rd diag.Diagnostics
	plan.Rules, rd = grantRulesValue(opened.rules)
	resp.Diagnostics.Append(rd...)
	if err != nil {
		resp.Diagnostics.AddError("Cannot grant access", err.Error())
		if len(opened.rules) == 0 {
			return
		}
		// Some rules were written: keep them in state so destroy removes them.
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *accessRequestResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state accessRequestModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := state.Timeouts.Read(ctx, defaultRequestTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	vmID := state.VirtualMachineID.ValueString()
	m, err := r.clients.machineIfAny(ctx, vmID)
	if err != nil {
		resp.Diagnostics.AddError("Cannot read virtual machine", err.Error())
		return
	}
	o, err := r.clients.observeGrant(ctx, m, vmID, state.ID.ValueString(), state.portProtocols(), state.targets())
	if err != nil {
		resp.Diagnostics.AddError("Cannot read the request's grants", err.Error())
		return
	}
	if m == nil && len(o.rules) == 0 {
		resp.Diagnostics.AddWarning("Virtual machine gone", fmt.Sprintf("%s no longer exists and no grant of request %s is left; the request is removed from state.", vmID, state.ID.ValueString()))
		resp.State.RemoveResource(ctx)
		return
	}
	for i := range state.Ports {
		p := &state.Ports[i]
		status, reason := portStatus(p, r.clients.clock)
		if status == jit.GrantInitiated && o.superseded[p.portProtocol()] {
			status, reason = jit.GrantRevoked, reasonSuperseded
		}
		p.Status = types.StringValue(string(status))
		p.StatusReason = types.StringNull()
		if reason != "" {
			p.StatusReason = types.StringValue(reason)
		}
	}
	state.Rules, d = grantRulesValue(o.rules)
	resp.Diagnostics.Append(d...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update removes the rules of ports that expired, and grants again, until
// their end time, ports whose rules were deleted out of band. Nothing
// else of a request can change in place.
func (r *accessRequestResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state accessRequestModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := plan.Timeouts.Update(ctx, defaultRequestTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	vmID := plan.VirtualMachineID.ValueString()
	m, err := r.clients.machineIfAny(ctx, vmID)
	if err != nil {
		resp.Diagnostics.AddError("Cannot read virtual machine", err.Error())
		return
	}
	// Ports closed by an earlier apply hold nothing any more: only those
	// whose rules the refresh still found are removed.
	var closed []jit.PortProtocol
	held := map[jit.PortProtocol]bool{}
	for _, rule := range state.rules() {
		held[jit.PortProtocol{Number: int(rule.Port), Protocol: jit.Protocol(rule.Protocol)}] = true
	}
	g := grantRequest{ID: state.ID.ValueString(), Justification: state.Justification.ValueString(), Requestor: state.Requestor.ValueString()}
	for i := range plan.Ports {
		p := &plan.Ports[i]
		if p.Status.ValueString() != string(jit.GrantInitiated) {
			if held[p.portProtocol()] {
				closed = append(closed, p.portProtocol())
			}
			continue
		}
		end, _ := p.EndTimeUTC.ValueRFC3339Time()
		g.Ports = append(g.Ports, grantPort{Port: p.portProtocol(), Source: p.AllowedSourceAddressPrefix.ValueString(), End: end})
	}
	if err := r.clients.closeGrant(ctx, m, vmID, g.ID, closed, state.targets()); err != nil {
		resp.Diagnostics.AddError("Cannot remove expired grants", err.Error())
		return
	}
	rules := plan.rules()
	if plan.Rules.IsUnknown() && len(g.Ports) > 0 && m != nil {
		policy, _, _, err := machinePolicy(m)
		if err == nil {
			var opened openedGrant
			opened, err = r.clients.openGrant(ctx, m, policy, g)
			rules = opened.rules
		}
		if err != nil {
			resp.Diagnostics.AddError("Cannot grant access again", err.Error())
		}
	}
	plan.Rules, d = grantRulesValue(rules)
	resp.Diagnostics.Append(d...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// Delete revokes whatever the request still holds.
func (r *accessRequestResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state accessRequestModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := state.Timeouts.Delete(ctx, defaultRequestTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	vmID := state.VirtualMachineID.ValueString()
	m, err := r.clients.machineIfAny(ctx, vmID)
	if err != nil {
		resp.Diagnostics.AddError("Cannot read virtual machine", err.Error())
		return
	}
	if err := r.clients.closeGrant(ctx, m, vmID, state.ID.ValueString(), state.portProtocols(), state.targets()); err != nil {
		resp.Diagnostics.AddError("Cannot revoke access", err.Error())
	}
}

// validate checks the request's ports against the policy's, as of now.
func (m *accessRequestModel) validate(policy []jit.Port, now time.Time) ([]jit.PortProtocol, diag.Diagnostics) {
	var diags diag.Diagnostics
	requested := make([]jit.RequestedPort, len(m.Ports))
	for i, p := range m.Ports {
		requested[i] = jit.RequestedPort{
			Number: int(p.Number.ValueInt64()), Protocol: jit.Protocol(p.Protocol.ValueString()),
			SourcePrefix: p.AllowedSourceAddressPrefix.ValueString(),
		}
		if !p.Duration.IsNull() {
			d, err := jit.ParseDuration(p.Duration.ValueString())
			if err != nil {
				diags.AddAttributeError(path.Root("port").AtListIndex(i).AtName("duration"), "Invalid duration", err.Error())
				continue
			}
			requested[i].Duration = d
			continue
		}
		end, d := p.EndTimeUTC.ValueRFC3339Time()
		diags.Append(d...)
		if !end.After(now) {
			diags.AddAttributeError(path.Root("port").AtListIndex(i).AtName("end_time_utc"), "End time in the past",
				fmt.Sprintf("end_time_utc %s is not in the future (now is %s).", end.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
			continue
		}
		requested[i].Duration = jit.Duration(end.Sub(now))
	}
	if diags.HasError() {
		return nil, diags
	}
	resolved, errs := jit.ValidateRequest(policy, requested)
	for _, fe := range errs {
		p := fieldPath(fe.Path)
		// A port given by its end time is checked as the duration until then.
		if len(fe.Path) != 3 || fe.Path[2] != "duration" {
			diags.AddAttributeError(p, fe.Summary, fe.Detail)
			continue
		}
		if i, ok := fe.Path[1].(int); ok && m.Ports[i].Duration.IsNull() {
			p = path.Root("port").AtListIndex(i).AtName("end_time_utc")
		}
		diags.AddAttributeError(p, fe.Summary, fe.Detail)
	}
	return resolved, diags
}

func (m *accessRequestModel) portsKnown() bool {
	for _, p := range m.Ports {
		if p.Number.IsUnknown() || p.AllowedSourceAddressPrefix.IsUnknown() || p.Duration.IsUnknown() ||
			(p.Duration.IsNull() && p.EndTimeUTC.IsUnknown()) {
			return false
		}
	}
	return true
}

func (m *accessRequestModel) portProtocols() []jit.PortProtocol {
	out := make([]jit.PortProtocol, len(m.Ports))
	for i := range m.Ports {
		out[i] = m.Ports[i].portProtocol()
	}
	return out
}

// targets are the NSGs the request held rules in at the last refresh.
func (m *accessRequestModel) targets() []string {
	var ids []string
	for _, r := range m.rules() {
		ids = append(ids, r.TargetID)
	}
	return ids
}

func (m *accessRequestModel) rules() []grantRule {
	var rules []grantRule
	if !m.Rules.IsNull() && !m.Rules.IsUnknown() {
		_ = m.Rules.ElementsAs(context.Background(), &rules, false)
	}
	return rules
}

func (p *accessPort) portProtocol() jit.PortProtocol {
	return jit.PortProtocol{Number: int(p.Number.ValueInt64()), Protocol: jit.Protocol(p.Protocol.ValueString())}
}

// end is when the port's access ends for a request starting at start.
func (p *accessPort) end(start time.Time) time.Time {
	if !p.Duration.IsNull() {
		d, _ := jit.ParseDuration(p.Duration.ValueString())
		return start.Add(d.Std())
	}
	end, _ := p.EndTimeUTC.ValueRFC3339Time()
	return end.UTC()
}

func grantRulesValue(rules []grantRule) (types.List, diag.Diagnostics) {
	if rules == nil {
		rules = []grantRule{}
	}
	return types.ListValueFrom(context.Background(), types.ObjectType{AttrTypes: grantRuleAttrTypes}, rules)
}

// connectionDetails is where a granted port is reached: the VM's first
// private address.
func connectionDetails(m *jit.Machine, port jit.PortProtocol) string {
	ips := m.PrivateIPs()
	if len(ips) == 0 {
		return ""
	}
	return fmt.Sprintf("%s:%d", ips[0], port.Number)
}

// newRequestID names a request by its start and a random suffix, so two
// requests in the same second differ.
func newRequestID(start time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return start.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}
