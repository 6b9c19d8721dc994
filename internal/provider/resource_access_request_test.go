package provider

import (
	"fmt"
	"regexp"
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

func sshRequest(name, source, when string) string {
	return `
resource "jit_access_request" "` + name + `" {
  virtual_machine_id = "` + testVM + `web"
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
	clock := jit.NewFakeClock(requestEpoch)
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
	clock := jit.NewFakeClock(requestEpoch)
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
	clock := jit.NewFakeClock(requestEpoch)
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
