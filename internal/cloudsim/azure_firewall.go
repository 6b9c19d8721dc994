package cloudsim

import (
	"encoding/json"
	"net/http"
	"strings"
)

const (
	firewallType           = "Microsoft.Network/azureFirewalls"
	minCollectionPriority  = 100
	maxCollectionPriority  = 65000
	putFirewallOpName      = "PutAzureFirewallOperation"
	defaultFirewallSKUTier = "Standard"
)

// armCollection is a classic rule collection in ARM's JSON shape.
type armCollection[R any] struct {
	Name       string `json:"name"`
	ID         string `json:"id,omitempty"`
	Etag       string `json:"etag,omitempty"`
	Properties struct {
		Priority          int32     `json:"priority"`
		Action            armAction `json:"action"`
		Rules             []R       `json:"rules"`
		ProvisioningState string    `json:"provisioningState,omitempty"`
	} `json:"properties"`
}

type armAction struct {
	Type string `json:"type"`
}

// armNetworkRule and armNATRule have the fields of their fixture
// counterparts with ARM's names, so each converts to the other directly.
type armNetworkRule struct {
	Name                 string   `json:"name"`
	Description          string   `json:"description,omitempty"`
	Protocols            []string `json:"protocols,omitempty"`
	SourceAddresses      []string `json:"sourceAddresses,omitempty"`
	SourceIPGroups       []string `json:"sourceIpGroups,omitempty"`
	DestinationAddresses []string `json:"destinationAddresses,omitempty"`
	DestinationIPGroups  []string `json:"destinationIpGroups,omitempty"`
	DestinationFQDNs     []string `json:"destinationFqdns,omitempty"`
	DestinationPorts     []string `json:"destinationPorts,omitempty"`
}

type armNATRule struct {
	Name                 string   `json:"name"`
	Description          string   `json:"description,omitempty"`
	Protocols            []string `json:"protocols,omitempty"`
	SourceAddresses      []string `json:"sourceAddresses,omitempty"`
	SourceIPGroups       []string `json:"sourceIpGroups,omitempty"`
	DestinationAddresses []string `json:"destinationAddresses,omitempty"`
	DestinationPorts     []string `json:"destinationPorts,omitempty"`
	TranslatedAddress    string   `json:"translatedAddress,omitempty"`
	TranslatedFQDN       string   `json:"translatedFqdn,omitempty"`
	TranslatedPort       string   `json:"translatedPort,omitempty"`
}

// armFirewallIn is the part of a firewall PUT the emulator models.
type armFirewallIn struct {
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties struct {
		FirewallPolicy  *armRef `json:"firewallPolicy"`
		ThreatIntelMode string  `json:"threatIntelMode"`
		SKU             struct {
			Tier string `json:"tier"`
		} `json:"sku"`
		IPConfigurations []struct {
			Name       string `json:"name"`
			Properties struct {
				PrivateIPAddress string  `json:"privateIPAddress"`
				Subnet           *armRef `json:"subnet"`
				PublicIPAddress  *armRef `json:"publicIPAddress"`
			} `json:"properties"`
		} `json:"ipConfigurations"`
		NetworkRuleCollections     []armCollection[armNetworkRule] `json:"networkRuleCollections"`
		NATRuleCollections         []armCollection[armNATRule]     `json:"natRuleCollections"`
		ApplicationRuleCollections []json.RawMessage               `json:"applicationRuleCollections"`
	} `json:"properties"`
}

func (a *azureState) renderFirewall(fw *AzureFirewall) obj {
	ipcs := []obj{}
	for _, ipc := range fw.IPConfigurations {
		props := obj{"provisioningState": "Succeeded", "privateIPAddress": ipc.PrivateIP}
		if ipc.Subnet != "" {
			props["subnet"] = armRef{ipc.Subnet}
		}
		if ipc.PublicIP != "" {
			props["publicIPAddress"] = armRef{ipc.PublicIP}
		}
		ipcs = append(ipcs, obj{"id": fw.ID + "/azureFirewallIpConfigurations/" + ipc.Name, "name": ipc.Name,
			"etag": a.etag(fw.ID), "type": firewallType + "/azureFirewallIpConfigurations", "properties": props})
	}
	network := []armCollection[armNetworkRule]{}
	for _, col := range fw.NetworkRuleCollections {
		c := armCollection[armNetworkRule]{Name: col.Name, ID: fw.ID + "/networkRuleCollections/" + col.Name, Etag: a.etag(fw.ID)}
		c.Properties.Priority, c.Properties.Action.Type, c.Properties.ProvisioningState = col.Priority, col.Action, "Succeeded"
		c.Properties.Rules = []armNetworkRule{}
		for _, r := range col.Rules {
			c.Properties.Rules = append(c.Properties.Rules, armNetworkRule(r))
		}
		network = append(network, c)
	}
	nat := []armCollection[armNATRule]{}
	for _, col := range fw.NATRuleCollections {
		c := armCollection[armNATRule]{Name: col.Name, ID: fw.ID + "/natRuleCollections/" + col.Name, Etag: a.etag(fw.ID)}
		c.Properties.Priority, c.Properties.Action.Type, c.Properties.ProvisioningState = col.Priority, col.Action, "Succeeded"
		c.Properties.Rules = []armNATRule{}
		for _, r := range col.Rules {
			c.Properties.Rules = append(c.Properties.Rules, armNATRule(r))
		}
		nat = append(nat, c)
	}
	props := obj{
		"provisioningState":          a.provisioningState(fw.ID),
		"sku":                        obj{"name": "AZFW_VNet", "tier": firstNonEmpty(fw.SKUTier, defaultFirewallSKUTier)},
		"threatIntelMode":            firstNonEmpty(fw.ThreatIntelMode, "Alert"),
		"ipConfigurations":           ipcs,
		"networkRuleCollections":     network,
		"natRuleCollections":         nat,
		"applicationRuleCollections": orEmptyRaw(fw.ApplicationRuleCollections),
	}
	if fw.FirewallPolicy != "" {
		props["firewallPolicy"] = armRef{fw.FirewallPolicy}
	}
	o := a.header(fw.ID, firewallType, fw.Location, fw.Tags)
	o["properties"] = props
	return o
}

