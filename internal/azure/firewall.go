package azure

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Firewall is what policies and grants need to know of an Azure Firewall.
type Firewall struct {
	ID string
	// PolicyID is the Firewall Policy managing the firewall's rules, if
	// any: such a firewall has no classic rule collections to write.
	PolicyID           string
	NetworkCollections []jit.FirewallNetworkCollection
	NATCollections     []jit.FirewallNATCollection
	// PublicIPs counts the IP configurations with a public IP, which take
	// from the same quota as DNAT rules (maxDNATRules).
	PublicIPs int
	// ipConfig is the first IP configuration, which Addresses resolves.
	ipConfig *armnetwork.AzureFirewallIPConfigurationPropertiesFormat
}

// FirewallAddresses are what a grant through a firewall needs.
type FirewallAddresses struct {
	// PublicIP is where DNAT grants are reached: the address of the first
	// IP configuration's public IP resource.
	PublicIP string
	// SNATSource is where traffic the firewall forwards arrives from at
	// the VM: Azure Firewall source-NATs DNAT traffic to the addresses of
	// its instances in AzureFirewallSubnet, so the subnet's prefix (the
	// firewall's private address when the subnet cannot be read).
	SNATSource string
}

// FirewallChange sets classic rule collections by name; a nil collection
// removes that name.
type FirewallChange struct {
	Network map[string]*jit.FirewallNetworkCollection
	NAT     map[string]*jit.FirewallNATCollection
}

// Firewall reads a firewall's classic rule collections, once per provider
// process; this process's writes to it are in what it returns.
func (c *Client) Firewall(ctx context.Context, firewallID string) (*Firewall, error) {
	fw, err := c.firewalls.Get(ctx, firewallID, func(ctx context.Context) (Firewall, error) {
		fw, err := c.getFirewall(ctx, firewallID)
		if err != nil {
			return Firewall{}, err
		}
		return firewallOf(firewallID, &fw), nil
	})
	if err != nil {
		return nil, err
	}
	return &fw, nil
}

func firewallOf(firewallID string, fw *armnetwork.AzureFirewall) Firewall {
	out := Firewall{ID: firewallID}
	if p := fw.Properties; p != nil {
		if p.FirewallPolicy != nil {
			out.PolicyID = deref(p.FirewallPolicy.ID)
		}
		for _, col := range p.NetworkRuleCollections {
			if col != nil {
				out.NetworkCollections = append(out.NetworkCollections, fromNetworkCollection(col))
			}
		}
		for _, col := range p.NatRuleCollections {
			if col != nil {
				out.NATCollections = append(out.NATCollections, fromNATCollection(col))
			}
		}
		for _, ipc := range p.IPConfigurations {
			if ipc == nil || ipc.Properties == nil {
				continue
			}
			if out.ipConfig == nil {
				out.ipConfig = ipc.Properties
			}
			if ipc.Properties.PublicIPAddress != nil {
				out.PublicIPs++
			}
		}
	}
	return out
}

// maxDNATRules is Azure Firewall's quota of DNAT rules and public IP
// addresses together: each public IP configuration takes one of the 250
// (learn.microsoft.com, "Deploy an Azure Firewall with multiple public IP
// addresses": public IP addresses + DNAT rules = 250 maximum).
const maxDNATRules = 250

// dnatRoom fails when the firewall has no room for adding DNAT rules:
// its public IPs, the rules of the NAT collections that stay (keep: not
// the grant's own, nor those it replaces) and the new ones, over the quota.
func (f *Firewall) dnatRoom(adding int, keep func(name string) bool) error {
	used := f.PublicIPs
	for _, c := range f.NATCollections {
		if keep(c.Name) {
			used += len(c.Rules)
		}
	}
	if used+adding > maxDNATRules {
		return fmt.Errorf("Azure Firewall %s has %d DNAT rules and public IP addresses; the grant needs %d more, and Azure allows %d together. "+
			"Let other grants through this firewall end (revoke-expired removes those that did) or remove DNAT rules it does not need",
			f.ID, used, adding, maxDNATRules)
	}
	return nil
}

