package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

const (
	fleetVM  = testRG + "/providers/Microsoft.Compute/virtualMachines/"
	fleetNSG = testRG + "/providers/Microsoft.Network/networkSecurityGroups/"
	opsVM    = "/subscriptions/" + testSub + "/resourceGroups/ops/providers/Microsoft.Compute/virtualMachines/"
)

func ints(values ...int64) knownvalue.Check {
	checks := make([]knownvalue.Check, len(values))
	for i, v := range values {
		checks[i] = knownvalue.Int64Exact(v)
	}
	return knownvalue.ListExact(checks)
}

func strs(values ...string) knownvalue.Check {
	checks := make([]knownvalue.Check, len(values))
	for i, v := range values {
		checks[i] = knownvalue.StringExact(v)
	}
	return knownvalue.ListExact(checks)
}

// Every VM of the subscription and every instance of the region, in one
// list sorted by cloud then ID, each classified with every reason, its
// exposed management ports computed from the rules on its path, and
// Defender's JIT rules reported.
func TestAccVirtualMachinesDataSource_classifiesTheWholeScope(t *testing.T) {
	cloud := newTestCloud(t, "fleet")
	vm := func(i int) tfjsonpath.Path { return tfjsonpath.New("virtual_machines").AtSliceIndex(i) }
	check := func(i int, attr string, c knownvalue.Check) statecheck.StateCheck {
		return statecheck.ExpectKnownValue("data.jit_virtual_machines.all", vm(i).AtMapKey(attr), c)
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: cloud.config(`data "jit_virtual_machines" "all" {}`),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.jit_virtual_machines.all", tfjsonpath.New("virtual_machines"), knownvalue.ListSizeExact(9)),
				check(0, "id", knownvalue.StringExact("i-0aaaaaaaaaaaaaaa1")),
				check(0, "classification", knownvalue.StringExact("Not configured")),
				check(0, "exposed_management_ports", ints(22)),
				check(0, "exposures", knownvalue.ListExact([]knownvalue.Check{knownvalue.ObjectExact(map[string]knownvalue.Check{
					"port": knownvalue.Int64Exact(22), "protocol": knownvalue.StringExact("TCP"),
					"rules": knownvalue.ListExact([]knownvalue.Check{knownvalue.StringRegexp(regexp.MustCompile(`^sg-0aaaaaaaaaaaaaaa1/sgr-[0-9a-f]+$`))}),
				})})),
				check(0, "tags", knownvalue.MapExact(map[string]knownvalue.Check{"Name": knownvalue.StringExact("bastion"), "env": knownvalue.StringExact("prod")})),
				check(1, "id", knownvalue.StringExact("i-0aaaaaaaaaaaaaaa2")),
				check(1, "exposed_management_ports", ints()), // RDP from 10.0.0.0/8 only
				check(2, "classification", knownvalue.StringExact("Unsupported")),
				check(2, "unsupported_reasons", strs("instance is terminated")),
				check(3, "id", knownvalue.StringExact(opsVM+"ops-exposed")),
				check(3, "exposed_management_ports", ints(22)),
				check(4, "id", knownvalue.StringExact(fleetVM+"bare")),
				check(4, "classification", knownvalue.StringExact("Unsupported")),
				check(4, "unsupported_reasons", knownvalue.ListExact([]knownvalue.Check{knownvalue.StringRegexp(regexp.MustCompile(`^no network security group on the VM's path`))})),
				check(4, "exposed_management_ports", ints(22, 3389, 5985, 5986)),
				check(4, "exposures", knownvalue.ListPartial(map[int]knownvalue.Check{0: knownvalue.ObjectPartial(map[string]knownvalue.Check{
					"rules": strs(jit.NoNSGOnPath),
				})})),
				check(5, "id", knownvalue.StringExact(fleetVM+"behind-managed-fw")),
				check(5, "classification", knownvalue.StringExact("Unsupported")),
				check(5, "unsupported_reason", knownvalue.StringRegexp(regexp.MustCompile(`fw-managed in front of the VM is managed by Firewall Policy .*fwpol-hub`))),
				check(5, "exposed_management_ports", ints()),
				check(6, "id", knownvalue.StringExact(fleetVM+"closed")),
				check(6, "classification", knownvalue.StringExact("Not configured")),
				check(6, "exposed_management_ports", ints()),
				check(6, "managed_by_defender", knownvalue.Bool(false)),
				check(7, "id", knownvalue.StringExact(fleetVM+"defender")),
				check(7, "managed_by_defender", knownvalue.Bool(true)),
				check(7, "defender_network_security_group_ids", strs(fleetNSG+"defender-nsg")),
				// Defender's deny comes after an existing allow from anywhere: still exposed.
				check(7, "exposures", knownvalue.ListExact([]knownvalue.Check{knownvalue.ObjectPartial(map[string]knownvalue.Check{
					"port": knownvalue.Int64Exact(22), "rules": strs(fleetNSG + "defender-nsg/securityRules/allow-ssh-anywhere"),
				})})),
				check(8, "id", knownvalue.StringExact(fleetVM+"exposed")),
				check(8, "exposures", knownvalue.ListExact([]knownvalue.Check{knownvalue.ObjectExact(map[string]knownvalue.Check{
					"port": knownvalue.Int64Exact(22), "protocol": knownvalue.StringExact("TCP"),
					"rules": strs(fleetNSG + "exposed-nsg/securityRules/allow-ssh-anywhere"),
				})})),
				check(8, "private_ip_addresses", strs("10.0.1.4")),
				check(8, "active_grants", knownvalue.ListSizeExact(0)),
				check(8, "requests_last_7_days", knownvalue.Int64Exact(0)),
				check(8, "last_requestor", knownvalue.StringExact("")),
				check(8, "last_request_time_utc", knownvalue.StringExact("")),
			},
		}},
	})
}

