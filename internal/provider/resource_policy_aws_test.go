package provider

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// The instances and security groups of testdata/aws.json.
const (
	ec2Exact     = "i-000000000000000a1" // sgExact: TCP 22 and TCP 443 from anywhere
	ec2Range     = "i-000000000000000a2" // sgRange: TCP 0-65535 from 10.0.0.0/8
	ec2All       = "i-000000000000000a3" // sgAll: all protocols from 192.168.0.0/16
	ec2Sources   = "i-000000000000000a4" // sgSources: IPv6, prefix-list, group and a UDP rule
	ec2TwoENIs   = "i-000000000000000a5" // sgTwoA on its primary ENI, sgTwoB on the second
	ec2SharedIn  = "i-000000000000000a6" // sgShared, which ec2SharedOut carries too
	ec2SharedOut = "i-000000000000000a7"
	ec2Full      = "i-000000000000000a8" // sgFull: 59 rules and a TCP 0-65535 one

	sgExact   = "sg-000000000000000e1"
	sgRange   = "sg-000000000000000e2"
	sgAll     = "sg-000000000000000e3"
	sgSources = "sg-000000000000000e4"
	sgBastion = "sg-000000000000000e5"
	sgTwoA    = "sg-000000000000000e6"
	sgTwoB    = "sg-000000000000000e7"
	sgShared  = "sg-000000000000000e8"
	sgFull    = "sg-000000000000000e9"
)

// awsClient is a real EC2 client aimed at the emulator, for checks and for
// changes made out of band.
func (c *testCloud) awsClient(t *testing.T) *aws.Client {
	t.Helper()
	client, err := aws.New(context.Background(), aws.Config{Region: "eu-west-1", Endpoint: c.URL})
	if err != nil {
		t.Fatal(err)
	}
	client.EC2 = ec2.New(client.EC2.Options(), inTestFlow)
	return client
}

// ingress lists a group's inbound rules as DescribeSecurityGroupRules
// reports them, without their IDs, sorted.
func (c *testCloud) ingress(t *testing.T, group string) []string {
	t.Helper()
	groups, err := c.awsClient(t).SecurityGroups(context.Background(), []string{group})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range groups[group].Ingress {
		r.ID = ""
		out = append(out, fmt.Sprintf("%s %d %d %s %q", r.IPProtocol, r.FromPort, r.ToPort, r.Source(), r.Description))
	}
	slices.Sort(out)
	return out
}

func (c *testCloud) groupTags(t *testing.T, group string) map[string]string {
	t.Helper()
	groups, err := c.awsClient(t).SecurityGroups(context.Background(), []string{group})
	if err != nil {
		t.Fatal(err)
	}
	return groups[group].Tags
}