// clone copies the collections and their rules, which callers edit.
func (f Firewall) clone() Firewall {
	f.NetworkCollections = slices.Clone(f.NetworkCollections)
	for i := range f.NetworkCollections {
		col := &f.NetworkCollections[i]
		col.Rules = slices.Clone(col.Rules)
		for j := range col.Rules {
			r := &col.Rules[j]
			r.Protocols, r.SourceAddresses = slices.Clone(r.Protocols), slices.Clone(r.SourceAddresses)
			r.DestinationAddresses, r.DestinationPorts = slices.Clone(r.DestinationAddresses), slices.Clone(r.DestinationPorts)
		}
	}
	f.NATCollections = slices.Clone(f.NATCollections)
	for i := range f.NATCollections {
		col := &f.NATCollections[i]
		col.Rules = slices.Clone(col.Rules)
		for j := range col.Rules {
			r := &col.Rules[j]
			r.Protocols, r.SourceAddresses = slices.Clone(r.Protocols), slices.Clone(r.SourceAddresses)
			r.DestinationAddresses, r.DestinationPorts = slices.Clone(r.DestinationAddresses), slices.Clone(r.DestinationPorts)
		}
	}
	return f
}

// Addresses reads the firewall's public address and the prefix its
// forwarded traffic comes from. Only grants need them, so Firewall leaves
// these two reads out.
func (c *Client) Addresses(ctx context.Context, fw *Firewall) (FirewallAddresses, error) {
	ipc := fw.ipConfig
	if ipc == nil || ipc.PublicIPAddress == nil || deref(ipc.PrivateIPAddress) == "" {
		return FirewallAddresses{}, fmt.Errorf("Azure Firewall %s has no public and private address to forward a grant through", fw.ID)
	}
	publicIP, err := c.publicIPAddress(ctx, deref(ipc.PublicIPAddress.ID))
	if err != nil {
		return FirewallAddresses{}, err
	}
	return FirewallAddresses{PublicIP: publicIP, SNATSource: c.SNATSource(ctx, fw)}, nil
}

// SNATSource is where traffic the firewall forwards arrives from (see
// FirewallAddresses), read without the public address: what a policy
// needs to tell the grants through the firewall. "" when unknown.
func (c *Client) SNATSource(ctx context.Context, fw *Firewall) string {
	ipc := fw.ipConfig
	if ipc == nil {
		return ""
	}
	if ipc.Subnet != nil {
		if subnet, err := c.subnet(ctx, deref(ipc.Subnet.ID)); err == nil && subnet.AddressPrefix != "" {
			return subnet.AddressPrefix
		}
	}
	return deref(ipc.PrivateIPAddress)
}

func (c *Client) publicIPAddress(ctx context.Context, publicIPID string) (string, error) {
	return c.publicIPs.Get(ctx, publicIPID, func(ctx context.Context) (string, error) {
		id, network, err := c.parseNetworkID(publicIPID)
		if err != nil {
			return "", err
		}
		var resp armnetwork.PublicIPAddressesClientGetResponse
		err = withRetry(ctx, func(ctx context.Context) (err error) {
			resp, err = network.NewPublicIPAddressesClient().Get(ctx, id.ResourceGroupName, id.Name, nil)
			return err
		})
		if err != nil {
			return "", fmt.Errorf("reading public IP address %s: %w", publicIPID, notFound(err))
		}
		if resp.Properties == nil || deref(resp.Properties.IPAddress) == "" {
			return "", fmt.Errorf("public IP address %s has no address allocated", publicIPID)
		}
		return *resp.Properties.IPAddress, nil
	})
}

