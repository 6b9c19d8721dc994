package provider

import (
	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// The tfsdk models of the provider, its resources, data sources and
// ephemeral resources; their conversion to and from the engine's types is
// in convert.go.
// Nested object types come from the schemas (see the *Attribute values of
// each resource file), never written out twice.

// jit_policy.

type policyModel struct {
	ID                  types.String   `tfsdk:"id"`
	Name                types.String   `tfsdk:"name"`
	VirtualMachineIDs   types.Set      `tfsdk:"virtual_machine_ids"`
	AzureFirewallID     types.String   `tfsdk:"azure_firewall_id"`
	Ports               []policyPort   `tfsdk:"port"`
	Rules               types.List     `tfsdk:"rules"`
	ExpiredGrants       types.List     `tfsdk:"expired_grants"`
	RevokedIngressRules types.List     `tfsdk:"revoked_ingress_rules"`
	Timeouts            timeouts.Value `tfsdk:"timeouts"`
}

type policyPort struct {
	Number                       types.Int64  `tfsdk:"number"`
	Protocol                     types.String `tfsdk:"protocol"`
	AllowedSourceAddressPrefixes types.List   `tfsdk:"allowed_source_address_prefixes"`
	MaxRequestAccessDuration     types.String `tfsdk:"max_request_access_duration"`
}

// policyRule is one rule the policy owns in the cloud, as the plan shows it.
type policyRule struct {
	VirtualMachineIDs []string    `tfsdk:"virtual_machine_ids"`
	TargetID          string      `tfsdk:"target_id"`
	Name              string      `tfsdk:"name"`
	Priority          types.Int64 `tfsdk:"priority"`
	Port              int64       `tfsdk:"port"`
	Protocol          string      `tfsdk:"protocol"`
}

// revokedIngressRule is one inbound security group rule the policy holds.
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

// accessModel is what jit_access_request and the ephemeral jit_access
// share: the VM to open, who asks and why, and the request's ID.
type accessModel struct {
	ID               types.String `tfsdk:"id"`
	VirtualMachineID types.String `tfsdk:"virtual_machine_id"`
	Justification    types.String `tfsdk:"justification"`
	OnBehalfOf       types.String `tfsdk:"on_behalf_of"`
	Requestor        types.String `tfsdk:"requestor"`
}

// requestedPort is a port block as both ask for it.
type requestedPort struct {
	Number                     types.Int64  `tfsdk:"number"`
	Protocol                   types.String `tfsdk:"protocol"`
	AllowedSourceAddressPrefix types.String `tfsdk:"allowed_source_address_prefix"`
}

type accessRequestModel struct {
	accessModel
	Ports        []accessPort      `tfsdk:"port"`
	StartTimeUTC timetypes.RFC3339 `tfsdk:"start_time_utc"`
	Rules        types.List        `tfsdk:"rules"`
	Timeouts     timeouts.Value    `tfsdk:"timeouts"`
}

type accessPort struct {
	requestedPort
	Duration          types.String      `tfsdk:"duration"`
	EndTimeUTC        timetypes.RFC3339 `tfsdk:"end_time_utc"`
	Status            types.String      `tfsdk:"status"`
	StatusReason      types.String      `tfsdk:"status_reason"`
	ConnectionDetails types.String      `tfsdk:"connection_details"`
}

// grantRule is one rule a request owns in the cloud.
type grantRule struct {
	TargetID string `tfsdk:"target_id"`
	Name     string `tfsdk:"name"`
	Priority int64  `tfsdk:"priority"`
	Port     int64  `tfsdk:"port"`
	Protocol string `tfsdk:"protocol"`
}

type accessEphemeralModel struct {
	accessModel
	Duration          types.String    `tfsdk:"duration"`
	Ports             []requestedPort `tfsdk:"port"`
	StartTimeUTC      types.String    `tfsdk:"start_time_utc"`
	EndTimeUTC        types.String    `tfsdk:"end_time_utc"`
	ConnectionDetails types.List      `tfsdk:"connection_details"`
}

type virtualMachineModel struct {
	ID                types.String `tfsdk:"id"`
	VirtualMachineID  types.String `tfsdk:"virtual_machine_id"`
	AzureFirewallID   types.String `tfsdk:"azure_firewall_id"`
	NetworkInterfaces types.List   `tfsdk:"network_interfaces"`
	assessmentModel
}

// assessmentModel is a machine as both virtual machine data sources
// report it.
type assessmentModel struct {
	Cloud                 types.String `tfsdk:"cloud"`
	Name                  types.String `tfsdk:"name"`
	Location              types.String `tfsdk:"location"`
	Tags                  types.Map    `tfsdk:"tags"`
	Classification        types.String `tfsdk:"classification"`
	UnsupportedReason     types.String `tfsdk:"unsupported_reason"`
	UnsupportedReasons    types.List   `tfsdk:"unsupported_reasons"`
	PrivateIPAddresses    types.List   `tfsdk:"private_ip_addresses"`
	SecurityGroupIDs      types.List   `tfsdk:"security_group_ids"`
	PolicyName            types.String `tfsdk:"policy_name"`
	LockedPorts           types.List   `tfsdk:"locked_ports"`
	ManagedByDefender     types.Bool   `tfsdk:"managed_by_defender"`
	DefenderNSGIDs        types.List   `tfsdk:"defender_network_security_group_ids"`
	ExposedPorts          types.List   `tfsdk:"exposed_management_ports"`
	Exposures             types.List   `tfsdk:"exposures"`
	ActiveGrants          types.List   `tfsdk:"active_grants"`
	RequestsLast7Days     types.Int64  `tfsdk:"requests_last_7_days"`
	LastRequestor         types.String `tfsdk:"last_requestor"`
	LastRequestOnBehalfOf types.String `tfsdk:"last_request_on_behalf_of"`
	LastRequestTimeUTC    types.String `tfsdk:"last_request_time_utc"`
}

// fleetMachineModel is one element of jit_virtual_machines.
type fleetMachineModel struct {
	ID types.String `tfsdk:"id"`
	assessmentModel
}

type virtualMachinesModel struct {
	ID                    types.String `tfsdk:"id"`
	AzureResourceGroups   types.List   `tfsdk:"azure_resource_group_names"`
	AzureFirewallID       types.String `tfsdk:"azure_firewall_id"`
	Tags                  types.Map    `tfsdk:"tags"`
	Classifications       types.List   `tfsdk:"classifications"`
	ExposedManagementPort types.Bool   `tfsdk:"exposed_management_port"`
	VirtualMachines       types.List   `tfsdk:"virtual_machines"`
}

type roleDefinitionModel struct {
	ID                      types.String `tfsdk:"id"`
	Flow                    types.String `tfsdk:"flow"`
	Name                    types.String `tfsdk:"name"`
	AzureAssignableScopes   types.List   `tfsdk:"azure_assignable_scopes"`
	Description             types.String `tfsdk:"description"`
	AzureActions            types.List   `tfsdk:"azure_actions"`
	AzureRoleDefinitionJSON types.String `tfsdk:"azure_role_definition_json"`
	AWSActions              types.List   `tfsdk:"aws_actions"`
	AWSIAMPolicyJSON        types.String `tfsdk:"aws_iam_policy_json"`
}

type exposureModel struct {
	Port     int64    `tfsdk:"port"`
	Protocol string   `tfsdk:"protocol"`
	Rules    []string `tfsdk:"rules"`
}

type seenGrantModel struct {
	RequestID     string `tfsdk:"request_id"`
	Requestor     string `tfsdk:"requestor"`
	OnBehalfOf    string `tfsdk:"on_behalf_of"`
	Justification string `tfsdk:"justification"`
	Port          int64  `tfsdk:"port"`
	Protocol      string `tfsdk:"protocol"`
	Source        string `tfsdk:"source"`
	StartTimeUTC  string `tfsdk:"start_time_utc"`
	EndTimeUTC    string `tfsdk:"end_time_utc"`
	TargetID      string `tfsdk:"target_id"`
}

type lockedPort struct {
	Number                       int64    `tfsdk:"number"`
	Protocol                     string   `tfsdk:"protocol"`
	AllowedSourceAddressPrefixes []string `tfsdk:"allowed_source_address_prefixes"`
	MaxRequestAccessDuration     string   `tfsdk:"max_request_access_duration"`
}

type networkInterface struct {
	ID                           string   `tfsdk:"id"`
	SubnetID                     string   `tfsdk:"subnet_id"`
	PrivateIPAddresses           []string `tfsdk:"private_ip_addresses"`
	NetworkSecurityGroupID       string   `tfsdk:"network_security_group_id"`
	SubnetNetworkSecurityGroupID string   `tfsdk:"subnet_network_security_group_id"`
	SecurityGroupIDs             []string `tfsdk:"security_group_ids"`
}
