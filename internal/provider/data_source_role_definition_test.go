package provider

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// The documents are ready for azurerm_role_definition and aws_iam_policy:
// the Azure definition carries the same actions as the list, the name and
// scopes given; the request role changes only groups tagged jit-grant,
// creates only groups tagged so, and tags only the groups it creates and
// the ends of grant groups. No provider block is needed.
func TestAccRoleDefinitionDataSource_documentsAreReadyToUse(t *testing.T) {
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: `
data "jit_role_definition" "request" {
  flow                    = "request"
  name                    = "JIT requester (CI)"
  azure_assignable_scopes = ["/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/prod"]
}
data "jit_role_definition" "audit" {
  flow = "audit"
}
`,
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("data.jit_role_definition.audit", tfjsonpath.New("azure_actions"), strs(
					"Microsoft.Compute/virtualMachines/read", "Microsoft.Network/azureFirewalls/read", "Microsoft.Network/networkInterfaces/read",
					"Microsoft.Network/networkSecurityGroups/read", "Microsoft.Network/virtualNetworks/read", "Microsoft.Network/virtualNetworks/subnets/read")),
				statecheck.ExpectKnownValue("data.jit_role_definition.audit", tfjsonpath.New("aws_actions"), strs(
					"ec2:DescribeInstances", "ec2:DescribeSecurityGroupRules", "ec2:DescribeSecurityGroups")),
				statecheck.ExpectKnownValue("data.jit_role_definition.request", tfjsonpath.New("description"), knownvalue.StringRegexp(regexp.MustCompile(`request flow`))),
			},
			Check: func(s *terraform.State) error {
				attrs := s.RootModule().Resources["data.jit_role_definition.request"].Primary.Attributes
				var role struct {
					Name             string
					IsCustom         bool
					Actions          []string
					AssignableScopes []string
				}
				if err := json.Unmarshal([]byte(attrs["azure_role_definition_json"]), &role); err != nil {
					return err
				}
				var listed []string
				for i := 0; attrs[fmt.Sprintf("azure_actions.%d", i)] != ""; i++ {
					listed = append(listed, attrs[fmt.Sprintf("azure_actions.%d", i)])
				}
				if role.Name != "JIT requester (CI)" || !role.IsCustom || !slices.Equal(role.Actions, listed) || len(listed) == 0 ||
					!slices.Equal(role.AssignableScopes, []string{"/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/prod"}) {
					return fmt.Errorf("Azure role %+v, actions listed %v", role, listed)
				}
				var policy struct {
					Version   string
					Statement []struct {
						Effect    string
						Action    []string
						Resource  []string
						Condition map[string]map[string]any
					}
				}
				if err := json.Unmarshal([]byte(attrs["aws_iam_policy_json"]), &policy); err != nil {
					return err
				}
				if policy.Version != "2012-10-17" {
					return fmt.Errorf("policy version %q", policy.Version)
				}
				for _, st := range policy.Statement {
					for _, a := range st.Action {
						switch a {
						case "ec2:DeleteSecurityGroup", "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress":
							if st.Condition["Null"]["aws:ResourceTag/jit-grant"] != "false" {
								return fmt.Errorf("%s is not limited to groups tagged jit-grant: %+v", a, st)
							}
						case "ec2:CreateSecurityGroup":
							if !slices.Equal(st.Resource, []string{"arn:aws:ec2:*:*:vpc/*"}) && st.Condition["Null"]["aws:RequestTag/jit-grant"] != "false" {
								return fmt.Errorf("groups created untagged: %+v", st)
							}
						case "ec2:CreateTags":
							// The groups it creates, as it creates them; and,
							// when a renewal moves their ends, the groups
							// tagged jit-grant, with the marker and the
							// ports' end tags alone.
							keys, _ := st.Condition["ForAllValues:StringLike"]["aws:TagKeys"].([]any)
							created := st.Condition["StringEquals"]["ec2:CreateAction"] == "CreateSecurityGroup"
							renewed := st.Condition["Null"]["aws:ResourceTag/jit-grant"] == "false" && slices.Equal(keys, []any{"jit-grant", "jit-end-*"})
							if !created && !renewed {
								return fmt.Errorf("the request role tags more than the groups it creates and the ends of grant groups: %+v", st)
							}
						}
						if st.Effect != "Allow" {
							return fmt.Errorf("statement %+v", st)
						}
					}
				}
				return nil
			},
		}},
	})
}

func TestAccRoleDefinitionDataSource_badInputNamesTheAttribute(t *testing.T) {
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      `data "jit_role_definition" "x" { flow = "admin" }`,
				ExpectError: regexp.MustCompile(`flow[\s\S]*value must be one of[\s\S]*"configure"`),
			},
			{
				Config:      `data "jit_role_definition" "x" {` + "\n" + `  flow = "audit"` + "\n" + `  azure_assignable_scopes = ["prod"]` + "\n}",
				ExpectError: regexp.MustCompile(`azure_assignable_scopes[\s\S]*must be /subscriptions/`),
			},
		},
	})
}