// UpdateFirewall applies change to a firewall's classic rule collections.
// A firewall is written whole, so each attempt reads it right before
// writing it back with only the named collections changed: collections
// others wrote meanwhile are kept. The caller holds the firewall's lock,
// which serialises this process's writes.
func (c *Client) UpdateFirewall(ctx context.Context, firewallID string, change FirewallChange) error {
	err := c.editFirewall(ctx, firewallID, func(fw *armnetwork.AzureFirewall) (bool, error) {
		if fw.Properties.FirewallPolicy != nil {
			return false, fmt.Errorf("Azure Firewall %s is managed by Firewall Policy %s; jit writes classic rule collections only", firewallID, deref(fw.Properties.FirewallPolicy.ID))
		}
		fw.Properties.NetworkRuleCollections = replaceCollections(fw.Properties.NetworkRuleCollections, change.Network,
			func(c *armnetwork.AzureFirewallNetworkRuleCollection) string { return deref(c.Name) }, toNetworkCollection)
		fw.Properties.NatRuleCollections = replaceCollections(fw.Properties.NatRuleCollections, change.NAT,
			func(c *armnetwork.AzureFirewallNatRuleCollection) string { return deref(c.Name) }, toNATCollection)
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("writing rule collections %s to Azure Firewall %s: %w", change.names(), firewallID, err)
	}
	return nil
}

// editFirewall is the one read-modify-write of a firewall: a firewall is
// written whole, so each attempt reads it right before edit changes what it
// means to (never from the read cache) and the whole is written back,
// keeping what others wrote meanwhile. edit deciding on the fresh read, and
// returning false, writes nothing. Conflicts and throttling are retried.
// The process's read of the firewall becomes what was written, or is
// forgotten when the write failed.
func (c *Client) editFirewall(ctx context.Context, firewallID string, edit func(*armnetwork.AzureFirewall) (bool, error)) error {
	id, network, err := c.parseNetworkID(firewallID)
	if err != nil {
		return err
	}
	client := network.NewAzureFirewallsClient()
	var now armnetwork.AzureFirewall // the firewall as this process last saw it
	err = withRetry(ctx, func(ctx context.Context) error {
		fw, err := c.getFirewall(ctx, firewallID)
		if err != nil {
			return err
		}
		if fw.Properties == nil {
			fw.Properties = &armnetwork.AzureFirewallPropertiesFormat{}
		}
		now = fw
		if write, err := edit(&fw); err != nil || !write {
			return err
		}
		tflog.Info(ctx, "writing Azure Firewall rule collections (the whole firewall)", map[string]any{"firewall": firewallID})
		var initial *http.Response
		poller, err := client.BeginCreateOrUpdate(policy.WithCaptureResponse(ctx, &initial), id.ResourceGroupName, id.Name, fw, nil)
		if err != nil {
			return err
		}
		written, ok := answer[armnetwork.AzureFirewall](initial)
		if !ok {
			written = fw
		}
		now = written
		return await(ctx, poller, initial)
	})
	if err != nil {
		c.firewalls.Forget(firewallID)
		return err
	}
	c.firewalls.Put(firewallID, firewallOf(firewallID, &now))
	return nil
}

func (ch FirewallChange) names() string {
	var names []string
	for n := range ch.Network {
		names = append(names, n)
	}
	for n := range ch.NAT {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), ", ")
}