func (c *testCloud) instanceTags(t *testing.T, id string) map[string]string {
	t.Helper()
	m, err := c.awsClient(t).Machine(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m.Tags
}

// awsWorld is every group's rules and tags and every instance's tags.
type awsWorld struct {
	rules, groupTags, instanceTags map[string]any
}

func (c *testCloud) awsWorld(t *testing.T, instances ...string) awsWorld {
	w := awsWorld{map[string]any{}, map[string]any{}, map[string]any{}}
	for _, g := range c.Snapshot().AWS.SecurityGroups {
		w.rules[g.ID], w.groupTags[g.ID] = c.ingress(t, g.ID), c.groupTags(t, g.ID)
	}
	for _, i := range instances {
		w.instanceTags[i] = c.instanceTags(t, i)
	}
	return w
}

// restored checks that every group holds exactly its original rules
// (sources, descriptions, ranges; rule IDs aside) and tags, and every
// instance its original tags: what a destroy must leave.
func (c *testCloud) restored(t *testing.T, before awsWorld, instances ...string) func(*terraform.State) error {
	return func(*terraform.State) error {
		after := c.awsWorld(t, instances...)
		for _, part := range []struct {
			name          string
			before, after map[string]any
		}{{"inbound rules", before.rules, after.rules}, {"tags", before.groupTags, after.groupTags}, {"instance tags", before.instanceTags, after.instanceTags}} {
			for _, k := range slices.Sorted(maps.Keys(part.before)) {
				if !reflect.DeepEqual(part.before[k], part.after[k]) {
					return fmt.Errorf("%s of %s not restored:\n got %v\nwant %v", part.name, k, part.after[k], part.before[k])
				}
			}
		}
		return nil
	}
}

func expectIngress(t *testing.T, cloud *testCloud, group string, want ...string) func(*terraform.State) error {
	return func(*terraform.State) error {
		slices.Sort(want)
		if got := cloud.ingress(t, group); !slices.Equal(got, want) {
			return fmt.Errorf("inbound rules of %s:\n got %q\nwant %q", group, got, want)
		}
		return nil
	}
}

func awsPolicyConfig(cloud *testCloud, name string, instances []string, ports string) string {
	return cloud.config(`resource "jit_policy" "p" {
  name                = "` + name + `"
  virtual_machine_ids = ["` + strings.Join(instances, `", "`) + `"]
` + ports + `
}`)
}

func revoked(group, action, rule string) knownvalue.Check {
	return knownvalue.ObjectPartial(map[string]knownvalue.Check{
		"security_group_id": knownvalue.StringExact(group),
		"action":            knownvalue.StringExact(action),
		"rule":              knownvalue.StringExact(rule),
	})
}

func expectRevoked(checks ...knownvalue.Check) plancheck.PlanCheck {
	return plancheck.ExpectKnownValue("jit_policy.p", tfjsonpath.New("revoked_ingress_rules"), knownvalue.ListExact(checks))
}

func emptyPlanStep(config string) tfresource.TestStep {
	return tfresource.TestStep{Config: config, ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}}
}

func TestAccPolicyAWS_ruleExactlyOnPortIsRevokedAndRestored(t *testing.T) {
	cloud := newTestCloud(t, "aws")
	before := cloud.awsWorld(t, ec2Exact)
	config := awsPolicyConfig(cloud, "exact", []string{ec2Exact}, `  port {
    number                          = 22
    allowed_source_address_prefixes = ["10.0.0.0/8"]
    max_request_access_duration     = "PT1H"
  }`)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             cloud.restored(t, before, ec2Exact),
		Steps: []tfresource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					expectRevoked(revoked(sgExact, "revoke", `TCP 22 from 0.0.0.0/0, "ssh"`)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_policy.p", tfjsonpath.New("revoked_ingress_rules").AtSliceIndex(0), knownvalue.ObjectExact(map[string]knownvalue.Check{
						"security_group_id":   knownvalue.StringExact(sgExact),
						"virtual_machine_ids": knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact(ec2Exact)}),
						"action":              knownvalue.StringExact("revoke"),
						"rule":                knownvalue.StringExact(`TCP 22 from 0.0.0.0/0, "ssh"`),
						"ip_protocol":         knownvalue.StringExact("tcp"),
						"from_port":           knownvalue.Int64Exact(22),
						"to_port":             knownvalue.Int64Exact(22),
						"source":              knownvalue.StringExact("0.0.0.0/0"),
						"description":         knownvalue.StringExact("ssh"),
					})),
					statecheck.ExpectKnownValue("jit_policy.p", tfjsonpath.New("rules"), knownvalue.ListSizeExact(0)),
				},
				Check: tfresource.ComposeTestCheckFunc(
					expectIngress(t, cloud, sgExact, `tcp 443 443 0.0.0.0/0 "https"`),
					func(*terraform.State) error {
						tags := cloud.instanceTags(t, ec2Exact)
						if tags[jit.TagPolicy] != "exact" || tags["jit-port-22-tcp"] != "PT1H 10.0.0.0/8" || tags["Name"] != "exact" {
							return fmt.Errorf("instance tags: %v", tags)
						}
						backup, remainders, err := jit.ParseSGBackupTags("exact", cloud.groupTags(t, sgExact))
						if err != nil || len(backup) != 1 || backup[0].String() != `TCP 22 from 0.0.0.0/0, "ssh"` || len(remainders) != 0 {
							return fmt.Errorf("backup tags: %v %v %w", backup, remainders, err)
						}
						return nil
					},
				),
			},
			emptyPlanStep(config),
		},
	})
}

