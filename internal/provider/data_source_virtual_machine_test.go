package provider

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
)

const (
	testSub     = "00000000-0000-0000-0000-000000000001"
	testRG      = "/subscriptions/" + testSub + "/resourceGroups/prod"
	testVM      = testRG + "/providers/Microsoft.Compute/virtualMachines/"
	testNSG     = testRG + "/providers/Microsoft.Network/networkSecurityGroups/"
	testNIC     = testRG + "/providers/Microsoft.Network/networkInterfaces/"
	testSubnet  = testRG + "/providers/Microsoft.Network/virtualNetworks/prod-vnet/subnets/"
	testEC2     = "i-0abc1234def567890"
	testEC2Gone = "i-0def4567abc890123"
)

func TestAccVirtualMachineDataSource_azureResolvesNICAndSubnetNSGs(t *testing.T) {
	cloud := newTestCloud(t, "world")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: cloud.config(`data "jit_virtual_machine" "web" { virtual_machine_id = "` + testVM + `web" }`),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("cloud"), knownvalue.StringExact("azure")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("name"), knownvalue.StringExact("web")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("location"), knownvalue.StringExact("westeurope")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("classification"), knownvalue.StringExact("Not configured")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("unsupported_reason"), knownvalue.StringExact("")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("private_ip_addresses"),
					knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("10.0.1.4")})),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("security_group_ids"), knownvalue.ListExact([]knownvalue.Check{
					knownvalue.StringExact(testNSG + "web-nic-nsg"),
					knownvalue.StringExact(testNSG + "web-subnet-nsg"),
				})),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("network_interfaces"), knownvalue.ListExact([]knownvalue.Check{
					knownvalue.ObjectExact(map[string]knownvalue.Check{
						"id":                               knownvalue.StringExact(testNIC + "web-nic"),
						"subnet_id":                        knownvalue.StringExact(testSubnet + "web"),
						"private_ip_addresses":             knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("10.0.1.4")}),
						"network_security_group_id":        knownvalue.StringExact(testNSG + "web-nic-nsg"),
						"subnet_network_security_group_id": knownvalue.StringExact(testNSG + "web-subnet-nsg"),
						"security_group_ids":               knownvalue.ListSizeExact(0),
					}),
				})),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("policy_name"), knownvalue.StringExact("")),
			},
		}},
	})
}

func TestAccVirtualMachineDataSource_azureTwoNICsShareOneNSG(t *testing.T) {
	cloud := newTestCloud(t, "world")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: cloud.config(`data "jit_virtual_machine" "multi" { virtual_machine_id = "` + testVM + `multi" }`),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.jit_virtual_machine.multi", tfjsonpath.New("private_ip_addresses"),
					knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("10.0.1.6"), knownvalue.StringExact("10.0.2.6")})),
				// The NIC NSG is listed once although both NICs carry it.
				statecheck.ExpectKnownValue("data.jit_virtual_machine.multi", tfjsonpath.New("security_group_ids"), knownvalue.ListExact([]knownvalue.Check{
					knownvalue.StringExact(testNSG + "multi-nsg"),
					knownvalue.StringExact(testNSG + "web-subnet-nsg"),
				})),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.multi", tfjsonpath.New("network_interfaces"), knownvalue.ListSizeExact(2)),
			},
		}},
	})
}

func TestAccVirtualMachineDataSource_azureNoNSGIsUnsupported(t *testing.T) {
	cloud := newTestCloud(t, "world")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: cloud.config(`data "jit_virtual_machine" "bare" { virtual_machine_id = "` + testVM + `bare" }`),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.jit_virtual_machine.bare", tfjsonpath.New("classification"), knownvalue.StringExact("Unsupported")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.bare", tfjsonpath.New("unsupported_reason"),
					knownvalue.StringRegexp(regexp.MustCompile(`no network security group on the VM's path`))),
			},
		}},
	})
}