// The filters: classification and exposure together select the machines
// a policy-as-code check fails on; tags and resource groups narrow the
// scope.
func TestAccVirtualMachinesDataSource_filters(t *testing.T) {
	cloud := newTestCloud(t, "fleet")
	ids := func(name string, want ...string) statecheck.StateCheck {
		checks := make([]knownvalue.Check, len(want))
		for i, id := range want {
			checks[i] = knownvalue.ObjectPartial(map[string]knownvalue.Check{"id": knownvalue.StringExact(id)})
		}
		return statecheck.ExpectKnownValue("data.jit_virtual_machines."+name, tfjsonpath.New("virtual_machines"), knownvalue.ListExact(checks))
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: cloud.config(`
data "jit_virtual_machines" "unprotected" {
  classifications         = ["Not configured"]
  exposed_management_port = true
}
data "jit_virtual_machines" "prod" {
  tags = { env = "prod" }
}
data "jit_virtual_machines" "ops" {
  azure_resource_group_names = ["ops"]
  classifications            = ["Not configured", "Unsupported"]
}
data "jit_virtual_machines" "closed" {
  exposed_management_port = false
  classifications         = ["Not configured"]
}
`),
			ConfigStateChecks: []statecheck.StateCheck{
				ids("unprotected", "i-0aaaaaaaaaaaaaaa1", opsVM+"ops-exposed", fleetVM+"defender", fleetVM+"exposed"),
				ids("prod", "i-0aaaaaaaaaaaaaaa1", fleetVM+"closed", fleetVM+"exposed"),
				ids("ops", "i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2", "i-0aaaaaaaaaaaaaaa3", opsVM+"ops-exposed"),
				ids("closed", "i-0aaaaaaaaaaaaaaa2", fleetVM+"closed"),
			},
		}},
	})
}

func TestAccVirtualMachinesDataSource_badFilterNamesTheAttribute(t *testing.T) {
	cloud := newTestCloud(t, "fleet")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      cloud.config(`data "jit_virtual_machines" "x" { classifications = ["Protected"] }`),
				ExpectError: regexp.MustCompile(`classifications[\s\S]*Configured`),
			},
			{
				Config:      cloud.config(`data "jit_virtual_machines" "x" { azure_firewall_id = "fw-hub" }`),
				ExpectError: regexp.MustCompile(`azure_firewall_id[\s\S]*must be an Azure Firewall resource ID`),
			},
			{
				Config:      cloud.config(`data "jit_virtual_machines" "x" { azure_resource_group_names = ["nope"] }`),
				ExpectError: regexp.MustCompile(`Resource group not found[\s\S]*azure_resource_group_names[\s\S]*resource group "nope" does not exist`),
			},
		},
	})
}

// An NSG holding Defender for Cloud's own JIT rules is reported by the
// data source and refused by jit_policy at plan time, naming the NSG.
func TestAccPolicy_refusesAnNSGManagedByDefender(t *testing.T) {
	cloud := newTestCloud(t, "fleet")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: cloud.config(`resource "jit_policy" "p" {
  name                = "p"
  virtual_machine_ids = ["` + fleetVM + `defender"]
}`),
			PlanOnly:    true,
			ExpectError: regexp.MustCompile(`(?s)managed by Defender for Cloud's JIT.*defender-nsg.*SecurityCenter-JITRule_-1712`),
		}},
	})
	if w := cloud.writes(); w != 0 {
		t.Fatalf("the refused plan wrote %d times", w)
	}
}
