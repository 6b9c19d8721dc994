package provider

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// What an operation costs in cloud calls, counted by the emulator: each
// object read once per operation however many resources look at it, each
// rule written once, nothing written when nothing changes. How fast is the
// benchmark's business (make bench); these say what would make it slow.

// sharedPathConfig has many resources on few objects: two VMs in one subnet
// behind one subnet NSG (web also behind its NIC's NSG), one policy over
// both, two requests and a data source on them.
const sharedPathConfig = `resource "jit_policy" "web" {
  name                = "web"
  virtual_machine_ids = ["` + testVM + `web", "` + testVM + `web2"]
  port {
    number                          = 22
    allowed_source_address_prefixes = ["203.0.113.0/24"]
  }
  port {
    number                          = 3389
    allowed_source_address_prefixes = ["203.0.113.0/24"]
  }
}

resource "jit_access_request" "ssh" {
  virtual_machine_id = "` + testVM + `web"
  justification      = "INC-4211 disk full"
  port {
    number                        = 22
    allowed_source_address_prefix = "203.0.113.7/32"
    duration                      = "PT1H"
  }
  depends_on = [jit_policy.web]
}

resource "jit_access_request" "rdp" {
  virtual_machine_id = "` + testVM + `web"
  justification      = "INC-4211 disk full"
  port {
    number                        = 3389
    allowed_source_address_prefix = "203.0.113.8/32"
    duration                      = "PT1H"
  }
  depends_on = [jit_policy.web]
}

data "jit_virtual_machine" "web2" {
  virtual_machine_id = "` + testVM + `web2"
}
`

// sharedPathObjects are the objects sharedPathConfig's resources look at:
// the two VMs, their NICs, their subnet and the two NSGs.
var sharedPathObjects = []string{
	testVM + "web", testVM + "web2",
	testRG + "/providers/Microsoft.Network/networkInterfaces/web-nic", testRG + "/providers/Microsoft.Network/networkInterfaces/web2-nic",
	testRG + "/providers/Microsoft.Network/virtualNetworks/prod-vnet/subnets/web",
	testNSG + "web-nic-nsg", testNSG + "web-subnet-nsg",
}

// readEachOnce fails unless every object the emulator served since the
// last reset was read exactly once, and those are the objects given.
func (c *testCloud) readEachOnce(what string, objects []string) error {
	reads := c.ObjectReads()
	var wrong []string
	for o, n := range reads {
		if n != 1 {
			wrong = append(wrong, fmt.Sprintf("%s read %d times", o, n))
		}
	}
	var want []string
	for _, o := range objects {
		want = append(want, strings.ToLower(o))
	}
	got := slices.Sorted(func(yield func(string) bool) {
		for o := range reads {
			if !yield(o) {
				return
			}
		}
	})
	slices.Sort(want)
	if !slices.Equal(got, want) {
		wrong = append(wrong, fmt.Sprintf("read %v, want %v", got, want))
	}
	if len(wrong) > 0 {
		slices.Sort(wrong)
		return fmt.Errorf("%s: each object should be read once:\n%s", what, strings.Join(wrong, "\n"))
	}
	return nil
}

// costCheck runs a check on the emulator's counts between the plan and the
// apply of a step, then resets them, so that the step's Check sees the
// apply's calls alone.
type costCheck struct {
	cloud *testCloud
	check func() error
}

func (c costCheck) CheckPlan(_ context.Context, _ plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	resp.Error = c.check()
	c.cloud.ResetCalls()
}

// A plan, the apply of that plan, and a refresh each read every VM, NIC,
// subnet and NSG once, however many resources, requests and data sources
// share them: one read per object per operation, from a cache shared by
// the whole provider process. The apply plans from what its final plan
// read; its own writes keep that up to date.
func TestAccProvider_eachObjectReadOncePerOperation(t *testing.T) {
	cloud := newTestCloud(t, "world")
	config := cloud.config(sharedPathConfig)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				PreConfig: cloud.ResetCalls,
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{costCheck{cloud, func() error {
					return cloud.readEachOnce("plan", sharedPathObjects)
				}}}},
				Check: func(*terraform.State) error { return cloud.readEachOnce("apply of the plan", sharedPathObjects) },
			},
			{
				PreConfig:    cloud.ResetCalls,
				RefreshState: true,
				Check:        func(*terraform.State) error { return cloud.readEachOnce("refresh", sharedPathObjects) },
			},
			{
				PreConfig: cloud.ResetCalls,
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
					costCheck{cloud, func() error { return cloud.readEachOnce("plan of no change", sharedPathObjects) }},
				}},
			},
		},
	})
}

