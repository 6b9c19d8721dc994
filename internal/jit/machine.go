package jit

import (
	"fmt"
	"net/netip"
)

// Machine is a VM or instance and the network objects on its path, as the
// cloud packages resolve them.
type Machine struct {
	// Cloud is the name of the backend that read it: "azure", "aws".
	Cloud    string
	ID       string
	Name     string
	Location string
	// Classic marks an Azure classic (ASM) VM, which JIT cannot manage.
	Classic bool
	// State is the instance state on EC2 ("running", "terminated", …).
	State      string
	Tags       map[string]string
	Interfaces []NetworkInterface
}

// NetworkInterface is one NIC / ENI and the filters traffic crosses to reach it.
type NetworkInterface struct {
	ID         string
	PrivateIPs []string
	SubnetID   string
	// Azure: the NIC's own NSG and its subnet's NSG ("" when absent).
	NetworkSecurityGroupID       string
	SubnetNetworkSecurityGroupID string
	// AWS: the ENI's security groups.
	SecurityGroupIDs []string
}

// PrivateIPs lists the machine's private IPs over all interfaces.
func (m *Machine) PrivateIPs() []string {
	var ips []string
	for _, nic := range m.Interfaces {
		ips = append(ips, nic.PrivateIPs...)
	}
	return ips
}

// FilterIDs lists, once each and in path order, the NSGs (Azure) or
// security groups (AWS) traffic to the machine crosses.
func (m *Machine) FilterIDs() []string {
	var ids []string
	seen := map[string]bool{}
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, nic := range m.Interfaces {
		add(nic.NetworkSecurityGroupID)
		add(nic.SubnetNetworkSecurityGroupID)
		for _, sg := range nic.SecurityGroupIDs {
			add(sg)
		}
	}
	return ids
}

// Classification is Defender's: whether JIT can protect a machine and whether it does.
type Classification string

const (
	Configured    Classification = "Configured"
	NotConfigured Classification = "Not configured"
	Unsupported   Classification = "Unsupported"
)

// Classify decides whether a machine can be protected, as Defender for
// Cloud sorts VMs into its Configured, Not configured and Unsupported
// tabs; configured tells whether a policy already covers it, and more are
// the reasons its backend found beyond the machine itself (an interface
// with no filter on its path, a firewall in front managed by a Firewall
// Policy). Every reason that
// applies is returned, so a VM fixed for one learns of the next; there is
// none unless Unsupported.
func Classify(m *Machine, configured bool, more ...string) (Classification, []string) {
	var reasons []string
	switch {
	case m.Classic:
		reasons = append(reasons, "classic (ASM) virtual machine; only Azure Resource Manager VMs are supported")
	case m.Terminated():
		reasons = append(reasons, fmt.Sprintf("instance is %s", m.State))
	case len(m.Interfaces) == 0:
		reasons = append(reasons, "no network interface")
	}
	reasons = append(reasons, more...)
	switch {
	case len(reasons) > 0:
		return Unsupported, reasons
	case configured:
		return Configured, nil
	}
	return NotConfigured, nil
}

// Terminated tells whether the machine is being or has been deleted: EC2
// keeps listing a terminated instance for a while.
func (m *Machine) Terminated() bool {
	return m.State == "terminated" || m.State == "shutting-down"
}

// parseMachineIPs reads a machine's private addresses, which the cloud
// packages take from NIC / ENI configurations.
func parseMachineIPs(machine string, ips []string) ([]netip.Addr, error) {
	if len(ips) == 0 {
		return nil, fmt.Errorf("virtual machine %s has no private IP address, so no rule can target it", machine)
	}
	out := make([]netip.Addr, 0, len(ips))
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("virtual machine %s has an invalid private IP address %q", machine, s)
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}
