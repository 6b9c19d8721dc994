package provider

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// requestEpoch is where the tests' fake clocks start.
var requestEpoch = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// factoriesAt runs the provider in process with a fake clock the test moves.
func factoriesAt(clock jit.Clock) map[string]func() (tfprotov6.ProviderServer, error) {
	return map[string]func() (tfprotov6.ProviderServer, error){
		"jit": providerserver.NewProtocol6WithError(newWithClock("test", clock)()),
	}
}

// sshPolicy locks 22 on web, openable from 203.0.113.0/24 for at most 2 hours.
const sshPolicy = `resource "jit_policy" "web" {
  name                = "web"
  virtual_machine_ids = ["` + testVM + `web"]
  port {
    number                          = 22
    allowed_source_address_prefixes = ["203.0.113.0/24"]
    max_request_access_duration     = "PT2H"
  }
}
`

// sshRequest asks for 22 on web; the reference orders it after the policy
// when both are in the configuration.
func sshRequest(name, source, when string) string {
	return vmRequest(name, "one(jit_policy.web.virtual_machine_ids)", source, when)
}

func vmRequest(name, vm, source, when string) string {
	return `
resource "jit_access_request" "` + name + `" {
  virtual_machine_id = ` + vm + `
  justification      = "INC-4211 disk full"
  port {
    number                        = 22
    allowed_source_address_prefix = "` + source + `"
    ` + when + `
  }
}
`
}

// grants lists the grant rules in an NSG as "name@priority:source".
func (c *testCloud) grants(t *testing.T, nsg string) []string {
	var out []string
	for _, r := range c.nsgRules(t, nsg) {
		if m, ok := jit.ParseMarker(r.Description); ok && m.Kind == jit.MarkerGrant {
			out = append(out, fmt.Sprintf("%s@%d:%s", r.Name, r.Priority, strings.Join(r.SourcePrefixes, ",")))
		}
	}
	return out
}

func expectGrants(t *testing.T, cloud *testCloud, want int) resource.TestCheckFunc {
	return func(*terraform.State) error {
		for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
			if got := cloud.grants(t, nsg); len(got) != want {
				return fmt.Errorf("%s holds %d grants, want %d: %v", nsg, len(got), want, got)
			}
		}
		return nil
	}
}

func TestAccAccessRequest_grantOnNICAndSubnetNSGs(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	config := cloud.config(sshPolicy + sshRequest("alice", "203.0.113.7/32", `duration = "PT1H"`))
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		CheckDestroy:             expectGrants(t, cloud, 0),
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy)},
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("requestor"), knownvalue.StringExact("operator@example.com")),
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("start_time_utc"), knownvalue.StringExact("2026-11-23T09:00:00Z")),
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("port").AtSliceIndex(0), knownvalue.ObjectExact(map[string]knownvalue.Check{
						"number":                        knownvalue.Int64Exact(22),
						"protocol":                      knownvalue.StringExact("TCP"),
						"allowed_source_address_prefix": knownvalue.StringExact("203.0.113.7/32"),
						"duration":                      knownvalue.StringExact("PT1H"),
						"end_time_utc":                  knownvalue.StringExact("2026-11-23T10:00:00Z"),
						"status":                        knownvalue.StringExact("Initiated"),
						"status_reason":                 knownvalue.Null(),
						"connection_details":            knownvalue.StringExact("10.0.1.4:22"),
					})),
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("rules"), knownvalue.ListSizeExact(2)),
				},
				Check: func(*terraform.State) error {
					// The grant sits just before the deny at 1000, from the requester only.
					for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
						got := cloud.grants(t, nsg)
						if len(got) != 1 || !strings.HasSuffix(got[0], "@999:203.0.113.7/32") {
							return fmt.Errorf("%s grants: %v", nsg, got)
						}
					}
					return nil
				},
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

