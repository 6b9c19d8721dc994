package provider

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/command"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
)

// operationActions maps each operation the emulator serves to the Azure
// RBAC actions or the IAM actions a call of it needs. One table: the roles
// jit_role_definition renders are checked against it. An operation that
// needs none (a token, sts:GetCallerIdentity) maps to nothing.
var operationActions = map[string][]string{
	// Azure Resource Manager.
	"ManagedIdentity.GetToken":      nil,
	"VirtualMachines.Get":           {"Microsoft.Compute/virtualMachines/read"},
	"VirtualMachines.List":          {"Microsoft.Compute/virtualMachines/read"},
	"VirtualMachines.ListAll":       {"Microsoft.Compute/virtualMachines/read"},
	"VirtualMachines.Update":        {"Microsoft.Compute/virtualMachines/write"},
	"VirtualMachines.Delete":        {"Microsoft.Compute/virtualMachines/delete"},
	"Tags.UpdateAtScope":            {"Microsoft.Resources/tags/write"},
	"ComputeOperations.Get":         {"Microsoft.Compute/locations/operations/read"},
	"ComputeOperationResults.Get":   {"Microsoft.Compute/locations/operations/read"},
	"Interfaces.Get":                {"Microsoft.Network/networkInterfaces/read"},
	"Interfaces.List":               {"Microsoft.Network/networkInterfaces/read"},
	"Interfaces.ListAll":            {"Microsoft.Network/networkInterfaces/read"},
	"VirtualNetworks.Get":           {"Microsoft.Network/virtualNetworks/read"},
	"VirtualNetworks.List":          {"Microsoft.Network/virtualNetworks/read"},
	"VirtualNetworks.ListAll":       {"Microsoft.Network/virtualNetworks/read"},
	"Subnets.Get":                   {"Microsoft.Network/virtualNetworks/subnets/read"},
	"SecurityGroups.Get":            {"Microsoft.Network/networkSecurityGroups/read"},
	"SecurityGroups.List":           {"Microsoft.Network/networkSecurityGroups/read"},
	"SecurityGroups.ListAll":        {"Microsoft.Network/networkSecurityGroups/read"},
	"SecurityRules.Get":             {"Microsoft.Network/networkSecurityGroups/securityRules/read"},
	"SecurityRules.List":            {"Microsoft.Network/networkSecurityGroups/securityRules/read"},
	"SecurityRules.CreateOrUpdate":  {"Microsoft.Network/networkSecurityGroups/securityRules/write"},
	"SecurityRules.Delete":          {"Microsoft.Network/networkSecurityGroups/securityRules/delete"},
	"PublicIPAddresses.Get":         {"Microsoft.Network/publicIPAddresses/read"},
	"ApplicationSecurityGroups.Get": {"Microsoft.Network/applicationSecurityGroups/read"},
	"FirewallPolicies.Get":          {"Microsoft.Network/firewallPolicies/read"},
	"AzureFirewalls.Get":            {"Microsoft.Network/azureFirewalls/read"},
	"AzureFirewalls.List":           {"Microsoft.Network/azureFirewalls/read"},
	"AzureFirewalls.ListAll":        {"Microsoft.Network/azureFirewalls/read"},
	// A firewall PUT carries its IP configurations: ARM checks the caller
	// may join their subnet and public IP (linked access check).
	"AzureFirewalls.CreateOrUpdate": {"Microsoft.Network/azureFirewalls/write",
		"Microsoft.Network/virtualNetworks/subnets/join/action", "Microsoft.Network/publicIPAddresses/join/action"},
	"NetworkOperations.Get":       {"Microsoft.Network/locations/operations/read"},
	"NetworkOperationResults.Get": {"Microsoft.Network/locations/operations/read"},
	// EC2 and STS.
	"GetCallerIdentity":               nil,
	"DescribeInstances":               {"ec2:DescribeInstances"},
	"TerminateInstances":              {"ec2:TerminateInstances"},
	"DescribeNetworkInterfaces":       {"ec2:DescribeNetworkInterfaces"},
	"ModifyNetworkInterfaceAttribute": {"ec2:ModifyNetworkInterfaceAttribute"},
	"DescribeSecurityGroups":          {"ec2:DescribeSecurityGroups"},
	"DescribeSecurityGroupRules":      {"ec2:DescribeSecurityGroupRules"},
	// Its TagSpecifications need ec2:CreateTags too (ec2:CreateAction).
	"CreateSecurityGroup":           {"ec2:CreateSecurityGroup", "ec2:CreateTags"},
	"DeleteSecurityGroup":           {"ec2:DeleteSecurityGroup"},
	"AuthorizeSecurityGroupIngress": {"ec2:AuthorizeSecurityGroupIngress"},
	"RevokeSecurityGroupIngress":    {"ec2:RevokeSecurityGroupIngress"},
	"CreateTags":                    {"ec2:CreateTags"},
	"DeleteTags":                    {"ec2:DeleteTags"},
}

