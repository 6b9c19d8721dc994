package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// policyRules returns the rules of an NSG in the emulator as the core sees them.
func (c *testCloud) nsgRules(t *testing.T, nsg string) []jit.NSGRule {
	t.Helper()
	rules, err := c.azureClient(t).SecurityRules(context.Background(), testNSG+nsg)
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

// ownedDenies lists the JIT deny rules of policy in an NSG, as "port/proto@priority->dest".
func (c *testCloud) ownedDenies(t *testing.T, nsg, policy string) []string {
	var out []string
	for _, r := range c.nsgRules(t, nsg) {
		if m, ok := jit.ParseMarker(r.Description); ok && m.Kind == jit.MarkerDeny && m.BelongsTo(policy) {
			out = append(out, fmt.Sprintf("%s/%s@%d->%s", strings.Join(r.DestinationPortRanges, ","), r.Protocol, r.Priority, strings.Join(r.DestinationPrefixes, ",")))
		}
	}
	return out
}

func TestAccPolicy_defaultPortsOnNICAndSubnetNSG(t *testing.T) {
	cloud := newTestCloud(t, "world")
	before := cloud.nsgRules(t, "web-subnet-nsg")
	restored := expectAzureRestored(cloud, cloud.Snapshot())
	config := cloud.config(`resource "jit_policy" "web" {
  name                = "prod-web"
  virtual_machine_ids = ["` + testVM + `web"]
}`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             restored,
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue("jit_policy.web", tfjsonpath.New("rules"), knownvalue.ListSizeExact(8)),
					plancheck.ExpectKnownValue("jit_policy.web", tfjsonpath.New("rules").AtSliceIndex(0), knownvalue.ObjectPartial(map[string]knownvalue.Check{
						"virtual_machine_ids": knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact(testVM + "web")}),
						"target_id":           knownvalue.StringExact(testNSG + "web-nic-nsg"),
						"name":                knownvalue.StringExact(jit.AggregateDenyRuleName("prod-web", jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}, jit.IPv4)),
						"port":                knownvalue.Int64Exact(22),
					})),
					// A new deny is placed when written, against the NSG as it is then.
					plancheck.ExpectUnknownValue("jit_policy.web", tfjsonpath.New("rules").AtSliceIndex(0).AtMapKey("priority")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_policy.web", tfjsonpath.New("id"), knownvalue.StringExact("prod-web")),
					statecheck.ExpectKnownValue("jit_policy.web", tfjsonpath.New("rules").AtSliceIndex(0), knownvalue.ObjectPartial(map[string]knownvalue.Check{
						"virtual_machine_ids": knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact(testVM + "web")}),
						"target_id":           knownvalue.StringExact(testNSG + "web-nic-nsg"),
						"priority":            knownvalue.Int64Exact(1000),
						"port":                knownvalue.Int64Exact(22),
						"protocol":            knownvalue.StringExact("TCP"),
					})),
				},
				Check: func(*terraform.State) error {
					for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
						got := strings.Join(cloud.ownedDenies(t, nsg, "prod-web"), " ")
						want := "22/Tcp@1000->10.0.1.4 3389/Tcp@1001->10.0.1.4 5985/Tcp@1002->10.0.1.4 5986/Tcp@1003->10.0.1.4"
						if got != want {
							return fmt.Errorf("%s denies:\n got %s\nwant %s", nsg, got, want)
						}
					}
					// The existing rule of the subnet NSG is untouched.
					if got := cloud.nsgRules(t, "web-subnet-nsg"); !got[0].Equivalent(before[0]) {
						return fmt.Errorf("allow-https changed: %+v", got[0])
					}
					return nil
				},
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

func TestAccPolicy_invalidPortsAreDiagnosedAndWriteNothing(t *testing.T) {
	cloud := newTestCloud(t, "world")
	for _, tc := range []struct{ block, want string }{
		{`port { number = 70000 }`, `port\[0\]\.number[\s\S]*between 0 and 65535`},
		{"port { number = 22 }\n  port { number = 22 }", `Duplicate port`},
		{`port {
    number   = 22
    protocol = "ICMP"
  }`, `port\[0\]\.protocol`},
		{`port {
    number                          = 22
    allowed_source_address_prefixes = ["10.0.0.1/8"]
  }`, `allowed_source_address_prefixes = \["10.0.0.1/8"\][\s\S]*host bits set`},
		{`port {
    number                      = 22
    max_request_access_duration = "PT2M"
  }`, `Invalid maximum request duration[\s\S]*max_request_access_duration = "PT2M"`},
		{`port {
    number                      = 22
    max_request_access_duration = "3 hours"
  }`, `Invalid maximum request duration[\s\S]*max_request_access_duration = "3 hours"[\s\S]*must start with "P"`},
		{`azure_firewall_id = "fw-hub"`, `azure_firewall_id = "fw-hub"[\s\S]*must be an Azure Firewall resource ID`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			cloud.ResetCalls()
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: protoV6ProviderFactories,
				Steps: []resource.TestStep{{
					Config: cloud.config(`resource "jit_policy" "p" {
  name                = "p"
  virtual_machine_ids = ["` + testVM + `web"]
  ` + tc.block + `
}`),
					ExpectError: regexp.MustCompile(tc.want),
				}},
			})
			for op, n := range cloud.Calls() {
				if isWrite(op) && n > 0 {
					t.Errorf("%s called %d times for invalid input", op, n)
				}
			}
		})
	}
}

