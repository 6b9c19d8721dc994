package azure

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// A scan reads a whole subscription (or resource group) with list calls
// only, whatever its size: the VMs with their tags, the NSGs with their
// rules, the firewalls with their collections. Grant rules are traced to
// their VM by name (jit.GrantRuleOf), so no VM's path is resolved.

// scan is what one scan read.
type scan struct {
	vms       []*jit.Machine
	nsgs      []NSG
	firewalls []FirewallRuleDescriptions
	// bySlug indexes VMs by the beginning of their grant rule names.
	bySlug map[string][]*jit.Machine
}

func (b *Backend) scan(ctx context.Context) (*scan, error) {
	var s scan
	// An unlistable kind of resource does not stop the scan of the others.
	var vmErr, nsgErr, fwErr error
	s.vms, vmErr = b.client.VirtualMachines(ctx, b.resourceGroup)
	s.nsgs, nsgErr = b.client.NetworkSecurityGroups(ctx, b.resourceGroup)
	s.firewalls, fwErr = b.client.FirewallsRuleDescriptions(ctx, b.resourceGroup)
	s.bySlug = map[string][]*jit.Machine{}
	for _, vm := range s.vms {
		prefix := jit.GrantRulePrefix(vm.ID)
		s.bySlug[prefix] = append(s.bySlug[prefix], vm)
	}
	return &s, errors.Join(vmErr, nsgErr, fwErr)
}

// owner traces a grant rule name to its VM and request; nil when no VM of
// the scan has it.
func (s *scan) owner(name string) (*jit.Machine, string, jit.PortProtocol) {
	for prefix, vms := range s.bySlug {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		for _, vm := range vms {
			if request, port, ok := jit.GrantRuleOf(name, vm.ID); ok {
				return vm, request, port
			}
		}
	}
	return nil, "", jit.PortProtocol{}
}

// ScanGrants lists the grant rules of every NSG and the grant collections
// of every firewall in the subscription (or resource group), each with its
// request's record, and the records of requests with no rule left.
func (b *Backend) ScanGrants(ctx context.Context) (engine.Scope, []engine.FoundGrant, error) {
	scope := b.scope()
	s, err := b.scan(ctx)
	var found []engine.FoundGrant
	held := map[string]bool{} // VM ID + request of every grant seen
	for _, nsg := range s.nsgs {
		for _, rule := range nsg.Rules {
			if v := jit.JudgeNSGGrant(rule, "", nil); v.IsGrant {
				vm, request, _ := s.owner(rule.Name)
				if vm != nil {
					held[strings.ToLower(vm.ID)+" "+request] = true
				}
				g := engine.FoundGrant{Kind: engine.KindNSGRule, Target: nsg.ID, Name: rule.Name, Request: request, Marker: v.Marker, Vouched: true}
				g.Record, g.RecordWhole = machineRecord(vm, request, rule.Description)
				found = append(found, g)
			}
		}
	}
	for _, fw := range s.firewalls {
		for name, descriptions := range fw.Collections {
			if !jit.IsFirewallGrantCollection(name) {
				continue
			}
			end, requestor, ok := jit.FirewallGrantEnd(descriptions)
			g := engine.FoundGrant{Kind: engine.KindFirewallGrant, Target: fw.ID, Name: name, Vouched: ok,
				Marker: jit.Marker{Kind: jit.MarkerGrant, End: end, Requestor: requestor}}
			for _, col := range fw.NAT {
				if strings.EqualFold(col.Name, name) && len(col.Rules) > 0 {
					if vm, request, _ := s.owner(col.Rules[0].Name); vm != nil {
						held[strings.ToLower(vm.ID)+" "+request] = true
						g.Request = request
						g.Record, g.RecordWhole = machineRecord(vm, request, col.Rules[0].Description)
					}
				}
			}
			found = append(found, g)
		}
	}
	// A record outlives its rules only when closing the request failed
	// half-way or its rules were removed by revoke-expired or by hand: it
	// is removed once the request can no longer be open.
	for _, vm := range s.vms {
		for _, request := range jit.RecordRequests(vm.Tags) {
			if held[strings.ToLower(vm.ID)+" "+request] {
				continue
			}
			start, ok := engine.RequestStart(request)
			r, _ := jit.RecordOf(jit.Marker{}, vm.Tags, jit.RecordTagPrefix(request))
			found = append(found, engine.FoundGrant{Kind: engine.KindGrantRecord, Target: vm.ID, Name: jit.RecordTagPrefix(request) + "*",
				Request: request, Vouched: ok, Record: &r,
				Marker: jit.Marker{Kind: jit.MarkerGrant, End: start.Add(time.Duration(jit.MaxMaxRequestAccessDuration))}})
		}
	}
	return scope, found, err
}

