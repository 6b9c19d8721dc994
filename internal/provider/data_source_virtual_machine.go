package provider

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

func newVirtualMachineDataSource() datasource.DataSource { return &virtualMachineDataSource{} }

var _ datasource.DataSourceWithConfigure = (*virtualMachineDataSource)(nil)

type virtualMachineDataSource struct{ dataSourceEngine }

// lockedPortsAttribute and networkInterfacesAttribute are read by the
// model conversions for their object types.
var lockedPortsAttribute = computedObjects("The ports the policy locks, with the limits a request must respect, read from the machine's tags.",
	map[string]schema.Attribute{
		"number":                          computedInt64("Port number."),
		"protocol":                        computedString("`TCP`, `UDP` or `*`."),
		"allowed_source_address_prefixes": computedStrings("Sources a request may open the port to."),
		"max_request_access_duration":     computedString("Longest access a request may get (ISO 8601)."),
	})

var networkInterfacesAttribute = computedObjects("The machine's network interfaces, primary first.",
	map[string]schema.Attribute{
		"id":                               computedString("NIC resource ID or ENI ID."),
		"subnet_id":                        computedString("Subnet of the interface."),
		"private_ip_addresses":             computedStrings("Private IPs of the interface."),
		"network_security_group_id":        computedString("Azure: the NSG on the NIC, empty when none."),
		"subnet_network_security_group_id": computedString("Azure: the NSG on the NIC's subnet, empty when none."),
		"security_group_ids":               computedStrings("EC2: the ENI's security groups."),
	})

func (d *virtualMachineDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_virtual_machine"
}

func (d *virtualMachineDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	attrs := assessmentAttributes()
	attrs["id"] = computedString("The VM or instance ID, as the cloud spells it.")
	attrs["virtual_machine_id"] = schema.StringAttribute{
		Required:            true,
		MarkdownDescription: "An Azure VM resource ID (`/subscriptions/…/providers/Microsoft.Compute/virtualMachines/NAME`) or an EC2 instance ID (`i-…`).",
		Validators:          []validator.String{virtualMachineIDValidator},
	}
	attrs["azure_firewall_id"] = schema.StringAttribute{
		Optional: true,
		MarkdownDescription: "Azure: the Azure Firewall in front of the VM, as `jit_policy`'s `azure_firewall_id` would name it. " +
			"A firewall managed by a Firewall Policy (Firewall Manager) makes the VM `Unsupported`. The firewall a policy " +
			"covering the VM names (its `jit-firewall` tag) is checked too. Route tables are not read.",
		Validators: []validator.String{azureFirewallIDValidator},
	}
	attrs["network_interfaces"] = networkInterfacesAttribute
	resp.Schema = schema.Schema{
		MarkdownDescription: "Resolves an Azure VM or an EC2 instance and the network objects traffic to it crosses, " +
			"and classifies it as Defender for Cloud's JIT page does: `Configured` (a `jit_policy` covers it: its locked ports, " +
			"active grants, the requests of the last 7 days and the last requestor), `Not configured` (it could be protected) or " +
			"`Unsupported` (with every reason). It also tells which management ports the path leaves open to the internet " +
			"and whether an NSG on the path holds Defender for Cloud's own JIT rules. Reads only: the `audit` role of " +
			"`jit_role_definition` is enough.",
		Attributes: attrs,
	}
}

func (d *virtualMachineDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	ctx = engine.WithFlow(ctx, engine.FlowAudit)
	var data virtualMachineModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &data)...)
	if resp.Diagnostics.HasError() {
		return
	}
	a, err := d.engine.AssessMachine(ctx, data.VirtualMachineID.ValueString(), data.AzureFirewallID.ValueString())
	if err != nil {
		summary, at := "Cannot read virtual machine", path.Root("virtual_machine_id")
		switch {
		case engine.IsNotFound(err) && data.AzureFirewallID.ValueString() != "" && strings.Contains(err.Error(), data.AzureFirewallID.ValueString()):
			summary, at = "Azure Firewall not found", path.Root("azure_firewall_id")
		case engine.IsNotFound(err):
			summary = "Virtual machine not found"
		}
		resp.Diagnostics.AddAttributeError(at, summary, err.Error())
		return
	}
	addFindings(&resp.Diagnostics, a.Findings...)
	m := a.Machine
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
	data.assessmentModel, diags = newAssessmentModel(ctx, a)
	resp.Diagnostics.Append(diags...)
	data.NetworkInterfaces, diags = types.ListValueFrom(ctx, networkInterfacesAttribute.NestedObject.Type(), nics)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &data)...)
}

