package provider

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

func ec2Policy(instance string) string {
	return `resource "jit_policy" "db" {
  name                = "db"
  virtual_machine_ids = ["` + instance + `"]
  port {
    number                          = 22
    allowed_source_address_prefixes = ["203.0.113.0/24"]
    max_request_access_duration     = "PT2H"
  }
}
`
}

const ec2Request = `
resource "jit_access_request" "alice" {
  virtual_machine_id = one(jit_policy.db.virtual_machine_ids)
  justification      = "INC-77 replica lag"
  port {
    number                        = 22
    allowed_source_address_prefix = "203.0.113.7/32"
    duration                      = "PT1H"
  }
}
`

// ec2Client is a real EC2 client aimed at the emulator, for checks.
func (c *testCloud) ec2Client(t *testing.T) *ec2.Client {
	t.Helper()
	client, err := aws.New(t.Context(), aws.Config{Region: "eu-west-1", Endpoint: c.URL})
	if err != nil {
		t.Fatal(err)
	}
	return ec2.New(client.EC2.Options(), inTestFlow)
}

// eniGroups lists the security groups of a network interface.
func (c *testCloud) eniGroups(t *testing.T, eni string) []string {
	out, err := c.ec2Client(t).DescribeNetworkInterfaces(t.Context(), &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{eni}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range out.NetworkInterfaces[0].Groups {
		ids = append(ids, awssdk.ToString(g.GroupId))
	}
	return ids
}

// grantGroups lists the grant groups in the emulator as "id tcp:22<-source".
func (c *testCloud) grantGroups(t *testing.T) []string {
	out, err := c.ec2Client(t).DescribeSecurityGroups(t.Context(), &ec2.DescribeSecurityGroupsInput{
		Filters: []types.Filter{{Name: awssdk.String("tag-key"), Values: []string{jit.TagGrant}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var groups []string
	for _, sg := range out.SecurityGroups {
		var perms []string
		for _, p := range sg.IpPermissions {
			for _, r := range p.IpRanges {
				perms = append(perms, fmt.Sprintf("%s:%d<-%s", awssdk.ToString(p.IpProtocol), awssdk.ToInt32(p.FromPort), awssdk.ToString(r.CidrIp)))
			}
		}
		groups = append(groups, awssdk.ToString(sg.GroupId)+" "+strings.Join(perms, ","))
	}
	return groups
}

func TestAccAccessRequestAWS_grantGroupOnThePrimaryENI(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	const primary = "eni-0a0a0a0a0a0a0a0a1"
	before := cloud.eniGroups(t, primary)
	config := cloud.config(ec2Policy(testEC2) + ec2Request)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		CheckDestroy: func(*terraform.State) error {
			if got := cloud.eniGroups(t, primary); !slices.Equal(got, before) {
				return fmt.Errorf("ENI groups %v, want %v", got, before)
			}
			if got := cloud.grantGroups(t); len(got) != 0 {
				return fmt.Errorf("grant groups left: %v", got)
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("requestor"), knownvalue.StringExact("arn:aws:iam::123456789012:user/operator")),
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("connection_details"), knownvalue.StringExact("10.1.1.10:22")),
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("rules"), knownvalue.ListSizeExact(1)),
				},
				Check: func(*terraform.State) error {
					groups := cloud.grantGroups(t)
					if len(groups) != 1 || !strings.HasSuffix(groups[0], " tcp:22<-203.0.113.7/32") {
						return fmt.Errorf("grant groups: %v", groups)
					}
					// Attached beside the groups the ENI had.
					want := append(slices.Clone(before), strings.Fields(groups[0])[0])
					if got := cloud.eniGroups(t, primary); !slices.Equal(got, want) {
						return fmt.Errorf("ENI groups %v, want %v", got, want)
					}
					return nil
				},
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
			{
				PreConfig: func() { clock.Advance(time.Hour) },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_access_request.alice", plancheck.ResourceActionUpdate),
				}},
				Check: func(*terraform.State) error {
					if got := cloud.grantGroups(t); len(got) != 0 {
						return fmt.Errorf("expired grant group left: %v", got)
					}
					if got := cloud.eniGroups(t, primary); !slices.Equal(got, before) {
						return fmt.Errorf("ENI groups %v, want %v", got, before)
					}
					return nil
				},
			},
		},
	})
}

