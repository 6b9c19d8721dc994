package provider

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Opening, observing and closing the grants of one access request: what
// jit_access_request and the ephemeral jit_access share.

// grantPort is one port of a request as granted.
type grantPort struct {
	Port   jit.PortProtocol
	Source string
	End    time.Time
}

// grantRequest is what the cloud records of a request.
type grantRequest struct {
	ID            string
	Justification string
	Requestor     string
	Ports         []grantPort
}

// grantRule is one rule a request owns in the cloud.
type grantRule struct {
	TargetID string `tfsdk:"target_id"`
	Name     string `tfsdk:"name"`
	Priority int64  `tfsdk:"priority"`
	Port     int64  `tfsdk:"port"`
	Protocol string `tfsdk:"protocol"`
}

// machinePolicy reads the policy covering a machine from its tags.
func machinePolicy(m *jit.Machine) (name string, ports []jit.Port, ok bool, err error) {
	name, ports, ok, err = jit.PolicyFromTags(m.Tags)
	if err != nil {
		return "", nil, false, fmt.Errorf("%s carries a JIT policy whose tags cannot be read: %w", m.ID, err)
	}
	return name, ports, ok, nil
}

// openedGrant is what a grant holds in the cloud.
type openedGrant struct {
	rules []grantRule
	// connect tells, per port, where to connect.
	connect map[jit.PortProtocol]string
}

// openGrant writes the request's grant of every port in each NSG on the
// machine's path, with precedence over the JIT deny, and, when the policy
// denies through an Azure Firewall, a DNAT rule there from a mapped port of
// its public address. It removes the grants of older requests for the same
// machine and port, which it supersedes. It is idempotent: a grant already
// in place is left alone. The NSGs and the firewall stay locked from their
// read to their last write, so concurrent requests in this process never
// pick the same priority or mapped port.
func (c *clients) openGrant(ctx context.Context, m *jit.Machine, policy string, req grantRequest) (openedGrant, error) {
	opened := openedGrant{connect: map[jit.PortProtocol]string{}}
	if m.Cloud == jit.CloudAWS {
		return c.openSGGrant(ctx, m, policy, req)
	}
	nsgs := m.FilterIDs()
	firewall := m.Tags[jit.TagFirewall]
	locked := slices.Clone(nsgs)
	if firewall != "" {
		locked = append(locked, firewall)
	}
	defer c.azure.Lock(locked...)()
	source := func(gp grantPort) string { return gp.Source }
	if firewall != "" {
		addrs, err := c.openFirewallGrant(ctx, m, firewall, policy, req, &opened)
		if err != nil {
			return opened, err
		}
		// The DNAT rule enforces the requester's source; the VM sees the firewall's.
		source = func(grantPort) string { return addrs.SNATSource }
	} else {
		for _, gp := range req.Ports {
			opened.connect[gp.Port] = connectionDetails(m, gp.Port)
		}
	}
	for _, nsg := range nsgs {
		// Another process (a parallel pipeline) may take the priority chosen
		// between the read and the write: ARM refuses the write with
		// SecurityRuleConflict, and the NSG is read and placed again.
		var rules []grantRule
		var err error
		for attempt := 1; ; attempt++ {
			rules, err = c.grantInNSG(ctx, m, nsg, policy, req, source)
			if err == nil || !azure.IsPriorityConflict(err) || attempt == maxPlacements {
				break
			}
		}
		opened.rules = append(opened.rules, rules...)
		if err != nil {
			return opened, err
		}
	}
	return opened, nil
}

// maxPlacements bounds how often a grant is placed again after losing its
// priority to another writer.
const maxPlacements = 10

// grantInNSG places the request's grants in one NSG, superseding older
// requests' grants for the same machine and ports, and writes them.
func (c *clients) grantInNSG(ctx context.Context, m *jit.Machine, nsg, policy string, req grantRequest, source func(grantPort) string) ([]grantRule, error) {
	rules, err := c.azure.SecurityRules(ctx, nsg)
	if err != nil {
		return nil, err
	}
	var plan jit.NSGPlan
	var owned []grantRule
	for _, gp := range req.Ports {
		name := jit.GrantRuleName(req.ID, m.ID, gp.Port)
		rules = slices.DeleteFunc(rules, func(r jit.NSGRule) bool {
			if r.Name != name && grantsSame(r, m, gp.Port) {
				plan.Remove = append(plan.Remove, r)
				return true
			}
			return false
		})
		rule, err := jit.PlanNSGGrant(jit.NSGGrant{
			NSG: nsg, Rules: rules, Policy: policy, Request: req.ID, Machine: m.ID, PrivateIPs: m.PrivateIPs(),
			Port: gp.Port, Source: source(gp), End: gp.End, Requestor: req.Requestor, Justification: req.Justification,
		})
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(rules, func(r jit.NSGRule) bool { return r.Name == name })
		switch {
		case i < 0:
			rules = append(rules, rule)
			plan.Add = append(plan.Add, rule)
		case rules[i].Priority != rule.Priority || !rules[i].Equivalent(rule):
			rules[i] = rule
			plan.Add = append(plan.Add, rule)
		}
		owned = append(owned, grantRule{TargetID: nsg, Name: rule.Name, Priority: int64(rule.Priority), Port: int64(gp.Port.Number), Protocol: string(gp.Port.Protocol)})
	}
	if err := c.azure.ApplyNSGPlan(ctx, nsg, plan); err != nil {
		return nil, err
	}
	return owned, nil
}