func TestAccAccessRequest_expiredPortsLoseTheirRules(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	config := cloud.config(sshPolicy + sshRequest("alice", "203.0.113.7/32", `duration = "PT1H"`))
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy)},
			{Config: config, Check: expectGrants(t, cloud, 1)},
			{
				// Still open one second before the end: nothing to do.
				PreConfig:        func() { clock.Set(requestEpoch.Add(time.Hour - time.Second)) },
				Config:           config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
			{
				// At the end time the plan removes the rules; it never grants again.
				PreConfig: func() { clock.Set(requestEpoch.Add(time.Hour)) },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_access_request.alice", plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("rules"), knownvalue.ListSizeExact(0)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status"), knownvalue.StringExact("Expired")),
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status_reason"), knownvalue.StringExact("Expired")),
				},
				Check: expectGrants(t, cloud, 0),
			},
			{
				PreConfig:        func() { clock.Advance(24 * time.Hour) },
				Config:           config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
	})
}

func TestAccAccessRequest_invalidRequestsAreDiagnosedAndWriteNothing(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	steps := []resource.TestStep{{Config: cloud.config(sshPolicy)}}
	for _, tc := range []struct{ port, want string }{
		{`number = 3389
    allowed_source_address_prefix = "203.0.113.7/32"
    duration = "PT1H"`, `Port not in the policy[\s\S]*port 3389 is not locked[\s\S]*22/TCP`},
		{`number = 22
    allowed_source_address_prefix = "10.0.0.0/8"
    duration = "PT1H"`, `Source not allowed[\s\S]*203.0.113.0/24`},
		{`number = 22
    allowed_source_address_prefix = "*"
    duration = "PT1H"`, `Source not allowed`},
		{`number = 22
    allowed_source_address_prefix = "203.0.113.7/32"
    duration = "PT3H"`, `Duration out of bounds[\s\S]*PT2H`},
		{`number = 22
    allowed_source_address_prefix = "203.0.113.7/32"
    end_time_utc = "2026-11-23T08:00:00Z"`, `End time in the past[\s\S]*end_time_utc`},
		{`number = 22
    allowed_source_address_prefix = "203.0.113.7/32"
    end_time_utc = "2026-11-23T12:00:00Z"`, `Duration out of bounds[\s\S]*end_time_utc`},
		{`number = 22
    allowed_source_address_prefix = "203.0.113.7/32"
    duration = "PT1H"
    end_time_utc = "2026-11-23T10:00:00Z"`, `Invalid Attribute Combination`},
		{`number = 22
    allowed_source_address_prefix = "203.0.113.7/32"
    duration = "an hour"`, `Invalid duration[\s\S]*duration`},
	} {
		steps = append(steps, resource.TestStep{
			PreConfig: cloud.ResetCalls,
			Config: cloud.config(sshPolicy + `
resource "jit_access_request" "bad" {
  virtual_machine_id = "` + testVM + `web"
  justification      = "testing limits"
  port {
    ` + tc.port + `
  }
}`),
			ExpectError: regexp.MustCompile(tc.want),
		}, resource.TestStep{
			Config: cloud.config(sshPolicy),
			Check: func(*terraform.State) error {
				if n := cloud.writes(); n != 0 {
					return fmt.Errorf("%d writes for an invalid request (%s)", n, tc.want)
				}
				return nil
			},
		})
	}
	resource.ParallelTest(t, resource.TestCase{ProtoV6ProviderFactories: factoriesAt(clock), Steps: steps})
}

func TestAccAccessRequest_newerRequestSupersedesAnOlderOne(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	first := sshPolicy + sshRequest("alice", "203.0.113.7/32", `duration = "PT1H"`)
	both := first + sshRequest("bob", "203.0.113.9/32", `duration = "PT2H"`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		CheckDestroy:             expectGrants(t, cloud, 0),
		Steps: []resource.TestStep{
			{Config: cloud.config(first), Check: expectGrants(t, cloud, 1)},
			{
				PreConfig: func() { clock.Advance(time.Minute) },
				Config:    cloud.config(both),
				Check: func(*terraform.State) error {
					for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
						if got := cloud.grants(t, nsg); len(got) != 1 || !strings.HasSuffix(got[0], ":203.0.113.9/32") {
							return fmt.Errorf("%s grants: %v, want bob's alone", nsg, got)
						}
					}
					return nil
				},
			},
			{
				Config:           cloud.config(both),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status"), knownvalue.StringExact("Revoked")),
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status_reason"), knownvalue.StringExact("NewerRequestInitiated")),
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("rules"), knownvalue.ListSizeExact(0)),
					statecheck.ExpectKnownValue("jit_access_request.bob", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status"), knownvalue.StringExact("Initiated")),
				},
			},
		},
	})
}

