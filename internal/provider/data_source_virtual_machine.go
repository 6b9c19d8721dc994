package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

var _ datasource.DataSourceWithConfigure = (*virtualMachineDataSource)(nil)

func newVirtualMachineDataSource() datasource.DataSource { return &virtualMachineDataSource{} }

type virtualMachineDataSource struct {
	engine *engine.Engine
}

// lockedPortsAttribute and networkInterfacesAttribute are read by the
// model conversions for their object types.
var lockedPortsAttribute = schema.ListNestedAttribute{
	Computed:            true,
	MarkdownDescription: "The ports the policy locks, with the limits a request must respect, read from the machine's tags.",
	NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
		"number":                          schema.Int64Attribute{Computed: true, MarkdownDescription: "Port number."},
		"protocol":                        schema.StringAttribute{Computed: true, MarkdownDescription: "`TCP`, `UDP` or `*`."},
		"allowed_source_address_prefixes": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Sources a request may open the port to."},
		"max_request_access_duration":     schema.StringAttribute{Computed: true, MarkdownDescription: "Longest access a request may get (ISO 8601)."},
	}},
}

var networkInterfacesAttribute = schema.ListNestedAttribute{
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
				Validators:          []validator.String{virtualMachineIDValidator},
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
			"locked_ports":       lockedPortsAttribute,
			"network_interfaces": networkInterfacesAttribute,
		},
	}
}

func (d *virtualMachineDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.engine = configuredEngine(req.ProviderData, &resp.Diagnostics)
}

func (d *virtualMachineDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowAudit)
	var data virtualMachineModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &data)...)
	if resp.Diagnostics.HasError() {
		return
	}
	m, err := d.engine.Machine(ctx, data.VirtualMachineID.ValueString())
	if err != nil {
		summary := "Cannot read virtual machine"
		if engine.IsNotFound(err) {
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
	locked := make([]lockedPort, len(ports))
	for i, p := range ports {
		locked[i] = lockedPort{Number: int64(p.Number), Protocol: string(p.Protocol), AllowedSourceAddressPrefixes: p.AllowedSourcePrefixes, MaxRequestAccessDuration: p.MaxRequestAccessDuration.String()}
	}
	nics := make([]networkInterface, len(m.Interfaces))
	for i, nic := range m.Interfaces {
		nics[i] = networkInterface{
			ID: nic.ID, SubnetID: nic.SubnetID, PrivateIPAddresses: orEmpty(nic.PrivateIPs),
			NetworkSecurityGroupID: nic.NetworkSecurityGroupID, SubnetNetworkSecurityGroupID: nic.SubnetNetworkSecurityGroupID,
			SecurityGroupIDs: orEmpty(nic.SecurityGroupIDs),
		}
	}
	var diags diag.Diagnostics
	data.ID = types.StringValue(m.ID)
	data.Cloud = types.StringValue(string(m.Cloud))
	data.Name = types.StringValue(m.Name)
	data.Location = types.StringValue(m.Location)
	data.Classification = types.StringValue(string(classification))
	data.UnsupportedReason = types.StringValue(reason)
	data.PrivateIPAddresses = stringList(m.PrivateIPs())
	data.SecurityGroupIDs = stringList(m.FilterIDs())
	data.PolicyName = types.StringValue(policy)
	data.LockedPorts, diags = types.ListValueFrom(ctx, lockedPortsAttribute.NestedObject.Type(), locked)
	resp.Diagnostics.Append(diags...)
	data.NetworkInterfaces, diags = types.ListValueFrom(ctx, networkInterfacesAttribute.NestedObject.Type(), nics)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &data)...)
}