func TestAccPolicyAWS_wideTCPRangeIsSplitAroundThePort(t *testing.T) {
	cloud := newTestCloud(t, "aws")
	before := cloud.awsWorld(t, ec2Range)
	config := awsPolicyConfig(cloud, "range", []string{ec2Range}, port22)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             cloud.restored(t, before, ec2Range),
		Steps: []tfresource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{expectRevoked(
					revoked(sgRange, "revoke", `TCP 0-65535 from 10.0.0.0/8, "office VPN"`),
					revoked(sgRange, "re-authorize remainder", `TCP 0-21 from 10.0.0.0/8, "office VPN"`),
					revoked(sgRange, "re-authorize remainder", `TCP 23-65535 from 10.0.0.0/8, "office VPN"`),
				)}},
				Check: expectIngress(t, cloud, sgRange, `tcp 0 21 10.0.0.0/8 "office VPN"`, `tcp 23 65535 10.0.0.0/8 "office VPN"`),
			},
			emptyPlanStep(config),
		},
	})
}

func TestAccPolicyAWS_allProtocolsRuleKeepsTCPUDPAndICMP(t *testing.T) {
	cloud := newTestCloud(t, "aws")
	before := cloud.awsWorld(t, ec2All)
	config := awsPolicyConfig(cloud, "all", []string{ec2All}, port22+`
  port {
    number   = 53
    protocol = "UDP"
  }`)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             cloud.restored(t, before, ec2All),
		Steps: []tfresource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{expectRevoked(
					revoked(sgAll, "revoke", `all protocols from 192.168.0.0/16, "lab"`),
					revoked(sgAll, "re-authorize remainder", `ICMP from 192.168.0.0/16, "lab"`),
					revoked(sgAll, "re-authorize remainder", `TCP 0-21 from 192.168.0.0/16, "lab"`),
					revoked(sgAll, "re-authorize remainder", `TCP 23-65535 from 192.168.0.0/16, "lab"`),
					revoked(sgAll, "re-authorize remainder", `UDP 0-52 from 192.168.0.0/16, "lab"`),
					revoked(sgAll, "re-authorize remainder", `UDP 54-65535 from 192.168.0.0/16, "lab"`),
				)}},
				Check: expectIngress(t, cloud, sgAll,
					`icmp -1 -1 192.168.0.0/16 "lab"`,
					`tcp 0 21 192.168.0.0/16 "lab"`, `tcp 23 65535 192.168.0.0/16 "lab"`,
					`udp 0 52 192.168.0.0/16 "lab"`, `udp 54 65535 192.168.0.0/16 "lab"`),
			},
			emptyPlanStep(config),
		},
	})
}

func TestAccPolicyAWS_ipv6PrefixListAndGroupSources(t *testing.T) {
	cloud := newTestCloud(t, "aws")
	before := cloud.awsWorld(t, ec2Sources)
	config := awsPolicyConfig(cloud, "sources", []string{ec2Sources}, port22)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             cloud.restored(t, before, ec2Sources),
		Steps: []tfresource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{expectRevoked(
					revoked(sgSources, "revoke", `TCP 22 from 2001:db8::/32, "ssh v6"`),
					revoked(sgSources, "revoke", `TCP 20-25 from prefix list pl-0a1b2c3d4e5f60710, "corp list"`),
					revoked(sgSources, "revoke", `TCP 22 from security group `+sgBastion+`, "bastions"`),
					revoked(sgSources, "re-authorize remainder", `TCP 20-21 from prefix list pl-0a1b2c3d4e5f60710, "corp list"`),
					revoked(sgSources, "re-authorize remainder", `TCP 23-25 from prefix list pl-0a1b2c3d4e5f60710, "corp list"`),
				)}},
				// The DNS rule opens no locked port and is left alone.
				Check: expectIngress(t, cloud, sgSources,
					`tcp 20 21 pl-0a1b2c3d4e5f60710 "corp list"`, `tcp 23 25 pl-0a1b2c3d4e5f60710 "corp list"`, `udp 53 53 10.0.0.0/8 "dns"`),
			},
			emptyPlanStep(config),
		},
	})
}

