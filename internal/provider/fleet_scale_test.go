package provider

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
)

// fleetScale is the size of the generated scope: VMs over a few subnets
// and NSGs, and as many instances over a few security groups.
const (
	fleetVMs       = 2000
	fleetSubnets   = 4
	fleetNICNSGs   = 8
	fleetInstances = 2000
	fleetGroups    = 10
	armListPage    = 100  // cloudsim's default ARM page size
	ec2ListPage    = 1000 // internal/aws's MaxResults
)

// scaleFixture: VMs in resource group "fleet", half of them with a NIC
// NSG (one of fleetNICNSGs, of which "nic-nsg-0" lets SSH in from
// anywhere), all in subnets of a virtual network of resource group "net"
// whose NSGs let SSH in from anywhere; instances spread over groups, of
// which the first opens SSH to 0.0.0.0/0.
func scaleFixture() *cloudsim.Fixture {
	sub := "/subscriptions/" + testSub + "/resourceGroups/"
	vnet := sub + "net/providers/Microsoft.Network/virtualNetworks/fleet-vnet"
	nsg := func(rg, name string) string {
		return sub + rg + "/providers/Microsoft.Network/networkSecurityGroups/" + name
	}
	ssh := cloudsim.AzureSecurityRule{Name: "ssh-anywhere", Priority: 1000, Direction: "Inbound", Access: "Allow", Protocol: "Tcp",
		SourceAddressPrefix: "*", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "22"}
	az := cloudsim.AzureFixture{SubscriptionID: testSub}
	v := cloudsim.AzureVNet{ID: vnet, AddressSpace: []string{"10.0.0.0/8"}}
	for s := range fleetSubnets {
		id := nsg("net", fmt.Sprintf("subnet-nsg-%d", s))
		az.NetworkSecurityGroups = append(az.NetworkSecurityGroups, cloudsim.AzureNSG{ID: id, SecurityRules: []cloudsim.AzureSecurityRule{ssh}})
		v.Subnets = append(v.Subnets, cloudsim.AzureSubnet{Name: fmt.Sprintf("s%d", s), AddressPrefix: fmt.Sprintf("10.%d.0.0/16", s), NetworkSecurityGroup: id})
	}
	az.VirtualNetworks = []cloudsim.AzureVNet{v}
	for n := range fleetNICNSGs {
		var rules []cloudsim.AzureSecurityRule
		if n == 0 {
			rules = []cloudsim.AzureSecurityRule{ssh}
		}
		az.NetworkSecurityGroups = append(az.NetworkSecurityGroups, cloudsim.AzureNSG{ID: nsg("fleet", fmt.Sprintf("nic-nsg-%d", n)), SecurityRules: rules})
	}
	for i := range fleetVMs {
		nic := cloudsim.AzureNIC{
			ID: fmt.Sprintf("%sfleet/providers/Microsoft.Network/networkInterfaces/vm-%04d-nic", sub, i),
			IPConfigurations: []cloudsim.AzureIPConfig{{Name: "ipconfig1", PrivateIP: fmt.Sprintf("10.%d.%d.%d", i%fleetSubnets, i/250, i%250+4),
				Subnet: fmt.Sprintf("%s/subnets/s%d", vnet, i%fleetSubnets)}},
		}
		if i%2 == 0 {
			nic.NetworkSecurityGroup = nsg("fleet", fmt.Sprintf("nic-nsg-%d", i/2%fleetNICNSGs))
		}
		az.NetworkInterfaces = append(az.NetworkInterfaces, nic)
		az.VirtualMachines = append(az.VirtualMachines, cloudsim.AzureVM{
			ID: fmt.Sprintf("%sfleet/providers/Microsoft.Compute/virtualMachines/vm-%04d", sub, i), NetworkInterfaces: []string{nic.ID},
		})
	}
	aws := cloudsim.AWSFixture{Region: "eu-west-1", VPCs: []cloudsim.AWSVPC{{ID: "vpc-0f1e2d3c4b5a69788", CIDR: "10.200.0.0/16"}},
		Subnets: []cloudsim.AWSSubnet{{ID: "subnet-0f1e2d3c4b5a69788", VPCID: "vpc-0f1e2d3c4b5a69788", CIDR: "10.200.0.0/16"}}}
	for g := range fleetGroups {
		sg := cloudsim.AWSSecurityGroup{ID: fmt.Sprintf("sg-0f1e2d3c4b5a697%02d", g), Name: fmt.Sprintf("g%d", g), Description: "fleet", VPCID: "vpc-0f1e2d3c4b5a69788",
			Ingress: []cloudsim.AWSRule{{Protocol: "tcp", FromPort: 443, ToPort: 443, CIDRIPv4: "0.0.0.0/0"}}}
		if g == 0 {
			sg.Ingress = append(sg.Ingress, cloudsim.AWSRule{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDRIPv4: "0.0.0.0/0"})
		}
		aws.SecurityGroups = append(aws.SecurityGroups, sg)
	}
	for i := range fleetInstances {
		id := fmt.Sprintf("i-0f1e2d3c4b5a6%04x", i)
		aws.Instances = append(aws.Instances, cloudsim.AWSInstance{ID: id, Tags: map[string]string{"Name": fmt.Sprintf("inst-%d", i)}})
		aws.NetworkInterfaces = append(aws.NetworkInterfaces, cloudsim.AWSNetworkInterface{
			ID: fmt.Sprintf("eni-0f1e2d3c4b5a6%04x", i), SubnetID: "subnet-0f1e2d3c4b5a69788", PrivateIP: fmt.Sprintf("10.200.%d.%d", i/250, i%250+4),
			InstanceID: id, Groups: []string{fmt.Sprintf("sg-0f1e2d3c4b5a697%02d", i%fleetGroups)},
		})
	}
	return &cloudsim.Fixture{Azure: az, AWS: aws}
}

