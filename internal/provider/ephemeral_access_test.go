package provider

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
)

func accessEphemeralConfig(source, duration string) string {
	return `
ephemeral "jit_access" "ci" {
  virtual_machine_id = one(jit_policy.web.virtual_machine_ids)
  justification      = "pipeline run 512"
  duration           = "` + duration + `"
  port {
    number                        = 22
    allowed_source_address_prefix = "` + source + `"
  }
}
`
}

func TestAccAccessEphemeral_openAndCloseLeaveNoRule(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	resource.ParallelTest(t, resource.TestCase{
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.SkipBelow(tfversion.Version1_10_0)},
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy)},
			{
				PreConfig: cloud.ResetCalls,
				Config:    cloud.config(sshPolicy + accessEphemeralConfig("203.0.113.7/32", "PT30M")),
				Check: resource.ComposeTestCheckFunc(
					expectGrants(t, cloud, 0),
					func(*terraform.State) error {
						// Every run that opened the grant (plan and apply each
						// open their own) wrote it in both NSGs and removed it.
						calls := cloud.Calls()
						opened, closed := calls["SecurityRules.CreateOrUpdate"], calls["SecurityRules.Delete"]
						if opened == 0 || opened%2 != 0 || closed != opened {
							return fmt.Errorf("grant rules written %d times and deleted %d times", opened, closed)
						}
						return nil
					},
				),
			},
		},
	})
}

func TestAccAccessEphemeral_outsideThePolicyIsAnError(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	resource.ParallelTest(t, resource.TestCase{
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.SkipBelow(tfversion.Version1_10_0)},
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy)},
			{
				Config:      cloud.config(sshPolicy + accessEphemeralConfig("203.0.113.7/32", "PT3H")),
				ExpectError: regexp.MustCompile(`Duration out of bounds[\s\S]*PT2H`),
			},
			{
				PreConfig:   cloud.ResetCalls,
				Config:      cloud.config(sshPolicy + accessEphemeralConfig("198.51.100.0/24", "PT30M")),
				ExpectError: regexp.MustCompile(`Source not allowed`),
			},
			{
				Config: cloud.config(sshPolicy),
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