func TestAccPolicyAWS_twoENIsWithDifferentGroups(t *testing.T) {
	cloud := newTestCloud(t, "aws")
	before := cloud.awsWorld(t, ec2TwoENIs)
	config := awsPolicyConfig(cloud, "two", []string{ec2TwoENIs}, port22+"\n  port {\n    number = 3389\n  }")
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             cloud.restored(t, before, ec2TwoENIs),
		Steps: []tfresource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{expectRevoked(
					revoked(sgTwoA, "revoke", `TCP 22 from 10.1.0.0/16, "ssh"`),
					revoked(sgTwoB, "revoke", `TCP 3389 from 10.2.0.0/16, "rdp"`),
				)}},
				Check: tfresource.ComposeTestCheckFunc(
					expectIngress(t, cloud, sgTwoA),
					expectIngress(t, cloud, sgTwoB, `tcp 8080 8080 10.2.0.0/16 "app"`),
				),
			},
			emptyPlanStep(config),
		},
	})
}

func TestAccPolicyAWS_groupSharedWithAnInstanceOutsideThePolicy(t *testing.T) {
	cloud := newTestCloud(t, "aws")
	before := cloud.awsWorld(t, ec2SharedIn, ec2SharedOut)
	config := awsPolicyConfig(cloud, "shared", []string{ec2SharedIn}, port22)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             cloud.restored(t, before, ec2SharedIn, ec2SharedOut),
		Steps: []tfresource.TestStep{
			{
				Config: config,
				Check: tfresource.ComposeTestCheckFunc(
					expectIngress(t, cloud, sgShared),
					func(*terraform.State) error {
						if tags := cloud.instanceTags(t, ec2SharedOut); tags[jit.TagPolicy] != "" {
							return fmt.Errorf("the instance outside the policy was tagged: %v", tags)
						}
						return nil
					},
				),
			},
			emptyPlanStep(config),
		},
	})
	// The CLI does not hand warnings to the test framework; the plan the
	// CLI ran is run again here through the provider, over the same SDK
	// client and emulator, to read them.
	diags := planDiagnostics(t, cloud, "shared", []string{ec2SharedIn}, 22)
	if diags.HasError() {
		t.Fatal(diags)
	}
	var warnings []string
	for _, d := range diags.Warnings() {
		warnings = append(warnings, d.Summary()+": "+d.Detail())
	}
	want := regexp.MustCompile(`Security group shared outside the policy: Security group ` + sgShared + ` is also attached to eni-\w+ \(instance ` + ec2SharedOut + `\), which policy "shared" does not cover[\s\S]*TCP 22 from 10.9.0.0/16`)
	if len(warnings) != 1 || !want.MatchString(warnings[0]) {
		t.Errorf("warnings = %q, want one matching %s", warnings, want)
	}
}

// planDiagnostics runs the policy's plan, as ModifyPlan does for the CLI,
// through an engine configured against the emulator's EC2 alone.
func planDiagnostics(t *testing.T, cloud *testCloud, name string, instances []string, port int) diag.Diagnostics {
	t.Helper()
	e := engine.New(jit.NewClock(), []engine.Backend{aws.NewBackend(cloud.awsClient(t))})
	ports := []jit.Port{{Number: port, Protocol: jit.ProtocolTCP, AllowedSourcePrefixes: []string{"*"}, MaxRequestAccessDuration: jit.Duration(3 * time.Hour)}}
	p := e.PlanPolicy(context.Background(), engine.PolicySpec{Name: name, MachineIDs: instances, Ports: ports}, nil)
	var diags diag.Diagnostics
	addFindings(&diags, p.Findings...)
	return diags
}