// A classic (Azure Service Manager) VM is Unsupported with the seeds'
// reason, read from its ID alone: ARM's compute API does not serve it.
func TestAccVirtualMachineDataSource_classicVMIsUnsupported(t *testing.T) {
	cloud := newTestCloud(t, "world")
	classic := "/subscriptions/" + testSub + "/resourceGroups/legacy/providers/Microsoft.ClassicCompute/virtualMachines/old-web"
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: cloud.config(`data "jit_virtual_machine" "old" { virtual_machine_id = "` + classic + `" }`),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.jit_virtual_machine.old", tfjsonpath.New("classification"), knownvalue.StringExact("Unsupported")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.old", tfjsonpath.New("unsupported_reason"),
					knownvalue.StringRegexp(regexp.MustCompile(`classic \(ASM\) virtual machine`))),
			},
		}},
	})
}

func TestAccVirtualMachineDataSource_awsResolvesENIsAndGroups(t *testing.T) {
	cloud := newTestCloud(t, "world")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: cloud.config(`data "jit_virtual_machine" "db" { virtual_machine_id = "` + testEC2 + `" }`),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.jit_virtual_machine.db", tfjsonpath.New("cloud"), knownvalue.StringExact("aws")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.db", tfjsonpath.New("name"), knownvalue.StringExact("db-1")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.db", tfjsonpath.New("location"), knownvalue.StringExact("eu-west-1")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.db", tfjsonpath.New("classification"), knownvalue.StringExact("Not configured")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.db", tfjsonpath.New("private_ip_addresses"),
					knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("10.1.1.10"), knownvalue.StringExact("10.1.2.10")})),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.db", tfjsonpath.New("security_group_ids"), knownvalue.ListExact([]knownvalue.Check{
					knownvalue.StringExact("sg-0b5e3a1f2c4d6e8a0"),
					knownvalue.StringExact("sg-0c7d9e1f3a5b7c9d1"),
				})),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.db", tfjsonpath.New("network_interfaces").AtSliceIndex(1), knownvalue.ObjectPartial(map[string]knownvalue.Check{
					"id":        knownvalue.StringExact("eni-0b0b0b0b0b0b0b0b2"),
					"subnet_id": knownvalue.StringExact("subnet-0fedcba9876543210"),
					"security_group_ids": knownvalue.ListExact([]knownvalue.Check{
						knownvalue.StringExact("sg-0c7d9e1f3a5b7c9d1"), knownvalue.StringExact("sg-0b5e3a1f2c4d6e8a0"),
					}),
				})),
			},
		}},
	})
}

func TestAccVirtualMachineDataSource_awsTerminatedIsUnsupported(t *testing.T) {
	cloud := newTestCloud(t, "world")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: cloud.config(`data "jit_virtual_machine" "old" { virtual_machine_id = "` + testEC2Gone + `" }`),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.jit_virtual_machine.old", tfjsonpath.New("classification"), knownvalue.StringExact("Unsupported")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.old", tfjsonpath.New("unsupported_reason"), knownvalue.StringExact("instance is terminated")),
			},
		}},
	})
}

func TestAccVirtualMachineDataSource_unknownMachineIsAnError(t *testing.T) {
	cloud := newTestCloud(t, "world")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      cloud.config(`data "jit_virtual_machine" "x" { virtual_machine_id = "` + testVM + `nope" }`),
				ExpectError: regexp.MustCompile(`Virtual machine not found[\s\S]*virtualMachines/nope`),
			},
			{
				Config:      cloud.config(`data "jit_virtual_machine" "x" { virtual_machine_id = "i-0123456789abcdef0" }`),
				ExpectError: regexp.MustCompile(`Virtual machine not found[\s\S]*InvalidInstanceID.NotFound`),
			},
		},
	})
}

