package cloudsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
)

// AzureFixture seeds the Azure side. Every resource is named by its full ARM
// ID and refers to others by full ID; resource groups and subscriptions are
// implied by the IDs. Lookups ignore case, as ARM does, while responses keep
// the casing written here. Snapshot returns the same shape, so a dump seeds
// another emulator.
type AzureFixture struct {
	// SubscriptionID is the default subscription (the provider block's);
	// default: the subscription of the first resource.
	SubscriptionID string `json:"subscription_id,omitempty"`
	// TenantID becomes the tid claim of issued tokens.
	TenantID              string                `json:"tenant_id,omitempty"`
	VirtualMachines       []AzureVM             `json:"virtual_machines,omitempty"`
	NetworkInterfaces     []AzureNIC            `json:"network_interfaces,omitempty"`
	VirtualNetworks       []AzureVNet           `json:"virtual_networks,omitempty"`
	NetworkSecurityGroups []AzureNSG            `json:"network_security_groups,omitempty"`
	PublicIPAddresses     []AzurePublicIP       `json:"public_ip_addresses,omitempty"`
	Firewalls             []AzureFirewall       `json:"firewalls,omitempty"`
	FirewallPolicies      []AzureFirewallPolicy `json:"firewall_policies,omitempty"`
	// ApplicationSecurityGroups are what security rules may name in place
	// of address prefixes.
	ApplicationSecurityGroups []AzureApplicationSecurityGroup `json:"application_security_groups,omitempty"`
}

// AzureVM is a Microsoft.Compute virtual machine. Its first interface is
// the primary one.
type AzureVM struct {
	ID                string            `json:"id"`
	Location          string            `json:"location,omitempty"` // default westeurope
	Tags              map[string]string `json:"tags,omitempty"`
	VMID              string            `json:"vm_id,omitempty"`   // default derived from ID
	Size              string            `json:"size,omitempty"`    // default Standard_B2s
	OSType            string            `json:"os_type,omitempty"` // Linux | Windows, default Linux
	NetworkInterfaces []string          `json:"network_interfaces"`
	// DanglingReferences lets network_interfaces name interfaces that do not
	// exist, as after an out-of-band delete: reading them gives 404.
	DanglingReferences bool `json:"dangling_references,omitempty"`
}

// AzureNIC is a network interface; its virtual machine is the one listing it.
type AzureNIC struct {
	ID                   string            `json:"id"`
	Location             string            `json:"location,omitempty"`
	Tags                 map[string]string `json:"tags,omitempty"`
	NetworkSecurityGroup string            `json:"network_security_group,omitempty"`
	// IPConfigurations: the first is the primary one.
	IPConfigurations []AzureIPConfig `json:"ip_configurations"`
}

// AzureIPConfig is one IP configuration of a network interface.
type AzureIPConfig struct {
	Name      string `json:"name"`
	PrivateIP string `json:"private_ip"`
	Subnet    string `json:"subnet"`
	PublicIP  string `json:"public_ip,omitempty"`
}

// AzureVNet is a virtual network with its subnets.
type AzureVNet struct {
	ID           string            `json:"id"`
	Location     string            `json:"location,omitempty"`
	Tags         map[string]string `json:"tags,omitempty"`
	AddressSpace []string          `json:"address_space"`
	Subnets      []AzureSubnet     `json:"subnets,omitempty"`
}

// AzureSubnet is a subnet, named relative to its virtual network.
type AzureSubnet struct {
	Name                 string `json:"name"`
	AddressPrefix        string `json:"address_prefix"`
	NetworkSecurityGroup string `json:"network_security_group,omitempty"`
}

// AzureNSG is a network security group; its six default rules are implied.
type AzureNSG struct {
	ID            string              `json:"id"`
	Location      string              `json:"location,omitempty"`
	Tags          map[string]string   `json:"tags,omitempty"`
	SecurityRules []AzureSecurityRule `json:"security_rules,omitempty"`
}

