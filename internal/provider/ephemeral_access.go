package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral"
	"github.com/hashicorp/terraform-plugin-framework/ephemeral/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

var (
	_ ephemeral.EphemeralResourceWithConfigure = (*accessEphemeral)(nil)
	_ ephemeral.EphemeralResourceWithRenew     = (*accessEphemeral)(nil)
	_ ephemeral.EphemeralResourceWithClose     = (*accessEphemeral)(nil)
)

func newAccessEphemeral() ephemeral.EphemeralResource { return &accessEphemeral{} }

// accessEphemeral is jit_access: a grant for the length of one run.
type accessEphemeral struct {
	engine *engine.Engine
}

// openGrantState is what Renew and Close need, kept in private data.
type openGrantState struct {
	MachineID string
	Duration  jit.Duration
	Grant     engine.Grant
}

const privateGrantKey = "grant"

func (e *accessEphemeral) Metadata(_ context.Context, req ephemeral.MetadataRequest, resp *ephemeral.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_access"
}

func (e *accessEphemeral) Schema(_ context.Context, _ ephemeral.SchemaRequest, resp *ephemeral.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Opens ports of a VM locked by a `jit_policy` for the length of a run (Terraform ≥ 1.10, OpenTofu ≥ 1.11): " +
			"the grant is written when the run opens it, extended within the policy's maximum while the run needs it, and " +
			"revoked when the run closes it. Nothing is kept in state. A run killed before closing leaves a grant that " +
			"expires like any other (see `revoke-expired`). The checks are those of `jit_access_request`.",
		Attributes: map[string]schema.Attribute{
			"virtual_machine_id": schema.StringAttribute{
				Required: true, MarkdownDescription: "The Azure VM resource ID to open.",
				Validators: []validator.String{virtualMachineIDValidator},
			},
			"justification": schema.StringAttribute{
				Required: true, MarkdownDescription: "Why access is needed; recorded on every grant.",
				Validators: []validator.String{stringvalidator.LengthBetween(1, 256), freeTextValidator},
			},
			"duration": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "How long each opening lasts, as an ISO 8601 duration within the policy's maximum; renewals extend by as much.",
				Validators:          []validator.String{requestDurationValidator},
			},
			"id":             schema.StringAttribute{Computed: true, MarkdownDescription: "Request ID."},
			"requestor":      schema.StringAttribute{Computed: true, MarkdownDescription: "The identity the provider's credentials belong to."},
			"start_time_utc": schema.StringAttribute{Computed: true, MarkdownDescription: "When access was granted, RFC 3339."},
			"end_time_utc":   schema.StringAttribute{Computed: true, MarkdownDescription: "When access ends unless renewed, RFC 3339."},
			"connection_details": schema.ListAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "Where to connect for each `port`, in order: the VM's private IP and the port.",
			},
		},
		Blocks: map[string]schema.Block{
			"port": schema.ListNestedBlock{
				MarkdownDescription: "A port to open; it must be locked by the VM's policy.",
				Validators:          []validator.List{listvalidator.IsRequired(), listvalidator.SizeAtLeast(1)},
				NestedObject: schema.NestedBlockObject{Attributes: map[string]schema.Attribute{
					"number": schema.Int64Attribute{
						Required: true, MarkdownDescription: "Port number.",
						Validators: []validator.Int64{int64validator.Between(0, 65535)},
					},
					"protocol": schema.StringAttribute{
						Optional: true, MarkdownDescription: "`TCP`, `UDP` or `*`; by default the protocol the policy locks the port for.",
						Validators: []validator.String{protocolValidator},
					},
					"allowed_source_address_prefix": schema.StringAttribute{
						Required: true, MarkdownDescription: "The source to open the port to, inside a prefix the policy allows.",
						Validators: []validator.String{sourcePrefixValidator},
					},
				}},
			},
		},
	}
}

func (e *accessEphemeral) Configure(_ context.Context, req ephemeral.ConfigureRequest, resp *ephemeral.ConfigureResponse) {
	e.engine = configuredEngine(req.ProviderData, &resp.Diagnostics)
}