func TestAccVirtualMachineDataSource_invalidIDIsAPlanTimeError(t *testing.T) {
	cloud := newTestCloud(t, "world")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      cloud.config(`data "jit_virtual_machine" "x" { virtual_machine_id = "web" }`),
			ExpectError: regexp.MustCompile(`Invalid virtual machine ID[\s\S]*virtual_machine_id`),
		}},
	})
}

func TestAccVirtualMachineDataSource_missingCloudBlockIsAnError(t *testing.T) {
	cloud := newTestCloud(t, "world")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: `provider "jit" {
  aws {
    region   = "eu-west-1"
    endpoint = "` + cloud.URL + `"
  }
}
data "jit_virtual_machine" "web" { virtual_machine_id = "` + testVM + `web" }`,
			ExpectError: regexp.MustCompile(`no azure block`),
		}},
	})
}

func TestAccProvider_plainHTTPOffLoopbackIsRefused(t *testing.T) {
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: `provider "jit" {
  azure { resource_manager_endpoint = "http://management.example.com" }
}
data "jit_virtual_machine" "web" { virtual_machine_id = "` + testVM + `web" }`,
				ExpectError: regexp.MustCompile(`plain HTTP on\s+a\s+non-loopback\s+host`),
			},
			{
				Config: `provider "jit" {
  aws {
    region   = "eu-west-1"
    endpoint = "http://10.1.2.3:4566"
  }
}
data "jit_virtual_machine" "db" { virtual_machine_id = "i-0abc1234def567890" }`,
				ExpectError: regexp.MustCompile(`plain HTTP on\s+a\s+non-loopback\s+host`),
			},
		},
	})
}

// A configured VM and instance report their locked ports, the grants the
// cloud shows (once per request and port, though an Azure grant has a rule
// in each NSG on the path), the requests of the last 7 days and the last
// requestor, read from the cloud alone.
func TestAccVirtualMachineDataSource_configuredShowsGrantsAndLastRequest(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	start := requestEpoch.Format(time.RFC3339)
	end := requestEpoch.Add(time.Hour).Format(time.RFC3339)
	grant := func(source, target string) knownvalue.Check {
		return knownvalue.ListExact([]knownvalue.Check{knownvalue.ObjectExact(map[string]knownvalue.Check{
			"request_id":     knownvalue.StringRegexp(regexp.MustCompile(`^20261123T090000Z-[0-9a-f]{8}$`)),
			"requestor":      knownvalue.StringRegexp(regexp.MustCompile(`^(operator@example.com|arn:aws:iam::123456789012:user/operator)$`)),
			"on_behalf_of":   knownvalue.StringExact("alice@example.com"),
			"justification":  knownvalue.StringRegexp(regexp.MustCompile(`^INC-`)),
			"port":           knownvalue.Int64Exact(22),
			"protocol":       knownvalue.StringExact("TCP"),
			"source":         knownvalue.StringExact(source),
			"start_time_utc": knownvalue.StringExact(start),
			"end_time_utc":   knownvalue.StringExact(end),
			"target_id":      knownvalue.StringRegexp(regexp.MustCompile(target)),
		})})
	}
	config := cloud.config(sshPolicy + sshRequest("alice", "203.0.113.7", `duration = "PT1H"`) + ec2Policy(testEC2) + ec2Request + `
data "jit_virtual_machine" "web" {
  virtual_machine_id = jit_access_request.alice.virtual_machine_id
}
data "jit_virtual_machine" "db" {
  virtual_machine_id = jit_access_request.alice_db.virtual_machine_id
}
`)
	config = strings.Replace(config, `resource "jit_access_request" "alice" {
  virtual_machine_id = one(jit_policy.db.virtual_machine_ids)`, `resource "jit_access_request" "alice_db" {
  virtual_machine_id = one(jit_policy.db.virtual_machine_ids)`, 1)
	// Both requests are made by the operator's identity for alice.
	config = strings.ReplaceAll(config, "  virtual_machine_id = one(jit_policy.", "  on_behalf_of       = \"alice@example.com\"\n  virtual_machine_id = one(jit_policy.")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{{
			Config: config,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("classification"), knownvalue.StringExact("Configured")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("policy_name"), knownvalue.StringExact("web")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("locked_ports"), knownvalue.ListExact([]knownvalue.Check{
					knownvalue.ObjectExact(map[string]knownvalue.Check{
						"number": knownvalue.Int64Exact(22), "protocol": knownvalue.StringExact("TCP"),
						"allowed_source_address_prefixes": strs("203.0.113.0/24"), "max_request_access_duration": knownvalue.StringExact("PT2H"),
					}),
				})),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("active_grants"), grant("203.0.113.7/32", `/networkSecurityGroups/web-(nic|subnet)-nsg$`)),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("requests_last_7_days"), knownvalue.Int64Exact(1)),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("last_requestor"), knownvalue.StringExact("operator@example.com")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("last_request_time_utc"), knownvalue.StringExact(start)),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("last_request_on_behalf_of"), knownvalue.StringExact("alice@example.com")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.web", tfjsonpath.New("exposed_management_ports"), ints()),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.db", tfjsonpath.New("classification"), knownvalue.StringExact("Configured")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.db", tfjsonpath.New("active_grants"), grant("203.0.113.7/32", `^sg-[0-9a-f]+$`)),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.db", tfjsonpath.New("requests_last_7_days"), knownvalue.Int64Exact(1)),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.db", tfjsonpath.New("last_requestor"), knownvalue.StringExact("arn:aws:iam::123456789012:user/operator")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.db", tfjsonpath.New("last_request_on_behalf_of"), knownvalue.StringExact("alice@example.com")),
				// The policy revoked the SSH rule open to the world.
				statecheck.ExpectKnownValue("data.jit_virtual_machine.db", tfjsonpath.New("exposed_management_ports"), ints()),
			},
		}},
	})
}

