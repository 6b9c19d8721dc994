package azure

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// The fleet view of Azure: VMs with the NICs, subnets, NSGs and firewall
// on their paths. A survey lists each kind of object once over the scope
// (VMs, NICs, virtual networks with their subnets, NSGs with their rules),
// page by page, and reads on its own only what those lists leave out
// (a NIC, subnet or NSG in another resource group, a firewall), once each.

// fleetReads resolves paths from what has been listed, reading what was
// not listed once.
type fleetReads struct {
	c *Client
	// nics, subnetNSGs and nsgs are keyed by lower-cased ID; a nil NSG
	// is one that does not exist.
	nics       map[string]jit.NetworkInterface
	subnetNSGs map[string]string
	nsgs       map[string]*jit.NSGLevel
	firewalls  map[string]*Firewall
}

func newFleetReads(c *Client) *fleetReads {
	return &fleetReads{c: c, nics: map[string]jit.NetworkInterface{}, subnetNSGs: map[string]string{},
		nsgs: map[string]*jit.NSGLevel{}, firewalls: map[string]*Firewall{}}
}

// Survey lists the VMs of the subscription, or of scope.ResourceGroups in
// it, carrying scope.Tags, and reads their paths.
func (b *Backend) Survey(ctx context.Context, scope engine.SurveyScope) ([]*engine.MachineView, error) {
	c := b.client
	if c.SubscriptionID == "" {
		return nil, errors.New("listing the virtual machines of a subscription needs one: set subscription_id in the azure block or ARM_SUBSCRIPTION_ID")
	}
	groups := scope.ResourceGroups
	if len(groups) == 0 && b.resourceGroup != "" {
		groups = []string{b.resourceGroup}
	}
	compute, err := c.computeClients(c.SubscriptionID)
	if err != nil {
		return nil, err
	}
	network, err := c.networkClients(c.SubscriptionID)
	if err != nil {
		return nil, err
	}
	r := newFleetReads(c)
	var vms []*armcompute.VirtualMachine
	keepVMs := func(values []*armcompute.VirtualMachine) {
		for _, vm := range values {
			if vm != nil && vm.ID != nil && engine.MatchesTags(tags(vm.Tags), scope.Tags) {
				vms = append(vms, vm)
			}
		}
	}
	addNICs := func(values []*armnetwork.Interface) {
		for _, nic := range values {
			if nic != nil && nic.ID != nil {
				r.nics[strings.ToLower(*nic.ID)] = interfaceFromARM(*nic.ID, *nic)
			}
		}
	}
	addVNets := func(values []*armnetwork.VirtualNetwork) {
		for _, vnet := range values {
			if vnet == nil || vnet.Properties == nil {
				continue
			}
			for _, s := range vnet.Properties.Subnets {
				if s != nil && s.ID != nil {
					r.subnetNSGs[strings.ToLower(*s.ID)] = subnetNSGOf(*s)
				}
			}
		}
	}
	each := groups
	if len(each) == 0 {
		each = []string{""} // the whole subscription
	}
	for _, rg := range each {
		where := "subscription " + c.SubscriptionID
		if rg != "" {
			where = "resource group " + rg
		}
		var lists []func() error
		if rg == "" {
			lists = []func() error{
				func() error {
					return list(ctx, func() *runtime.Pager[armcompute.VirtualMachinesClientListAllResponse] {
						return compute.NewVirtualMachinesClient().NewListAllPager(nil)
					}, func(p armcompute.VirtualMachinesClientListAllResponse) { keepVMs(p.Value) })
				},
				func() error {
					return list(ctx, func() *runtime.Pager[armnetwork.InterfacesClientListAllResponse] {
						return network.NewInterfacesClient().NewListAllPager(nil)
					}, func(p armnetwork.InterfacesClientListAllResponse) { addNICs(p.Value) })
				},
				func() error {
					return list(ctx, func() *runtime.Pager[armnetwork.VirtualNetworksClientListAllResponse] {
						return network.NewVirtualNetworksClient().NewListAllPager(nil)
					}, func(p armnetwork.VirtualNetworksClientListAllResponse) { addVNets(p.Value) })
				},
			}
		} else {
			lists = []func() error{
				func() error {
					return list(ctx, func() *runtime.Pager[armcompute.VirtualMachinesClientListResponse] {
						return compute.NewVirtualMachinesClient().NewListPager(rg, nil)
					}, func(p armcompute.VirtualMachinesClientListResponse) { keepVMs(p.Value) })
				},
				func() error {
					return list(ctx, func() *runtime.Pager[armnetwork.InterfacesClientListResponse] {
						return network.NewInterfacesClient().NewListPager(rg, nil)
					}, func(p armnetwork.InterfacesClientListResponse) { addNICs(p.Value) })
				},
				func() error {
					return list(ctx, func() *runtime.Pager[armnetwork.VirtualNetworksClientListResponse] {
						return network.NewVirtualNetworksClient().NewListPager(rg, nil)
					}, func(p armnetwork.VirtualNetworksClientListResponse) { addVNets(p.Value) })
				},
			}
		}
		for _, l := range lists {
			if err := l(); err != nil {
				if isCode(err, "ResourceGroupNotFound") {
					return nil, fmt.Errorf("%w: resource group %q does not exist in subscription %s", ErrNotFound, rg, c.SubscriptionID)
				}
				return nil, fmt.Errorf("listing the virtual machines and networks of %s: %w", where, notFound(err))
			}
		}
		nsgs, err := c.NetworkSecurityGroups(ctx, rg)
		if err != nil {
			return nil, err
		}
		for _, nsg := range nsgs {
			r.nsgs[strings.ToLower(nsg.ID)] = &jit.NSGLevel{ID: nsg.ID, Rules: nsg.Rules}
		}
	}
	views := make([]*engine.MachineView, 0, len(vms))
	for _, vm := range vms {
		m, nicIDs := machineFromARM(*vm)
		v, err := r.view(ctx, m, nicIDs, scope.Front)
		if err != nil {
			return nil, err
		}
		views = append(views, v)
	}
	return views, nil
}