func TestAccAccessRequest_grantDeletedOutOfBandIsGrantedAgainUntilTheEnd(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	config := cloud.config(sshPolicy + sshRequest("alice", "203.0.113.7/32", `duration = "PT1H"`))
	var name string
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: func(s *terraform.State) error {
					name = s.RootModule().Resources["jit_access_request.alice"].Primary.Attributes["rules.0.name"]
					return nil
				},
			},
			{
				PreConfig: func() { cloud.deleteRule(t, "web-nic-nsg", name) },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_access_request.alice", plancheck.ResourceActionUpdate),
				}},
				Check: expectGrants(t, cloud, 1),
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

func TestAccAccessRequest_policyAppliedDuringAGrantKeepsIt(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	request := sshRequest("alice", "203.0.113.7/32", `duration = "PT1H"`)
	// The same policy with RDP locked too.
	wider := strings.Replace(sshPolicy, "  port {\n    number                          = 22", "  port {\n    number = 3389\n  }\n  port {\n    number                          = 22", 1)
	var granted []string
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{
				Config: cloud.config(sshPolicy + request),
				Check: func(*terraform.State) error {
					granted = append(cloud.grants(t, "web-nic-nsg"), cloud.grants(t, "web-subnet-nsg")...)
					return nil
				},
			},
			{
				Config: cloud.config(wider + request),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_policy.web", plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction("jit_access_request.alice", plancheck.ResourceActionNoop),
				}},
				Check: resource.ComposeTestCheckFunc(
					func(*terraform.State) error {
						now := append(cloud.grants(t, "web-nic-nsg"), cloud.grants(t, "web-subnet-nsg")...)
						if strings.Join(now, " ") != strings.Join(granted, " ") {
							return fmt.Errorf("grants changed by the policy apply:\n before %v\n after  %v", granted, now)
						}
						return nil
					},
					expectDenies(t, cloud, "web-nic-nsg", "web", "22/Tcp@1000->10.0.1.4 3389/Tcp@1001->10.0.1.4"),
				),
			},
			{Config: cloud.config(wider + request), ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

func TestAccAccessRequest_fromAConfigurationWithoutThePolicy(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	// The policy is applied, then forgotten by this configuration's state
	// (as if another configuration owned it): requests are checked against
	// what the cloud records.
	forgotten := `
removed {
  from = jit_policy.web
  lifecycle {
    destroy = false
  }
}
`
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy)},
			{Config: cloud.config(forgotten)},
			{
				Config:      cloud.config(forgotten + vmRequest("wide", `"`+testVM+`web"`, "203.0.0.0/16", `duration = "PT1H"`)),
				ExpectError: regexp.MustCompile(`Source not allowed[\s\S]*203.0.113.0/24`),
			},
			{
				Config: cloud.config(forgotten + vmRequest("alice", `"`+testVM+`web"`, "203.0.113.7/32", `end_time_utc = "2026-11-23T10:30:00Z"`)),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("end_time_utc"), knownvalue.StringExact("2026-11-23T10:30:00Z")),
				},
				Check: expectGrants(t, cloud, 1),
			},
		},
	})
}