func TestAccPolicyAWS_groupNearTheRuleLimitIsAnErrorAndChangesNothing(t *testing.T) {
	cloud := newTestCloud(t, "aws")
	before := cloud.Snapshot()
	cloud.ResetCalls()
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []tfresource.TestStep{{
			Config:      awsPolicyConfig(cloud, "full", []string{ec2Full}, port22),
			ExpectError: regexp.MustCompile(`Cannot lock the ports in a security group[\s\S]*` + sgFull + `[\s\S]*61\s+inbound\s+IPv4\s+rules[\s\S]*limit\s+of\s+60`),
		}},
	})
	if n := cloud.writes(); n != 0 {
		t.Errorf("%d writes despite the error", n)
	}
	if after := cloud.Snapshot(); !reflect.DeepEqual(before.AWS, after.AWS) {
		t.Error("the AWS side changed despite the error")
	}
}

func TestAccPolicyAWS_crashAfterRevokeConvergesWithNothingLost(t *testing.T) {
	cloud := newTestCloud(t, "aws")
	before := cloud.awsWorld(t, ec2Range)
	config := awsPolicyConfig(cloud, "crash", []string{ec2Range}, port22)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             cloud.restored(t, before, ec2Range),
		Steps: []tfresource.TestStep{
			{
				// The connection drops right after EC2 applied the revoke, and
				// the apply dies before authorising the remainders: the group
				// is left without TCP 0-21 and 23-65535 from the office.
				PreConfig: func() {
					cloud.InjectFault(cloudsim.Fault{Operation: "RevokeSecurityGroupIngress", DropAfterWrite: 1})
					cloud.InjectFault(cloudsim.Fault{Operation: "AuthorizeSecurityGroupIngress", FailNext: 100, Status: 403, Code: "UnauthorizedOperation"})
				},
				Config:      config,
				ExpectError: regexp.MustCompile(`Cannot write security group rules[\s\S]*UnauthorizedOperation`),
			},
			{
				PreConfig: func() {
					if got := cloud.ingress(t, sgRange); len(got) != 0 {
						t.Errorf("the crash was not where the test meant it: %q", got)
					}
					cloud.ClearFaults()
				},
				Config: config,
				Check:  expectIngress(t, cloud, sgRange, `tcp 0 21 10.0.0.0/8 "office VPN"`, `tcp 23 65535 10.0.0.0/8 "office VPN"`),
			},
			emptyPlanStep(config),
		},
	})
}

func TestAccPolicyAWS_droppedConnectionsAfterEachWriteStillConverge(t *testing.T) {
	cloud := newTestCloud(t, "aws")
	before := cloud.awsWorld(t, ec2Range)
	config := awsPolicyConfig(cloud, "drops", []string{ec2Range}, port22)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             cloud.restored(t, before, ec2Range),
		Steps: []tfresource.TestStep{
			{
				PreConfig: func() {
					for _, op := range []string{"CreateTags", "RevokeSecurityGroupIngress", "AuthorizeSecurityGroupIngress"} {
						cloud.InjectFault(cloudsim.Fault{Operation: op, DropAfterWrite: 1})
					}
				},
				Config: config,
				Check: tfresource.ComposeTestCheckFunc(
					expectIngress(t, cloud, sgRange, `tcp 0 21 10.0.0.0/8 "office VPN"`, `tcp 23 65535 10.0.0.0/8 "office VPN"`),
					func(*terraform.State) error {
						// Each dropped write was retried by the SDK: the drops happened.
						calls := cloud.Calls()
						for _, op := range []string{"CreateTags", "RevokeSecurityGroupIngress", "AuthorizeSecurityGroupIngress"} {
							if calls[op] < 2 {
								return fmt.Errorf("%s called %d times; the dropped connection was not retried", op, calls[op])
							}
						}
						return nil
					},
				),
			},
			emptyPlanStep(config),
		},
	})
}