// A survey of 2,000 VMs and 2,000 instances makes list calls, page by
// page, and reads on its own only the objects the lists leave out, once
// each: never a read per machine. Per read of the data source:
//
//   - the whole subscription: VirtualMachines.ListAll, Interfaces.ListAll
//     (20 pages each), VirtualNetworks.ListAll and SecurityGroups.ListAll
//     (one page each); nothing else;
//   - resource group "fleet": the same lists of the group, and, as the
//     virtual network and the subnets' NSGs are in resource group "net",
//     one Subnets.Get per subnet and one SecurityGroups.Get per subnet NSG;
//   - EC2: DescribeInstances (2 pages of 1,000), DescribeSecurityGroups and
//     DescribeSecurityGroupRules (one call for the 10 groups).
func TestAccVirtualMachinesDataSource_largeScopeReadsInBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 4,000 machines")
	}
	srv, err := newSim(scaleFixture())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		recordFlows(srv)
		_ = srv.Close()
	})
	cloud := &testCloud{Server: srv}
	vmPages := (fleetVMs + armListPage - 1) / armListPage
	instancePages := (fleetInstances + ec2ListPage - 1) / ec2ListPage
	aws := map[string]int{"DescribeInstances": instancePages, "DescribeSecurityGroups": 1, "DescribeSecurityGroupRules": 1}
	whole := map[string]int{"VirtualMachines.ListAll": vmPages, "Interfaces.ListAll": vmPages, "VirtualNetworks.ListAll": 1, "SecurityGroups.ListAll": 1}
	group := map[string]int{"VirtualMachines.List": vmPages, "Interfaces.List": vmPages, "VirtualNetworks.List": 1, "SecurityGroups.List": 1,
		"Subnets.Get": fleetSubnets, "SecurityGroups.Get": fleetSubnets}
	maps.Copy(whole, aws)
	maps.Copy(group, aws)
	// The subnets' NSGs let SSH in: exposed are the VMs without a NIC NSG
	// and those behind nic-nsg-0, which lets it in too.
	exposedVMs := fleetVMs/2 + fleetVMs/2/fleetNICNSGs
	// Each data source is read in a step of its own: read together, the
	// one that lists the whole subscription may or may not have cached the
	// subnets' NSGs before the other asks for them, as the two run at once.
	all := cloud.config(`
data "jit_virtual_machines" "all" {}
output "machines" { value = length(data.jit_virtual_machines.all.virtual_machines) }
`)
	fleetGroup := cloud.config(`
data "jit_virtual_machines" "fleet_group" {
  azure_resource_group_names = ["fleet"]
  exposed_management_port    = true
}
output "exposed"  { value = length(data.jit_virtual_machines.fleet_group.virtual_machines) }
`)
	// readsEach checks that every call was one of perRead's, as many times
	// per read of the data source as it says; first names the call that
	// counts the reads.
	readsEach := func(perRead map[string]int, first string) func(*terraform.State) error {
		return func(*terraform.State) error {
			audit := cloud.CallsByFlow()["audit"]
			reads := audit[first] / perRead[first]
			if reads < 1 || audit[first]%perRead[first] != 0 {
				return fmt.Errorf("%s called %d times, not a whole number of %d-page listings", first, audit[first], perRead[first])
			}
			total := 0
			for _, op := range slices.Sorted(maps.Keys(audit)) {
				total += audit[op]
				if want := reads * perRead[op]; audit[op] != want {
					return fmt.Errorf("%s: %d calls over %d reads of the data source, want %d (%d per read); all calls: %v", op, audit[op], reads, want, perRead[op], audit)
				}
			}
			t.Logf("%d VMs and %d instances, %d reads of the data source: %d calls in all, %d per read: %v",
				fleetVMs, fleetInstances, reads, total, total/reads, audit)
			for flow, calls := range cloud.CallsByFlow() {
				// Tokens are fetched by the credential, which names no flow.
				if flow != "audit" && (flow != cloudsim.NoFlow || len(calls) != 1 || calls["ManagedIdentity.GetToken"] == 0) {
					return fmt.Errorf("calls outside the audit flow: %s %v", flow, calls)
				}
			}
			return nil
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				PreConfig: cloud.ResetCalls,
				Config:    all,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValue("machines", knownvalue.Int64Exact(fleetVMs+fleetInstances)),
				},
				Check: readsEach(whole, "VirtualMachines.ListAll"),
			},
			{
				PreConfig: cloud.ResetCalls,
				Config:    fleetGroup,
				ConfigStateChecks: []statecheck.StateCheck{
					// On EC2, the instances of the first group.
					statecheck.ExpectKnownOutputValue("exposed", knownvalue.Int64Exact(int64(exposedVMs+fleetInstances/fleetGroups))),
				},
				Check: readsEach(group, "VirtualMachines.List"),
			},
		},
	})
}