func TestAccAccessRequest_twentyRequestsOnOneNSGInOneApply(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	ports := []int{22, 3389, 5985, 5986}
	for p := 8000; len(ports) < 20; p++ {
		ports = append(ports, p)
	}
	var config strings.Builder
	config.WriteString(`resource "jit_policy" "web" {
  name                = "web"
  virtual_machine_ids = ["` + testVM + `web"]
`)
	for _, p := range ports {
		fmt.Fprintf(&config, "  port {\n    number = %d\n  }\n", p)
	}
	config.WriteString("}\n")
	policy := config.String()
	for i, p := range ports {
		fmt.Fprintf(&config, `
resource "jit_access_request" "r%d" {
  virtual_machine_id = jit_policy.web.rules[0].virtual_machine_ids[0]
  justification      = "load test %d"
  port {
    number                        = %d
    allowed_source_address_prefix = "198.51.100.%d"
    duration                      = "PT1H"
  }
}
`, i, i, p, i+1)
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(policy)},
			{
				PreConfig: cloud.ResetCalls,
				Config:    cloud.config(config.String()),
				Check: resource.ComposeTestCheckFunc(
					expectGrants(t, cloud, len(ports)),
					func(*terraform.State) error {
						// Each NSG write landed once: nothing collided, nothing was retried.
						if n := cloud.Calls()["SecurityRules.CreateOrUpdate"]; n != 2*len(ports) {
							return fmt.Errorf("SecurityRules.CreateOrUpdate called %d times for %d grants", n, 2*len(ports))
						}
						return nil
					},
				),
			},
			{Config: cloud.config(config.String()), ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

func TestAccAccessRequest_throughTheFirewallIsADNATGrant(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	policy := strings.Replace(sshPolicy, `  name                = "web"`, `  name                = "web"
  azure_firewall_id   = "`+testFirewall+`fw-hub"`, 1)
	config := cloud.config(policy + sshRequest("alice", "203.0.113.7/32", `duration = "PT1H"`))
	before := cloud.firewallCollections(t, "fw-hub")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		CheckDestroy: func(*terraform.State) error {
			if got := cloud.firewallCollections(t, "fw-hub"); strings.Join(got, " ") != strings.Join(before, " ") {
				return fmt.Errorf("firewall not restored:\n got %v\nwant %v", got, before)
			}
			return expectGrants(t, cloud, 0)(nil)
		},
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					// The first mapped port of the dynamic range on the firewall's public IP.
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("connection_details"), knownvalue.StringExact("20.61.15.200:49152")),
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("rules"), knownvalue.ListSizeExact(3)),
				},
				Check: func(*terraform.State) error {
					fw, err := cloud.azureClient(t).Firewall(t.Context(), testFirewall+"fw-hub")
					if err != nil {
						return err
					}
					var dnat []string
					for _, col := range fw.NATCollections {
						for _, r := range col.Rules {
							dnat = append(dnat, fmt.Sprintf("%s %s:%s -> %s:%s", strings.Join(r.SourceAddresses, ","), strings.Join(r.DestinationAddresses, ","), strings.Join(r.DestinationPorts, ","), r.TranslatedAddress, r.TranslatedPort))
						}
					}
					if want := "203.0.113.7/32 20.61.15.200:49152 -> 10.0.1.4:22"; strings.Join(dnat, "; ") != want {
						return fmt.Errorf("DNAT rules: %v, want %s", dnat, want)
					}
					// The VM sees the firewall's SNAT addresses, not the requester's.
					for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
						if got := cloud.grants(t, nsg); len(got) != 1 || !strings.HasSuffix(got[0], ":10.100.0.0/26") {
							return fmt.Errorf("%s grants: %v", nsg, got)
						}
					}
					return nil
				},
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
			{
				PreConfig: func() { clock.Advance(2 * time.Hour) },
				Config:    config,
				Check: func(*terraform.State) error {
					got := cloud.firewallCollections(t, "fw-hub")
					if len(got) != 3 { // the two others and the policy's deny
						return fmt.Errorf("expired grant left on the firewall: %v", got)
					}
					return expectGrants(t, cloud, 0)(nil)
				},
			},
		},
	})
}