func isWrite(op string) bool {
	for _, verb := range []string{"CreateOrUpdate", "Delete", "Update", "Authorize", "Revoke", "Create", "Modify"} {
		if strings.Contains(op, verb) {
			return true
		}
	}
	return false
}

func policyConfig(cloud *testCloud, name string, vms []string, ports string) string {
	ids := make([]string, len(vms))
	for i, vm := range vms {
		ids[i] = `"` + testVM + vm + `"`
	}
	return cloud.config(`resource "jit_policy" "p" {
  name                = "` + name + `"
  virtual_machine_ids = [` + strings.Join(ids, ", ") + `]
` + ports + `
}`)
}

const port22 = `  port {
    number = 22
  }`

func expectDenies(t *testing.T, cloud *testCloud, nsg, policy, want string) func(*terraform.State) error {
	return func(*terraform.State) error {
		if got := strings.Join(cloud.ownedDenies(t, nsg, policy), " "); got != want {
			return fmt.Errorf("%s denies of %s:\n got %q\nwant %q", nsg, policy, got, want)
		}
		return nil
	}
}

func TestAccPolicy_existingRulesKeepPrecedence(t *testing.T) {
	cloud := newTestCloud(t, "world")
	// An Allow deciding 22 for every destination, and a Deny deciding 3389
	// late in the NIC NSG: both must stay ahead of the JIT denies.
	cloud.putRule(t, "web-subnet-nsg", inbound("allow-ssh-bastion", 200, jit.NSGAllow, "22"))
	cloud.putRule(t, "web-nic-nsg", inbound("deny-rdp", 1500, jit.NSGDeny, "3389"))
	config := policyConfig(cloud, "prec", []string{"web"}, port22+"\n  port {\n    number = 3389\n  }")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: resource.ComposeTestCheckFunc(
					expectDenies(t, cloud, "web-subnet-nsg", "prec", "22/Tcp@1000->10.0.1.4 3389/Tcp@1001->10.0.1.4"),
					// After deny-rdp, with 1501 free for grants: a grant may
					// never go before a rule of others deciding its traffic.
					expectDenies(t, cloud, "web-nic-nsg", "prec", "22/Tcp@1000->10.0.1.4 3389/Tcp@1502->10.0.1.4"),
				),
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// A port that cannot be locked (an Allow deciding it at the last priority
// in both NSGs of the path: no priority is left after it) does not block
// the others: 3389 is locked, 22 is left as it is, and the plan warns
// (the warning's text is checked through the CLI in the root package).
// Before, the whole plan failed and 3389 stayed open too.
func TestAccPolicy_aPortThatCannotBeLockedLeavesTheOthersLocked(t *testing.T) {
	cloud := newTestCloud(t, "world")
	last := inbound("allow-ssh-last", 4096, jit.NSGAllow, "22")
	cloud.putRule(t, "web-nic-nsg", last)
	cloud.putRule(t, "web-subnet-nsg", last)
	config := policyConfig(cloud, "full", []string{"web"}, port22+"\n  port {\n    number = 3389\n  }")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue("jit_policy.p", tfjsonpath.New("rules"), knownvalue.ListSizeExact(2)),
				}},
				Check: func(s *terraform.State) error {
					for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
						if err := expectDenies(t, cloud, nsg, "full", "3389/Tcp@1000->10.0.1.4")(s); err != nil {
							return err
						}
						rules := cloud.nsgRules(t, nsg)
						if !slices.ContainsFunc(rules, func(r jit.NSGRule) bool { return r.Equivalent(last) }) {
							return fmt.Errorf("allow-ssh-last changed in %s: %+v", nsg, rules)
						}
					}
					return nil
				},
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