func TestAccPolicyAWS_mixedAzureAndEC2(t *testing.T) {
	cloud := newTestCloud(t, "world")
	before := cloud.awsWorld(t, testEC2)
	config := cloud.config(`resource "jit_policy" "p" {
  name                = "mixed"
  virtual_machine_ids = ["` + testVM + `web", "` + testEC2 + `"]
` + port22 + `
}`)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy: func(s *terraform.State) error {
			if got := cloud.ownedDenies(t, "web-nic-nsg", "mixed"); len(got) != 0 {
				return fmt.Errorf("NIC NSG still has denies: %v", got)
			}
			return cloud.restored(t, before, testEC2)(s)
		},
		Steps: []tfresource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue("jit_policy.p", tfjsonpath.New("rules"), knownvalue.ListSizeExact(2)),
					expectRevoked(knownvalue.ObjectPartial(map[string]knownvalue.Check{
						"security_group_id":   knownvalue.StringExact("sg-0b5e3a1f2c4d6e8a0"),
						"virtual_machine_ids": knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact(testEC2)}),
						"rule":                knownvalue.StringExact(`TCP 22 from 0.0.0.0/0, "ssh"`),
					})),
				}},
				Check: tfresource.ComposeTestCheckFunc(
					expectDenies(t, cloud, "web-nic-nsg", "mixed", "22/Tcp@1000->10.0.1.4"),
					expectIngress(t, cloud, "sg-0b5e3a1f2c4d6e8a0"),
				),
			},
			emptyPlanStep(config),
		},
	})
}

func TestAccPolicyAWS_invalidInstanceIDIsAPlanTimeError(t *testing.T) {
	cloud := newTestCloud(t, "aws")
	cloud.ResetCalls()
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []tfresource.TestStep{{
			Config:      awsPolicyConfig(cloud, "bad", []string{"i-12345"}, port22),
			ExpectError: regexp.MustCompile(`Invalid virtual machine ID[\s\S]*virtual_machine_ids = \["i-12345"\][\s\S]*"i-12345" is neither an Azure VM resource ID[\s\S]*nor\s+an\s+EC2\s+instance\s+ID`),
		}},
	})
	if n := cloud.writes(); n != 0 {
		t.Errorf("%d writes for an invalid ID", n)
	}
}

// authorizeOutOfBand adds an inbound rule the way a person would.
func (c *testCloud) authorizeOutOfBand(t *testing.T, group, cidr, description string, port int32) {
	t.Helper()
	_, err := c.awsClient(t).EC2.AuthorizeSecurityGroupIngress(context.Background(), &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: awssdk.String(group),
		IpPermissions: []types.IpPermission{{
			IpProtocol: awssdk.String("tcp"), FromPort: awssdk.Int32(port), ToPort: awssdk.Int32(port),
			IpRanges: []types.IpRange{{CidrIp: awssdk.String(cidr), Description: awssdk.String(description)}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAccPolicyAWS_ruleReAddedOutOfBandIsRevokedAgain(t *testing.T) {
	cloud := newTestCloud(t, "aws")
	before := cloud.awsWorld(t, ec2Exact)
	config := awsPolicyConfig(cloud, "drift", []string{ec2Exact}, port22)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             cloud.restored(t, before, ec2Exact),
		Steps: []tfresource.TestStep{
			{Config: config, Check: expectIngress(t, cloud, sgExact, `tcp 443 443 0.0.0.0/0 "https"`)},
			{
				// The very rule the policy revoked, put back by hand.
				PreConfig: func() { cloud.authorizeOutOfBand(t, sgExact, "0.0.0.0/0", "ssh", 22) },
				Config:    config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_policy.p", plancheck.ResourceActionUpdate),
					expectRevoked(revoked(sgExact, "revoke", `TCP 22 from 0.0.0.0/0, "ssh"`)),
				}},
				Check: expectIngress(t, cloud, sgExact, `tcp 443 443 0.0.0.0/0 "https"`),
			},
			{
				// A new rule on the port: revoked, and kept for the restore.
				PreConfig: func() { cloud.authorizeOutOfBand(t, sgExact, "198.51.100.0/24", "vendor", 22) },
				Config:    config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{expectRevoked(
					revoked(sgExact, "revoke", `TCP 22 from 0.0.0.0/0, "ssh"`),
					revoked(sgExact, "revoke", `TCP 22 from 198.51.100.0/24, "vendor"`),
				)}},
				Check: expectIngress(t, cloud, sgExact, `tcp 443 443 0.0.0.0/0 "https"`),
			},
			emptyPlanStep(config),
			{
				// Destroy puts back the vendor rule too: nothing the policy
				// revoked is lost.
				Config:  config,
				Destroy: true,
				Check:   expectIngress(t, cloud, sgExact, `tcp 22 22 0.0.0.0/0 "ssh"`, `tcp 22 22 198.51.100.0/24 "vendor"`, `tcp 443 443 0.0.0.0/0 "https"`),
			},
		},
	})
}