func TestAccAccessRequest_policyPlanRemovesExpiredGrants(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	// The request's own configuration is gone (forgotten here), so only the
	// policy's plan can clean up after it.
	forgotten := cloud.config(sshPolicy + `
removed {
  from = jit_access_request.alice
  lifecycle {
    destroy = false
  }
}
`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy + sshRequest("alice", "203.0.113.7/32", `duration = "PT1H"`))},
			{Config: forgotten, Check: expectGrants(t, cloud, 1)},
			{
				PreConfig: func() { clock.Advance(time.Hour) },
				Config:    forgotten,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_policy.web", plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue("jit_policy.web", tfjsonpath.New("expired_grants"), knownvalue.ListSizeExact(0)),
				}},
				Check: expectGrants(t, cloud, 0),
			},
			{Config: forgotten, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

func TestAccAccessRequest_shadowedGrantIsAPlanTimeError(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy)},
			{
				// Someone denies SSH from everywhere at the first priority:
				// no grant can go before it.
				PreConfig: func() {
					deny := inbound("deny-ssh-all", 100, jit.NSGDeny, "22")
					deny.SourcePrefixes = []string{"*"}
					cloud.putRule(t, "web-nic-nsg", deny)
					cloud.ResetCalls()
				},
				Config:      cloud.config(sshPolicy + sshRequest("alice", "203.0.113.7/32", `duration = "PT1H"`)),
				ExpectError: regexp.MustCompile(`The grant could not be placed[\s\S]*"deny-ssh-all"\s+\(priority\s+100,\s+Deny\)[\s\S]*could\s+not\s+work`),
			},
			{
				Config: cloud.config(sshPolicy),
				Check: func(*terraform.State) error {
					if n := cloud.writes(); n != 0 {
						return fmt.Errorf("%d writes for a grant that could not work", n)
					}
					return nil
				},
			},
		},
	})
}

// bobsGrant opens port 22 on web for bob, as bob's own pipeline (another
// provider process, another identity) would.
func (c *testCloud) bobsGrant(t *testing.T) {
	t.Helper()
	b := azure.NewBackend(c.azureClient(t), "")
	m, err := b.Machine(t.Context(), testVM+"web")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.OpenGrant(t.Context(), m, engine.Grant{
		ID: "20261123T090030Z-b0b0b0b0", Policy: "web", Requestor: "bob@example.com", Justification: "INC-4212",
		Ports: []engine.GrantPort{{Port: jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}, Source: "203.0.113.9/32", End: requestEpoch.Add(time.Hour)}},
	}); err != nil {
		t.Fatal(err)
	}
}

// expectGrantSources checks, in both NSGs on web's path, the sources of the
// grants, in priority order.
func expectGrantSources(t *testing.T, cloud *testCloud, want ...string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
			var got []string
			for _, g := range cloud.grants(t, nsg) {
				got = append(got, g[strings.LastIndex(g, ":")+1:])
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				return fmt.Errorf("%s grants %v, want sources %v", nsg, cloud.grants(t, nsg), want)
			}
		}
		return nil
	}
}

// During an incident several responders need the same VM: a request by
// someone else leaves a grant standing, each with its own rule and end;
// only the same requester's newer request supersedes theirs.
func TestAccAccessRequest_grantsOfDifferentRequestersCoexist(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	first := sshPolicy + sshRequest("first", "203.0.113.7/32", `duration = "PT1H"`)
	both := first + sshRequest("second", "203.0.113.8/32", `duration = "PT1H"`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		// Bob's grant is his pipeline's, not this configuration's: it stays.
		CheckDestroy: expectGrantSources(t, cloud, "203.0.113.9/32"),
		Steps: []resource.TestStep{
			{Config: cloud.config(first), Check: expectGrantSources(t, cloud, "203.0.113.7/32")},
			{
				PreConfig:        func() { cloud.bobsGrant(t) },
				Config:           cloud.config(first),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_access_request.first", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status"), knownvalue.StringExact("Initiated")),
					statecheck.ExpectKnownValue("jit_access_request.first", tfjsonpath.New("rules"), knownvalue.ListSizeExact(2)),
				},
				Check: expectGrantSources(t, cloud, "203.0.113.7/32", "203.0.113.9/32"),
			},
			{
				PreConfig: func() { clock.Advance(time.Minute) },
				Config:    cloud.config(both),
				Check:     expectGrantSources(t, cloud, "203.0.113.8/32", "203.0.113.9/32"),
			},
			{
				Config:           cloud.config(both),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_access_request.first", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status"), knownvalue.StringExact("Revoked")),
					statecheck.ExpectKnownValue("jit_access_request.first", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status_reason"), knownvalue.StringExact("NewerRequestInitiated")),
					statecheck.ExpectKnownValue("jit_access_request.second", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status"), knownvalue.StringExact("Initiated")),
				},
			},
		},
	})
}