// Inspect reads one VM and its path.
func (b *Backend) Inspect(ctx context.Context, id, front string) (*engine.MachineView, error) {
	c := b.client
	rid, err := arm.ParseResourceID(id)
	if err != nil {
		return nil, fmt.Errorf("%q is not an Azure resource ID: %w", id, err)
	}
	if strings.EqualFold(rid.ResourceType.Namespace, "Microsoft.ClassicCompute") {
		m, err := c.Machine(ctx, id)
		if err != nil {
			return nil, err
		}
		return &engine.MachineView{Machine: m}, nil
	}
	if !strings.EqualFold(rid.ResourceType.String(), "Microsoft.Compute/virtualMachines") {
		return nil, fmt.Errorf("%q is a %s, not a virtual machine (Microsoft.Compute/virtualMachines)", id, rid.ResourceType)
	}
	vm, err := c.virtualMachine(ctx, id)
	if err != nil {
		return nil, err
	}
	m, nicIDs := vm.machine()
	return newFleetReads(c).view(ctx, m, nicIDs, front)
}

// view resolves a VM's path and reads, from the NSGs on it, its exposure,
// Defender's rules and its grants.
func (r *fleetReads) view(ctx context.Context, m *jit.Machine, nicIDs []string, front string) (*engine.MachineView, error) {
	v := &engine.MachineView{Machine: m}
	var exposures [][]jit.ExposedPort
	seen := map[string]bool{}
	for _, nicID := range nicIDs {
		nic, err := r.nic(ctx, nicID)
		if err != nil {
			return nil, err
		}
		m.Interfaces = append(m.Interfaces, nic)
		subnetNSG, err := r.nsg(ctx, nic.SubnetNetworkSecurityGroupID)
		if err != nil {
			return nil, err
		}
		nicNSG, err := r.nsg(ctx, nic.NetworkSecurityGroupID)
		if err != nil {
			return nil, err
		}
		exposures = append(exposures, jit.ExposedThroughNSGs(nic.PrivateIPs, subnetNSG, nicNSG))
		for _, nsg := range []*jit.NSGLevel{subnetNSG, nicNSG} {
			if nsg == nil || seen[strings.ToLower(nsg.ID)] {
				continue
			}
			seen[strings.ToLower(nsg.ID)] = true
			if jit.HasDefenderJITRules(nsg.Rules) {
				v.DefenderFilters = append(v.DefenderFilters, nsg.ID)
			}
			v.Grants = append(v.Grants, nsgGrants(m, nsg)...)
		}
	}
	v.Exposures = jit.MergeExposures(exposures...)
	reasons, err := r.firewallReasons(ctx, m, front)
	if err != nil {
		return nil, err
	}
	v.Unsupported = reasons
	return v, nil
}

