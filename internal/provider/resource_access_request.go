package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

var (
	_ resource.ResourceWithConfigure      = (*accessRequestResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*accessRequestResource)(nil)
	_ resource.ResourceWithValidateConfig = (*accessRequestResource)(nil)
)

func newAccessRequestResource() resource.Resource { return &accessRequestResource{} }

type accessRequestResource struct{ resourceEngine }

func (r *accessRequestResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_access_request"
}

func (r *accessRequestResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Opens ports of an Azure VM or EC2 instance locked by a `jit_policy` for one source until an end time. " +
			"On Azure: an inbound Allow in every network security group on the VM's path, ahead of the JIT deny; when the policy " +
			"denies through an Azure Firewall, a DNAT rule there too, and allows for the firewall's own addresses in the NSGs. " +
			"On AWS: a security group of the request's own, allowing the ports from the source, attached to the instance's " +
			"primary network interface beside the groups it has. The request is checked at plan time against the policy as the " +
			"cloud records it (so it works from a configuration without the policy). Once a port's end time passes, the next " +
			"refresh marks it `Expired` and the plan shows its rules' removal; `terraform-provider-jit revoke-expired` removes " +
			"expired grants without any state. Destroying the request before its end revokes it. A newer request for the same " +
			"VM and port by the same requester (same `requestor` and `on_behalf_of`) supersedes this one (the port becomes `Revoked`, " +
			"reason `NewerRequestInitiated`); other people's grants stand side by side, each with its own rule and end.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true,
				MarkdownDescription: "Request ID: the start time and a random suffix. Each grant carries it in the cloud (in its rules' " +
					"names on Azure, in its security group's `jit-request` tag on AWS) with a marker (end time, and the requestor and " +
					"justification abbreviated to fit) in the rule's description or the group's `jit-grant` tag, so grants are found " +
					"and revoked without state. Who asked and why are recorded whole: on AWS in the group's `jit-requestor`, " +
					"`jit-on-behalf-of` and `jit-justification` tags, on Azure in the VM's `jit-record-<id>-requestor`, " +
					"`-on-behalf-of` and `-justification` tags. A value longer than a tag's 256 characters is cut visibly: " +
					"its beginning, `…sha256:` and the SHA-256 of the whole.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"virtual_machine_id": schema.StringAttribute{
				Required: true, MarkdownDescription: virtualMachineToOpenDescription,
				PlanModifiers: replace, Validators: []validator.String{virtualMachineIDValidator},
			},
			"justification": schema.StringAttribute{
				Required: true, MarkdownDescription: "Why access is needed (a ticket, an incident), up to 256 characters; recorded whole with every grant.",
				PlanModifiers: replace, Validators: []validator.String{stringvalidator.LengthBetween(1, 256), freeTextValidator},
			},
			"on_behalf_of": schema.StringAttribute{
				Optional: true, MarkdownDescription: onBehalfOfDescription,
				PlanModifiers: replace, Validators: []validator.String{onBehalfOfValidator},
			},
			"requestor": schema.StringAttribute{
				Computed: true, MarkdownDescription: requestorDescription,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"start_time_utc": schema.StringAttribute{
				Computed: true, CustomType: timetypes.RFC3339Type{}, MarkdownDescription: "When access was granted.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"rules": accessRequestRulesAttribute,
		},
		Blocks: map[string]schema.Block{
			"port": schema.ListNestedBlock{
				MarkdownDescription: portToOpenDescription,
				Validators:          []validator.List{listvalidator.IsRequired(), listvalidator.SizeAtLeast(1)},
				NestedObject: schema.NestedBlockObject{Attributes: map[string]schema.Attribute{
					"number": schema.Int64Attribute{
						Required: true, MarkdownDescription: "Port number.",
						Validators:    []validator.Int64{int64validator.Between(0, 65535)},
						PlanModifiers: []planmodifier.Int64{int64planmodifier.RequiresReplace()},
					},
					"protocol": schema.StringAttribute{
						Optional: true, Computed: true,
						MarkdownDescription: portProtocolDescription,
						Validators:          []validator.String{protocolValidator},
						PlanModifiers:       replace,
					},
					"allowed_source_address_prefix": schema.StringAttribute{
						Required: true, PlanModifiers: replace, Validators: []validator.String{sourcePrefixValidator},
						MarkdownDescription: "The source to open the port to: a CIDR or IP inside one of the prefixes the policy allows " +
							"(`*` only when the policy allows any source).",
					},
					"duration": schema.StringAttribute{
						Optional: true, PlanModifiers: replace,
						MarkdownDescription: "How long to open the port, as an ISO 8601 duration (`PT1H`) up to the policy's maximum. " +
							"Exactly one of `duration` and `end_time_utc`.",
						Validators: []validator.String{requestDurationValidator},
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
						Computed: true, MarkdownDescription: "`Expired` once the port's end time passed, or `NewerRequestInitiated` once a newer request by the same requestor for the same VM and port took it over; empty while the port is open.",
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

// Descriptions the request and the ephemeral resource share.
const (
	virtualMachineToOpenDescription = "The Azure VM resource ID (`/subscriptions/…/virtualMachines/NAME`) or EC2 instance ID (`i-…`) to open."
	portToOpenDescription           = "A port to open; it must be locked by the VM's policy."
	portProtocolDescription         = "`TCP`, `UDP` or `*`; by default the protocol the policy locks the port for."
	requestorDescription            = "Who asked: the identity the provider's credentials belong to in the VM's cloud. Azure: the token's user " +
		"principal name, else `app:<application ID>` or `oid:<object ID>`. AWS: the ARN `sts:GetCallerIdentity` returns, such as " +
		"`arn:aws:sts::123456789012:assumed-role/ROLE/SESSION`. Recorded whole with every grant."
	onBehalfOfDescription = "The person the authenticated identity acts for: when CI applies a reviewed request, the pull request's " +
		"author. Recorded whole beside `requestor` with every grant; a newer request supersedes an older one only when both agree. " +
		"Up to 256 characters, without control or bidirectional formatting characters."
)

// accessRequestRulesAttribute is every grant rule a request holds.
var accessRequestRulesAttribute = schema.ListNestedAttribute{
	Computed:            true,
	MarkdownDescription: "Every grant rule the request holds in the cloud; empty once every port expired or was superseded.",
	NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
		"target_id": schema.StringAttribute{Computed: true, MarkdownDescription: "Azure: the network security group, or the Azure Firewall (for its DNAT rule), holding the rule. AWS: the request's security group."},
		"name":      schema.StringAttribute{Computed: true, MarkdownDescription: "Azure: the rule's name. AWS: the network interface the group is attached to."},
		"priority":  schema.Int64Attribute{Computed: true, MarkdownDescription: "Azure: the rule's priority (the DNAT collection's on a firewall). AWS: 0, security groups have none."},
		"port":      schema.Int64Attribute{Computed: true, MarkdownDescription: "Granted port."},
		"protocol":  schema.StringAttribute{Computed: true, MarkdownDescription: "Granted protocol."},
	}},
}

// ValidateConfig requires exactly one of duration and end_time_utc per
// port. It reads the configuration as written, so an end time that is not
// RFC 3339 still counts as given (its own validator says what is wrong
// with it) instead of reading as missing.
func (r *accessRequestResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var ports []tftypes.Value
	if err := tftypesAt(req.Config.Raw, "port").As(&ports); err != nil {
		return // unknown or absent: checked once known
	}
	for i, p := range ports {
		var fields map[string]tftypes.Value
		if err := p.As(&fields); err != nil {
			continue
		}
		duration, end := fields["duration"], fields["end_time_utc"]
		if !duration.IsKnown() || !end.IsKnown() {
			continue
		}
		if duration.IsNull() == end.IsNull() {
			resp.Diagnostics.AddAttributeError(path.Root("port").AtListIndex(i), "Invalid Attribute Combination",
				"Set exactly one of duration (an ISO 8601 duration such as PT1H) and end_time_utc (an RFC 3339 time such as 2026-11-29T10:00:00Z).")
		}
	}
}

// ModifyPlan checks a new request against the VM's policy as the cloud
// records it, and shows an existing request's expired ports losing their
// rules (never a re-grant).
func (r *accessRequestResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowRequest)
	if req.Plan.Raw.IsNull() || r.engine == nil {
		return
	}
	var plan accessRequestModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if req.State.Raw.IsNull() || len(resp.RequiresReplace) > 0 {
		resp.Diagnostics.Append(r.planNew(ctx, &plan)...)
	} else {
		var state accessRequestModel
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
		if resp.Diagnostics.HasError() {
			return
		}
		resp.Diagnostics.Append(r.planExisting(ctx, &plan, &state)...)
	}
	if !resp.Diagnostics.HasError() {
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	}
}

func (r *accessRequestResource) planNew(ctx context.Context, plan *accessRequestModel) diag.Diagnostics {
	var diags diag.Diagnostics
	for i := range plan.Ports {
		plan.Ports[i].Status = types.StringValue(string(jit.GrantInitiated))
		plan.Ports[i].StatusReason = types.StringNull()
	}
	if plan.VirtualMachineID.IsUnknown() || !plan.portsKnown() {
		return diags // checked at apply, once known
	}
	request, diags := plan.request()
	if diags.HasError() {
		return diags
	}
	resolved, findings := r.engine.PlanRequest(ctx, request)
	addFindings(&diags, findings...)
	for i, pp := range resolved {
		if plan.Ports[i].Protocol.IsUnknown() {
			plan.Ports[i].Protocol = types.StringValue(string(pp.Protocol))
		}
	}
	return diags
}

// planExisting shows ports that ended losing their rules, and ports whose
// rules were deleted out of band granted again, until their end time.
func (r *accessRequestResource) planExisting(ctx context.Context, plan, state *accessRequestModel) diag.Diagnostics {
	rules, diags := state.rules(ctx)
	ports, d := plan.heldPorts()
	if diags.Append(d...); diags.HasError() {
		return diags
	}
	open, missing, err := r.engine.PlanHeldRequest(ctx, plan.VirtualMachineID.ValueString(), ports, rules)
	if err != nil {
		diags.AddAttributeError(path.Root("virtual_machine_id"), "Cannot read virtual machine", err.Error())
		return diags
	}
	plan.setPortStatuses(ports)
	if missing {
		plan.Rules = types.ListUnknown(accessRequestRulesAttribute.NestedObject.Type())
		return diags
	}
	plan.Rules, d = grantRulesValue(ctx, open)
	return append(diags, d...)
}

func (r *accessRequestResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowRequest)
	var plan accessRequestModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := withTimeout(ctx, plan.Timeouts.Create, &resp.Diagnostics)
	defer cancel()

	request, diags := plan.request()
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	o, findings := r.engine.OpenRequest(ctx, request)
	addFindings(&resp.Diagnostics, findings...)
	if o == nil {
		return
	}
	resp.Diagnostics.Append(plan.setOpened(ctx, o)...)
	// The request is kept in state once it has an ID, even when opening
	// it failed: rules written before the error, and a write whose answer
	// never came (a timeout) but which the cloud may still apply, are the
	// request's, found by its ID. Terraform marks it tainted, and the
	// replacement's destroy removes whatever of it the cloud holds; without
	// the ID nothing would, and the next apply would open another request
	// beside them.
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *accessRequestResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowRequest)
	var state accessRequestModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := withTimeout(ctx, state.Timeouts.Read, &resp.Diagnostics)
	defer cancel()

	ref, diags := state.grantRef(ctx, state.portProtocols())
	resp.Diagnostics.Append(diags...)
	ref, o, err := r.engine.ObserveRequest(ctx, ref)
	if err != nil {
		resp.Diagnostics.AddError("Cannot read the request's grants", err.Error())
		return
	}
	if ref.Machine == nil && len(o.Rules) == 0 {
		resp.Diagnostics.AddWarning("Virtual machine gone", fmt.Sprintf("%s no longer exists and no grant of request %s is left; the request is removed from state.", ref.MachineID, ref.RequestID))
		resp.State.RemoveResource(ctx)
		return
	}
	ports, d := state.heldPorts()
	if resp.Diagnostics.Append(d...); d.HasError() {
		return
	}
	r.engine.RefreshPorts(ctx, ports, o.Superseded)
	state.setPortStatuses(ports)
	if o.Record != nil {
		checkRecord(&resp.Diagnostics, ref.RequestID, state.record(), *o.Record)
	}
	state.Rules, diags = grantRulesValue(ctx, o.Rules)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update removes the rules of ports that ended, and grants again, until
// their end time, ports whose rules were deleted out of band. Nothing
// else of a request can change in place.
func (r *accessRequestResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowRequest)
	var plan, state accessRequestModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := withTimeout(ctx, plan.Timeouts.Update, &resp.Diagnostics)
	defer cancel()

	held, diags := state.rules(ctx)
	resp.Diagnostics.Append(diags...)
	ports, diags := plan.heldPorts()
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	closed, open := engine.PortsToClose(ports, held)
	ref, diags := state.grantRef(ctx, closed)
	resp.Diagnostics.Append(diags...)
	if err := r.engine.CloseRequest(ctx, ref); err != nil {
		resp.Diagnostics.AddError("Cannot remove expired grants", err.Error())
		return
	}
	rules, diags := plan.rules(ctx)
	resp.Diagnostics.Append(diags...)
	if plan.Rules.IsUnknown() && len(open) > 0 {
		g, diags := state.grant(open)
		resp.Diagnostics.Append(diags...)
		if diags.HasError() {
			return
		}
		opened, err := r.engine.Regrant(ctx, g, plan.VirtualMachineID.ValueString())
		rules = opened.Rules
		if err != nil {
			resp.Diagnostics.AddError("Cannot grant access again", err.Error())
		}
	}
	plan.Rules, diags = grantRulesValue(ctx, rules)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// Delete revokes whatever the request still holds.
func (r *accessRequestResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowRequest)
	var state accessRequestModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := withTimeout(ctx, state.Timeouts.Delete, &resp.Diagnostics)
	defer cancel()

	ref, diags := state.grantRef(ctx, state.portProtocols())
	resp.Diagnostics.Append(diags...)
	ref.Final = true
	if err := r.engine.CloseRequest(ctx, ref); err != nil {
		resp.Diagnostics.AddError("Cannot revoke access", err.Error())
	}
}
