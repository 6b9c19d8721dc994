package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

var _ datasource.DataSourceWithConfigure = (*virtualMachineDataSource)(nil)

func newVirtualMachineDataSource() datasource.DataSource { return &virtualMachineDataSource{} }

type virtualMachineDataSource struct {
	clients *clients
}

type virtualMachineModel struct {
	ID                 types.String `tfsdk:"id"`
	VirtualMachineID   types.String `tfsdk:"virtual_machine_id"`
	Cloud              types.String `tfsdk:"cloud"`
	Name               types.String `tfsdk:"name"`
	Location           types.String `tfsdk:"location"`
	Classification     types.String `tfsdk:"classification"`
	UnsupportedReason  types.String `tfsdk:"unsupported_reason"`
	PrivateIPAddresses types.List   `tfsdk:"private_ip_addresses"`
	SecurityGroupIDs   types.List   `tfsdk:"security_group_ids"`
	NetworkInterfaces  types.List   `tfsdk:"network_interfaces"`
	PolicyName         types.String `tfsdk:"policy_name"`
	LockedPorts        types.List   `tfsdk:"locked_ports"`
}

var lockedPortAttrTypes = map[string]attr.Type{
	"number":                          types.Int64Type,
	"protocol":                        types.StringType,
	"allowed_source_address_prefixes": types.ListType{ElemType: types.StringType},
	"max_request_access_duration":     types.StringType,
}

func lockedPortsValue(ports []jit.Port) types.List {
	vals := make([]attr.Value, len(ports))
	for i, p := range ports {
		vals[i] = types.ObjectValueMust(lockedPortAttrTypes, map[string]attr.Value{
			"number":                          types.Int64Value(int64(p.Number)),
			"protocol":                        types.StringValue(string(p.Protocol)),
			"allowed_source_address_prefixes": stringList(p.AllowedSourcePrefixes),
			"max_request_access_duration":     types.StringValue(p.MaxRequestAccessDuration.String()),
		})
	}
	return types.ListValueMust(types.ObjectType{AttrTypes: lockedPortAttrTypes}, vals)
}

var networkInterfaceAttrTypes = map[string]attr.Type{
	"id":                               types.StringType,
	"subnet_id":                        types.StringType,
	"private_ip_addresses":             types.ListType{ElemType: types.StringType},
	"network_security_group_id":        types.StringType,
	"subnet_network_security_group_id": types.StringType,
	"security_group_ids":               types.ListType{ElemType: types.StringType},
}

func (d *virtualMachineDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_virtual_machine"
}

func (d *virtualMachineDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Resolves an Azure VM or an EC2 instance and the network objects traffic to it crosses, " +
			"and classifies it as Defender for Cloud does: `Configured` (a `jit_policy` covers it), " +
			"`Not configured` (it could be protected) or `Unsupported` (with the reason).",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, MarkdownDescription: "The VM or instance ID, as the cloud spells it."},
			"virtual_machine_id": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "An Azure VM resource ID (`/subscriptions/…/providers/Microsoft.Compute/virtualMachines/NAME`) or an EC2 instance ID (`i-…`).",
				Validators:          []validator.String{virtualMachineIDValidator{}},
			},
			"cloud":    schema.StringAttribute{Computed: true, MarkdownDescription: "`azure` or `aws`."},
			"name":     schema.StringAttribute{Computed: true, MarkdownDescription: "The VM name (Azure) or the `Name` tag (EC2)."},
			"location": schema.StringAttribute{Computed: true, MarkdownDescription: "The Azure location or the AWS region."},
			"classification": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "`Configured`, `Not configured` or `Unsupported`.",
			},
			"unsupported_reason": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "Why the machine cannot be protected; empty unless `classification` is `Unsupported`.",
			},
			"private_ip_addresses": schema.ListAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "Private IPs over all network interfaces: the destinations JIT rules are scoped to.",
			},
			"security_group_ids": schema.ListAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "Every network security group (Azure: the NICs' and their subnets') or security group (EC2) on the path, once each.",
			},
			"policy_name": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The `jit_policy` covering the machine, read from its tags; empty when none.",
			},
			"locked_ports": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "The ports the policy locks, with the limits a request must respect, read from the machine's tags.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"number":                          schema.Int64Attribute{Computed: true, MarkdownDescription: "Port number."},
					"protocol":                        schema.StringAttribute{Computed: true, MarkdownDescription: "`TCP`, `UDP` or `*`."},
					"allowed_source_address_prefixes": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Sources a request may open the port to."},
					"max_request_access_duration":     schema.StringAttribute{Computed: true, MarkdownDescription: "Longest access a request may get (ISO 8601)."},
				}},
			},
			"network_interfaces": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "The machine's network interfaces, primary first.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"id":                               schema.StringAttribute{Computed: true, MarkdownDescription: "NIC resource ID or ENI ID."},
					"subnet_id":                        schema.StringAttribute{Computed: true, MarkdownDescription: "Subnet of the interface."},
					"private_ip_addresses":             schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Private IPs of the interface."},
					"network_security_group_id":        schema.StringAttribute{Computed: true, MarkdownDescription: "Azure: the NSG on the NIC, empty when none."},
					"subnet_network_security_group_id": schema.StringAttribute{Computed: true, MarkdownDescription: "Azure: the NSG on the NIC's subnet, empty when none."},
					"security_group_ids":               schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "EC2: the ENI's security groups."},
				}},
			},
		},
	}
}