// A firewall in front managed by a Firewall Policy makes the VM
// Unsupported; one with classic rules does not.
func TestAccVirtualMachineDataSource_firewallManagedByPolicyIsUnsupported(t *testing.T) {
	cloud := newTestCloud(t, "world")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: cloud.config(`
data "jit_virtual_machine" "managed" {
  virtual_machine_id = "` + testVM + `web"
  azure_firewall_id  = "` + testFirewall + `fw-managed"
}
data "jit_virtual_machine" "classic" {
  virtual_machine_id = "` + testVM + `web"
  azure_firewall_id  = "` + testFirewall + `fw-hub"
}
`),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.jit_virtual_machine.managed", tfjsonpath.New("classification"), knownvalue.StringExact("Unsupported")),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.managed", tfjsonpath.New("unsupported_reasons"), knownvalue.ListExact([]knownvalue.Check{
					knownvalue.StringRegexp(regexp.MustCompile(`Azure Firewall .*/fw-managed in front of the VM is managed by Firewall Policy .*/fwpol-hub \(Firewall Manager\)`)),
				})),
				statecheck.ExpectKnownValue("data.jit_virtual_machine.classic", tfjsonpath.New("classification"), knownvalue.StringExact("Not configured")),
			},
		}},
	})
}

// A shared config file can set an endpoint too: it is checked as the SDK
// resolved it, and refused before anything is sent. (Not parallel: it sets
// the process's AWS_CONFIG_FILE.)
func TestAccProvider_plainHTTPFromTheSharedConfigIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte("[profile lab]\nregion = eu-west-1\nservices = lab\n\n[services lab]\nec2 =\n  endpoint_url = http://10.1.2.3:4566\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", path)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: `provider "jit" {
  aws { profile = "lab" }
}
data "jit_virtual_machine" "db" { virtual_machine_id = "i-0abc1234def567890" }`,
			ExpectError: regexp.MustCompile(`EC2 endpoint the AWS configuration resolves to[\s\S]*plain HTTP on\s+a\s+non-loopback\s+host`),
		}},
	})
}
