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

const privateGrantKey = "grant"

func (e *accessEphemeral) Metadata(_ context.Context, req ephemeral.MetadataRequest, resp *ephemeral.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_access"
}

func (e *accessEphemeral) Schema(_ context.Context, _ ephemeral.SchemaRequest, resp *ephemeral.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Opens ports of an Azure VM or EC2 instance locked by a `jit_policy` for the length of a run " +
			"(Terraform ≥ 1.10, OpenTofu ≥ 1.11): the grant is written when the run opens it, extended within the policy's " +
			"maximum while the run needs it, and revoked when the run closes it. Nothing is kept in state. The grants and the " +
			"checks are those of `jit_access_request`: Allow rules in the VM's network security groups (and a DNAT rule on the " +
			"policy's Azure Firewall) on Azure, a security group of the request's own on the instance's primary network " +
			"interface on AWS, each recording who asked and why. A run killed before closing leaves a grant that expires like " +
			"any other (see `revoke-expired`).",
		Attributes: map[string]schema.Attribute{
			"virtual_machine_id": schema.StringAttribute{
				Required: true, MarkdownDescription: virtualMachineToOpenDescription,
				Validators: []validator.String{virtualMachineIDValidator},
			},
			"justification": schema.StringAttribute{
				Required: true, MarkdownDescription: "Why access is needed (a ticket, a deployment), up to 256 characters; recorded whole with every grant.",
				Validators: []validator.String{stringvalidator.LengthBetween(1, 256), freeTextValidator},
			},
			"on_behalf_of": schema.StringAttribute{
				Optional: true, MarkdownDescription: onBehalfOfDescription,
				Validators: []validator.String{onBehalfOfValidator},
			},
			"duration": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "How long each opening lasts, as an ISO 8601 duration within the policy's maximum; renewals extend by as much.",
				Validators:          []validator.String{requestDurationValidator},
			},
			"id":             schema.StringAttribute{Computed: true, MarkdownDescription: "Request ID."},
			"requestor":      schema.StringAttribute{Computed: true, MarkdownDescription: requestorDescription},
			"start_time_utc": schema.StringAttribute{Computed: true, MarkdownDescription: "When access was granted, RFC 3339."},
			"end_time_utc":   schema.StringAttribute{Computed: true, MarkdownDescription: "When access ends unless renewed, RFC 3339."},
			"connection_details": schema.ListAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "Where to connect for each `port`, in order: the VM's private IP and the port; through the policy's Azure Firewall, the firewall's public IP and the mapped port its DNAT rule listens on.",
			},
		},
		Blocks: map[string]schema.Block{
			"port": schema.ListNestedBlock{
				MarkdownDescription: portToOpenDescription,
				Validators:          []validator.List{listvalidator.IsRequired(), listvalidator.SizeAtLeast(1)},
				NestedObject: schema.NestedBlockObject{Attributes: map[string]schema.Attribute{
					"number": schema.Int64Attribute{
						Required: true, MarkdownDescription: "Port number.",
						Validators: []validator.Int64{int64validator.Between(0, 65535)},
					},
					"protocol": schema.StringAttribute{
						Optional: true, MarkdownDescription: portProtocolDescription,
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
	ctx = engine.WithFlow(ctx, engine.FlowRequest)
	var cfg accessEphemeralModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	o, renewal, findings := e.engine.OpenEphemeral(ctx, cfg.request())
	addFindings(&resp.Diagnostics, findings...)
	if o == nil {
		return
	}
	end := o.Grant.Ports[0].End
	if resp.Diagnostics.HasError() {
		// Leave nothing half-open behind.
		if err := e.engine.CloseEphemeral(ctx, renewal); err != nil {
			resp.Diagnostics.AddError("Cannot withdraw a partial grant", err.Error()+"; it expires at "+end.Format(time.RFC3339))
		}
		return
	}
	cfg.ID, cfg.Requestor = types.StringValue(o.Grant.ID), types.StringValue(o.Grant.Requestor)
	cfg.StartTimeUTC, cfg.EndTimeUTC = types.StringValue(o.Start.Format(time.RFC3339)), types.StringValue(end.Format(time.RFC3339))
	details := make([]string, len(o.Resolved))
	for i, pp := range o.Resolved {
		details[i] = o.Opened.Connect[pp]
	}
	cfg.ConnectionDetails = stringList(details)
	resp.Diagnostics.Append(resp.Result.Set(ctx, &cfg)...)
	resp.Diagnostics.Append(savePrivate(ctx, resp.Private, renewal)...)
	resp.RenewAt = renewAt(end, o.Start)
}

// Renew extends every port by the duration, re-checked against the policy
// and never past its maximum counted from the first Open; a grant the
// policy no longer allows is closed instead.
func (e *accessEphemeral) Renew(ctx context.Context, req ephemeral.RenewRequest, resp *ephemeral.RenewResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowRequest)
	state := loadPrivate(ctx, req.Private, &resp.Diagnostics)
	if state == nil {
		return
	}
	final, findings := e.engine.Renew(ctx, state)
	addFindings(&resp.Diagnostics, findings...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(savePrivate(ctx, resp.Private, state)...)
	if !final {
		resp.RenewAt = renewAt(state.Grant.Ports[0].End, e.engine.Clock().Now())
	}
}

func (e *accessEphemeral) Close(ctx context.Context, req ephemeral.CloseRequest, resp *ephemeral.CloseResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowRequest)
	state := loadPrivate(ctx, req.Private, &resp.Diagnostics)
	if state == nil {
		return
	}
	if err := e.engine.CloseEphemeral(ctx, state); err != nil {
		resp.Diagnostics.AddError("Cannot revoke access", err.Error())
	}
}

// renewAt asks for renewal a little before the end: a fifth of the time
// left, at most five minutes.
func renewAt(end, now time.Time) time.Time {
	return end.Add(-min(5*time.Minute, end.Sub(now)/5))
}

type privateData interface {
	GetKey(context.Context, string) ([]byte, diag.Diagnostics)
	SetKey(context.Context, string, []byte) diag.Diagnostics
}

func savePrivate(ctx context.Context, p privateData, state *engine.Renewal) diag.Diagnostics {
	b, err := json.Marshal(state)
	if err != nil {
		var diags diag.Diagnostics
		diags.AddError("Cannot keep the grant's details", err.Error())
		return diags
	}
	return p.SetKey(ctx, privateGrantKey, b)
}

// loadPrivate reads the grant Open kept; nil, the error in diags, when it
// cannot.
func loadPrivate(ctx context.Context, p privateData, diags *diag.Diagnostics) *engine.Renewal {
	b, d := p.GetKey(ctx, privateGrantKey)
	if diags.Append(d...); d.HasError() {
		return nil
	}
	state := &engine.Renewal{}
	if err := json.Unmarshal(b, state); err != nil || state.Grant.ID == "" {
		diags.AddError("Lost the grant's details", fmt.Sprintf("The private data of the open grant cannot be read (%v); it expires on its own.", err))
		return nil
	}
	return state
}