func (e *accessEphemeral) Open(ctx context.Context, req ephemeral.OpenRequest, resp *ephemeral.OpenResponse) {
	var cfg accessEphemeralModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	o, findings := e.engine.OpenRequest(ctx, cfg.request())
	addFindings(&resp.Diagnostics, findings...)
	if o == nil {
		return
	}
	end := o.Grant.Ports[0].End
	if resp.Diagnostics.HasError() {
		// Leave nothing half-open behind.
		ref := engine.GrantRef{MachineID: cfg.VirtualMachineID.ValueString(), RequestID: o.Grant.ID, Requestor: o.Grant.Requestor, Ports: o.Resolved}
		if err := e.engine.CloseRequest(ctx, ref); err != nil {
			resp.Diagnostics.AddError("Cannot withdraw a partial grant", err.Error()+"; it expires at "+end.Format(time.RFC3339))
		}
		return
	}
	duration, _ := jit.ParseDuration(cfg.Duration.ValueString())
	cfg.ID, cfg.Requestor = types.StringValue(o.Grant.ID), types.StringValue(o.Grant.Requestor)
	cfg.StartTimeUTC, cfg.EndTimeUTC = types.StringValue(o.Start.Format(time.RFC3339)), types.StringValue(end.Format(time.RFC3339))
	details := make([]string, len(o.Resolved))
	for i, pp := range o.Resolved {
		details[i] = o.Opened.Connect[pp]
	}
	cfg.ConnectionDetails = stringList(details)
	resp.Diagnostics.Append(resp.Result.Set(ctx, &cfg)...)
	resp.Diagnostics.Append(savePrivate(ctx, resp.Private, openGrantState{MachineID: cfg.VirtualMachineID.ValueString(), Duration: duration, Grant: o.Grant})...)
	resp.RenewAt = renewAt(end, duration)
}

// Renew extends every port to now plus the duration, within the policy's
// maximum, since the duration was checked against it.
func (e *accessEphemeral) Renew(ctx context.Context, req ephemeral.RenewRequest, resp *ephemeral.RenewResponse) {
	state, diags := loadPrivate(ctx, req.Private)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	end := e.engine.Clock().Now().UTC().Truncate(time.Second).Add(state.Duration.Std())
	for i := range state.Grant.Ports {
		state.Grant.Ports[i].End = end
	}
	if _, err := e.engine.Regrant(ctx, state.Grant, state.MachineID); err != nil {
		resp.Diagnostics.AddError("Cannot extend access", err.Error())
		return
	}
	resp.Diagnostics.Append(savePrivate(ctx, resp.Private, state)...)
	resp.RenewAt = renewAt(end, state.Duration)
}

func (e *accessEphemeral) Close(ctx context.Context, req ephemeral.CloseRequest, resp *ephemeral.CloseResponse) {
	state, diags := loadPrivate(ctx, req.Private)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ref := engine.GrantRef{MachineID: state.MachineID, RequestID: state.Grant.ID, Requestor: state.Grant.Requestor}
	for _, p := range state.Grant.Ports {
		ref.Ports = append(ref.Ports, p.Port)
	}
	if err := e.engine.CloseRequest(ctx, ref); err != nil {
		resp.Diagnostics.AddError("Cannot revoke access", err.Error())
	}
}

// renewAt asks for renewal a little before the end: a fifth of the
// duration, at most five minutes.
func renewAt(end time.Time, d jit.Duration) time.Time {
	return end.Add(-min(5*time.Minute, d.Std()/5))
}

type privateData interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
	SetKey(context.Context, string, []byte) diag.Diagnostics
}

func savePrivate(ctx context.Context, p privateData, state openGrantState) diag.Diagnostics {
	b, err := json.Marshal(state)
	if err != nil {
		var diags diag.Diagnostics
		diags.AddError("Cannot keep the grant's details", err.Error())
		return diags
	}
	return p.SetKey(ctx, privateGrantKey, b)
}

func loadPrivate(ctx context.Context, p privateData) (openGrantState, diag.Diagnostics) {
	var state openGrantState
	b, diags := p.GetKey(ctx, privateGrantKey)
	if diags.HasError() {
		return state, diags
	}
	if err := json.Unmarshal(b, &state); err != nil || state.Grant.ID == "" {
		diags.AddError("Lost the grant's details", fmt.Sprintf("The private data of the open grant cannot be read (%v); it expires on its own.", err))
	}
	return state, diags
}
