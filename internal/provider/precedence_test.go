package provider

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Precedence judged on the whole path (issue 12) and aggregated denies
// (issue 14.1), through the CLI against the emulator.

// subnetsFixture is a virtual network of subnets, each with an NSG and
// perSubnet VMs without NIC NSGs; dual adds an IPv6 address to every NIC.
func subnetsFixture(subnets, perSubnet int, dual bool) *cloudsim.Fixture {
	vnet := testRG + "/providers/Microsoft.Network/virtualNetworks/big-vnet"
	az := cloudsim.AzureFixture{SubscriptionID: testSub}
	v := cloudsim.AzureVNet{ID: vnet, AddressSpace: []string{"10.0.0.0/8"}}
	for s := range subnets {
		nsg := testNSG + fmt.Sprintf("subnet-nsg-%d", s)
		az.NetworkSecurityGroups = append(az.NetworkSecurityGroups, cloudsim.AzureNSG{ID: nsg})
		v.Subnets = append(v.Subnets, cloudsim.AzureSubnet{Name: fmt.Sprintf("s%d", s), AddressPrefix: fmt.Sprintf("10.%d.0.0/16", s), NetworkSecurityGroup: nsg})
		for i := range perSubnet {
			nic := cloudsim.AzureNIC{ID: testRG + fmt.Sprintf("/providers/Microsoft.Network/networkInterfaces/vm-%d-%03d-nic", s, i),
				IPConfigurations: []cloudsim.AzureIPConfig{{Name: "ipconfig1", PrivateIP: fmt.Sprintf("10.%d.%d.%d", s, i/250, i%250+4), Subnet: fmt.Sprintf("%s/subnets/s%d", vnet, s)}}}
			if dual {
				nic.IPConfigurations = append(nic.IPConfigurations, cloudsim.AzureIPConfig{Name: "ipconfig-v6", PrivateIP: fmt.Sprintf("fd00:%d::%x", s, i+4), Subnet: fmt.Sprintf("%s/subnets/s%d", vnet, s)})
			}
			az.NetworkInterfaces = append(az.NetworkInterfaces, nic)
			az.VirtualMachines = append(az.VirtualMachines, cloudsim.AzureVM{ID: testVM + fmt.Sprintf("vm-%d-%03d", s, i), NetworkInterfaces: []string{nic.ID}})
		}
	}
	az.VirtualNetworks = []cloudsim.AzureVNet{v}
	return &cloudsim.Fixture{Azure: az}
}

func newTestCloudOf(t *testing.T, fx *cloudsim.Fixture) *testCloud {
	t.Helper()
	srv, err := newSim(fx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		recordFlows(srv)
		_ = srv.Close()
	})
	return &testCloud{Server: srv}
}

const fourPorts = `  port {
    number = 22
  }
  port {
    number = 3389
  }
  port {
    number = 5985
  }
  port {
    number = 5986
  }`

// vmList is the HCL list of the generated VMs of subnet s from..to-1.
func vmList(s, from, to int) string {
	ids := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		ids = append(ids, fmt.Sprintf("%q", testVM+fmt.Sprintf("vm-%d-%03d", s, i)))
	}
	return "[" + strings.Join(ids, ", ") + "]"
}

// expectOnlyDenies checks that an NSG holds exactly the policy denies
// want (name → number of destinations), and nothing else.
func expectOnlyDenies(t *testing.T, cloud *testCloud, nsg string, want map[string]int) func(*terraform.State) error {
	return func(*terraform.State) error {
		got := map[string]int{}
		for _, r := range cloud.nsgRules(t, nsg) {
			if m, ok := jit.ParseMarker(r.Description); !ok || m.Kind != jit.MarkerDeny {
				return fmt.Errorf("%s holds a rule that is not a JIT deny: %+v", nsg, r)
			}
			got[r.Name] = len(r.DestinationPrefixes)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("%s denies:\n got %v\nwant %v", nsg, got, want)
		}
		return nil
	}
}