// assessmentAttributes are a machine's attributes as both virtual machine
// data sources report them.
func assessmentAttributes() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"cloud":    computedString("`azure` or `aws`."),
		"name":     computedString("The VM name (Azure) or the `Name` tag (EC2)."),
		"location": computedString("The Azure location or the AWS region."),
		"tags":     schema.MapAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "The machine's tags, the policy's settings (`jit-*`) among them."},
		"classification": computedString("`Configured` (a `jit_policy` covers the machine), `Not configured` (it could be protected) or " +
			"`Unsupported`, as Defender for Cloud's JIT page sorts VMs."),
		"unsupported_reason": computedString("Every reason the machine cannot be protected, joined by `; `; empty unless `classification` is `Unsupported`."),
		"unsupported_reasons": computedStrings("Every reason the machine cannot be protected: a classic (ASM) VM, a terminated instance, " +
			"no network security group on the path, a firewall in front managed by a Firewall Policy, no network interface or security group."),
		"private_ip_addresses": computedStrings("Private IPs over all network interfaces: the destinations JIT rules are scoped to."),
		"security_group_ids":   computedStrings("Every network security group (Azure: the NICs' and their subnets') or security group (EC2) on the path, once each."),
		"policy_name":          computedString("The `jit_policy` covering the machine, read from its tags; empty when none."),
		"locked_ports":         lockedPortsAttribute,
		"managed_by_defender": schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether a network security group on the path holds " +
			"Microsoft Defender for Cloud's own JIT rules (named `SecurityCenter-JITRule…`). `jit_policy` refuses to lock such an " +
			"NSG: two JIT engines on one NSG fight over its rules."},
		"defender_network_security_group_ids": computedStrings("The network security groups on the path holding Defender for Cloud's JIT rules."),
		"exposed_management_ports": schema.ListAttribute{Computed: true, ElementType: types.Int64Type, MarkdownDescription: "The management ports " +
			"(22, 3389, 5985, 5986, TCP) that traffic from the internet at large (`*`, `Internet`, `0.0.0.0/0`, `::/0`) reaches through " +
			"every filter on the path, as `exposures` details."},
		"exposures": computedObjects("Each exposed management port and the rules that let the internet reach it, one per filter on the path.",
			map[string]schema.Attribute{
				"port":     computedInt64("Port number."),
				"protocol": computedString("`TCP`."),
				"rules": computedStrings("`<NSG ID>/securityRules/<name>` for an NSG rule, `<group ID>/<rule ID>` for a security group rule, " +
					"or `" + jit.NoNSGOnPath + "`."),
			}),
		"active_grants": computedObjects("The grants not ended yet, one per request and port, oldest first, as the cloud records them.",
			map[string]schema.Attribute{
				"request_id":     computedString("The request's ID (its start time, then a random suffix)."),
				"requestor":      computedString("The identity that opened the grant."),
				"on_behalf_of":   computedString("The person the requestor acted for, where the cloud records it; empty otherwise."),
				"justification":  computedString("The request's justification, as far as the cloud records it."),
				"port":           computedInt64("Port number."),
				"protocol":       computedString("`TCP`, `UDP` or `*`."),
				"source":         computedString("The source the port is open to."),
				"start_time_utc": computedString("When the request started (RFC 3339)."),
				"end_time_utc":   computedString("When the grant ends (RFC 3339)."),
				"target_id":      computedString("The NSG or the grant's security group holding the grant."),
			}),
		"requests_last_7_days": computedInt64("The requests started in the last 7 days " +
			"whose grants the cloud still shows (ended grants are removed once revoked, so this counts what is still visible)."),
		"last_requestor":            computedString("The requestor of the latest request still visible; empty when none."),
		"last_request_on_behalf_of": computedString("The person the latest request was made for, where recorded; empty otherwise."),
		"last_request_time_utc":     computedString("When the latest request still visible started (RFC 3339); empty when none."),
	}
}

// Constructors of the data sources' computed attributes, which differ
// only in their descriptions.