// firewallReasons checks the firewalls in front of a VM: the one named,
// and the one its policy's tags name. A firewall whose rules come from a
// Firewall Policy (Firewall Manager) cannot carry JIT's classic rules.
func (r *fleetReads) firewallReasons(ctx context.Context, m *jit.Machine, front string) ([]string, error) {
	var reasons []string
	for i, id := range []string{front, m.Tags[jit.TagFirewall]} {
		if id == "" || i == 1 && strings.EqualFold(id, front) {
			continue
		}
		fw, err := r.firewall(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound) && i == 1:
			continue // the policy's firewall is gone: nothing is in front any more
		case err != nil:
			return nil, err
		case fw.PolicyID != "":
			reasons = append(reasons, fmt.Sprintf("Azure Firewall %s in front of the VM is managed by Firewall Policy %s (Firewall Manager); JIT needs a firewall with classic rules", id, fw.PolicyID))
		}
	}
	return reasons, nil
}

func (r *fleetReads) nic(ctx context.Context, id string) (jit.NetworkInterface, error) {
	key := strings.ToLower(id)
	nic, ok := r.nics[key]
	if !ok {
		var err error
		if nic, err = r.c.networkInterface(ctx, id); err != nil {
			return nic, err
		}
		r.nics[key] = nic
	}
	if nic.SubnetID != "" && nic.SubnetNetworkSecurityGroupID == "" {
		subnetKey := strings.ToLower(nic.SubnetID)
		nsg, ok := r.subnetNSGs[subnetKey]
		if !ok {
			var err error
			if nsg, err = r.c.subnetNSG(ctx, nic.SubnetID); err != nil {
				return nic, err
			}
			r.subnetNSGs[subnetKey] = nsg
		}
		nic.SubnetNetworkSecurityGroupID = nsg
	}
	return nic, nil
}

// nsg is an NSG with its rules; nil when id is "" (no NSG at that level).
func (r *fleetReads) nsg(ctx context.Context, id string) (*jit.NSGLevel, error) {
	if id == "" {
		return nil, nil
	}
	key := strings.ToLower(id)
	if nsg, ok := r.nsgs[key]; ok {
		return nsg, nil
	}
	rules, err := r.c.SecurityRules(ctx, id)
	if err != nil {
		return nil, err
	}
	nsg := &jit.NSGLevel{ID: id, Rules: rules}
	r.nsgs[key] = nsg
	return nsg, nil
}

func (r *fleetReads) firewall(ctx context.Context, id string) (*Firewall, error) {
	key := strings.ToLower(id)
	if fw, ok := r.firewalls[key]; ok {
		return fw, nil
	}
	fw, err := r.c.Firewall(ctx, id)
	if err != nil {
		return nil, err
	}
	r.firewalls[key] = fw
	return fw, nil
}

func isCode(err error, code string) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.ErrorCode == code
}

func subnetNSGOf(s armnetwork.Subnet) string {
	if s.Properties == nil || s.Properties.NetworkSecurityGroup == nil {
		return ""
	}
	return deref(s.Properties.NetworkSecurityGroup.ID)
}

// nsgGrants are the grants to machine an NSG holds: inbound Allows whose
// marker is a grant's and whose name is that of a grant of the rule's
// port to this machine, which carries the request ID. Who asked and why
// come from the request's record in the machine's tags, whole.
func nsgGrants(m *jit.Machine, nsg *jit.NSGLevel) []engine.SeenGrant {
	var out []engine.SeenGrant
	for _, rule := range nsg.Rules {
		v := jit.JudgeNSGGrant(rule, "", nil)
		if !v.IsGrant || len(rule.DestinationPortRanges) != 1 || len(rule.SourcePrefixes) != 1 {
			continue
		}
		number, err := strconv.Atoi(rule.DestinationPortRanges[0])
		if err != nil {
			continue
		}
		port := jit.PortProtocol{Number: number, Protocol: protocolOfNSG(rule.Protocol)}
		request, ok := jit.GrantRequestOf(rule.Name, m.ID, port)
		if !ok {
			continue
		}
		start, _ := jit.RequestStart(request)
		record, _ := jit.RecordOf(v.Marker, m.Tags, jit.RecordTagPrefix(request))
		out = append(out, engine.SeenGrant{
			RequestID: request, Requestor: record.Requestor, OnBehalfOf: record.OnBehalfOf, Justification: record.Justification,
			Port: port, Source: rule.SourcePrefixes[0], Start: start, End: v.Marker.End, Target: nsg.ID,
		})
	}
	slices.SortFunc(out, func(a, b engine.SeenGrant) int { return strings.Compare(a.RequestID, b.RequestID) })
	return out
}

func protocolOfNSG(p jit.NSGProtocol) jit.Protocol {
	switch strings.ToLower(string(p)) {
	case "tcp":
		return jit.ProtocolTCP
	case "udp":
		return jit.ProtocolUDP
	}
	return jit.ProtocolAny
}
