package azure

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
)

// Least-privilege Azure RBAC actions, per flow: exactly what the
// provider's calls in that flow need, no more (the acceptance tests check
// both ways against the calls the emulator records per flow). Azure RBAC
// cannot restrict what a security rule says, so the request role can
// write any rule of the NSGs it is assigned on: assign it to the identity
// CI applies requests with, not to the people asking (see the security
// model in the docs).
var roleActions = map[engine.Flow][]string{
	engine.FlowConfigure: {
		"Microsoft.Compute/locations/operations/read",
		"Microsoft.Compute/virtualMachines/read",
		"Microsoft.Compute/virtualMachines/write",
		"Microsoft.Network/azureFirewalls/read",
		"Microsoft.Network/azureFirewalls/write",
		"Microsoft.Network/locations/operations/read",
		"Microsoft.Network/networkInterfaces/read",
		"Microsoft.Network/networkSecurityGroups/read",
		"Microsoft.Network/networkSecurityGroups/securityRules/delete",
		"Microsoft.Network/networkSecurityGroups/securityRules/write",
		"Microsoft.Network/publicIPAddresses/join/action",
		"Microsoft.Network/virtualNetworks/subnets/join/action",
		"Microsoft.Network/virtualNetworks/subnets/read",
	},
	engine.FlowRequest: {
		"Microsoft.Compute/virtualMachines/read",
		"Microsoft.Network/azureFirewalls/read",
		"Microsoft.Network/azureFirewalls/write",
		"Microsoft.Network/locations/operations/read",
		"Microsoft.Network/networkInterfaces/read",
		"Microsoft.Network/networkSecurityGroups/read",
		"Microsoft.Network/networkSecurityGroups/securityRules/delete",
		"Microsoft.Network/networkSecurityGroups/securityRules/write",
		"Microsoft.Network/publicIPAddresses/join/action",
		"Microsoft.Network/publicIPAddresses/read",
		"Microsoft.Network/virtualNetworks/subnets/join/action",
		"Microsoft.Network/virtualNetworks/subnets/read",
		// The record of who asked, where the rule's description has no
		// room: tags on the VM, through the Tags API.
		"Microsoft.Resources/tags/write",
	},
	engine.FlowAudit: {
		"Microsoft.Compute/virtualMachines/read",
		"Microsoft.Network/azureFirewalls/read",
		"Microsoft.Network/networkInterfaces/read",
		"Microsoft.Network/networkSecurityGroups/read",
		"Microsoft.Network/virtualNetworks/read",
		"Microsoft.Network/virtualNetworks/subnets/read",
	},
	engine.FlowRevoke: {
		// Records of requests their grants outlived are found on the VMs
		// and removed from their tags.
		"Microsoft.Compute/virtualMachines/read",
		"Microsoft.Resources/tags/write",
		"Microsoft.Network/azureFirewalls/read",
		"Microsoft.Network/azureFirewalls/write",
		"Microsoft.Network/locations/operations/read",
		"Microsoft.Network/networkSecurityGroups/read",
		"Microsoft.Network/networkSecurityGroups/securityRules/delete",
		"Microsoft.Network/networkSecurityGroups/securityRules/read",
		"Microsoft.Network/publicIPAddresses/join/action",
		"Microsoft.Network/virtualNetworks/subnets/join/action",
	},
}

// RoleActions are the Azure RBAC actions the provider's calls in flow need, sorted.
func RoleActions(flow engine.Flow) ([]string, error) {
	actions, ok := roleActions[flow]
	if !ok {
		return nil, fmt.Errorf("unknown flow %q", flow)
	}
	return slices.Sorted(slices.Values(actions)), nil
}

// RoleDefinition is a custom role definition in the JSON shape `az role
// definition create --role-definition` and the portal take, whose Actions
// an azurerm_role_definition's permissions block takes as they are.
type RoleDefinition struct {
	Name             string   `json:"Name"`
	IsCustom         bool     `json:"IsCustom"`
	Description      string   `json:"Description"`
	Actions          []string `json:"Actions"`
	NotActions       []string `json:"NotActions"`
	DataActions      []string `json:"DataActions"`
	NotDataActions   []string `json:"NotDataActions"`
	AssignableScopes []string `json:"AssignableScopes"`
}

// RoleDefinitionJSON renders flow's role as a custom role definition.
func RoleDefinitionJSON(flow engine.Flow, name, description string, scopes []string) (string, error) {
	actions, err := RoleActions(flow)
	if err != nil {
		return "", err
	}
	if scopes == nil {
		scopes = []string{}
	}
	b, err := json.MarshalIndent(RoleDefinition{
		Name: name, IsCustom: true, Description: description, Actions: actions,
		NotActions: []string{}, DataActions: []string{}, NotDataActions: []string{}, AssignableScopes: scopes,
	}, "", "  ")
	return string(b), err
}