// RevokeGrant removes one found grant if, read again under its target's
// lock, it still satisfies still.
func (b *Backend) RevokeGrant(ctx context.Context, g engine.FoundGrant, still func(jit.Marker) bool) (bool, error) {
	defer b.client.Lock(ctx, g.Target)()
	switch g.Kind {
	case engine.KindNSGRule:
		return b.client.RevokeSecurityRule(ctx, g.Target, g.Name, func(current jit.NSGRule) bool {
			v := jit.JudgeNSGGrant(current, "", nil)
			return v.IsGrant && still(v.Marker)
		})
	case engine.KindGrantRecord:
		// The VM alone: its tags hold the record, its path does not matter.
		vm, err := b.client.virtualMachine(ctx, g.Target)
		if errors.Is(err, ErrNotFound) {
			return true, nil
		}
		if err != nil || !still(g.Marker) {
			return false, err
		}
		if err := b.client.removeRecord(ctx, g.Target, vm.Tags, g.Request); err != nil && !errors.Is(err, ErrNotFound) {
			return false, err
		}
		return true, nil
	}
	removed, remaining, err := b.client.RemoveFirewallCollections(ctx, g.Target, func(name string, descriptions []string) bool {
		end, requestor, ok := jit.FirewallGrantEnd(descriptions)
		return strings.EqualFold(name, g.Name) && ok && still(jit.Marker{Kind: jit.MarkerGrant, End: end, Requestor: requestor})
	})
	if err != nil {
		return false, err
	}
	// Removed now, or already gone.
	return slices.Contains(removed, g.Name) || !slices.ContainsFunc(remaining, func(n string) bool { return strings.EqualFold(n, g.Name) }), nil
}

// ScanMachines lists every VM of the subscription (or resource group) with
// the grants its NSGs and firewalls hold, for audit.
func (b *Backend) ScanMachines(ctx context.Context) (engine.Scope, []engine.ScannedMachine, error) {
	scope := b.scope()
	s, err := b.scan(ctx)
	machines := make([]engine.ScannedMachine, 0, len(s.vms)+1)
	index := map[*jit.Machine]int{}
	for i, vm := range s.vms {
		machines = append(machines, engine.ScannedMachine{Machine: vm})
		index[vm] = i
	}
	var orphans []engine.ScannedGrant
	add := func(vm *jit.Machine, g engine.ScannedGrant) {
		if vm == nil {
			orphans = append(orphans, g)
			return
		}
		machines[index[vm]].Grants = append(machines[index[vm]].Grants, g)
	}
	for _, nsg := range s.nsgs {
		for _, rule := range nsg.Rules {
			v := jit.JudgeNSGGrant(rule, "", nil)
			if !v.IsGrant && !strings.HasPrefix(rule.Name, "jit-grant-") {
				continue
			}
			vm, request, port := s.owner(rule.Name)
			if vm == nil {
				request, port = jit.GrantRuleRequest(rule.Name), nsgRulePort(rule)
			}
			g := engine.ScannedGrant{Request: request, Port: port, Marker: v.Marker, Vouched: v.IsGrant, Target: nsg.ID, Name: rule.Name,
				Source: strings.Join(rule.SourcePrefixes, " ")}
			g.Record, g.RecordWhole = machineRecord(vm, request, rule.Description)
			// Behind the policy's firewall, an NSG grant allows the
			// firewall's own addresses; the DNAT rule has the requester's.
			g.RequesterSource = vm == nil || vm.Tags[jit.TagFirewall] == ""
			add(vm, g)
		}
	}
	for _, fw := range s.firewalls {
		for _, col := range fw.NAT {
			if !jit.IsFirewallGrantCollection(col.Name) {
				continue
			}
			for _, rule := range col.Rules {
				v := jit.JudgeGrant(rule.Description, true, "", nil)
				vm, request, port := s.owner(rule.Name)
				if vm == nil {
					request = jit.GrantRuleRequest(rule.Name)
					port.Number, _ = strconv.Atoi(rule.TranslatedPort)
					port.Protocol = firewallRuleProtocol(rule.Protocols)
				}
				g := engine.ScannedGrant{Request: request, Port: port, Marker: v.Marker, Vouched: v.IsGrant, Target: fw.ID, Name: rule.Name,
					Source: strings.Join(rule.SourceAddresses, " "), RequesterSource: true}
				g.Record, g.RecordWhole = machineRecord(vm, request, rule.Description)
				add(vm, g)
			}
		}
	}
	if len(orphans) > 0 {
		machines = append(machines, engine.ScannedMachine{Grants: orphans})
	}
	return scope, machines, err
}

// nsgRulePort is the port and protocol a rule allows, for a grant rule
// whose name cannot be traced.
func nsgRulePort(r jit.NSGRule) jit.PortProtocol {
	var p jit.PortProtocol
	if len(r.DestinationPortRanges) > 0 {
		p.Number, _ = strconv.Atoi(r.DestinationPortRanges[0])
	}
	switch strings.ToUpper(string(r.Protocol)) {
	case "TCP":
		p.Protocol = jit.ProtocolTCP
	case "UDP":
		p.Protocol = jit.ProtocolUDP
	default:
		p.Protocol = jit.ProtocolAny
	}
	return p
}

func firewallRuleProtocol(protocols []string) jit.Protocol {
	if len(protocols) == 1 && strings.EqualFold(protocols[0], "TCP") {
		return jit.ProtocolTCP
	}
	if len(protocols) == 1 && strings.EqualFold(protocols[0], "UDP") {
		return jit.ProtocolUDP
	}
	return jit.ProtocolAny
}

// scope is what the backend's scans cover: its subscription, or one
// resource group of it.
func (b *Backend) scope() engine.Scope {
	id := "/subscriptions/" + b.client.SubscriptionID
	if b.resourceGroup != "" {
		id += "/resourceGroups/" + b.resourceGroup
	}
	return engine.Scope{ID: id, Cloud: b.Name(), Subscription: b.client.SubscriptionID, ResourceGroup: b.resourceGroup}
}