// A justification is written into every grant for reviewers to read: a
// bidirectional override would make it read as something else, so it is
// refused at validate, naming the attribute, and nothing is written.
func TestAccAccessRequest_justificationThatReadsDifferentlyIsRefused(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy)},
			{
				PreConfig: cloud.ResetCalls,
				Config: cloud.config(sshPolicy + `
resource "jit_access_request" "bad" {
  virtual_machine_id = "` + testVM + `web"
  justification      = "INC-\u202e1124"
  port {
    number                        = 22
    allowed_source_address_prefix = "203.0.113.7/32"
    duration                      = "PT1H"
  }
}`),
				ExpectError: regexp.MustCompile(`Invalid text[\s\S]*justification[\s\S]*U\+202E`),
			},
			{Config: cloud.config(sshPolicy), Check: expectNoWrites(cloud)},
		},
	})
}

// A request of two ports reads back in one order: the next plans are empty.
func TestAccAccessRequest_twoPortsReadBackInAStableOrder(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	config := cloud.config(`resource "jit_policy" "web" {
  name                = "web"
  virtual_machine_ids = ["` + testVM + `web"]
  port {
    number = 3389
  }
  port {
    number = 22
  }
}
resource "jit_access_request" "both" {
  virtual_machine_id = one(jit_policy.web.virtual_machine_ids)
  justification      = "INC-9 both"
  port {
    number                        = 3389
    allowed_source_address_prefix = "203.0.113.7/32"
    duration                      = "PT1H"
  }
  port {
    number                        = 22
    allowed_source_address_prefix = "203.0.113.7/32"
    duration                      = "PT1H"
  }
}`)
	empty := resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: config, Check: expectGrants(t, cloud, 2)},
			{Config: config, ConfigPlanChecks: empty},
			{PreConfig: func() { clock.Advance(time.Minute) }, Config: config, ConfigPlanChecks: empty},
		},
	})
}

// A request for a VM that does not exist says so in its summary, and its
// detail carries the cloud's code and message in one line, not the SDK's
// dump of the HTTP exchange.
func TestAccAccessRequest_missingVMIsToldInOneLine(t *testing.T) {
	cloud := newTestCloud(t, "world")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      cloud.config(vmRequest("ghost", `"`+testVM+`ghost"`, "203.0.113.7/32", `duration = "PT1H"`)),
			ExpectError: regexp.MustCompile(`Virtual machine not found[\s\S]*ResourceNotFound:[\s\S]*\(HTTP\s+404\)`),
		}},
	})
	e := engine.New(jit.NewClock(), []engine.Backend{azure.NewBackend(cloud.azureClient(t), "")})
	_, findings := e.PlanRequest(t.Context(), engine.Request{MachineID: testVM + "ghost", Ports: []engine.RequestPort{{Number: 22, Source: "203.0.113.7/32", Duration: "PT1H"}}})
	if len(findings) != 1 || strings.Contains(findings[0].Detail, "RESPONSE") || strings.Contains(findings[0].Detail, "\n") {
		t.Errorf("findings %+v, want one with a one-line detail", findings)
	}
}