// replaceCollections keeps the collections not named in want, in their
// order, and appends the wanted ones that are not nil, in name order.
func replaceCollections[A any, C any](have []*A, want map[string]*C, name func(*A) string, convert func(C) *A) []*A {
	replaced := map[string]bool{} // collection names are case-insensitive
	for n := range want {
		replaced[strings.ToLower(n)] = true
	}
	var out []*A
	for _, col := range have {
		if col != nil && !replaced[strings.ToLower(name(col))] {
			out = append(out, col)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(want)) {
		if c := want[n]; c != nil {
			out = append(out, convert(*c))
		}
	}
	return out
}

func (c *Client) getFirewall(ctx context.Context, firewallID string) (armnetwork.AzureFirewall, error) {
	id, network, err := c.parseNetworkID(firewallID)
	if err != nil {
		return armnetwork.AzureFirewall{}, err
	}
	var resp armnetwork.AzureFirewallsClientGetResponse
	err = withRetry(ctx, func(ctx context.Context) (err error) {
		resp, err = network.NewAzureFirewallsClient().Get(ctx, id.ResourceGroupName, id.Name, nil)
		return err
	})
	if err != nil {
		return armnetwork.AzureFirewall{}, fmt.Errorf("reading Azure Firewall %s: %w", firewallID, notFound(err))
	}
	return resp.AzureFirewall, nil
}

func fromNetworkCollection(col *armnetwork.AzureFirewallNetworkRuleCollection) jit.FirewallNetworkCollection {
	out := jit.FirewallNetworkCollection{Name: deref(col.Name)}
	p := col.Properties
	if p == nil {
		return out
	}
	out.Priority = int(deref(p.Priority))
	if p.Action != nil {
		out.Action = jit.FirewallAction(deref(p.Action.Type))
	}
	for _, r := range p.Rules {
		if r == nil {
			continue
		}
		rule := jit.FirewallNetworkRule{
			Name: deref(r.Name), Description: deref(r.Description),
			SourceAddresses: derefAll(r.SourceAddresses), DestinationAddresses: derefAll(r.DestinationAddresses),
			DestinationPorts: derefAll(r.DestinationPorts),
		}
		for _, proto := range r.Protocols {
			rule.Protocols = append(rule.Protocols, string(deref(proto)))
		}
		out.Rules = append(out.Rules, rule)
	}
	return out
}

func toNetworkCollection(col jit.FirewallNetworkCollection) *armnetwork.AzureFirewallNetworkRuleCollection {
	rules := make([]*armnetwork.AzureFirewallNetworkRule, len(col.Rules))
	for i, r := range col.Rules {
		rule := &armnetwork.AzureFirewallNetworkRule{
			Name: to.Ptr(r.Name), Description: to.Ptr(r.Description),
			SourceAddresses: to.SliceOfPtrs(r.SourceAddresses...), DestinationAddresses: to.SliceOfPtrs(r.DestinationAddresses...),
			DestinationPorts: to.SliceOfPtrs(r.DestinationPorts...),
		}
		for _, proto := range r.Protocols {
			rule.Protocols = append(rule.Protocols, to.Ptr(armnetwork.AzureFirewallNetworkRuleProtocol(proto)))
		}
		rules[i] = rule
	}
	return &armnetwork.AzureFirewallNetworkRuleCollection{
		Name: to.Ptr(col.Name),
		Properties: &armnetwork.AzureFirewallNetworkRuleCollectionPropertiesFormat{
			Priority: to.Ptr(int32(col.Priority)),
			Action:   &armnetwork.AzureFirewallRCAction{Type: to.Ptr(armnetwork.AzureFirewallRCActionType(col.Action))},
			Rules:    rules,
		},
	}
}

func fromNATCollection(col *armnetwork.AzureFirewallNatRuleCollection) jit.FirewallNATCollection {
	out := jit.FirewallNATCollection{Name: deref(col.Name)}
	p := col.Properties
	if p == nil {
		return out
	}
	out.Priority = int(deref(p.Priority))
	for _, r := range p.Rules {
		if r == nil {
			continue
		}
		rule := jit.FirewallNATRule{
			Name: deref(r.Name), Description: deref(r.Description),
			SourceAddresses: derefAll(r.SourceAddresses), DestinationAddresses: derefAll(r.DestinationAddresses),
			DestinationPorts: derefAll(r.DestinationPorts), TranslatedAddress: deref(r.TranslatedAddress), TranslatedPort: deref(r.TranslatedPort),
		}
		for _, proto := range r.Protocols {
			rule.Protocols = append(rule.Protocols, string(deref(proto)))
		}
		out.Rules = append(out.Rules, rule)
	}
	return out
}

func toNATCollection(col jit.FirewallNATCollection) *armnetwork.AzureFirewallNatRuleCollection {
	rules := make([]*armnetwork.AzureFirewallNatRule, len(col.Rules))
	for i, r := range col.Rules {
		rule := &armnetwork.AzureFirewallNatRule{
			Name: to.Ptr(r.Name), Description: to.Ptr(r.Description),
			SourceAddresses: to.SliceOfPtrs(r.SourceAddresses...), DestinationAddresses: to.SliceOfPtrs(r.DestinationAddresses...),
			DestinationPorts: to.SliceOfPtrs(r.DestinationPorts...), TranslatedAddress: to.Ptr(r.TranslatedAddress), TranslatedPort: to.Ptr(r.TranslatedPort),
		}
		for _, proto := range r.Protocols {
			rule.Protocols = append(rule.Protocols, to.Ptr(armnetwork.AzureFirewallNetworkRuleProtocol(proto)))
		}
		rules[i] = rule
	}
	return &armnetwork.AzureFirewallNatRuleCollection{
		Name: to.Ptr(col.Name),
		Properties: &armnetwork.AzureFirewallNatRuleCollectionProperties{
			Priority: to.Ptr(int32(col.Priority)),
			Action:   &armnetwork.AzureFirewallNatRCAction{Type: to.Ptr(armnetwork.AzureFirewallNatRCActionTypeDnat)},
			Rules:    rules,
		},
	}
}

func derefAll(values []*string) []string {
	var out []string
	for _, v := range values {
		if v != nil {
			out = append(out, *v)
		}
	}
	return out
}