func TestAccPolicyAWS_importByName(t *testing.T) {
	cloud := newTestCloud(t, "aws")
	config := awsPolicyConfig(cloud, "imp", []string{ec2Range, ec2TwoENIs}, `  port {
    number                          = 22
    allowed_source_address_prefixes = ["10.0.0.0/8"]
  }`)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []tfresource.TestStep{
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

func TestAccPolicyAWS_removingAPortOrAnInstanceRestoresItsRules(t *testing.T) {
	cloud := newTestCloud(t, "aws")
	before := cloud.awsWorld(t, ec2Exact, ec2Range)
	both := port22 + "\n  port {\n    number = 443\n  }"
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             cloud.restored(t, before, ec2Exact, ec2Range),
		Steps: []tfresource.TestStep{
			{
				Config: awsPolicyConfig(cloud, "shrink", []string{ec2Exact, ec2Range}, both),
				Check: tfresource.ComposeTestCheckFunc(
					expectIngress(t, cloud, sgExact),
					expectIngress(t, cloud, sgRange, `tcp 0 21 10.0.0.0/8 "office VPN"`, `tcp 23 442 10.0.0.0/8 "office VPN"`, `tcp 444 65535 10.0.0.0/8 "office VPN"`),
				),
			},
			{
				Config: awsPolicyConfig(cloud, "shrink", []string{ec2Exact, ec2Range}, port22),
				Check: tfresource.ComposeTestCheckFunc(
					expectIngress(t, cloud, sgExact, `tcp 443 443 0.0.0.0/0 "https"`),
					expectIngress(t, cloud, sgRange, `tcp 0 21 10.0.0.0/8 "office VPN"`, `tcp 23 65535 10.0.0.0/8 "office VPN"`),
				),
			},
			{
				Config: awsPolicyConfig(cloud, "shrink", []string{ec2Exact}, port22),
				Check: tfresource.ComposeTestCheckFunc(
					expectIngress(t, cloud, sgRange, `tcp 0 65535 10.0.0.0/8 "office VPN"`),
					func(*terraform.State) error {
						for k := range cloud.instanceTags(t, ec2Range) {
							if jit.IsPolicyTag(k) {
								return fmt.Errorf("the instance left the policy but keeps tag %s", k)
							}
						}
						for k := range cloud.groupTags(t, sgRange) {
							if jit.IsSGBackupTag("shrink", k) {
								return fmt.Errorf("the group was restored but keeps backup tag %s", k)
							}
						}
						return nil
					},
				),
			},
			emptyPlanStep(awsPolicyConfig(cloud, "shrink", []string{ec2Exact}, port22)),
		},
	})
}