// Anyone who can write a VM's tags could widen the settings a request is
// checked against. In the policy's own configuration the request is checked
// against the policy's state instead, and the policy's refresh sees the
// edited tag as drift that its plan restores.
func TestAccAccessRequest_settingsEditedInTheTagsDoNotWidenARequest(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	widen := func() { cloud.tagVM(t, "web", map[string]string{"jit-port-22-tcp": "P1D *"}) }
	outsider := sshRequest("mallory", "198.51.100.7/32", `duration = "PT20H"`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy)},
			{
				PreConfig:   func() { widen(); cloud.ResetCalls() },
				Config:      cloud.config(sshPolicy + outsider),
				ExpectError: regexp.MustCompile(`Source not allowed[\s\S]*203.0.113.0/24`),
			},
			{
				Config: cloud.config(sshPolicy),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_policy.web", plancheck.ResourceActionUpdate),
				}},
				Check: func(*terraform.State) error {
					m, err := cloud.azureClient(t).Machine(t.Context(), testVM+"web")
					if err != nil {
						return err
					}
					if got := m.Tags["jit-port-22-tcp"]; got != "PT2H 203.0.113.0/24" {
						return fmt.Errorf("tag jit-port-22-tcp = %q, want the policy's settings restored", got)
					}
					return nil
				},
			},
			{Config: cloud.config(sshPolicy), ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// Azure Firewall counts its public IPs and DNAT rules against one quota
// of 250. A grant through a firewall holding others' DNAT rules up to it
// is a plan error naming the firewall; one rule fewer, and it is written.
func TestAccAccessRequest_aFirewallWithoutRoomForTheDNATRuleIsAPlanError(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	policy := cloud.config(strings.Replace(sshPolicy, `  name                = "web"`, `  name                = "web"
  azure_firewall_id   = "`+testFirewall+`fw-hub"`, 1))
	config := policy + sshRequest("alice", "203.0.113.7/32", `duration = "PT1H"`)
	// fill writes a DNAT collection of others with n rules; the fixture's
	// firewall has one public IP.
	fill := func(n int) {
		col := jit.FirewallNATCollection{Name: "someone-elses-dnat", Priority: 300}
		for i := range n {
			col.Rules = append(col.Rules, jit.FirewallNATRule{
				Name: fmt.Sprintf("forward-%d", i), Protocols: []string{"TCP"}, SourceAddresses: []string{"198.51.100.0/24"},
				DestinationAddresses: []string{"20.61.15.200"}, DestinationPorts: []string{fmt.Sprint(30000 + i)},
				TranslatedAddress: "10.0.2.4", TranslatedPort: "443",
			})
		}
		change := azure.FirewallChange{NAT: map[string]*jit.FirewallNATCollection{col.Name: &col}}
		if err := cloud.azureClient(t).UpdateFirewall(t.Context(), testFirewall+"fw-hub", change); err != nil {
			t.Fatal(err)
		}
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: policy, PreConfig: func() { fill(249) }},
			{
				Config:      config,
				ExpectError: regexp.MustCompile(`No room for the grant's DNAT rules[\s\S]*fw-hub\s+has\s+250\s+DNAT\s+rules\s+and\s+public\s+IP\s+addresses`),
			},
			{
				PreConfig: func() {
					if got := cloud.firewallCollections(t, "fw-hub"); slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "jit-grant") }) {
						t.Fatalf("the refused request wrote a collection: %v", got)
					}
					fill(248)
				},
				Config: config,
				Check:  expectGrants(t, cloud, 1),
			},
		},
	})
}

// A grant deleted out of band is granted again only while the policy the
// VM carries could still make it: once the policy allows other sources
// only, the update refuses to write it back, saying why, and writes
// nothing.
func TestAccAccessRequest_grantDeletedOutOfBandIsNotGrantedAgainPastThePolicy(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	applyPolicy(t, cloud, testVM+"web")
	config := cloud.config(vmRequest("alice", `"`+testVM+`web"`, "203.0.113.7/32", `duration = "PT1H"`))
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: config, Check: expectGrants(t, cloud, 1)},
			{
				PreConfig: func() {
					for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
						for _, g := range cloud.grants(t, nsg) {
							cloud.deleteRule(t, nsg, strings.SplitN(g, "@", 2)[0])
						}
					}
					// The policy now allows 10.0.0.0/8 only.
					cloud.tagVM(t, "web", map[string]string{"jit-port-22-tcp": "PT2H 10.0.0.0/8"})
				},
				Config:      config,
				ExpectError: regexp.MustCompile(`(?s)Cannot grant access again.*is not granted again`),
			},
			{
				PreConfig: func() {
					if err := expectGrants(t, cloud, 0)(nil); err != nil {
						t.Fatal(err)
					}
				},
				// Destroying the request removes what is left of it.
				Config: cloud.config(""),
			},
		},
	})
}
