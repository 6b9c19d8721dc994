package provider

import (
	"context"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

func newVirtualMachinesDataSource() datasource.DataSource { return &virtualMachinesDataSource{} }

var _ datasource.DataSourceWithConfigure = (*virtualMachinesDataSource)(nil)

type virtualMachinesDataSource struct{ dataSourceEngine }

func (d *virtualMachinesDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_virtual_machines"
}

// fleetMachineAttribute is one machine of the list.
func fleetMachineAttribute() schema.ListNestedAttribute {
	attrs := assessmentAttributes()
	attrs["id"] = computedString("The VM or instance ID, as the cloud spells it.")
	return computedObjects("The machines of the scope that pass the filters, sorted by cloud then ID, each with the attributes "+
		"`jit_virtual_machine` reports (network interfaces aside).", attrs)
}

func (d *virtualMachinesDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Every Azure VM of the subscription the provider's `azure` block names (or of some of its resource groups) " +
			"and every EC2 instance of the `aws` block's region, classified as `jit_virtual_machine` does, in one list that outputs, " +
			"`check` blocks and `tofu show -json` carry: the input of policy-as-code checks that fail a pull request when a machine " +
			"with a management port open to the internet is `Not configured`. Reads are batched: list calls per kind of object, " +
			"page by page, and one read per network security group, subnet or firewall the lists leave out; never one per machine. " +
			"Reads only: the `audit` role of `jit_role_definition` is enough.",
		Attributes: map[string]schema.Attribute{
			"id": computedString("The scope read: the clouds configured, for Terraform's sake."),
			"azure_resource_group_names": schema.ListAttribute{
				Optional: true, ElementType: types.StringType,
				MarkdownDescription: "Azure: only these resource groups of the subscription. Default: the whole subscription. " +
					"NICs, subnets and NSGs of other resource groups on the VMs' paths are still read.",
				Validators: []validator.List{listvalidator.SizeAtLeast(1), listvalidator.UniqueValues(),
					listvalidator.ValueStringsAre(stringvalidator.LengthBetween(1, 90))},
			},
			"azure_firewall_id": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "Azure: an Azure Firewall in front of the scope's VMs. One managed by a Firewall Policy makes them " +
					"`Unsupported`; the firewall each VM's policy names is checked too.",
				Validators: []validator.String{azureFirewallIDValidator},
			},
			"tags": schema.MapAttribute{
				Optional: true, ElementType: types.StringType,
				MarkdownDescription: "Only the machines carrying every one of these tags with these values.",
			},
			"classifications": schema.ListAttribute{
				Optional: true, ElementType: types.StringType,
				MarkdownDescription: "Only the machines of these classifications: `Configured`, `Not configured`, `Unsupported`.",
				Validators: []validator.List{listvalidator.SizeAtLeast(1), listvalidator.UniqueValues(),
					listvalidator.ValueStringsAre(stringvalidator.OneOf(string(jit.Configured), string(jit.NotConfigured), string(jit.Unsupported)))},
			},
			"exposed_management_port": schema.BoolAttribute{
				Optional: true,
				MarkdownDescription: "`true`: only the machines with a management port open to the internet at large (see `exposures`); " +
					"`false`: only those without.",
			},
			"virtual_machines": fleetMachineAttribute(),
		},
	}
}

func (d *virtualMachinesDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowAudit)
	var data virtualMachinesModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &data)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var scope engine.SurveyScope
	var filter engine.FleetFilter
	resp.Diagnostics.Append(data.AzureResourceGroups.ElementsAs(ctx, &scope.ResourceGroups, true)...)
	resp.Diagnostics.Append(data.Tags.ElementsAs(ctx, &scope.Tags, true)...)
	var classes []string
	resp.Diagnostics.Append(data.Classifications.ElementsAs(ctx, &classes, true)...)
	if resp.Diagnostics.HasError() {
		return
	}
	scope.Front = data.AzureFirewallID.ValueString()
	for _, c := range classes {
		filter.Classifications = append(filter.Classifications, jit.Classification(c))
	}
	if !data.ExposedManagementPort.IsNull() {
		exposed := data.ExposedManagementPort.ValueBool()
		filter.Exposed = &exposed
	}
	assessments, err := d.engine.AssessFleet(ctx, scope, filter)
	if engine.IsNotFound(err) && len(scope.ResourceGroups) > 0 {
		resp.Diagnostics.AddAttributeError(path.Root("azure_resource_group_names"), "Resource group not found", err.Error())
		return
	}
	addFindings(&resp.Diagnostics, engine.ErrorFindings("Cannot list virtual machines", err)...)
	if resp.Diagnostics.HasError() {
		return
	}
	machines := make([]fleetMachineModel, len(assessments))
	for i := range assessments {
		a := &assessments[i]
		addFindings(&resp.Diagnostics, a.Findings...)
		m, diags := newAssessmentModel(ctx, a)
		resp.Diagnostics.Append(diags...)
		machines[i] = fleetMachineModel{ID: types.StringValue(a.Machine.ID), assessmentModel: m}
	}
	var diags diag.Diagnostics
	data.VirtualMachines, diags = types.ListValueFrom(ctx, fleetMachineAttribute().NestedObject.Type(), machines)
	resp.Diagnostics.Append(diags...)
	clouds := make([]string, 0, len(d.engine.Backends()))
	for _, b := range d.engine.Backends() {
		clouds = append(clouds, b.Name())
	}
	slices.Sort(clouds)
	data.ID = types.StringValue(strings.Join(clouds, ","))
	resp.Diagnostics.Append(resp.State.Set(ctx, &data)...)
}