// 300 VMs of one subnet under one policy locking 4 ports: 4 rules of 300
// destinations each, where one rule per VM and port (1,200) was past the
// NSG's limit of 1,000.
func TestAccPolicy_threeHundredVMsOfOneSubnetFitInFourRules(t *testing.T) {
	cloud := newTestCloudOf(t, subnetsFixture(1, 300, false))
	// Tagging 300 VMs is past ARM's burst of writes: with its throttling
	// the test would wait half a minute for the refill, which proves
	// nothing here (throttling has its own tests).
	cloud.SetThrottling(false)
	config := cloud.config(`resource "jit_policy" "big" {
  name                = "big"
  virtual_machine_ids = ` + vmList(0, 0, 300) + `
` + fourPorts + `
}`)
	want := map[string]int{}
	for _, port := range []int{22, 3389, 5985, 5986} {
		want[jit.AggregateDenyRuleName("big", jit.PortProtocol{Number: port, Protocol: jit.ProtocolTCP}, jit.IPv4)] = 300
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue("jit_policy.big", tfjsonpath.New("rules"), knownvalue.ListSizeExact(4)),
					plancheck.ExpectKnownValue("jit_policy.big", tfjsonpath.New("rules").AtSliceIndex(0).AtMapKey("virtual_machine_ids"), knownvalue.ListSizeExact(300)),
				}},
				Check: expectOnlyDenies(t, cloud, "subnet-nsg-0", want),
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// A hundred single-VM policies over ten shared subnet NSGs, applied
// together: each places its denies when it writes, against the NSG as the
// others left it, so no "Provider produced inconsistent final plan" and no
// "changed since the plan" (the landed tree gave 336 such errors).
func TestAccPolicy_aHundredPoliciesSharingSubnetNSGsApplyTogether(t *testing.T) {
	cloud := newTestCloudOf(t, subnetsFixture(10, 10, false))
	cloud.SetThrottling(false) // 500 writes: past ARM's burst, see above
	var config strings.Builder
	for s := range 10 {
		for i := range 10 {
			fmt.Fprintf(&config, `
resource "jit_policy" "p_%d_%d" {
  name                = "p-%d-%d"
  virtual_machine_ids = %s
%s
}
`, s, i, s, i, vmList(s, i, i+1), fourPorts)
		}
	}
	cfg := cloud.config(config.String())
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: cfg,
				Check: func(*terraform.State) error {
					for s := range 10 {
						rules := cloud.nsgRules(t, fmt.Sprintf("subnet-nsg-%d", s))
						if len(rules) != 40 {
							return fmt.Errorf("subnet-nsg-%d holds %d rules, want 10 policies × 4 ports", s, len(rules))
						}
						seen := map[int]string{}
						for _, r := range rules {
							if other, ok := seen[r.Priority]; ok {
								return fmt.Errorf("subnet-nsg-%d: %s and %s share priority %d", s, other, r.Name, r.Priority)
							}
							seen[r.Priority] = r.Name
						}
					}
					return nil
				},
			},
			{Config: cfg, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// A dual-stack VM gets one deny per port and family (Azure refuses a rule
// mixing IPv4 and IPv6 addresses), and a grant from an IPv6 source one
// rule, to the VM's IPv6 address only.
func TestAccAccessRequest_dualStackVMGetsARulePerFamily(t *testing.T) {
	cloud := newTestCloudOf(t, subnetsFixture(1, 1, true))
	clock := clocktest.New(requestEpoch)
	vm := testVM + "vm-0-000"
	policy := `resource "jit_policy" "dual" {
  name                = "dual"
  virtual_machine_ids = ["` + vm + `"]
  port {
    number                          = 22
    allowed_source_address_prefixes = ["203.0.113.0/24", "2001:db8::/32"]
    max_request_access_duration     = "PT2H"
  }
}
`
	v4 := jit.AggregateDenyRuleName("dual", jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}, jit.IPv4)
	v6 := jit.AggregateDenyRuleName("dual", jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}, jit.IPv6)
	config := cloud.config(policy + vmRequest("v6", "one(jit_policy.dual.virtual_machine_ids)", "2001:db8::7/128", `duration = "PT1H"`))
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{
				Config: cloud.config(policy),
				Check: func(*terraform.State) error {
					for _, r := range cloud.nsgRules(t, "subnet-nsg-0") {
						want := map[string]string{v4: "10.0.0.4", v6: "fd00:0::4"}[r.Name]
						if want == "" || strings.Join(r.DestinationPrefixes, ",") != normalIP(want) {
							return fmt.Errorf("deny %s to %v; want %s", r.Name, r.DestinationPrefixes, want)
						}
					}
					return nil
				},
			},
			{
				Config: config,
				Check: func(*terraform.State) error {
					var grants []jit.NSGRule
					for _, r := range cloud.nsgRules(t, "subnet-nsg-0") {
						if jit.JudgeNSGGrant(r, "", nil).IsGrant {
							grants = append(grants, r)
						}
					}
					if len(grants) != 1 || strings.Join(grants[0].DestinationPrefixes, ",") != normalIP("fd00:0::4") ||
						strings.Join(grants[0].SourcePrefixes, ",") != "2001:db8::7/128" || !strings.Contains(grants[0].Name, "-v6-") {
						return fmt.Errorf("grants %+v; want one IPv6 rule to fd00::4", grants)
					}
					return nil
				},
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

func normalIP(s string) string { return netip.MustParseAddr(s).String() }

// 12.1: a Deny of others that blocks the requester, wherever it sits, is
// never jumped: the request's plan fails naming it (the landed tree put
// the grant at 199, above it, and the requester got in). A Deny of others
// that does not concern the requester is followed: the grant goes after it.
func TestAccAccessRequest_aForeignDenyOfTheRequesterFailsThePlanNamingIt(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	denyAll := inbound("deny-ssh-all", 200, jit.NSGDeny, "22")
	denyAll.SourcePrefixes = []string{"*"}
	denyOthers := inbound("deny-ssh-partners", 200, jit.NSGDeny, "22")
	denyOthers.SourcePrefixes = []string{"198.51.100.0/24"}
	request := cloud.config(sshPolicy + sshRequest("alice", "203.0.113.7/32", `duration = "PT1H"`))
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy)},
			{
				PreConfig: func() {
					cloud.putRule(t, "web-nic-nsg", denyAll)
					cloud.ResetCalls()
				},
				Config:      request,
				ExpectError: regexp.MustCompile(`The grant could not be placed[\s\S]*"deny-ssh-all"\s+\(priority\s+200,\s+Deny\)[\s\S]*denies\s+port\s+22/TCP\s+from\s+203\.0\.113\.7`),
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
			{
				PreConfig: func() {
					cloud.deleteRule(t, "web-nic-nsg", denyAll.Name)
					cloud.putRule(t, "web-nic-nsg", denyOthers)
				},
				Config: request,
				Check: func(*terraform.State) error {
					for _, r := range cloud.nsgRules(t, "web-nic-nsg") {
						if jit.JudgeNSGGrant(r, "", nil).IsGrant && r.Priority <= denyOthers.Priority {
							return fmt.Errorf("grant %s at %d, above %s at %d", r.Name, r.Priority, denyOthers.Name, denyOthers.Priority)
						}
					}
					return expectGrants(t, cloud, 1)(nil)
				},
			},
		},
	})
}