func TestAccPolicy_sharedSubnetNSGBlocksOnlyPolicyVMs(t *testing.T) {
	cloud := newTestCloud(t, "world")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				// web2 shares web's subnet (and its NSG) but is not in the policy.
				Config: policyConfig(cloud, "shared", []string{"web"}, port22),
				Check:  expectDenies(t, cloud, "web-subnet-nsg", "shared", "22/Tcp@1000->10.0.1.4"),
			},
			{
				Config: policyConfig(cloud, "shared", []string{"web", "web2"}, port22),
				Check:  expectDenies(t, cloud, "web-subnet-nsg", "shared", "22/Tcp@1000->10.0.1.4,10.0.1.5"),
			},
		},
	})
}

func TestAccPolicy_updatePortsAndRemoveAVM(t *testing.T) {
	cloud := newTestCloud(t, "world")
	two := `  port {
    number                          = 22
    allowed_source_address_prefixes = ["10.0.0.0/8"]
    max_request_access_duration     = "PT1H"
  }
  port {
    number   = 53
    protocol = "*"
  }`
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy: func(*terraform.State) error {
			for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg", "multi-nsg"} {
				if got := cloud.ownedDenies(t, nsg, "upd"); len(got) != 0 {
					return fmt.Errorf("%s still has denies: %v", nsg, got)
				}
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				Config: policyConfig(cloud, "upd", []string{"web", "multi"}, port22),
				Check: resource.ComposeTestCheckFunc(
					expectDenies(t, cloud, "multi-nsg", "upd", "22/Tcp@1000->10.0.1.6,10.0.2.6"),
					// Only the addresses behind an NSG are its deny's destinations.
					expectDenies(t, cloud, "web-subnet-nsg", "upd", "22/Tcp@1000->10.0.1.4,10.0.1.6"),
				),
			},
			{
				Config: policyConfig(cloud, "upd", []string{"web", "multi"}, two),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_policy.p", plancheck.ResourceActionUpdate),
				}},
				Check: resource.ComposeTestCheckFunc(
					expectDenies(t, cloud, "multi-nsg", "upd", "22/Tcp@1000->10.0.1.6,10.0.2.6 53/*@1001->10.0.1.6,10.0.2.6"),
					func(*terraform.State) error {
						m, err := cloud.azureClient(t).Machine(context.Background(), testVM+"multi")
						if err != nil {
							return err
						}
						if got := m.Tags["jit-port-22-tcp"]; got != "PT1H 10.0.0.0/8" {
							return fmt.Errorf("port 22 settings tag = %q", got)
						}
						return nil
					},
				),
			},
			{
				Config: policyConfig(cloud, "upd", []string{"web"}, two),
				Check: resource.ComposeTestCheckFunc(
					expectDenies(t, cloud, "multi-nsg", "upd", ""),
					// Denies that stay are not renumbered when others leave.
					expectDenies(t, cloud, "web-subnet-nsg", "upd", "22/Tcp@1000->10.0.1.4 53/*@1001->10.0.1.4"),
					func(*terraform.State) error {
						m, err := cloud.azureClient(t).Machine(context.Background(), testVM+"multi")
						if err != nil {
							return err
						}
						for k := range m.Tags {
							if jit.IsPolicyTag(k) {
								return fmt.Errorf("multi left the policy but keeps tag %s", k)
							}
						}
						return nil
					},
				),
			},
			{Config: policyConfig(cloud, "upd", []string{"web"}, two), ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

func TestAccPolicy_denyDeletedOutOfBandIsRecreated(t *testing.T) {
	cloud := newTestCloud(t, "world")
	config := policyConfig(cloud, "drift", []string{"web"}, port22)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: config},
			{
				PreConfig: func() {
					cloud.deleteRule(t, "web-nic-nsg", jit.AggregateDenyRuleName("drift", jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}, jit.IPv4))
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_policy.p", plancheck.ResourceActionUpdate),
				}},
				Check: expectDenies(t, cloud, "web-nic-nsg", "drift", "22/Tcp@1000->10.0.1.4"),
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