func (d *virtualMachineDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	if req.ProviderData != nil {
		d.clients = req.ProviderData.(*clients)
	}
}

func (d *virtualMachineDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var data virtualMachineModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &data)...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := data.VirtualMachineID.ValueString()
	m, err := d.clients.machine(ctx, id)
	if err != nil {
		summary := "Cannot read virtual machine"
		if isNotFound(err) {
			summary = "Virtual machine not found"
		}
		resp.Diagnostics.AddAttributeError(path.Root("virtual_machine_id"), summary, err.Error())
		return
	}
	policy, ports, configured, err := jit.PolicyFromTags(m.Tags)
	if err != nil {
		resp.Diagnostics.AddAttributeWarning(path.Root("virtual_machine_id"), "Unreadable policy settings", err.Error())
	}
	classification, reason := jit.Classify(m, configured)
	data.PolicyName = types.StringValue(policy)
	data.LockedPorts = lockedPortsValue(ports)

	nics := make([]attr.Value, 0, len(m.Interfaces))
	for _, nic := range m.Interfaces {
		nics = append(nics, types.ObjectValueMust(networkInterfaceAttrTypes, map[string]attr.Value{
			"id":                               types.StringValue(nic.ID),
			"subnet_id":                        types.StringValue(nic.SubnetID),
			"private_ip_addresses":             stringList(nic.PrivateIPs),
			"network_security_group_id":        types.StringValue(nic.NetworkSecurityGroupID),
			"subnet_network_security_group_id": types.StringValue(nic.SubnetNetworkSecurityGroupID),
			"security_group_ids":               stringList(nic.SecurityGroupIDs),
		}))
	}
	data.ID = types.StringValue(m.ID)
	data.Cloud = types.StringValue(string(m.Cloud))
	data.Name = types.StringValue(m.Name)
	data.Location = types.StringValue(m.Location)
	data.Classification = types.StringValue(string(classification))
	data.UnsupportedReason = types.StringValue(reason)
	data.PrivateIPAddresses = stringList(m.PrivateIPs())
	data.SecurityGroupIDs = stringList(m.FilterIDs())
	data.NetworkInterfaces = types.ListValueMust(types.ObjectType{AttrTypes: networkInterfaceAttrTypes}, nics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &data)...)
}

func stringList(ss []string) types.List {
	vals := make([]attr.Value, len(ss))
	for i, s := range ss {
		vals[i] = types.StringValue(s)
	}
	return types.ListValueMust(types.StringType, vals)
}

// virtualMachineIDValidator rejects IDs that name neither an Azure VM nor an
// EC2 instance, at plan time.
type virtualMachineIDValidator struct{}

func (virtualMachineIDValidator) Description(context.Context) string {
	return "must be an Azure VM resource ID or an EC2 instance ID"
}

func (v virtualMachineIDValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (virtualMachineIDValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if _, err := jit.CloudOf(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid virtual machine ID", err.Error())
	}
}
