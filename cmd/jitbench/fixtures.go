package main

import (
	"fmt"
	"strings"

	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
)

const (
	subscription = "00000000-0000-0000-0000-00000000be0c"
	group        = "/subscriptions/" + subscription + "/resourceGroups/bench"
	network      = group + "/providers/Microsoft.Network"
	vnet         = network + "/virtualNetworks/bench-vnet"
)

// layout is a generated Azure world: subnets of VMs, each subnet behind an
// NSG, each VM with one NIC, behind an NSG of its own when nicNSGs.
type layout struct {
	name         string
	subnets, vms int // vms per subnet
	nicNSGs      bool
}

// vm is one generated VM's ID.
func (l layout) vm(subnet, i int) string {
	return fmt.Sprintf("%s/providers/Microsoft.Compute/virtualMachines/%s-s%d-vm%03d", group, l.name, subnet, i)
}

// allVMs lists every VM, subnet by subnet.
func (l layout) allVMs() []string {
	var out []string
	for s := range l.subnets {
		for i := range l.vms {
			out = append(out, l.vm(s, i))
		}
	}
	return out
}

// objects is how many objects a configuration over every VM looks at:
// VMs, NICs, subnets and NSGs.
func (l layout) objects() int {
	n := l.subnets * (1 + 1 + 2*l.vms) // subnet, its NSG, the VMs and NICs
	if l.nicNSGs {
		n += l.subnets * l.vms
	}
	return n
}

func (l layout) fixture() *cloudsim.Fixture {
	az := cloudsim.AzureFixture{SubscriptionID: subscription}
	v := cloudsim.AzureVNet{ID: vnet, AddressSpace: []string{"10.0.0.0/8"}}
	for s := range l.subnets {
		subnetNSG := fmt.Sprintf("%s/networkSecurityGroups/%s-s%d-nsg", network, l.name, s)
		az.NetworkSecurityGroups = append(az.NetworkSecurityGroups, cloudsim.AzureNSG{ID: subnetNSG})
		subnet := fmt.Sprintf("%s-s%d", l.name, s)
		v.Subnets = append(v.Subnets, cloudsim.AzureSubnet{Name: subnet, AddressPrefix: fmt.Sprintf("10.%d.0.0/16", s+1), NetworkSecurityGroup: subnetNSG})
		for i := range l.vms {
			vm := l.vm(s, i)
			name := vm[strings.LastIndexByte(vm, '/')+1:]
			nic := cloudsim.AzureNIC{
				ID: network + "/networkInterfaces/" + name + "-nic",
				IPConfigurations: []cloudsim.AzureIPConfig{{
					Name: "ipconfig1", PrivateIP: fmt.Sprintf("10.%d.%d.%d", s+1, i/250, i%250+4), Subnet: vnet + "/subnets/" + subnet,
				}},
			}
			if l.nicNSGs {
				nic.NetworkSecurityGroup = network + "/networkSecurityGroups/" + name + "-nsg"
				az.NetworkSecurityGroups = append(az.NetworkSecurityGroups, cloudsim.AzureNSG{ID: nic.NetworkSecurityGroup})
			}
			az.NetworkInterfaces = append(az.NetworkInterfaces, nic)
			az.VirtualMachines = append(az.VirtualMachines, cloudsim.AzureVM{ID: vm, NetworkInterfaces: []string{nic.ID}})
		}
	}
	az.VirtualNetworks = []cloudsim.AzureVNet{v}
	return &cloudsim.Fixture{Azure: az}
}

// providers is the configuration's header: the provider from the
// development directory, aimed at the emulator; one more alias per name
// in aliases.
func providers(w *world, aliases ...string) string {
	var b strings.Builder
	b.WriteString("terraform {\n  required_providers {\n    jit = { source = \"jitaccess/jit\" }\n  }\n}\n\n")
	block := func(alias string) {
		b.WriteString("provider \"jit\" {\n")
		if alias != "" {
			fmt.Fprintf(&b, "  alias = %q\n", alias)
		}
		fmt.Fprintf(&b, "  azure {\n    subscription_id           = %q\n    resource_manager_endpoint = %q\n  }\n}\n\n", subscription, w.sim.URL)
	}
	block("")
	for _, a := range aliases {
		block(a)
	}
	return b.String()
}

// policy is a jit_policy over vms locking Defender's default ports, each
// openable from 198.51.100.0/24.
func policy(name string, vms []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "resource \"jit_policy\" %q {\n  name = %q\n  virtual_machine_ids = [\n", name, name)
	for _, vm := range vms {
		fmt.Fprintf(&b, "    %q,\n", vm)
	}
	b.WriteString("  ]\n")
	for _, port := range defaultPorts {
		fmt.Fprintf(&b, "  port {\n    number = %d\n    allowed_source_address_prefixes = [\"198.51.100.0/24\"]\n  }\n", port)
	}
	b.WriteString("}\n\n")
	return b.String()
}

var defaultPorts = []int{22, 3389, 5985, 5986}

// request is a jit_access_request for one port of vm from source; extra
// goes into the resource block (a provider alias, on_behalf_of).
func request(name, vm string, port int, source, extra string) string {
	return fmt.Sprintf(`resource "jit_access_request" %q {
  virtual_machine_id = %q
  justification      = "bench"
  port {
    number                        = %d
    allowed_source_address_prefix = %q
    duration                      = "PT3H"
  }
%s}

`, name, vm, port, source, extra)
}