func TestAccPolicy_foreignRuleWrittenMeanwhileSurvives(t *testing.T) {
	cloud := newTestCloud(t, "world")
	foreign := inbound("someone-elses", 1001, jit.NSGAllow, "8080")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: policyConfig(cloud, "mixed", []string{"web"}, port22)},
			{
				// Another tool takes the priority the next deny would have used.
				PreConfig: func() { cloud.putRule(t, "web-nic-nsg", foreign) },
				Config:    policyConfig(cloud, "mixed", []string{"web"}, port22+"\n  port {\n    number = 3389\n  }"),
				Check: resource.ComposeTestCheckFunc(
					expectDenies(t, cloud, "web-nic-nsg", "mixed", "22/Tcp@1000->10.0.1.4 3389/Tcp@1002->10.0.1.4"),
					func(*terraform.State) error {
						for _, r := range cloud.nsgRules(t, "web-nic-nsg") {
							if r.Name == foreign.Name {
								if !r.Equivalent(foreign) {
									return fmt.Errorf("foreign rule altered: %+v", r)
								}
								return nil
							}
						}
						return fmt.Errorf("foreign rule lost")
					},
				),
			},
		},
	})
}

func TestAccPolicy_vmInAnotherPolicyIsAnError(t *testing.T) {
	cloud := newTestCloud(t, "world")
	first := policyConfig(cloud, "first", []string{"web"}, port22)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: first},
			{
				Config: first + `
resource "jit_policy" "second" {
  name                = "second"
  virtual_machine_ids = ["` + testVM + `web"]
}`,
				ExpectError: regexp.MustCompile(`already in another policy[\s\S]*"first"`),
			},
		},
	})
}

func TestAccPolicy_unsupportedVMIsAnError(t *testing.T) {
	cloud := newTestCloud(t, "world")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      policyConfig(cloud, "bare", []string{"bare"}, port22),
			ExpectError: regexp.MustCompile(`cannot be protected[\s\S]*no network security group`),
		}},
	})
}

func TestAccPolicy_importByName(t *testing.T) {
	cloud := newTestCloud(t, "world")
	config := policyConfig(cloud, "imp", []string{"web", "multi"}, `  port {
    number                          = 22
    allowed_source_address_prefixes = ["10.0.0.0/8"]
  }`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: config},
			{
				Config:                  config,
				ResourceName:            "jit_policy.p",
				ImportState:             true,
				ImportStateId:           "imp",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
		},
	})
}

const testFirewall = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/hub/providers/Microsoft.Network/azureFirewalls/"

// firewallCollections lists a firewall's network rule collections as
// "name@priority:action[rule:ports->destinations ...]".
func (c *testCloud) firewallCollections(t *testing.T, firewall string) []string {
	t.Helper()
	fw, err := c.azureClient(t).Firewall(context.Background(), testFirewall+firewall)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, col := range fw.NetworkCollections {
		var rules []string
		for _, r := range col.Rules {
			rules = append(rules, fmt.Sprintf("%s:%s/%s->%s", r.Name, strings.Join(r.DestinationPorts, ","), strings.Join(r.Protocols, ","), strings.Join(r.DestinationAddresses, ",")))
		}
		out = append(out, fmt.Sprintf("%s@%d:%s[%s]", col.Name, col.Priority, col.Action, strings.Join(rules, " ")))
	}
	return out
}

// expectAzureRestored checks, at destroy, that every Azure object (NSG
// rules, firewall collections, VM tags) is exactly as before.
func expectAzureRestored(cloud *testCloud, before *cloudsim.Fixture) func(*terraform.State) error {
	return func(*terraform.State) error {
		after := cloud.Snapshot()
		if !reflect.DeepEqual(before.Azure, after.Azure) {
			b, _ := json.MarshalIndent(before.Azure, "", " ")
			a, _ := json.MarshalIndent(after.Azure, "", " ")
			return fmt.Errorf("Azure not restored by destroy:\nbefore %s\nafter %s", b, a)
		}
		return nil
	}
}