// openSGGrant opens an EC2 instance's ports with a security group of the
// request's own on its primary ENI.
func (c *clients) openSGGrant(ctx context.Context, m *jit.Machine, policy string, req grantRequest) (openedGrant, error) {
	opened := openedGrant{connect: map[jit.PortProtocol]string{}}
	if len(m.Interfaces) == 0 {
		return opened, fmt.Errorf("%s has no network interface to attach a grant to", m.ID)
	}
	g := aws.SGGrant{Request: req.ID, Instance: m.ID, ENI: m.Interfaces[0].ID}
	var end time.Time
	for i, gp := range req.Ports {
		g.Ports = append(g.Ports, aws.SGGrantPort{Port: gp.Port, Source: gp.Source})
		// One group holds every port: it ends with the first to end.
		if i == 0 || gp.End.Before(end) {
			end = gp.End
		}
		opened.connect[gp.Port] = connectionDetails(m, gp.Port)
	}
	g.Marker = jit.GrantMarker(policy, end, req.Requestor, req.Justification).String()
	group, err := c.aws.OpenGrant(ctx, g)
	if group != "" {
		for _, gp := range req.Ports {
			opened.rules = append(opened.rules, grantRule{TargetID: group, Name: g.ENI, Port: int64(gp.Port.Number), Protocol: string(gp.Port.Protocol)})
		}
	}
	return opened, err
}

// openFirewallGrant writes the request's DNAT and network Allow collections
// on the policy's firewall, removing older requests' collections for the
// same machine and ports. The caller holds the firewall's lock.
func (c *clients) openFirewallGrant(ctx context.Context, m *jit.Machine, firewall, policy string, req grantRequest, opened *openedGrant) (azure.FirewallAddresses, error) {
	fw, err := c.azure.Firewall(ctx, firewall)
	if err != nil {
		return azure.FirewallAddresses{}, err
	}
	addrs, err := c.azure.Addresses(ctx, fw)
	if err != nil {
		return addrs, err
	}
	name := jit.FirewallGrantCollectionName(req.ID, m.ID)
	change := azure.FirewallChange{NAT: map[string]*jit.FirewallNATCollection{}, Network: map[string]*jit.FirewallNetworkCollection{}}
	g := jit.FirewallGrant{
		Firewall: firewall, PublicIP: addrs.PublicIP, Policy: policy, Request: req.ID, Machine: m.ID, PrivateIP: m.PrivateIPs()[0],
		Requestor: req.Requestor, Justification: req.Justification,
	}
	ports := map[string]bool{}
	for i, gp := range req.Ports {
		g.Ports = append(g.Ports, jit.FirewallGrantPort{Port: gp.Port, Source: gp.Source})
		// One collection holds every port: it ends with the first to end.
		if i == 0 || gp.End.Before(g.End) {
			g.End = gp.End
		}
		ports[strconv.Itoa(gp.Port.Number)] = true
	}
	var have *jit.FirewallNATCollection
	for i, col := range fw.NATCollections {
		switch {
		case col.Name == name:
			have = &fw.NATCollections[i]
			g.NAT = append(g.NAT, col)
		case supersededNAT(col, g.PrivateIP, ports):
			change.NAT[col.Name], change.Network[col.Name] = nil, nil
		default:
			g.NAT = append(g.NAT, col)
		}
	}
	for _, col := range fw.NetworkCollections {
		if _, gone := change.Network[col.Name]; !gone {
			g.Network = append(g.Network, col)
		}
	}
	plan, err := jit.PlanFirewallGrant(g)
	if err != nil {
		return addrs, err
	}
	var haveAllow *jit.FirewallNetworkCollection
	for i, col := range fw.NetworkCollections {
		if col.Name == name {
			haveAllow = &fw.NetworkCollections[i]
		}
	}
	if have == nil || haveAllow == nil || !reflect.DeepEqual(*have, plan.NAT) || !reflect.DeepEqual(*haveAllow, plan.Allow) {
		change.NAT[name], change.Network[name] = &plan.NAT, &plan.Allow
	}
	if len(change.NAT) > 0 {
		if err := c.azure.UpdateFirewall(ctx, firewall, change); err != nil {
			return addrs, err
		}
	}
	for i, gp := range req.Ports {
		opened.connect[gp.Port] = fmt.Sprintf("%s:%d", addrs.PublicIP, plan.MappedPorts[i])
		opened.rules = append(opened.rules, grantRule{TargetID: firewall, Name: plan.NAT.Rules[i].Name, Priority: int64(plan.NAT.Priority), Port: int64(gp.Port.Number), Protocol: string(gp.Port.Protocol)})
	}
	return addrs, nil
}