func TestAccAccessRequestAWS_fullInterfaceIsAnErrorAndWritesNothing(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	policy := ec2Policy("i-0f0f0f0f0f0f0f0f1")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(policy)},
			{
				PreConfig:   cloud.ResetCalls,
				Config:      cloud.config(policy + ec2Request),
				ExpectError: regexp.MustCompile(`No room for the grant's security group[\s\S]*eni-0f0f0f0f0f0f0f0f4[\s\S]*5 security groups`),
			},
			{
				Config: cloud.config(policy),
				Check: func(*terraform.State) error {
					if n := cloud.writes(); n != 0 {
						return fmt.Errorf("%d writes for a refused grant", n)
					}
					return nil
				},
			},
		},
	})
}

// On EC2 too, a grant group of someone else stays beside a request's; the
// same requester's newer request supersedes theirs.
func TestAccAccessRequestAWS_grantsOfDifferentRequestersCoexist(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	second := strings.NewReplacer(`"alice"`, `"second"`, "203.0.113.7/32", "203.0.113.8/32").Replace(ec2Request)
	sources := func(want ...string) resource.TestCheckFunc {
		return func(*terraform.State) error {
			var got []string
			for _, g := range cloud.grantGroups(t) {
				got = append(got, g[strings.LastIndex(g, "<-")+2:])
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				return fmt.Errorf("grant groups %v, want sources %v", cloud.grantGroups(t), want)
			}
			return nil
		}
	}
	bobsGrant := func() {
		b := aws.NewBackend(cloud.awsClient(t))
		m, err := b.Machine(t.Context(), testEC2)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.OpenGrant(t.Context(), m, engine.Grant{
			ID: "20261123T090030Z-b0b0b0b0", Policy: "db", Requestor: "arn:aws:iam::123456789012:user/bob", Justification: "INC-78",
			Ports: []engine.GrantPort{{Port: jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}, Source: "203.0.113.9/32", End: requestEpoch.Add(time.Hour)}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	first := ec2Policy(testEC2) + ec2Request
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		CheckDestroy:             sources("203.0.113.9/32"),
		Steps: []resource.TestStep{
			{Config: cloud.config(first), Check: sources("203.0.113.7/32")},
			{
				PreConfig:        bobsGrant,
				Config:           cloud.config(first),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				Check:            sources("203.0.113.7/32", "203.0.113.9/32"),
			},
			{
				PreConfig: func() { clock.Advance(time.Minute) },
				Config:    cloud.config(first + second),
				Check:     sources("203.0.113.8/32", "203.0.113.9/32"),
			},
			{
				Config:           cloud.config(first + second),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status_reason"), knownvalue.StringExact("NewerRequestInitiated")),
					statecheck.ExpectKnownValue("jit_access_request.second", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status"), knownvalue.StringExact("Initiated")),
				},
			},
		},
	})
}

// An ENI holding four groups and the grant group of an older request of the
// same requester for the same port has room for a newer request: its group
// replaces the older one. Plan and apply count the group that leaves.
func TestAccAccessRequestAWS_supersedingOnAFullInterfaceCountsTheGroupThatLeaves(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	const instance, eni = "i-0e0e0e0e0e0e0e0e1", "eni-0e0e0e0e0e0e0e0e4"
	policy := ec2Policy(instance)
	first := strings.Replace(ec2Request, `"alice"`, `"first"`, 1)
	second := strings.Replace(ec2Request, `"alice"`, `"second"`, 1)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(policy + first)},
			{
				PreConfig: func() { clock.Advance(time.Minute) },
				Config:    cloud.config(policy + first + second),
				Check: func(*terraform.State) error {
					groups := cloud.eniGroups(t, eni)
					if len(groups) != 5 || len(cloud.grantGroups(t)) != 1 {
						return fmt.Errorf("ENI groups %v, grant groups %v: want the newer grant's group alone beside the four", groups, cloud.grantGroups(t))
					}
					return nil
				},
			},
		},
	})
}