func (a *azureState) renderFirewallPolicy(p *AzureFirewallPolicy) obj {
	firewalls := []armRef{}
	for _, id := range a.order {
		if fw, ok := lookup[*AzureFirewall](a, id); ok && strings.EqualFold(fw.FirewallPolicy, p.ID) {
			firewalls = append(firewalls, armRef{fw.ID})
		}
	}
	o := a.header(p.ID, "Microsoft.Network/firewallPolicies", p.Location, p.Tags)
	o["properties"] = obj{"provisioningState": "Succeeded", "threatIntelMode": "Alert",
		"firewalls": firewalls, "ruleCollectionGroups": []armRef{}}
	return o
}

// putFirewall replaces a firewall (200) or creates one (201) from the PUT
// body, as ARM's PUT does; the firewall is held until the operation
// completes. If-Match is not honoured: the network provider ignores it.
func putFirewall(c *armCall) armReply {
	var in armFirewallIn
	if e := c.decodeBody(&in); e != nil {
		return e.reply()
	}
	existing, found := lookup[*AzureFirewall](c.a, c.path)
	fw := in.firewall(c.path)
	if found {
		fw.ID = existing.ID
		fw.Location = firstNonEmpty(fw.Location, existing.Location)
		for i := range fw.IPConfigurations {
			for _, old := range existing.IPConfigurations {
				if strings.EqualFold(old.Name, fw.IPConfigurations[i].Name) && fw.IPConfigurations[i].PrivateIP == "" {
					fw.IPConfigurations[i].PrivateIP = old.PrivateIP // allocated by Azure, not by the client
				}
			}
		}
	} else if fw.Location == "" {
		return newARMError(http.StatusBadRequest, "LocationRequired", "The location property is required for this definition.").reply()
	}
	if e := c.a.checkFirewall(fw); e != nil {
		return e.reply()
	}
	if op := c.a.holder(fw.ID); op != nil {
		return c.busyFirewall(op)
	}
	status := http.StatusOK
	if found {
		*existing = *fw
	} else {
		status = http.StatusCreated
		c.a.res[c.key()] = fw
		c.a.order = append(c.a.order, fw.ID)
	}
	c.a.touch(fw.ID)
	_, h := c.startOperation("Microsoft.Network", fw.Location, putFirewallOpName, fw.ID, map[string]string{c.key(): "Updating"}, nil)
	stored, _ := lookup[*AzureFirewall](c.a, fw.ID)
	return armReply{status: status, header: h, body: c.a.renderFirewall(stored)}
}

// firewall converts a PUT body to the stored form.
func (in *armFirewallIn) firewall(id string) *AzureFirewall {
	p := &in.Properties
	fw := &AzureFirewall{
		ID: id, Location: in.Location, Tags: tagsOrNil(in.Tags), SKUTier: p.SKU.Tier, ThreatIntelMode: p.ThreatIntelMode,
		FirewallPolicy: refID(p.FirewallPolicy), ApplicationRuleCollections: p.ApplicationRuleCollections,
	}
	for _, ipc := range p.IPConfigurations {
		fw.IPConfigurations = append(fw.IPConfigurations, AzureFirewallIPConfig{Name: ipc.Name,
			PrivateIP: ipc.Properties.PrivateIPAddress, Subnet: refID(ipc.Properties.Subnet), PublicIP: refID(ipc.Properties.PublicIPAddress)})
	}
	for _, col := range p.NetworkRuleCollections {
		out := AzureFirewallNetworkCollection{Name: col.Name, Priority: col.Properties.Priority, Action: col.Properties.Action.Type}
		for _, r := range col.Properties.Rules {
			out.Rules = append(out.Rules, AzureFirewallNetworkRule(r))
		}
		fw.NetworkRuleCollections = append(fw.NetworkRuleCollections, out)
	}
	for _, col := range p.NATRuleCollections {
		out := AzureFirewallNATCollection{Name: col.Name, Priority: col.Properties.Priority, Action: col.Properties.Action.Type}
		for _, r := range col.Properties.Rules {
			out.Rules = append(out.Rules, AzureFirewallNATRule(r))
		}
		fw.NATRuleCollections = append(fw.NATRuleCollections, out)
	}
	return fw
}