// supersededNAT tells whether a NAT collection is another request's grant
// forwarding only to machineIP and only ports among those being granted.
func supersededNAT(col jit.FirewallNATCollection, machineIP string, ports map[string]bool) bool {
	if !jit.IsFirewallGrantCollection(col.Name) || len(col.Rules) == 0 {
		return false
	}
	for _, r := range col.Rules {
		mk, ok := jit.ParseMarker(r.Description)
		if !ok || mk.Kind != jit.MarkerGrant || r.TranslatedAddress != machineIP || !ports[r.TranslatedPort] {
			return false
		}
	}
	return true
}

// grantsSame tells whether r is a JIT grant of port to machine m: the kind
// of rule a newer request for that port supersedes.
func grantsSame(r jit.NSGRule, m *jit.Machine, port jit.PortProtocol) bool {
	mk, ok := jit.ParseMarker(r.Description)
	if !ok || mk.Kind != jit.MarkerGrant || !strings.EqualFold(string(r.Direction), string(jit.NSGInbound)) {
		return false
	}
	if !slices.Equal(r.DestinationPortRanges, []string{strconv.Itoa(port.Number)}) || !strings.EqualFold(string(r.Protocol), string(jit.NSGProtocolOf(port.Protocol))) {
		return false
	}
	got, want := slices.Clone(r.DestinationPrefixes), m.PrivateIPs()
	slices.Sort(got)
	slices.Sort(want)
	return slices.Equal(got, want)
}

// observedGrant is a request's grants as the cloud shows them.
type observedGrant struct {
	rules []grantRule
	// superseded ports have lost their grants to a newer request's.
	superseded map[jit.PortProtocol]bool
}

// observeGrant finds the request's rules in each NSG on the machine's path
// and on its policy's firewall (m may be nil when the machine is gone), and
// in the NSGs and firewall it held rules in.
func (c *clients) observeGrant(ctx context.Context, m *jit.Machine, machineID, requestID string, ports []jit.PortProtocol, targets []string) (*observedGrant, error) {
	o := &observedGrant{superseded: map[jit.PortProtocol]bool{}}
	if cloud, _ := jit.CloudOf(machineID); cloud == jit.CloudAWS {
		if c.aws == nil {
			return nil, errNoBlock("aws", machineID)
		}
		st, err := c.aws.ObserveGrant(ctx, requestID, machineID, primaryENI(m), ports)
		if err != nil {
			return nil, err
		}
		for _, port := range ports {
			if st.Attached {
				o.rules = append(o.rules, grantRule{TargetID: st.GroupID, Name: primaryENI(m), Port: int64(port.Number), Protocol: string(port.Protocol)})
			}
		}
		for _, port := range st.Superseded {
			o.superseded[port] = true
		}
		return o, nil
	}
	for _, target := range grantTargets(m, targets) {
		az, err := c.azureClient(target)
		if err != nil {
			return nil, err
		}
		if isFirewallID(target) {
			fw, err := az.Firewall(ctx, target)
			if isNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			name := jit.FirewallGrantCollectionName(requestID, machineID)
			for _, col := range fw.NATCollections {
				for _, port := range ports {
					if col.Name == name && slices.ContainsFunc(col.Rules, func(r jit.FirewallNATRule) bool { return r.Name == jit.GrantRuleName(requestID, machineID, port) }) {
						o.rules = append(o.rules, grantRule{TargetID: target, Name: jit.GrantRuleName(requestID, machineID, port), Priority: int64(col.Priority), Port: int64(port.Number), Protocol: string(port.Protocol)})
					}
				}
			}
			continue
		}
		rules, err := az.SecurityRules(ctx, target)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, port := range ports {
			name := jit.GrantRuleName(requestID, machineID, port)
			i := slices.IndexFunc(rules, func(r jit.NSGRule) bool { return r.Name == name })
			if i >= 0 {
				o.rules = append(o.rules, grantRule{TargetID: target, Name: name, Priority: int64(rules[i].Priority), Port: int64(port.Number), Protocol: string(port.Protocol)})
				continue
			}
			if m != nil && slices.ContainsFunc(rules, func(r jit.NSGRule) bool { return grantsSame(r, m, port) }) {
				o.superseded[port] = true
			}
		}
	}
	return o, nil
}