// An apply writes each rule it shows once (no rule written twice, nothing
// removed to be written again), the tags of each VM once, and a no-op
// apply writes nothing at all.
func TestAccProvider_eachRuleWrittenOnceAndNoOpWritesNothing(t *testing.T) {
	cloud := newTestCloud(t, "world")
	config := cloud.config(sharedPathConfig)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				PreConfig: cloud.ResetCalls,
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{costCheck{cloud, func() error {
					if n := cloud.writes(); n != 0 {
						return fmt.Errorf("the plan wrote %d times: %v", n, cloud.Calls())
					}
					return nil
				}}}},
				Check: func(s *terraform.State) error {
					rules := 0
					for _, name := range []string{"jit_policy.web", "jit_access_request.ssh", "jit_access_request.rdp"} {
						rules += atoi(s.RootModule().Resources[name].Primary.Attributes["rules.#"])
					}
					calls := cloud.Calls()
					want := map[string]int{"SecurityRules.CreateOrUpdate": rules, "VirtualMachines.Update": 2}
					for op, n := range calls {
						if isWrite(op) && n != want[op] {
							return fmt.Errorf("%s called %d times, want %d (%d rules in state): %v", op, n, want[op], rules, calls)
						}
					}
					if calls["SecurityRules.CreateOrUpdate"] != rules {
						return fmt.Errorf("%d rules in state, %d written: %v", rules, calls["SecurityRules.CreateOrUpdate"], calls)
					}
					return nil
				},
			},
			{
				PreConfig:        cloud.ResetCalls,
				Config:           config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
				Check:            expectNoWrites(cloud),
			},
		},
	})
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

// A policy of many VMs of one resource group reads them, and their NICs,
// in list calls: hundreds of single reads would wait seconds on ARM's read
// throttling.
func TestPlanPolicy_manyVMsOfOneResourceGroupAreListed(t *testing.T) {
	const n = 150
	rg := "/subscriptions/" + testSub + "/resourceGroups/many"
	subnet := rg + "/providers/Microsoft.Network/virtualNetworks/vnet/subnets/vms"
	nsg := rg + "/providers/Microsoft.Network/networkSecurityGroups/vms-nsg"
	fx := &cloudsim.Fixture{Azure: cloudsim.AzureFixture{
		SubscriptionID:        testSub,
		NetworkSecurityGroups: []cloudsim.AzureNSG{{ID: nsg}},
		VirtualNetworks: []cloudsim.AzureVNet{{ID: rg + "/providers/Microsoft.Network/virtualNetworks/vnet", AddressSpace: []string{"10.0.0.0/16"},
			Subnets: []cloudsim.AzureSubnet{{Name: "vms", AddressPrefix: "10.0.0.0/16", NetworkSecurityGroup: nsg}}}},
	}}
	var ids []string
	for i := range n {
		vm := fmt.Sprintf("%s/providers/Microsoft.Compute/virtualMachines/vm%03d", rg, i)
		nic := fmt.Sprintf("%s/providers/Microsoft.Network/networkInterfaces/vm%03d-nic", rg, i)
		fx.Azure.NetworkInterfaces = append(fx.Azure.NetworkInterfaces, cloudsim.AzureNIC{ID: nic,
			IPConfigurations: []cloudsim.AzureIPConfig{{Name: "ip", PrivateIP: fmt.Sprintf("10.0.%d.%d", i/200, i%200+4), Subnet: subnet}}})
		fx.Azure.VirtualMachines = append(fx.Azure.VirtualMachines, cloudsim.AzureVM{ID: vm, NetworkInterfaces: []string{nic}})
		ids = append(ids, vm)
	}
	srv, err := newSim(fx)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cloud := &testCloud{Server: srv}
	e := engine.New(jit.NewClock(), []engine.Backend{azure.NewBackend(cloud.azureClient(t), "")})
	p := e.PlanPolicy(t.Context(), engine.PolicySpec{Name: "many", MachineIDs: ids, Ports: jit.DefaultPorts()}, nil)
	if jit.HasError(p.Findings) {
		t.Fatalf("plan: %v", p.Findings)
	}
	calls := cloud.Calls()
	if calls["VirtualMachines.Get"]+calls["Interfaces.Get"] != 0 || calls["VirtualMachines.List"] != 2 || calls["Interfaces.List"] != 2 {
		t.Errorf("%d VMs and NICs read with %v, want two list pages of each and no single read", n, calls)
	}
	// Planned again in the same process (a refresh, then the plan), nothing
	// is read or listed again.
	cloud.ResetCalls()
	e.PlanPolicy(t.Context(), engine.PolicySpec{Name: "many", MachineIDs: ids, Ports: jit.DefaultPorts()}, nil)
	if calls := cloud.Calls(); len(calls) != 0 {
		t.Errorf("planning again read %v", calls)
	}
}
