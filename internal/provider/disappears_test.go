package provider

import (
	"fmt"
	"strings"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// The removal paths of Read, the model providers' "disappears" tests: what
// the cloud lost out of band leaves state without a destroy that would
// touch anything, or is put back by the next apply.

// deleteJITRules removes every JIT rule (denies and grants) from an NSG,
// as someone cleaning up by hand would.
func (c *testCloud) deleteJITRules(t *testing.T, nsg string) {
	t.Helper()
	for _, r := range c.nsgRules(t, nsg) {
		if _, ok := jit.ParseMarker(r.Description); ok {
			c.deleteRule(t, nsg, r.Name)
		}
	}
}

func expectNoWrites(cloud *testCloud) resource.TestCheckFunc {
	return func(*terraform.State) error {
		if n := cloud.writes(); n != 0 {
			return fmt.Errorf("%d cloud writes, want none: %v", n, cloud.Calls())
		}
		return nil
	}
}

// A policy whose every VM and rule is gone leaves state on refresh: with
// the policy out of the configuration, the plan is empty instead of a
// destroy of what no longer exists.
func TestAccPolicy_disappearsWithEveryVMAndRule(t *testing.T) {
	cloud := newTestCloud(t, "world")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy), Check: expectDenies(t, cloud, "web-nic-nsg", "web", "22/Tcp@1000->10.0.1.4")},
			{
				PreConfig: func() {
					cloud.deleteVM(t, "web")
					cloud.deleteJITRules(t, "web-nic-nsg")
					cloud.deleteJITRules(t, "web-subnet-nsg")
					cloud.ResetCalls()
				},
				Config:           cloud.config(""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				Check:            expectNoWrites(cloud),
			},
		},
	})
}

// A request whose VM and grants are gone leaves state on refresh.
func TestAccAccessRequest_disappearsWithItsVMAndGrants(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy + sshRequest("alice", "203.0.113.7/32", `duration = "PT1H"`)), Check: expectGrants(t, cloud, 1)},
			{
				PreConfig: func() {
					cloud.deleteVM(t, "web")
					cloud.deleteJITRules(t, "web-nic-nsg")
					cloud.deleteJITRules(t, "web-subnet-nsg")
					cloud.ResetCalls()
				},
				Config:           cloud.config(""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				Check:            expectNoWrites(cloud),
			},
		},
	})
}

// A request whose VM is gone but whose grants remain in the NSGs is kept
// in state, and destroying it removes them, found where the state saw them.
func TestAccAccessRequest_vmGoneWithItsGrantsLeftIsCleanedOnDestroy(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy + sshRequest("alice", "203.0.113.7/32", `duration = "PT1H"`)), Check: expectGrants(t, cloud, 1)},
			{
				PreConfig: func() { cloud.deleteVM(t, "web") },
				Config:    cloud.config(""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_access_request.alice", plancheck.ResourceActionDestroy),
					plancheck.ExpectResourceAction("jit_policy.web", plancheck.ResourceActionDestroy),
				}},
				Check: func(*terraform.State) error {
					for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
						for _, r := range cloud.nsgRules(t, nsg) {
							if _, ok := jit.ParseMarker(r.Description); ok {
								return fmt.Errorf("%s still holds JIT rule %s", nsg, r.Name)
							}
						}
					}
					return nil
				},
			},
		},
	})
}

// A grant's security group deleted out of band is created again, until the
// request's end, by the next apply.
func TestAccAccessRequestAWS_grantGroupDeletedOutOfBandIsGrantedAgain(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	const primary = "eni-0a0a0a0a0a0a0a0a1"
	config := cloud.config(ec2Policy(testEC2) + ec2Request)
	var deleted string
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: config},
			{
				PreConfig: func() {
					groups := cloud.grantGroups(t)
					if len(groups) != 1 {
						t.Fatalf("grant groups %v, want one", groups)
					}
					deleted, _, _ = strings.Cut(groups[0], " ")
					client := cloud.ec2Client(t)
					var keep []string
					for _, g := range cloud.eniGroups(t, primary) {
						if g != deleted {
							keep = append(keep, g)
						}
					}
					if _, err := client.ModifyNetworkInterfaceAttribute(t.Context(), &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: awssdk.String(primary), Groups: keep}); err != nil {
						t.Fatal(err)
					}
					if _, err := client.DeleteSecurityGroup(t.Context(), &ec2.DeleteSecurityGroupInput{GroupId: awssdk.String(deleted)}); err != nil {
						t.Fatal(err)
					}
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_access_request.alice", plancheck.ResourceActionUpdate),
				}},
				Check: func(*terraform.State) error {
					groups := cloud.grantGroups(t)
					if len(groups) != 1 || strings.HasPrefix(groups[0], deleted+" ") || !strings.HasSuffix(groups[0], " tcp:22<-203.0.113.7/32") {
						return fmt.Errorf("grant groups %v, want a new one opening 22 to 203.0.113.7/32", groups)
					}
					id, _, _ := strings.Cut(groups[0], " ")
					for _, g := range cloud.eniGroups(t, primary) {
						if g == id {
							return nil
						}
					}
					return fmt.Errorf("the new grant group %s is not on %s", id, primary)
				},
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}