// 12.5: a rule of others takes the priority the plan would have given the
// deny, after the plan and before the apply of the saved plan: the apply
// places the deny around it (a new deny's priority is known after apply),
// with no "Provider produced inconsistent final plan", and the rule of
// others survives.
func TestAccPolicy_aForeignRuleTakingThePlannedPriorityBeforeTheApplyIsPlacedAround(t *testing.T) {
	cloud := newTestCloud(t, "world")
	foreign := inbound("someone-elses-8080", 1000, jit.NSGAllow, "8080")
	config := policyConfig(cloud, "race", []string{"web"}, port22)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					putRuleCheck{cloud: cloud, t: t, nsg: "web-nic-nsg", rule: foreign},
				}},
				Check: resource.ComposeTestCheckFunc(
					expectDenies(t, cloud, "web-nic-nsg", "race", "22/Tcp@1001->10.0.1.4"),
					expectRuleSurvives(t, cloud, "web-nic-nsg", foreign),
				),
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// 12.5: a rule of others takes the chosen priority between the provider's
// read and its write (the emulator runs the other writer right before the
// provider's first rule write): ARM refuses the write with
// SecurityRuleConflict, and the provider reads that NSG again, places the
// deny anew and converges. The landed tree surfaced the raw conflict.
func TestAccPolicy_aForeignRuleTakingThePriorityBetweenReadAndWriteIsPlacedAround(t *testing.T) {
	cloud := newTestCloud(t, "world")
	foreign := inbound("someone-elses-8080", 1000, jit.NSGAllow, "8080")
	config := policyConfig(cloud, "race", []string{"web"}, port22)
	// Right before the provider's first write to each NSG, the other
	// writer takes the priority there (its own write passes untouched).
	raced := func(nsg string) func(r *http.Request) bool {
		var once sync.Once
		return func(r *http.Request) bool {
			if !strings.Contains(r.URL.Path, "/networkSecurityGroups/"+nsg+"/") || strings.HasSuffix(r.URL.Path, "/"+foreign.Name) {
				return false
			}
			once.Do(func() { cloud.putRule(t, nsg, foreign) })
			return true
		}
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					cloud.OnCall("SecurityRules.CreateOrUpdate", raced("web-nic-nsg"))
					cloud.OnCall("SecurityRules.CreateOrUpdate", raced("web-subnet-nsg"))
				},
				Config: config,
				Check: resource.ComposeTestCheckFunc(
					expectDenies(t, cloud, "web-nic-nsg", "race", "22/Tcp@1001->10.0.1.4"),
					expectDenies(t, cloud, "web-subnet-nsg", "race", "22/Tcp@1001->10.0.1.4"),
					expectRuleSurvives(t, cloud, "web-nic-nsg", foreign),
					expectRuleSurvives(t, cloud, "web-subnet-nsg", foreign),
				),
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// putRuleCheck is a plan check that writes a rule of others into an NSG:
// a writer acting between the plan and the apply of the saved plan.
type putRuleCheck struct {
	cloud *testCloud
	t     *testing.T
	nsg   string
	rule  jit.NSGRule
}

func (c putRuleCheck) CheckPlan(_ context.Context, _ plancheck.CheckPlanRequest, _ *plancheck.CheckPlanResponse) {
	c.cloud.putRule(c.t, c.nsg, c.rule)
}

func expectRuleSurvives(t *testing.T, cloud *testCloud, nsg string, rule jit.NSGRule) func(*terraform.State) error {
	return func(*terraform.State) error {
		if !slices.ContainsFunc(cloud.nsgRules(t, nsg), func(r jit.NSGRule) bool { return r.Equivalent(rule) }) {
			return fmt.Errorf("%s lost or changed %s: %+v", nsg, rule.Name, cloud.nsgRules(t, nsg))
		}
		return nil
	}
}

// An earlier version wrote one deny per VM and port. Applying this one
// replaces them by the aggregated denies, writing the new ones first: at
// every delete the port is still denied to the VM in each NSG.
func TestAccPolicy_perMachineDeniesOfEarlierVersionsAreReplacedWithoutOpeningThePort(t *testing.T) {
	cloud := newTestCloud(t, "world")
	ssh := jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}
	for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
		cloud.putRule(t, nsg, jit.NSGRule{
			Name: jit.DenyRuleName("legacy", testVM+"web", ssh), Priority: 1000, Direction: jit.NSGInbound, Access: jit.NSGDeny, Protocol: jit.NSGProtocolTCP,
			SourcePrefixes: []string{"*"}, SourcePortRanges: []string{"*"}, DestinationPrefixes: []string{"10.0.1.4"}, DestinationPortRanges: []string{"22"},
			Description: jit.DenyMarker("legacy").String(),
		})
	}
	var mu sync.Mutex
	var gaps []string
	denied := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
			if !slices.ContainsFunc(cloud.nsgRules(t, nsg), func(r jit.NSGRule) bool {
				return jit.IsDenyOf(r.Description, "legacy") && slices.Contains(r.DestinationPrefixes, "10.0.1.4")
			}) {
				gaps = append(gaps, nsg)
			}
		}
	}
	config := policyConfig(cloud, "legacy", []string{"web"}, port22)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					cloud.OnCall("SecurityRules.Delete", func(*http.Request) bool { denied(); return false })
				},
				Config: config,
				Check: func(s *terraform.State) error {
					if len(gaps) > 0 {
						return fmt.Errorf("port 22 was open to web in %v while an old deny was deleted", gaps)
					}
					for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
						if err := expectOnlyDenies(t, cloud, nsg, map[string]int{jit.AggregateDenyRuleName("legacy", ssh, jit.IPv4): 1})(s); err != nil && nsg == "web-nic-nsg" {
							return err
						}
						for _, r := range cloud.nsgRules(t, nsg) {
							if r.Name == jit.DenyRuleName("legacy", testVM+"web", ssh) {
								return fmt.Errorf("%s keeps the old deny", nsg)
							}
						}
					}
					return nil
				},
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// 11.1: a deny edited out of band (here opened to port 2222 instead of 22,
// at its own priority and name) is drift: the refresh leaves it out of the
// policy's rules, the plan shows it written again, and the apply repairs
// it in place. The landed tree only looked at the marker and never
// repaired it.
func TestAccPolicy_denyEditedOutOfBandIsRepaired(t *testing.T) {
	cloud := newTestCloud(t, "world")
	config := policyConfig(cloud, "edited", []string{"web"}, port22)
	name := jit.AggregateDenyRuleName("edited", jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}, jit.IPv4)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: config},
			{
				PreConfig: func() {
					for _, r := range cloud.nsgRules(t, "web-nic-nsg") {
						if r.Name == name {
							r.DestinationPortRanges = []string{"2222"}
							cloud.putRule(t, "web-nic-nsg", r)
						}
					}
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_policy.p", plancheck.ResourceActionUpdate),
				}},
				Check: expectDenies(t, cloud, "web-nic-nsg", "edited", "22/Tcp@1000->10.0.1.4"),
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// 11.1 on the firewall: the policy's deny collection flipped to Allow out
// of band (its rules and their markers kept) is drift; the plan shows the
// repair and the apply writes the collection back as a Deny.
func TestAccPolicy_firewallDenyCollectionEditedOutOfBandIsRepaired(t *testing.T) {
	cloud := newTestCloud(t, "world")
	config := policyConfig(cloud, "fw", []string{"web"}, port22+`
  azure_firewall_id = "`+testFirewall+`fw-hub"`)
	deny := jit.FirewallDenyCollectionName("fw")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{Config: config},
			{
				PreConfig: func() {
					fw, err := cloud.azureClient(t).Firewall(t.Context(), testFirewall+"fw-hub")
					if err != nil {
						t.Fatal(err)
					}
					i := slices.IndexFunc(fw.NetworkCollections, func(c jit.FirewallNetworkCollection) bool { return c.Name == deny })
					if i < 0 {
						t.Fatalf("no collection %s", deny)
					}
					flipped := fw.NetworkCollections[i]
					flipped.Action = jit.FirewallAllow
					change := azure.FirewallChange{Network: map[string]*jit.FirewallNetworkCollection{deny: &flipped}}
					if err := cloud.azureClient(t).UpdateFirewall(t.Context(), testFirewall+"fw-hub", change); err != nil {
						t.Fatal(err)
					}
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_policy.p", plancheck.ResourceActionUpdate),
				}},
				Check: func(*terraform.State) error {
					got := strings.Join(cloud.firewallCollections(t, "fw-hub"), " ")
					if !strings.Contains(got, deny+"@1000:Deny[") {
						return fmt.Errorf("deny collection not repaired: %s", got)
					}
					return nil
				},
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// 11.2: anyone who can write a rule can write a grant's marker. A rule
// claiming to be a grant of the policy that does not fit it (from any
// source, for 30 days) is not honoured: the plan lists it to remove, the
// apply removes it, and the deny does not move after it.
func TestAccPolicy_aForgedGrantIsNotHonoured(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	request := requestEpoch.Format("20060102T150405Z") + "-0badc0de"
	forged := jit.NSGRule{
		Name: jit.GrantRuleName(request, testVM+"web", jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}), Priority: 999,
		Direction: jit.NSGInbound, Access: jit.NSGAllow, Protocol: jit.NSGProtocolTCP,
		SourcePrefixes: []string{"*"}, SourcePortRanges: []string{"*"}, DestinationPrefixes: []string{"10.0.1.4"}, DestinationPortRanges: []string{"22"},
		Description: jit.GrantMarker("web", requestEpoch.Add(30*24*time.Hour), "mallory", "trust me").String(),
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy)},
			{
				PreConfig: func() { cloud.putRule(t, "web-nic-nsg", forged) },
				Config:    cloud.config(sshPolicy),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("jit_policy.web", plancheck.ResourceActionUpdate),
				}},
				Check: resource.ComposeTestCheckFunc(
					expectGrants(t, cloud, 0),
					expectDenies(t, cloud, "web-nic-nsg", "web", "22/Tcp@1000->10.0.1.4"),
				),
			},
			{Config: cloud.config(sshPolicy), ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// A Deny collection on the firewall named and described like one of the
// policy's grants is no grant (only an Allow can grant): it is someone
// else's Deny deciding the port, so the policy's deny collection comes
// after it, as after any rule that already decides a locked port.
func TestAccPolicy_aDenyCollectionMarkedAsAGrantIsSomeoneElsesDeny(t *testing.T) {
	cloud := newTestCloud(t, "world")
	forged := jit.FirewallNetworkCollection{Name: jit.FirewallGrantCollectionName("forged", testVM+"web"), Priority: 1000, Action: jit.FirewallDeny,
		Rules: []jit.FirewallNetworkRule{{
			Name: "forged", Description: jit.GrantMarker("fw", requestEpoch.Add(time.Hour), "mallory", "").String(),
			Protocols: []string{"TCP"}, SourceAddresses: []string{"198.51.100.0/24"}, DestinationAddresses: []string{"10.0.1.4"}, DestinationPorts: []string{"22"},
		}}}
	change := azure.FirewallChange{Network: map[string]*jit.FirewallNetworkCollection{forged.Name: &forged}}
	if err := cloud.azureClient(t).UpdateFirewall(t.Context(), testFirewall+"fw-hub", change); err != nil {
		t.Fatal(err)
	}
	config := policyConfig(cloud, "fw", []string{"web"}, port22+`
  azure_firewall_id = "`+testFirewall+`fw-hub"`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clocktest.New(requestEpoch)),
		Steps: []resource.TestStep{{
			Config: config,
			Check: func(*terraform.State) error {
				got := strings.Join(cloud.firewallCollections(t, "fw-hub"), " ")
				if !strings.Contains(got, forged.Name+"@1000:Deny") || !strings.Contains(got, jit.FirewallDenyCollectionName("fw")+"@1002:Deny") {
					return fmt.Errorf("firewall collections: %s", got)
				}
				return nil
			},
		}},
	})
}