func TestAccPolicyAWS_deletedInstanceIsDroppedAndItsGroupRestored(t *testing.T) {
	cloud := newTestCloud(t, "aws")
	before := cloud.awsWorld(t, ec2Exact)
	config := awsPolicyConfig(cloud, "gone", []string{ec2Exact}, port22)
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             cloud.restored(t, before, ec2Exact),
		Steps: []tfresource.TestStep{
			{
				Config: awsPolicyConfig(cloud, "gone", []string{ec2Exact, ec2Range}, port22),
				Check:  expectIngress(t, cloud, sgRange, `tcp 0 21 10.0.0.0/8 "office VPN"`, `tcp 23 65535 10.0.0.0/8 "office VPN"`),
			},
			{
				// The instance is deleted; its group outlives it, and gets its
				// rule back whole once the policy no longer covers anything
				// behind it.
				PreConfig: func() {
					if _, err := cloud.awsClient(t).EC2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{ec2Range}}); err != nil {
						t.Fatal(err)
					}
				},
				Config: config,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					expectRevoked(revoked(sgExact, "revoke", `TCP 22 from 0.0.0.0/0, "ssh"`)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_policy.p", tfjsonpath.New("virtual_machine_ids"), knownvalue.SetExact([]knownvalue.Check{knownvalue.StringExact(ec2Exact)})),
				},
				Check: expectIngress(t, cloud, sgRange, `tcp 0 65535 10.0.0.0/8 "office VPN"`),
			},
			emptyPlanStep(config),
		},
	})
	// The rest of the world is as it was; the range group's record is gone.
	if tags := cloud.groupTags(t, sgRange); len(tags) != 0 {
		t.Errorf("backup tags left on %s: %v", sgRange, tags)
	}
}

// Another writer fills the group to one rule short of EC2's 60 between the
// policy's revoke of a wide rule and its authorisation of the remainders
// around the port: EC2 refuses the remainders. The wide rule is put back
// as its owner wrote it (the room its revoke left takes it), the backup
// tags go back to none, and the apply fails saying so; once room is made,
// the next apply locks the port.
func TestAccPolicyAWS_aGroupFilledDuringTheApplyGetsItsRuleBack(t *testing.T) {
	cloud := newTestCloud(t, "aws")
	config := awsPolicyConfig(cloud, "range", []string{ec2Range}, port22)
	original := cloud.ingress(t, sgRange)
	var started atomic.Bool
	var filler []string
	fill := func(*http.Request) bool {
		if !started.CompareAndSwap(false, true) {
			return false // the filler's own writes
		}
		for i := len(cloud.ingress(t, sgRange)); i < 59; i++ {
			cidr := fmt.Sprintf("198.51.100.%d/32", i)
			cloud.authorizeOutOfBand(t, sgRange, cidr, "someone else", 8443)
			filler = append(filler, fmt.Sprintf("tcp 8443 8443 %s %q", cidr, "someone else"))
		}
		return true
	}
	tfresource.ParallelTest(t, tfresource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []tfresource.TestStep{
			{
				PreConfig:   func() { cloud.OnCall("AuthorizeSecurityGroupIngress", fill) },
				Config:      config,
				ExpectError: regexp.MustCompile(`(?s)RulesPerSecurityGroupLimitExceeded.*were\s+put\s+back\s+as\s+they\s+were,\s+so\s+it\s+is\s+as\s+before\s+the\s+apply\s*$`),
			},
			{
				PreConfig: func() {
					if err := expectIngress(t, cloud, sgRange, slices.Concat(original, filler)...)(nil); err != nil {
						t.Fatal(err)
					}
					for k := range cloud.groupTags(t, sgRange) {
						if strings.HasPrefix(k, "jit-") {
							t.Fatalf("backup tag %s left on the group", k)
						}
					}
					for _, rule := range filler {
						cidr := strings.Fields(rule)[3]
						_, err := cloud.awsClient(t).EC2.RevokeSecurityGroupIngress(t.Context(), &ec2.RevokeSecurityGroupIngressInput{
							GroupId: awssdk.String(sgRange),
							IpPermissions: []types.IpPermission{{IpProtocol: awssdk.String("tcp"), FromPort: awssdk.Int32(8443), ToPort: awssdk.Int32(8443),
								IpRanges: []types.IpRange{{CidrIp: awssdk.String(cidr)}}}},
						})
						if err != nil {
							t.Fatal(err)
						}
					}
				},
				Config: config,
				Check:  expectIngress(t, cloud, sgRange, `tcp 0 21 10.0.0.0/8 "office VPN"`, `tcp 23 65535 10.0.0.0/8 "office VPN"`),
			},
			emptyPlanStep(config),
		},
	})
}