func TestAccPolicy_firewallClassicDeny(t *testing.T) {
	cloud := newTestCloud(t, "world")
	before := cloud.Snapshot()
	withFirewall := policyConfig(cloud, "fw", []string{"web", "multi"}, port22+`
  azure_firewall_id = "`+testFirewall+`fw-hub"`)
	deny := jit.FirewallDenyCollectionName("fw")
	// One rule per port and family covers both VMs.
	rule := jit.AggregateDenyRuleName("fw", jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}, jit.IPv4)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             expectAzureRestored(cloud, before),
		Steps: []resource.TestStep{
			{
				Config: withFirewall,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					// One per NSG on the VMs' paths (web's NIC NSG, the subnet NSG
					// they share, multi's NIC NSG) + 1 firewall rule, visible in the plan.
					plancheck.ExpectKnownValue("jit_policy.p", tfjsonpath.New("rules"), knownvalue.ListSizeExact(4)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_policy.p", tfjsonpath.New("rules").AtSliceIndex(0), knownvalue.ObjectExact(map[string]knownvalue.Check{
						"virtual_machine_ids": knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact(testVM + "multi"), knownvalue.StringExact(testVM + "web")}),
						"target_id":           knownvalue.StringExact(testFirewall + "fw-hub"),
						"name":                knownvalue.StringExact(rule),
						"priority":            knownvalue.Int64Exact(1000),
						"port":                knownvalue.Int64Exact(22),
						"protocol":            knownvalue.StringExact("TCP"),
					})),
				},
				Check: func(*terraform.State) error {
					// The admin-ssh Allow at 200 already decides 22 for web's
					// subnet: the deny comes after it, at the deny base with free
					// priorities before it for grants.
					want := "allow-admin-ssh@200:Allow[admin-ssh:22/TCP->10.0.1.0/24] allow-dns@300:Allow[dns:53/UDP->168.63.129.16] " +
						deny + "@1000:Deny[" + rule + ":22/TCP->10.0.1.4,10.0.1.6,10.0.2.6]"
					if got := strings.Join(cloud.firewallCollections(t, "fw-hub"), " "); got != want {
						return fmt.Errorf("firewall collections:\n got %s\nwant %s", got, want)
					}
					return nil
				},
			},
			{Config: withFirewall, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
			{
				// Without the firewall the policy's collection goes; NSG denies stay.
				Config: policyConfig(cloud, "fw", []string{"web", "multi"}, port22),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue("jit_policy.p", tfjsonpath.New("rules"), knownvalue.ListSizeExact(3)),
				}},
				Check: func(*terraform.State) error {
					want := "allow-admin-ssh@200:Allow[admin-ssh:22/TCP->10.0.1.0/24] allow-dns@300:Allow[dns:53/UDP->168.63.129.16]"
					if got := strings.Join(cloud.firewallCollections(t, "fw-hub"), " "); got != want {
						return fmt.Errorf("firewall collections:\n got %s\nwant %s", got, want)
					}
					return nil
				},
			},
			{Config: withFirewall},
		},
	})
}

func TestAccPolicy_firewallManagedByAPolicyIsAnError(t *testing.T) {
	cloud := newTestCloud(t, "world")
	before := cloud.Snapshot()
	cloud.ResetCalls()
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: policyConfig(cloud, "managed", []string{"web"}, port22+`
  azure_firewall_id = "`+testFirewall+`fw-managed"`),
			ExpectError: regexp.MustCompile(`managed by a Firewall Policy[\s\S]*fwpol-hub`),
		}},
	})
	if n := cloud.writes(); n != 0 {
		t.Errorf("%d writes despite the error", n)
	}
	if after := cloud.Snapshot(); !reflect.DeepEqual(before.Azure, after.Azure) {
		t.Error("the Azure side changed despite the error")
	}
}

func TestAccPolicy_firewallDenyDeletedOutOfBandIsRecreated(t *testing.T) {
	cloud := newTestCloud(t, "world")
	config := policyConfig(cloud, "fwdrift", []string{"web"}, port22+`
  azure_firewall_id = "`+testFirewall+`fw-hub"`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: config},
			{
				PreConfig: func() {
					err := cloud.azureClient(t).UpdateFirewall(context.Background(), testFirewall+"fw-hub",
						azure.FirewallChange{Network: map[string]*jit.FirewallNetworkCollection{jit.FirewallDenyCollectionName("fwdrift"): nil}})
					if err != nil {
						t.Fatal(err)
					}
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_policy.p", plancheck.ResourceActionUpdate),
				}},
				Check: func(*terraform.State) error {
					if got := cloud.firewallCollections(t, "fw-hub"); len(got) != 3 || !strings.HasPrefix(got[2], jit.FirewallDenyCollectionName("fwdrift")+"@1000:Deny") {
						return fmt.Errorf("deny collection not re-created: %v", got)
					}
					return nil
				},
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
			{
				Config:                  config,
				ResourceName:            "jit_policy.p",
				ImportState:             true,
				ImportStateId:           "fwdrift",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
		},
	})
}