// checkFirewall validates references and classic rule collections, and
// normalises the casing of collection actions.
func (a *azureState) checkFirewall(fw *AzureFirewall) *armError {
	classic := len(fw.NetworkRuleCollections) + len(fw.NATRuleCollections) + len(fw.ApplicationRuleCollections)
	if fw.FirewallPolicy != "" && classic > 0 {
		return newARMError(http.StatusBadRequest, "AzureFirewallPolicyAndRuleCollectionsConflict",
			"Azure Firewall %s is managed by Firewall Policy %s and cannot also have classic rule collections.", fw.ID, fw.FirewallPolicy)
	}
	refs := []struct{ id, typ string }{{fw.FirewallPolicy, "*cloudsim.AzureFirewallPolicy"}}
	for _, ipc := range fw.IPConfigurations {
		refs = append(refs, struct{ id, typ string }{ipc.PublicIP, "*cloudsim.AzurePublicIP"})
		if _, _, ok := a.subnet(ipc.Subnet); !ok && ipc.Subnet != "" {
			return invalidReference(ipc.Subnet, fw.ID)
		}
	}
	for _, ref := range refs {
		if a.checkRef("", ref.id, ref.typ) != nil {
			return invalidReference(ref.id, fw.ID)
		}
	}
	var network, nat, app []collectionHeader
	for i := range fw.NetworkRuleCollections {
		c := &fw.NetworkRuleCollections[i]
		network = append(network, collectionHeader{c.Name, c.Priority, &c.Action})
	}
	for i := range fw.NATRuleCollections {
		c := &fw.NATRuleCollections[i]
		nat = append(nat, collectionHeader{c.Name, c.Priority, &c.Action})
	}
	for _, raw := range fw.ApplicationRuleCollections {
		var c armCollection[json.RawMessage]
		if err := json.Unmarshal(raw, &c); err != nil {
			return newARMError(http.StatusBadRequest, "InvalidRequestFormat", "Cannot parse the request.")
		}
		action := c.Properties.Action.Type // checked, but kept verbatim
		app = append(app, collectionHeader{c.Name, c.Properties.Priority, &action})
	}
	if e := checkCollections("networkRuleCollections", network, "Allow", "Deny"); e != nil {
		return e
	}
	if e := checkCollections("natRuleCollections", nat, "Dnat"); e != nil {
		return e
	}
	return checkCollections("applicationRuleCollections", app, "Allow", "Deny")
}

func invalidReference(ref, owner string) *armError {
	return newARMError(http.StatusBadRequest, "InvalidResourceReference",
		"Resource %s referenced by resource %s was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.",
		ref, owner)
}

type collectionHeader struct {
	name     string
	priority int32
	action   *string
}

// checkCollections enforces, within one collection type, priorities in
// 100–65000, unique priorities and names, and the allowed actions.
func checkCollections(kind string, cols []collectionHeader, actions ...string) *armError {
	for i, c := range cols {
		if c.priority < minCollectionPriority || c.priority > maxCollectionPriority {
			return newARMError(http.StatusBadRequest, "AzureFirewallRuleCollectionInvalidPriority",
				"Rule Collection %s in %s has invalid priority %d. Allowed range %d-%d.", c.name, kind, c.priority, minCollectionPriority, maxCollectionPriority)
		}
		j := indexFold(actions, *c.action)
		if j < 0 {
			return newARMError(http.StatusBadRequest, "AzureFirewallRuleCollectionInvalidAction",
				"Rule Collection %s in %s has invalid action %q; allowed: %s.", c.name, kind, *c.action, strings.Join(actions, ", "))
		}
		*c.action = actions[j]
		for _, other := range cols[:i] {
			switch {
			case strings.EqualFold(other.name, c.name):
				return newARMError(http.StatusBadRequest, "AzureFirewallRuleCollectionDuplicateName",
					"Rule Collection name %s is used more than once in %s.", c.name, kind)
			case other.priority == c.priority:
				return newARMError(http.StatusBadRequest, "AzureFirewallRuleCollectionDuplicatePriority",
					"Rule Collections %s and %s in %s have the same priority %d.", other.name, c.name, kind, c.priority)
			}
		}
	}
	return nil
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

func orEmptyRaw(raw []json.RawMessage) []json.RawMessage {
	if raw == nil {
		return []json.RawMessage{}
	}
	return raw
}
