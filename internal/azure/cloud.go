package azure

import (
	"context"
	"strings"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
)

// name is Azure's provider block and machines' cloud.
const name = "azure"

// Cloud is Azure as the provider and the commands register it.
var Cloud = engine.Cloud{
	Name:  name,
	Title: "Azure",
	Description: "Azure Resource Manager access. Credentials follow the azurerm conventions: " +
		"`ARM_TENANT_ID`, `ARM_CLIENT_ID` and `ARM_CLIENT_SECRET` for a service principal, otherwise the " +
		"azidentity default chain (environment, workload identity, managed identity, Azure CLI).",
	Settings: []engine.Setting{{
		Name:        "subscription_id",
		Description: "Subscription listed by data sources and commands that scan a scope. Defaults to `ARM_SUBSCRIPTION_ID`. Resources take the subscription from each resource ID.",
		Flag:        "subscription", Usage: "Azure subscription to scan (default $ARM_SUBSCRIPTION_ID); Azure is skipped without one",
		Env: "ARM_SUBSCRIPTION_ID", Selects: true,
	}, {
		Name:        "environment",
		Description: "Azure cloud: `public` (default), `usgovernment` or `china`. Defaults to `ARM_ENVIRONMENT`.",
		OneOf:       []string{"public", "usgovernment", "china"},
		Flag:        "azure-environment", Usage: "Azure cloud: public, usgovernment or china (default $ARM_ENVIRONMENT, else public)",
		Env: "ARM_ENVIRONMENT",
	}, {
		Name: "resource_manager_endpoint",
		Description: "Overrides the Resource Manager endpoint of the environment. Plain `http://` is accepted " +
			"only on a loopback address (a local emulator), so credentials never travel in clear text.",
		Flag: "azure-endpoint", Usage: "Resource Manager endpoint override (plain http only on loopback)",
	}, {
		// Scans for grants only: resources take their resource group
		// from each resource ID.
		Name: "resource_group",
		Flag: "resource-group", Usage: "scan only this resource group of the subscription",
	}},
	MachineIDForm: "an Azure VM resource ID (/subscriptions/…/providers/Microsoft.Compute/virtualMachines/NAME)",
	OwnsMachineID: ownsID,
	Connect: func(_ context.Context, settings map[string]string, userAgent string) (engine.Backend, error) {
		client, err := New(Config{
			SubscriptionID:          settings["subscription_id"],
			Environment:             settings["environment"],
			ResourceManagerEndpoint: settings["resource_manager_endpoint"],
			UserAgent:               userAgent,
		})
		if err != nil {
			return nil, err
		}
		return NewBackend(client, settings["resource_group"]), nil
	},
}

// ownsID tells ARM resource IDs, machines' and filters' alike, from
// anything else.
func ownsID(id string) bool {
	return len(id) > 15 && strings.EqualFold(id[:15], "/subscriptions/")
}