func TestAccPolicy_throttlingAndConflictsAreRetried(t *testing.T) {
	cloud := newTestCloud(t, "world")
	// Every NSG and firewall write meets another operation in progress or
	// throttling first, as when several pipelines apply at once.
	cloud.InjectFault(cloudsim.Fault{Operation: "SecurityRules.CreateOrUpdate", FailNext: 3, Status: 429, Code: "RetryableErrorDueToAnotherOperation", RetryAfter: time.Second})
	cloud.InjectFault(cloudsim.Fault{Operation: "AzureFirewalls.CreateOrUpdate", FailNext: 2, Status: 409, Code: "AnotherOperationInProgress", RetryAfter: time.Second})
	config := policyConfig(cloud, "busy", []string{"web"}, port22+`
  azure_firewall_id = "`+testFirewall+`fw-hub"`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: resource.ComposeTestCheckFunc(
					expectDenies(t, cloud, "web-nic-nsg", "busy", "22/Tcp@1000->10.0.1.4"),
					expectDenies(t, cloud, "web-subnet-nsg", "busy", "22/Tcp@1000->10.0.1.4"),
					func(*terraform.State) error {
						if got := cloud.firewallCollections(t, "fw-hub"); len(got) != 3 {
							return fmt.Errorf("firewall collections: %v", got)
						}
						calls := cloud.Calls()
						if n := calls["SecurityRules.CreateOrUpdate"]; n != 2+3 {
							return fmt.Errorf("SecurityRules.CreateOrUpdate called %d times, want 2 writes + 3 refused", n)
						}
						if n := calls["AzureFirewalls.CreateOrUpdate"]; n != 1+2 {
							return fmt.Errorf("AzureFirewalls.CreateOrUpdate called %d times, want 1 write + 2 refused", n)
						}
						return nil
					},
				),
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

func TestAccPolicy_connectionDroppedAfterTheWriteConverges(t *testing.T) {
	cloud := newTestCloud(t, "world")
	before := cloud.Snapshot()
	// The writes land but their responses never arrive: the provider cannot
	// tell whether they happened, writes them again, and must end with each
	// rule once and nobody else's rule touched.
	cloud.InjectFault(cloudsim.Fault{Operation: "SecurityRules.CreateOrUpdate", DropAfterWrite: 2})
	cloud.InjectFault(cloudsim.Fault{Operation: "AzureFirewalls.CreateOrUpdate", DropAfterWrite: 1})
	config := policyConfig(cloud, "cut", []string{"web"}, port22+`
  azure_firewall_id = "`+testFirewall+`fw-hub"`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             expectAzureRestored(cloud, before),
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: resource.ComposeTestCheckFunc(
					expectDenies(t, cloud, "web-nic-nsg", "cut", "22/Tcp@1000->10.0.1.4"),
					expectDenies(t, cloud, "web-subnet-nsg", "cut", "22/Tcp@1000->10.0.1.4"),
					func(*terraform.State) error {
						got := strings.Join(cloud.firewallCollections(t, "fw-hub"), " ")
						if strings.Count(got, jit.FirewallDenyCollectionName("cut")) != 1 || !strings.HasPrefix(got, "allow-admin-ssh@200:Allow[admin-ssh:22/TCP->10.0.1.0/24] allow-dns@300") {
							return fmt.Errorf("firewall collections: %s", got)
						}
						if n := cloud.Calls()["SecurityRules.CreateOrUpdate"]; n != 2+2 {
							return fmt.Errorf("SecurityRules.CreateOrUpdate called %d times, want 2 writes + 2 repeated after the cut", n)
						}
						return nil
					},
				),
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

func TestAccPolicy_deletedVMLeavesThePolicyWithItsRules(t *testing.T) {
	cloud := newTestCloud(t, "world")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: policyConfig(cloud, "gone", []string{"web", "web2"}, port22),
				Check:  expectDenies(t, cloud, "web-subnet-nsg", "gone", "22/Tcp@1000->10.0.1.4,10.0.1.5"),
			},
			{
				// web2 is deleted; its path can no longer be read, yet its
				// deny in the shared subnet NSG is found from state and removed.
				PreConfig: func() { cloud.deleteVM(t, "web2") },
				Config:    policyConfig(cloud, "gone", []string{"web"}, port22),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_policy.p", plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue("jit_policy.p", tfjsonpath.New("rules"), knownvalue.ListSizeExact(2)),
				}},
				Check: expectDenies(t, cloud, "web-subnet-nsg", "gone", "22/Tcp@1000->10.0.1.4"),
			},
			{Config: policyConfig(cloud, "gone", []string{"web"}, port22), ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// A VM ID with a typo is a plan error naming it, when the policy is
// created and when the ID is added: a green apply that protects nothing is
// worse than a failed one. Nothing is written.
func TestAccPolicy_vmThatDoesNotExistIsAPlanErrorWhenItJoins(t *testing.T) {
	cloud := newTestCloud(t, "world")
	typo := `Virtual machine not found[\s\S]*virtualMachines/wbe\s+does\s+not\s+exist`
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{PreConfig: cloud.ResetCalls, Config: policyConfig(cloud, "typo", []string{"web", "wbe"}, port22), ExpectError: regexp.MustCompile(typo)},
			{Config: cloud.config(""), Check: expectNoWrites(cloud)},
			{Config: policyConfig(cloud, "typo", []string{"web"}, port22)},
			{PreConfig: cloud.ResetCalls, Config: policyConfig(cloud, "typo", []string{"web", "wbe"}, port22), ExpectError: regexp.MustCompile(typo)},
			{Config: policyConfig(cloud, "typo", []string{"web"}, port22), Check: expectNoWrites(cloud),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// The same VM in two policies of one configuration is refused at plan:
// today one policy would apply and the other fail, half written.
func TestAccPolicy_oneVMInTwoPoliciesOfAConfigurationIsAPlanError(t *testing.T) {
	cloud := newTestCloud(t, "world")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				PreConfig: cloud.ResetCalls,
				Config: cloud.config(`resource "jit_policy" "a" {
  name                = "a"
  virtual_machine_ids = ["` + testVM + `web"]
}
resource "jit_policy" "b" {
  name                = "b"
  virtual_machine_ids = ["` + testVM + `web", "` + testVM + `web2"]
}`),
				ExpectError: regexp.MustCompile(`Virtual machine in two policies[\s\S]*virtualMachines/web\s+is\s+listed\s+by\s+policy`),
			},
			{Config: cloud.config(""), Check: expectNoWrites(cloud)},
		},
	})
}

// The policy's tags are checked against the 50 a resource holds at plan,
// naming the VM, instead of failing the apply half way.
func TestAccPolicy_tagsOverTheLimitAreAPlanError(t *testing.T) {
	cloud := newTestCloud(t, "world")
	tags := map[string]string{}
	for i := range 47 {
		tags[fmt.Sprintf("team-%02d", i)] = "x"
	}
	cloud.tagVM(t, "web", tags)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				PreConfig:   cloud.ResetCalls,
				Config:      policyConfig(cloud, "many", []string{"web"}, port22+"\n  port {\n    number = 3389\n  }"),
				ExpectError: regexp.MustCompile(`Too many tags[\s\S]*virtualMachines/web\s+has\s+48\s+tags[\s\S]*adds\s+3`),
			},
			{Config: cloud.config(""), Check: expectNoWrites(cloud)},
			// One port fits: its 48 (one from the fixture) + the name + one port.
			{Config: policyConfig(cloud, "many", []string{"web"}, port22)},
		},
	})
}