// AzureSecurityRule is one NSG rule. Each address and port field is either
// singular or plural, never both, as in ARM; an address side may instead
// name application security groups.
type AzureSecurityRule struct {
	Name                       string   `json:"name"`
	Priority                   int32    `json:"priority"`
	Direction                  string   `json:"direction"` // Inbound | Outbound
	Access                     string   `json:"access"`    // Allow | Deny
	Protocol                   string   `json:"protocol"`  // Tcp | Udp | Icmp | Esp | Ah | *
	Description                string   `json:"description,omitempty"`
	SourceAddressPrefix        string   `json:"source_address_prefix,omitempty"`
	SourceAddressPrefixes      []string `json:"source_address_prefixes,omitempty"`
	SourcePortRange            string   `json:"source_port_range,omitempty"`
	SourcePortRanges           []string `json:"source_port_ranges,omitempty"`
	DestinationAddressPrefix   string   `json:"destination_address_prefix,omitempty"`
	DestinationAddressPrefixes []string `json:"destination_address_prefixes,omitempty"`
	DestinationPortRange       string   `json:"destination_port_range,omitempty"`
	DestinationPortRanges      []string `json:"destination_port_ranges,omitempty"`
	// Application security groups by ID, in place of that side's prefixes.
	SourceApplicationSecurityGroups      []string `json:"source_application_security_groups,omitempty"`
	DestinationApplicationSecurityGroups []string `json:"destination_application_security_groups,omitempty"`
}