func computedString(desc string) schema.StringAttribute {
	return schema.StringAttribute{Computed: true, MarkdownDescription: desc}
}

func computedStrings(desc string) schema.ListAttribute {
	return schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: desc}
}

func computedInt64(desc string) schema.Int64Attribute {
	return schema.Int64Attribute{Computed: true, MarkdownDescription: desc}
}

// computedObjects is a list of objects with these attributes.
func computedObjects(desc string, attrs map[string]schema.Attribute) schema.ListNestedAttribute {
	return schema.ListNestedAttribute{Computed: true, MarkdownDescription: desc, NestedObject: schema.NestedAttributeObject{Attributes: attrs}}
}

// newAssessmentModel turns the engine's assessment into the data sources' attributes.
func newAssessmentModel(ctx context.Context, a *engine.Assessment) (assessmentModel, diag.Diagnostics) {
	var diags, d diag.Diagnostics
	m := a.Machine
	attrs := assessmentAttributes()
	nestedType := func(name string) attr.Type {
		return attrs[name].(schema.ListNestedAttribute).NestedObject.Type() //nolint:forcetypeassert // defined just above
	}
	locked := make([]lockedPort, len(a.Ports))
	for i, p := range a.Ports {
		locked[i] = lockedPort{Number: int64(p.Number), Protocol: string(p.Protocol), AllowedSourceAddressPrefixes: p.AllowedSourcePrefixes, MaxRequestAccessDuration: p.MaxRequestAccessDuration.String()}
	}
	exposures := make([]exposureModel, len(a.Exposures))
	ports := make([]attr.Value, len(a.Exposures))
	for i, e := range a.Exposures {
		exposures[i] = exposureModel{Port: int64(e.Port.Number), Protocol: string(e.Port.Protocol), Rules: orEmpty(e.Rules)}
		ports[i] = types.Int64Value(int64(e.Port.Number))
	}
	grants := make([]seenGrantModel, len(a.ActiveGrants))
	for i, g := range a.ActiveGrants {
		grants[i] = seenGrantModel{
			RequestID: g.RequestID, Requestor: g.Requestor, OnBehalfOf: g.OnBehalfOf, Justification: g.Justification,
			Port: int64(g.Port.Number), Protocol: string(g.Port.Protocol), Source: g.Source,
			StartTimeUTC: utcOrEmpty(g.Start), EndTimeUTC: utcOrEmpty(g.End), TargetID: g.Target,
		}
	}
	out := assessmentModel{
		Cloud:                 types.StringValue(m.Cloud),
		Name:                  types.StringValue(m.Name),
		Location:              types.StringValue(m.Location),
		Classification:        types.StringValue(string(a.Classification)),
		UnsupportedReason:     types.StringValue(strings.Join(a.UnsupportedReasons, "; ")),
		UnsupportedReasons:    stringList(a.UnsupportedReasons),
		PrivateIPAddresses:    stringList(m.PrivateIPs()),
		SecurityGroupIDs:      stringList(m.FilterIDs()),
		PolicyName:            types.StringValue(a.Policy),
		ManagedByDefender:     types.BoolValue(len(a.ManagedByDefender) > 0),
		DefenderNSGIDs:        stringList(a.ManagedByDefender),
		ExposedPorts:          types.ListValueMust(types.Int64Type, ports),
		RequestsLast7Days:     types.Int64Value(int64(a.RecentRequests)),
		LastRequestor:         types.StringValue(a.LastRequest.Requestor),
		LastRequestOnBehalfOf: types.StringValue(a.LastRequest.OnBehalfOf),
		LastRequestTimeUTC:    types.StringValue(utcOrEmpty(a.LastRequest.Start)),
	}
	out.Tags, d = types.MapValueFrom(ctx, types.StringType, orEmptyMap(m.Tags))
	diags.Append(d...)
	out.LockedPorts, d = types.ListValueFrom(ctx, lockedPortsAttribute.NestedObject.Type(), locked)
	diags.Append(d...)
	out.Exposures, d = types.ListValueFrom(ctx, nestedType("exposures"), exposures)
	diags.Append(d...)
	out.ActiveGrants, d = types.ListValueFrom(ctx, nestedType("active_grants"), grants)
	diags.Append(d...)
	return out, diags
}

func utcOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func orEmptyMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