// The table covers every operation the emulator serves, so a new one
// cannot slip past the role checks.
func TestOperationActions_coverEveryEmulatedOperation(t *testing.T) {
	for _, op := range cloudsim.Operations() {
		if _, ok := operationActions[op]; !ok {
			t.Errorf("operation %s has no entry in operationActions", op)
		}
	}
	for op := range operationActions {
		if !slices.Contains(cloudsim.Operations(), op) {
			t.Errorf("operationActions names %s, which the emulator does not serve", op)
		}
	}
}

// testFlow names the calls the tests' own clients make, to check or to
// change the emulated clouds out of band: they are no flow of the provider.
const testFlow = "test"

// inTestFlow makes an EC2 client's calls name the test flow.
func inTestFlow(o *ec2.Options) {
	o.APIOptions = append(o.APIOptions, awsmiddleware.AddUserAgentKeyValue(engine.FlowUserAgentToken, testFlow))
}

// roleActions is what jit_role_definition grants a flow, both clouds.
func roleActions(flow engine.Flow) (map[string]bool, error) {
	az, err := roleDocuments.azureActions(flow)
	if err != nil {
		return nil, err
	}
	aws, err := roleDocuments.awsActions(flow)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, a := range slices.Concat(az, aws) {
		out[a] = true
	}
	return out, nil
}

// roleViolations lists what the calls made in each flow need that the
// flow's role lacks and, when minimal is set, what the role grants that
// no call needed. Calls naming no flow must need no permission: every
// call of the provider names its flow.
func roleViolations(calls map[string]map[string]int, minimal bool) []string {
	var out []string
	for _, flow := range slices.Sorted(maps.Keys(calls)) {
		if flow == cloudsim.NoFlow || flow == testFlow || slices.Contains(engine.Flows, engine.Flow(flow)) {
			continue
		}
		out = append(out, fmt.Sprintf("calls in unknown flow %q: %v", flow, calls[flow]))
	}
	for op := range calls[cloudsim.NoFlow] {
		if len(operationActions[op]) > 0 && minimal {
			out = append(out, fmt.Sprintf("%s was called without naming a flow in its User-Agent", op))
		}
	}
	for _, flow := range engine.Flows {
		granted, err := roleActions(flow)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		used := map[string]bool{}
		for _, op := range slices.Sorted(maps.Keys(calls[string(flow)])) {
			actions, known := operationActions[op]
			if !known {
				out = append(out, fmt.Sprintf("%s flow called %s, which operationActions does not map", flow, op))
			}
			for _, a := range actions {
				used[a] = true
				if !granted[a] {
					out = append(out, fmt.Sprintf("%s flow called %s, which needs %s: its role lacks it", flow, op, a))
				}
			}
		}
		if !minimal {
			continue
		}
		for _, a := range slices.Sorted(maps.Keys(granted)) {
			if !used[a] {
				out = append(out, fmt.Sprintf("%s role grants %s, which no call of the flow needed", flow, a))
			}
		}
	}
	return out
}

// suiteCalls gathers the calls of every emulator the acceptance tests
// start, by flow, for TestMain's check that no flow ever used an action
// its role lacks.
var suiteCalls = struct {
	sync.Mutex
	byFlow map[string]map[string]int
}{byFlow: map[string]map[string]int{}}

func recordFlows(srv *cloudsim.Server) {
	suiteCalls.Lock()
	defer suiteCalls.Unlock()
	addCalls(suiteCalls.byFlow, srv.CallsByFlow())
}

func addCalls(into, calls map[string]map[string]int) {
	for flow, ops := range calls {
		if into[flow] == nil {
			into[flow] = map[string]int{}
		}
		for op, n := range ops {
			into[flow][op] += n
		}
	}
}

// checkSuiteRoles is TestMain's check over every acceptance test run:
// each flow's calls stayed within its role.
func checkSuiteRoles() []string {
	suiteCalls.Lock()
	defer suiteCalls.Unlock()
	return roleViolations(suiteCalls.byFlow, false)
}