// AzurePublicIP is a public IP address.
type AzurePublicIP struct {
	ID        string            `json:"id"`
	Location  string            `json:"location,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
	IPAddress string            `json:"ip_address"`
}

// AzureFirewall is an Azure Firewall with classic rule collections, or one
// managed by a firewall policy (then it has no classic collections).
type AzureFirewall struct {
	ID               string                  `json:"id"`
	Location         string                  `json:"location,omitempty"`
	Tags             map[string]string       `json:"tags,omitempty"`
	SKUName          string                  `json:"sku_name,omitempty"`          // default AZFW_VNet
	SKUTier          string                  `json:"sku_tier,omitempty"`          // default Standard
	ThreatIntelMode  string                  `json:"threat_intel_mode,omitempty"` // default Alert
	FirewallPolicy   string                  `json:"firewall_policy,omitempty"`
	IPConfigurations []AzureFirewallIPConfig `json:"ip_configurations,omitempty"`
	// The classic rule collections are kept in ARM's JSON shape, as
	// `az network firewall show` prints them: {"name", "properties":
	// {"priority", "action": {"type"}, "rules": [...]}}. The emulator adds
	// id, etag and provisioningState; everything else round-trips verbatim,
	// as it must through the provider's read-modify-write of the firewall.
	NetworkRuleCollections     []json.RawMessage `json:"network_rule_collections,omitempty"`
	NATRuleCollections         []json.RawMessage `json:"nat_rule_collections,omitempty"`
	ApplicationRuleCollections []json.RawMessage `json:"application_rule_collections,omitempty"`
	// Unmodelled keeps, verbatim, every other field a client wrote, by its
	// dotted path in the body ("zones", "properties.additionalProperties",
	// "properties.sku.name"), and returns it on reads, so a
	// read-modify-write that loses one shows. Read-only fields (id, etag,
	// provisioningState, …) are not kept, as ARM ignores them on writes.
	Unmodelled map[string]json.RawMessage `json:"unmodelled,omitempty"`
}

// AzureFirewallIPConfig is one IP configuration of a firewall.
type AzureFirewallIPConfig struct {
	Name      string `json:"name"`
	PrivateIP string `json:"private_ip"`
	Subnet    string `json:"subnet,omitempty"`
	PublicIP  string `json:"public_ip,omitempty"`
	// Unmodelled is as in AzureFirewall, with paths within the configuration.
	Unmodelled map[string]json.RawMessage `json:"unmodelled,omitempty"`
}

// AzureApplicationSecurityGroup is an application security group; only its
// existence matters here.
type AzureApplicationSecurityGroup struct {
	ID       string            `json:"id"`
	Location string            `json:"location,omitempty"`
	Tags     map[string]string `json:"tags,omitempty"`
}

// AzureFirewallPolicy is a firewall policy; only its existence matters here.
type AzureFirewallPolicy struct {
	ID       string            `json:"id"`
	Location string            `json:"location,omitempty"`
	Tags     map[string]string `json:"tags,omitempty"`
}

// ARM resource types.
const (
	vmType       = "Microsoft.Compute/virtualMachines"
	nicType      = "Microsoft.Network/networkInterfaces"
	vnetType     = "Microsoft.Network/virtualNetworks"
	nsgType      = "Microsoft.Network/networkSecurityGroups"
	publicIPType = "Microsoft.Network/publicIPAddresses"
	firewallType = "Microsoft.Network/azureFirewalls"
	policyType   = "Microsoft.Network/firewallPolicies"
	asgType      = "Microsoft.Network/applicationSecurityGroups"
)

const (
	defaultAzureLocation     = "westeurope"
	defaultAzureSubscription = "00000000-0000-0000-0000-000000000001"
	defaultAzureTenant       = "00000000-0000-0000-0000-0000000000ff"
)

// azureState is the ARM world. Resources are the fixture structs themselves
// (pointers kept in res, keyed by lower-cased ID); order keeps creation order
// so snapshots are stable. Guarded by Sim.mu.
type azureState struct {
	subscription, tenant string
	res                  map[string]any
	order                []string
	groups               map[string]bool // lower-cased /subscriptions/x/resourcegroups/y
	subscriptions        map[string]bool // lower-cased subscription IDs
	etags                map[string]string
	vmVersions           map[string]int           // lower-cased VM ID → version, the number in its ETag
	failed               map[string]bool          // lower-cased IDs left Failed by an operation, until written again
	buckets              map[string]tokens        // "subscription/reads" or "/writes" → tokens left (see throttle)
	ops                  map[string]*armOperation // every operation, for status polls
	active               []*armOperation          // operations still in progress
	seq                  int
}

// armFixture is a top-level fixture resource: its ID, its location, its
// tags and its ARM resource type.
type armFixture interface {
	meta() (id, location *string, tags map[string]string, armType string)
}

func (r *AzureVM) meta() (*string, *string, map[string]string, string) {
	return &r.ID, &r.Location, r.Tags, vmType
}
func (r *AzureNIC) meta() (*string, *string, map[string]string, string) {
	return &r.ID, &r.Location, r.Tags, nicType
}
func (r *AzureVNet) meta() (*string, *string, map[string]string, string) {
	return &r.ID, &r.Location, r.Tags, vnetType
}
func (r *AzureNSG) meta() (*string, *string, map[string]string, string) {
	return &r.ID, &r.Location, r.Tags, nsgType
}
func (r *AzurePublicIP) meta() (*string, *string, map[string]string, string) {
	return &r.ID, &r.Location, r.Tags, publicIPType
}
func (r *AzureFirewall) meta() (*string, *string, map[string]string, string) {
	return &r.ID, &r.Location, r.Tags, firewallType
}
func (r *AzureFirewallPolicy) meta() (*string, *string, map[string]string, string) {
	return &r.ID, &r.Location, r.Tags, policyType
}
func (r *AzureApplicationSecurityGroup) meta() (*string, *string, map[string]string, string) {
	return &r.ID, &r.Location, r.Tags, asgType
}

func newAzureState(fx AzureFixture) (*azureState, error) {
	fx = copyJSON(fx) // the caller's fixture stays untouched
	a := &azureState{
		subscription: fx.SubscriptionID, tenant: fx.TenantID,
		res: map[string]any{}, groups: map[string]bool{}, subscriptions: map[string]bool{},
		etags: map[string]string{}, vmVersions: map[string]int{}, failed: map[string]bool{}, buckets: map[string]tokens{}, ops: map[string]*armOperation{},
	}
	err := errors.Join(addAll(a, fx.ApplicationSecurityGroups), addAll(a, fx.NetworkSecurityGroups), addAll(a, fx.PublicIPAddresses), addAll(a, fx.FirewallPolicies),
		addAll(a, fx.VirtualNetworks), addAll(a, fx.NetworkInterfaces), addAll(a, fx.VirtualMachines), addAll(a, fx.Firewalls))
	if err != nil {
		return nil, err
	}
	if err := a.checkReferences(); err != nil {
		return nil, err
	}
	if a.subscription == "" {
		a.subscription = defaultAzureSubscription
		if len(a.order) > 0 {
			a.subscription = strings.Split(a.order[0], "/")[2]
		}
	}
	if a.tenant == "" {
		a.tenant = defaultAzureTenant
	}
	a.subscriptions[strings.ToLower(a.subscription)] = true
	return a, nil
}

// addAll registers top-level resources after checking their IDs and
// defaulting their locations.
func addAll[T any, P interface {
	*T
	armFixture
}](a *azureState, items []T) error {
	for i := range items {
		id, location, tags, want := P(&items[i]).meta()
		parsed, err := arm.ParseResourceID(*id)
		if err != nil || !strings.EqualFold(parsed.ResourceType.String(), want) || parsed.ResourceGroupName == "" {
			return fmt.Errorf("%q is not a %s ID (/subscriptions/…/resourceGroups/…/providers/%s/name)", *id, want, want)
		}
		if e := validateARMTags(tags); e != nil {
			return fmt.Errorf("%s: %s", *id, e.Message)
		}
		key := strings.ToLower(*id)
		if a.res[key] != nil {
			return fmt.Errorf("%s is defined twice", *id)
		}
		if *location == "" {
			*location = defaultAzureLocation
		}
		a.res[key] = P(&items[i])
		a.order = append(a.order, *id)
		a.subscriptions[strings.ToLower(parsed.SubscriptionID)] = true
		a.groups[groupKey(parsed.SubscriptionID, parsed.ResourceGroupName)] = true
	}
	return nil
}

func groupKey(sub, rg string) string {
	return strings.ToLower("/subscriptions/" + sub + "/resourcegroups/" + rg)
}

// checkReferences validates every reference between fixture resources and
// the rules of each NSG, naming the bad reference.
func (a *azureState) checkReferences() error {
	nicOwner := map[string]string{}
	for _, id := range a.order {
		switch r := a.res[strings.ToLower(id)].(type) {
		case *AzureVM:
			if r.VMID == "" {
				r.VMID = derivedUUID(r.ID)
			}
			for _, nic := range r.NetworkInterfaces {
				if _, ok := lookup[*AzureNIC](a, nic); !ok && !r.DanglingReferences {
					return fmt.Errorf("virtual machine %s: network interface %s does not exist", r.ID, nic)
				}
				if owner := nicOwner[strings.ToLower(nic)]; owner != "" {
					return fmt.Errorf("network interface %s is attached to both %s and %s", nic, owner, r.ID)
				}
				nicOwner[strings.ToLower(nic)] = r.ID
			}
		case *AzureNIC:
			if len(r.IPConfigurations) == 0 {
				return fmt.Errorf("network interface %s has no ip_configurations", r.ID)
			}
			if err := a.checkRef("network interface "+r.ID, r.NetworkSecurityGroup, nsgType); err != nil {
				return err
			}
			for _, c := range r.IPConfigurations {
				if _, ok := a.subnet(c.Subnet); !ok {
					return fmt.Errorf("network interface %s: ip configuration %q: subnet %q does not exist", r.ID, c.Name, c.Subnet)
				}
				if err := a.checkRef("network interface "+r.ID, c.PublicIP, publicIPType); err != nil {
					return err
				}
			}
		case *AzureVNet:
			for _, s := range r.Subnets {
				if err := a.checkRef("subnet "+r.ID+"/subnets/"+s.Name, s.NetworkSecurityGroup, nsgType); err != nil {
					return err
				}
			}
		case *AzureNSG:
			if err := checkNSGLimits(r.ID, r.SecurityRules); err != nil {
				return fmt.Errorf("network security group %s: %s", r.ID, err.Message)
			}
			for i := range r.SecurityRules {
				if ruleIndex(r, r.SecurityRules[i].Name) != i {
					return fmt.Errorf("network security group %s: security rule %s is defined twice", r.ID, r.SecurityRules[i].Name)
				}
				if err := validateSecurityRule(a, r, &r.SecurityRules[i], r.ID+"/securityRules/"+r.SecurityRules[i].Name); err != nil {
					return fmt.Errorf("network security group %s: %s", r.ID, err.Message)
				}
			}
		case *AzureFirewall:
			if err := a.checkFirewall(r); err != nil {
				return fmt.Errorf("firewall %s: %s", r.ID, err.Message)
			}
		}
	}
	return nil
}

// checkRef fails when id is set but names no resource of the wanted type.
func (a *azureState) checkRef(owner, id, wantType string) error {
	if id == "" {
		return nil
	}
	if r, ok := a.res[strings.ToLower(id)].(armFixture); ok {
		if _, _, _, typ := r.meta(); typ == wantType {
			return nil
		}
	}
	return fmt.Errorf("%s refers to %s, which is not an existing %s", owner, id, wantType)
}

// lookup finds a resource of type T by ID, ignoring case.
func lookup[T any](a *azureState, id string) (T, bool) {
	r, ok := a.res[strings.ToLower(id)].(T)
	return r, ok
}

// subnet resolves a subnet ID.
func (a *azureState) subnet(id string) (*AzureSubnet, bool) {
	i := strings.LastIndex(strings.ToLower(id), "/subnets/")
	if i < 0 {
		return nil, false
	}
	vnet, ok := lookup[*AzureVNet](a, id[:i])
	if !ok {
		return nil, false
	}
	name := id[i+len("/subnets/"):]
	for j := range vnet.Subnets {
		if strings.EqualFold(vnet.Subnets[j].Name, name) {
			return &vnet.Subnets[j], true
		}
	}
	return nil, false
}

func (a *azureState) subscriptionID() string { return a.subscription }

// snapshot copies the world in fixture shape, in creation order. Operations
// still in progress show their goal state. Called with Sim.mu held.
func (a *azureState) snapshot() AzureFixture {
	a.settle(time.Now())
	fx := AzureFixture{SubscriptionID: a.subscription, TenantID: a.tenant}
	for _, id := range a.order {
		switch r := a.res[strings.ToLower(id)].(type) {
		case *AzureVM:
			fx.VirtualMachines = append(fx.VirtualMachines, *r)
		case *AzureNIC:
			fx.NetworkInterfaces = append(fx.NetworkInterfaces, *r)
		case *AzureVNet:
			fx.VirtualNetworks = append(fx.VirtualNetworks, *r)
		case *AzureNSG:
			fx.NetworkSecurityGroups = append(fx.NetworkSecurityGroups, *r)
		case *AzurePublicIP:
			fx.PublicIPAddresses = append(fx.PublicIPAddresses, *r)
		case *AzureFirewall:
			fx.Firewalls = append(fx.Firewalls, *r)
		case *AzureFirewallPolicy:
			fx.FirewallPolicies = append(fx.FirewallPolicies, *r)
		case *AzureApplicationSecurityGroup:
			fx.ApplicationSecurityGroups = append(fx.ApplicationSecurityGroups, *r)
		}
	}
	return copyJSON(fx)
}

// copyJSON deep-copies a fixture value through its JSON form, which is
// exactly what a dump and reload would do.
func copyJSON[T any](in T) T {
	var out T
	b, err := json.Marshal(in)
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		panic("cloudsim: copying Azure state: " + err.Error())
	}
	return out
}

// derivedUUID is a stable UUID-shaped value derived from seed, for vmId,
// resourceGuid and the like.
func derivedUUID(seed string) string {
	h := sha256.Sum256([]byte(strings.ToLower(seed)))
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-4" + x[13:16] + "-8" + x[17:20] + "-" + x[20:32]
}

// etag returns the current ETag of a resource or child resource.
func (a *azureState) etag(id string) string {
	key := strings.ToLower(id)
	if a.etags[key] == "" {
		a.touch(id)
	}
	return a.etags[key]
}

// touch gives resources a new ETag, as every write does, and clears the
// Failed state an earlier operation left.
func (a *azureState) touch(ids ...string) {
	for _, id := range ids {
		a.seq++
		a.etags[strings.ToLower(id)] = `W/"` + derivedUUID(fmt.Sprint("etag/", a.seq, "/", id)) + `"`
		delete(a.failed, strings.ToLower(id))
	}
}