// closeGrant removes the request's rules for ports from each NSG on the
// machine's path and from its policy's firewall (m may be nil), and from
// the NSGs and firewall it held rules in.
func (c *clients) closeGrant(ctx context.Context, m *jit.Machine, machineID, requestID string, ports []jit.PortProtocol, targets []string) error {
	if cloud, _ := jit.CloudOf(machineID); cloud == jit.CloudAWS && len(ports) > 0 {
		if c.aws == nil {
			return errNoBlock("aws", machineID)
		}
		return c.aws.RevokeGrantPorts(ctx, requestID, machineID, ports)
	}
	all := grantTargets(m, targets)
	if len(all) == 0 || len(ports) == 0 {
		return nil
	}
	az, err := c.azureClient(all[0])
	if err != nil {
		return err
	}
	defer az.Lock(all...)()
	names := map[string]bool{}
	for _, port := range ports {
		names[jit.GrantRuleName(requestID, machineID, port)] = true
	}
	for _, target := range all {
		if isFirewallID(target) {
			if err := closeFirewallGrant(ctx, az, target, jit.FirewallGrantCollectionName(requestID, machineID), names); err != nil {
				return err
			}
			continue
		}
		var plan jit.NSGPlan
		for name := range names {
			plan.Remove = append(plan.Remove, jit.NSGRule{Name: name})
		}
		if err := az.ApplyNSGPlan(ctx, target, plan); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// closeFirewallGrant removes the named rules from a grant's two collections,
// and the collections once empty.
func closeFirewallGrant(ctx context.Context, az *azure.Client, firewall, collection string, names map[string]bool) error {
	fw, err := az.Firewall(ctx, firewall)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	change := azure.FirewallChange{NAT: map[string]*jit.FirewallNATCollection{}, Network: map[string]*jit.FirewallNetworkCollection{}}
	for _, col := range fw.NATCollections {
		if col.Name == collection {
			col.Rules = slices.DeleteFunc(col.Rules, func(r jit.FirewallNATRule) bool { return names[r.Name] })
			change.NAT[col.Name] = nil
			if len(col.Rules) > 0 {
				change.NAT[col.Name] = &col
			}
		}
	}
	for _, col := range fw.NetworkCollections {
		if col.Name == collection {
			col.Rules = slices.DeleteFunc(col.Rules, func(r jit.FirewallNetworkRule) bool { return names[r.Name] })
			change.Network[col.Name] = nil
			if len(col.Rules) > 0 {
				change.Network[col.Name] = &col
			}
		}
	}
	if len(change.NAT)+len(change.Network) == 0 {
		return nil
	}
	return az.UpdateFirewall(ctx, firewall, change)
}

// primaryENI is the network interface grants attach to; "" when the
// instance is gone.
func primaryENI(m *jit.Machine) string {
	if m == nil || len(m.Interfaces) == 0 {
		return ""
	}
	return m.Interfaces[0].ID
}

// grantTargets is every NSG and firewall a request may hold rules in, once each.
func grantTargets(m *jit.Machine, targets []string) []string {
	var all []string
	if m != nil {
		all = append(all, m.FilterIDs()...)
		if fw := m.Tags[jit.TagFirewall]; fw != "" {
			all = append(all, fw)
		}
	}
	all = append(all, targets...)
	seen := map[string]bool{}
	return slices.DeleteFunc(all, func(id string) bool {
		key := strings.ToLower(id)
		if seen[key] {
			return true
		}
		seen[key] = true
		return false
	})
}

// grantTargetCount is how many places a port's grant has rules in: each
// NSG on the path, and the policy's firewall.
func grantTargetCount(m *jit.Machine) int {
	if m.Cloud == jit.CloudAWS {
		return 1 // the request's own security group
	}
	n := len(m.FilterIDs())
	if m.Tags[jit.TagFirewall] != "" {
		n++
	}
	return n
}