// A long-running operation can end Failed after ARM accepted the write. A
// transient failure is written again in the same apply; a lasting one is a
// clear error naming the cloud's code, the state says what the cloud holds,
// and the next apply converges.
func TestAccPolicy_aWriteWhoseOperationFailsIsRetriedOrReportedAndConverges(t *testing.T) {
	cloud := newTestCloud(t, "world")
	config := policyConfig(cloud, "lro", []string{"web"}, port22)
	converged := resource.ComposeTestCheckFunc(
		expectDenies(t, cloud, "web-nic-nsg", "lro", "22/Tcp@1000->10.0.1.4"),
		expectDenies(t, cloud, "web-subnet-nsg", "lro", "22/Tcp@1000->10.0.1.4"),
	)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					cloud.InjectFault(cloudsim.Fault{Operation: "SecurityRules.CreateOrUpdate", FailOperationNext: 100, Code: "SecurityRuleParameterInvalid"})
				},
				Config:      config,
				ExpectError: regexp.MustCompile(`Cannot write JIT deny rules[\s\S]*SecurityRuleParameterInvalid[\s\S]*long-running\s+operation\s+failed`),
			},
			{
				PreConfig: func() {
					cloud.ClearFaults()
					cloud.InjectFault(cloudsim.Fault{Operation: "SecurityRules.CreateOrUpdate", FailOperationNext: 1})
				},
				Config: config,
				Check:  converged,
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// fillAddresses writes a rule of others into nsg naming as many
// destination addresses as ARM's per-NSG limit leaves room for: after it,
// any rule naming one more address is refused.
func (c *testCloud) fillAddresses(t *testing.T, nsg string) jit.NSGRule {
	t.Helper()
	n := 0
	for _, r := range c.nsgRules(t, nsg) {
		for _, d := range r.DestinationPrefixes {
			if _, err := netip.ParsePrefix(d); err == nil {
				n++
			} else if _, err := netip.ParseAddr(d); err == nil {
				n++
			}
		}
	}
	filler := inbound("someone-elses-address-list", 3000, jit.NSGAllow, "8080")
	filler.DestinationPrefixes = nil
	for i := range jit.NSGMaxAddresses - n {
		filler.DestinationPrefixes = append(filler.DestinationPrefixes, netip.AddrFrom4([4]byte{10, 200, byte(i / 250), byte(1 + i%250)}).String())
	}
	c.putRule(t, nsg, filler)
	return filler
}

// A limit reached after the apply's own read (another writer filled the
// subnet NSG's address quota right before the provider's write there)
// cannot be foreseen: ARM refuses that write, and what the apply had
// already written in the NIC NSG and the VM's tags is taken back, so the
// policy is never half-applied. Once room is made, the next apply locks
// both NSGs.
func TestAccPolicy_aLimitReachedDuringTheApplyRollsBackWhatItWrote(t *testing.T) {
	cloud := newTestCloud(t, "world")
	config := policyConfig(cloud, "web", []string{"web"}, port22)
	before := map[string][]jit.NSGRule{}
	var filler jit.NSGRule
	var once sync.Once
	fill := func(r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/networkSecurityGroups/web-subnet-nsg/") || strings.HasSuffix(r.URL.Path, "/someone-elses-address-list") {
			return false
		}
		once.Do(func() { filler = cloud.fillAddresses(t, "web-subnet-nsg") })
		return true
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
						before[nsg] = cloud.nsgRules(t, nsg)
					}
					cloud.OnCall("SecurityRules.CreateOrUpdate", fill)
				},
				Config:      config,
				ExpectError: regexp.MustCompile(`(?s)SecurityRuleAddressesOrPortsPerSecurityGroupLimitReached.*taken back|taken back.*SecurityRuleAddressesOrPortsPerSecurityGroupLimitReached`),
			},
			{
				PreConfig: func() {
					if got := cloud.nsgRules(t, "web-nic-nsg"); !slices.EqualFunc(got, before["web-nic-nsg"], jit.NSGRule.Equivalent) {
						t.Fatalf("web-nic-nsg after the refused apply:\n got %+v\nwant %+v", got, before["web-nic-nsg"])
					}
					want := append(slices.Clone(before["web-subnet-nsg"]), filler)
					got := cloud.nsgRules(t, "web-subnet-nsg")
					slices.SortFunc(want, func(a, b jit.NSGRule) int { return strings.Compare(a.Name, b.Name) })
					slices.SortFunc(got, func(a, b jit.NSGRule) int { return strings.Compare(a.Name, b.Name) })
					if !slices.EqualFunc(got, want, jit.NSGRule.Equivalent) {
						t.Fatalf("web-subnet-nsg after the refused apply:\n got %+v\nwant %+v", got, want)
					}
					vm, err := cloud.azureClient(t).Machine(t.Context(), testVM+"web")
					if err != nil {
						t.Fatal(err)
					}
					for k := range vm.Tags {
						if jit.IsPolicyTag(k) {
							t.Fatalf("the VM keeps the policy's tag %s after the rollback", k)
						}
					}
					cloud.deleteRule(t, "web-subnet-nsg", filler.Name)
				},
				Config: config,
				Check: resource.ComposeTestCheckFunc(
					expectDenies(t, cloud, "web-nic-nsg", "web", "22/Tcp@1000->10.0.1.4"),
					expectDenies(t, cloud, "web-subnet-nsg", "web", "22/Tcp@1000->10.0.1.4"),
				),
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// A limit reached between the plan and the apply of the saved plan is
// found when the apply plans again, before its first write: nothing is
// written, and the error names the NSG and the limit.
func TestAccPolicy_aLimitReachedBeforeTheApplyFailsBeforeAnyWrite(t *testing.T) {
	cloud := newTestCloud(t, "world")
	config := policyConfig(cloud, "web", []string{"web"}, port22)
	writes := 0
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:           config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{fillCheck{cloud, t, "web-subnet-nsg", &writes}}},
				ExpectError:      regexp.MustCompile(`NSG address limit exceeded[\s\S]*web-subnet-nsg`),
			},
			{
				PreConfig: func() {
					if n := cloud.writes(); n != writes {
						t.Fatalf("the apply wrote %d times before failing", n-writes)
					}
				},
				Config:      config,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`NSG address limit exceeded`),
			},
		},
	})
}

// fillCheck is a plan check that fills an NSG's address quota: another
// writer acting between the plan and the apply of the saved plan. writes
// is set to the emulator's write count after it.
type fillCheck struct {
	cloud  *testCloud
	t      *testing.T
	nsg    string
	writes *int
}

func (c fillCheck) CheckPlan(_ context.Context, _ plancheck.CheckPlanRequest, _ *plancheck.CheckPlanResponse) {
	c.cloud.fillAddresses(c.t, c.nsg)
	*c.writes = c.cloud.writes()
}