// Every flow, run through OpenTofu against the emulator on both clouds,
// needs exactly the actions of its role: the configure flow (policies with
// a classic firewall, their refresh, the removal of expired grants, the
// restore on destroy), the request flow (requests and ephemeral access:
// open, supersede, revoke), the audit flow (the data sources) and the
// revoke flow (revoke-expired). A role missing an action a call needed, or
// granting one no call needed, fails the test.
func TestAccRoles_everyFlowUsesExactlyItsRole(t *testing.T) {
	calls := map[string]map[string]int{}
	policies := strings.Replace(sshPolicy, `  name                = "web"`, `  name                = "web"
  azure_firewall_id   = "`+testFirewall+`fw-hub"`, 1) + strings.Replace(ec2Policy(testEC2), `  port {`, `  port {
    number                          = 3389
    allowed_source_address_prefixes = ["203.0.113.0/24"]
    max_request_access_duration     = "PT2H"
  }
  port {`, 1)
	requests := sshRequest("alice", "203.0.113.7/32", `duration = "PT1H"`) +
		strings.Replace(ec2Request, `"jit_access_request" "alice"`, `"jit_access_request" "alice_db"`, 1)
	reads := `
data "jit_virtual_machine" "web" { virtual_machine_id = one(jit_policy.web.virtual_machine_ids) }
data "jit_virtual_machine" "db" { virtual_machine_id = one(jit_policy.db.virtual_machine_ids) }
data "jit_virtual_machines" "all" {}
`
	ephemerals := accessEphemeralConfig("203.0.113.8/32", "PT30M") + strings.NewReplacer(`"jit_access" "ci"`, `"jit_access" "ci_db"`,
		"jit_policy.web", "jit_policy.db").Replace(accessEphemeralConfig("203.0.113.8/32", "PT30M"))
	twoPorts := `
resource "jit_access_request" "carol_db" {
  virtual_machine_id = one(jit_policy.db.virtual_machine_ids)
  justification      = "INC-78 two ports"
  port {
    number                        = 3389
    allowed_source_address_prefix = "203.0.113.10/32"
    duration                      = "PT30M"
  }
  port {
    number                        = 22
    allowed_source_address_prefix = "203.0.113.10/32"
    duration                      = "PT1H"
  }
}
resource "jit_access_request" "dave" {
  virtual_machine_id = one(jit_policy.web.virtual_machine_ids)
  justification      = "INC-79 for a colleague"
  on_behalf_of       = "dave@example.com"
  port {
    number                        = 22
    allowed_source_address_prefix = "203.0.113.11/32"
    duration                      = "PT30M"
  }
}
`
	forget := `
removed {
  from = jit_access_request.alice
  lifecycle { destroy = false }
}
removed {
  from = jit_access_request.alice_db
  lifecycle { destroy = false }
}
`
	// A request for someone else keeps a record of who asked on the VM.
	forOthers := `
resource "jit_access_request" "erin" {
  virtual_machine_id = one(jit_policy.web.virtual_machine_ids)
  justification      = "INC-80 for a colleague"
  on_behalf_of       = "erin@example.com"
  port {
    number                        = 22
    allowed_source_address_prefix = "203.0.113.12/32"
    duration                      = "PT1H"
  }
}
`
	forgetOthers := `
removed {
  from = jit_access_request.erin
  lifecycle { destroy = false }
}
`
	expectNoGrants := func(cloud *testCloud) resource.TestCheckFunc {
		return func(*terraform.State) error {
			if err := expectGrants(t, cloud, 0)(nil); err != nil {
				return err
			}
			if groups := cloud.eniGroups(t, "eni-0a0a0a0a0a0a0a0a1"); len(groups) != 1 {
				return fmt.Errorf("the instance's ENI still carries %v", groups)
			}
			return nil
		}
	}

	// Each flow runs in a configuration of its own, as each identity would
	// (the platform team's, CI's for requests, an auditor's): a provider
	// process reads each object once and shares it with every resource, so
	// in one configuration the first flow to read an object would be the
	// only one seen needing it. The policies are forgotten (left in the
	// cloud) while the requests run, and the requests while the data
	// sources read.
	literal := strings.NewReplacer("one(jit_policy.web.virtual_machine_ids)", `"`+testVM+`web"`,
		"one(jit_policy.db.virtual_machine_ids)", `"`+testEC2+`"`)
	alone := func(hcl string) string { return literal.Replace(hcl) }
	forgetPolicies := `
removed {
  from = jit_policy.web
  lifecycle { destroy = false }
}
removed {
  from = jit_policy.db
  lifecycle { destroy = false }
}
`
	forgetTwoPorts := `
removed {
  from = jit_access_request.carol_db
  lifecycle { destroy = false }
}
removed {
  from = jit_access_request.dave
  lifecycle { destroy = false }
}
`

	// Configure, request and audit: requests opened, superseded, revoked
	// early (one) and left to expire (the other), whose grants the
	// policies' plan removes once the requests' configuration is gone.
	// Under Terraform below 1.10 (make testacc-terraform) this part skips
	// itself for its ephemeral resources; what the other part calls is still
	// checked against its roles, but no role can be proved minimal.
	allFlowsRan := true
	t.Run("configure_request_audit", func(t *testing.T) {
		t.Cleanup(func() { allFlowsRan = allFlowsRan && !t.Skipped() })
		cloud := newTestCloud(t, "world")
		t.Cleanup(func() { addCalls(calls, cloud.CallsByFlow()) })
		clock := clocktest.New(requestEpoch)
		resource.Test(t, resource.TestCase{
			TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.SkipBelow(tfversion.Version1_10_0)},
			ProtoV6ProviderFactories: factoriesAt(clock),
			Steps: []resource.TestStep{
				{Config: cloud.config(policies)},
				{Config: cloud.config(forgetPolicies)},
				{Config: cloud.config(alone(requests))},
				{
					// The ephemeral grants, of the same requestor, supersede the
					// requests'. Each opens after its request (it names the
					// request's VM), so that a request written again in the
					// apply never supersedes the ephemeral grant instead.
					Config: cloud.config(alone(requests + strings.NewReplacer(
						"one(jit_policy.web.virtual_machine_ids)", "jit_access_request.alice.virtual_machine_id",
						"one(jit_policy.db.virtual_machine_ids)", "jit_access_request.alice_db.virtual_machine_id").Replace(ephemerals))),
					ExpectNonEmptyPlan: true,
				},
				{
					// A newer request of the same requestor supersedes alice's.
					PreConfig: func() { clock.Advance(time.Minute) },
					Config: cloud.config(alone(requests) + literal.Replace(strings.NewReplacer(`"jit_access_request" "alice"`, `"jit_access_request" "bob"`,
						"203.0.113.7/32", "203.0.113.9/32").Replace(sshRequest("alice", "203.0.113.7/32", `duration = "PT1H"`)))),
				},
				// alice_db is destroyed before its end: revoked.
				{Config: cloud.config(literal.Replace(sshRequest("alice", "203.0.113.7/32", `duration = "PT1H"`)))},
				{Config: cloud.config(alone(requests))},
				// A request whose ports end apart: the first to end is
				// revoked from its group alone.
				{Config: cloud.config(alone(requests + twoPorts))},
				{
					// The refresh after the apply reports only the port the
					// group still opens: the next plan is empty.
					PreConfig: func() { clock.Advance(45 * time.Minute) },
					Config:    cloud.config(alone(requests + twoPorts)),
					Check: func(*terraform.State) error {
						if n := cloud.CallsByFlow()["request"]["RevokeSecurityGroupIngress"]; n == 0 {
							return fmt.Errorf("no port of the grant group revoked alone")
						}
						return nil
					},
				},
				{Config: cloud.config(forget + forgetTwoPorts)},
				{Config: cloud.config(alone(reads))},
				{
					// The policies, applied again, remove their expired grants
					// on both clouds: the Azure rules and collections, and
					// the EC2 grant group detached and deleted.
					PreConfig: func() { clock.Advance(2 * time.Hour) },
					Config:    cloud.config(policies),
					Check: func(s *terraform.State) error {
						if err := expectNoGrants(cloud)(s); err != nil {
							return err
						}
						if got := cloud.grantGroups(t); len(got) != 0 {
							return fmt.Errorf("EC2 grant groups left after the policy's sweep: %v", got)
						}
						return nil
					},
				},
			},
		})
	})

	// Revoke: expired grants on both clouds, removed by revoke-expired.
	// carol_db is made for someone else here, so that alice_db, applied
	// beside it by the same identity, does not supersede its port 22.
	carolForOthers := strings.Replace(twoPorts, `justification      = "INC-78 two ports"`, `justification      = "INC-78 two ports"
  on_behalf_of       = "carol@example.com"`, 1)
	t.Run("revoke", func(t *testing.T) {
		cloud := newTestCloud(t, "world")
		t.Cleanup(func() { addCalls(calls, cloud.CallsByFlow()) })
		clock := clocktest.New(requestEpoch)
		resource.Test(t, resource.TestCase{
			ProtoV6ProviderFactories: factoriesAt(clock),
			Steps: []resource.TestStep{
				{Config: cloud.config(policies + requests + forOthers + carolForOthers)},
				{Config: cloud.config(policies + forget + forgetOthers + forgetTwoPorts)},
				{
					// Between the ends of a request's ports, revoke-expired
					// revokes the port that ended from the EC2 grant group.
					PreConfig: func() {
						clock.Advance(45 * time.Minute)
						var stdout, stderr bytes.Buffer
						args := []string{"-region", "eu-west-1", "-aws-endpoint", cloud.URL}
						if code := command.RevokeExpired(t.Context(), args, &stdout, &stderr, clock); code != command.ExitOK {
							t.Fatalf("revoke-expired exited %d: %s %s", code, stdout.String(), stderr.String())
						}
						if !strings.Contains(stdout.String(), `"3389/TCP"`) {
							t.Fatalf("revoke-expired revoked no port alone: %s", stdout.String())
						}
					},
					Config: cloud.config(policies + forget + forgetOthers + forgetTwoPorts),
				},
				{
					PreConfig: func() {
						// Past a day, the record of who asked goes with the grant.
						clock.Advance(25*time.Hour - 45*time.Minute)
						var stdout, stderr bytes.Buffer
						args := []string{"-subscription", testSub, "-azure-endpoint", cloud.URL, "-region", "eu-west-1", "-aws-endpoint", cloud.URL}
						if code := command.RevokeExpired(t.Context(), args, &stdout, &stderr, clock); code != command.ExitOK {
							t.Fatalf("revoke-expired exited %d: %s %s", code, stdout.String(), stderr.String())
						}
						if !strings.Contains(stdout.String(), `"security-group"`) || !strings.Contains(stdout.String(), `"firewall-grant"`) {
							t.Fatalf("revoke-expired revoked too little: %s", stdout.String())
						}
						// The next run finds erin's record with no grant
						// left and removes it.
						stdout.Reset()
						if code := command.RevokeExpired(t.Context(), args, &stdout, &stderr, clock); code != command.ExitOK || !strings.Contains(stdout.String(), `"grant-record"`) {
							t.Fatalf("the second revoke-expired exited %d and removed no record: %s %s", code, stdout.String(), stderr.String())
						}
					},
					Config: cloud.config(policies + forget + forgetOthers + forgetTwoPorts),
					Check:  expectNoGrants(cloud),
				},
			},
		})
	})

	if t.Failed() {
		return
	}
	for _, flow := range engine.Flows {
		t.Logf("%s flow: %v", flow, calls[string(flow)])
	}
	for _, v := range roleViolations(calls, allFlowsRan) {
		t.Error(v)
	}
	if !allFlowsRan {
		t.Skip("the configure, request and audit flows did not run: the roles' minimality is unchecked")
	}
}

// The documented permissions per flow (templates/, rendered into docs/)
// are the roles jit_role_definition renders, action for action.
func TestRoleDocumentation_listsEachFlowsActions(t *testing.T) {
	b, err := os.ReadFile("../../templates/data-sources/role_definition.md.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	sections := strings.Split(string(b), "\n### `")
	documented := map[engine.Flow][]string{}
	for _, s := range sections[1:] {
		flow, body, _ := strings.Cut(s, "`")
		for _, line := range strings.Split(body, "\n") {
			if a, ok := strings.CutPrefix(line, "- `"); ok {
				documented[engine.Flow(flow)] = append(documented[engine.Flow(flow)], strings.TrimSuffix(a, "`"))
			}
		}
	}
	for _, flow := range engine.Flows {
		want, err := roleActions(flow)
		if err != nil {
			t.Fatal(err)
		}
		got := documented[flow]
		if len(got) != len(want) || slices.ContainsFunc(got, func(a string) bool { return !want[a] }) {
			t.Errorf("%s: the template lists %v, the role grants %v", flow, got, slices.Sorted(maps.Keys(want)))
		}
	}
}
