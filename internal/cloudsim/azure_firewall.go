package cloudsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

const (
	minCollectionPriority = 100
	maxCollectionPriority = 65000
)

// armFirewallIn is the part of a firewall PUT the emulator models; the
// rest is kept verbatim (see firewallFields).
type armFirewallIn struct {
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties struct {
		FirewallPolicy  *armRef `json:"firewallPolicy"`
		ThreatIntelMode string  `json:"threatIntelMode"`
		SKU             struct {
			Name string `json:"name"`
			Tier string `json:"tier"`
		} `json:"sku"`
		IPConfigurations           []json.RawMessage `json:"ipConfigurations"`
		NetworkRuleCollections     []json.RawMessage `json:"networkRuleCollections"`
		NATRuleCollections         []json.RawMessage `json:"natRuleCollections"`
		ApplicationRuleCollections []json.RawMessage `json:"applicationRuleCollections"`
	} `json:"properties"`
}

// armFirewallIPConfigIn is the part of a firewall IP configuration the
// emulator models.
type armFirewallIPConfigIn struct {
	Name       string `json:"name"`
	Properties struct {
		PrivateIPAddress string  `json:"privateIPAddress"`
		Subnet           *armRef `json:"subnet"`
		PublicIPAddress  *armRef `json:"publicIPAddress"`
	} `json:"properties"`
}

// firewallFields and firewallIPConfigFields sort the fields of a firewall
// PUT into modelled, read-only and kept verbatim. The classic rule
// collections are kept whole, less their computed fields (see
// checkFirewall).
var (
	firewallFields = bodyFields{
		"id": false, "name": false, "type": false, "etag": false, "location": false, "tags": false,
		"properties": true, "properties.provisioningState": false, "properties.ipGroups": false,
		"properties.firewallPolicy": false, "properties.threatIntelMode": false,
		"properties.sku": true, "properties.sku.name": false, "properties.sku.tier": false, "properties.ipConfigurations": false,
		"properties.networkRuleCollections": false, "properties.natRuleCollections": false, "properties.applicationRuleCollections": false,
	}
	firewallIPConfigFields = bodyFields{
		"id": false, "name": false, "type": false, "etag": false,
		"properties": true, "properties.provisioningState": false, "properties.privateIPAddress": false,
		"properties.subnet": false, "properties.publicIPAddress": false,
	}
)

// collectionKind is one of the three classic collection types: its ARM
// property, the firewall's collections of that type, the allowed actions
// and how each of its rules is checked (application rules are not).
type collectionKind struct {
	property  string
	list      []json.RawMessage
	actions   []string
	checkRule func(r *firewallRuleIn, path string, publicIPs []string) *armError
}

func collectionKinds(fw *AzureFirewall) []collectionKind {
	return []collectionKind{
		{"networkRuleCollections", fw.NetworkRuleCollections, []string{"Allow", "Deny"}, checkNetworkRule},
		{"natRuleCollections", fw.NATRuleCollections, []string{"Dnat"}, checkNATRule},
		{"applicationRuleCollections", fw.ApplicationRuleCollections, []string{"Allow", "Deny"}, nil},
	}
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
		cfg := obj{"id": fw.ID + "/azureFirewallIpConfigurations/" + ipc.Name, "name": ipc.Name,
			"etag": a.etag(fw.ID), "type": firewallType + "/azureFirewallIpConfigurations", "properties": props}
		firewallIPConfigFields.overlay(cfg, ipc.Unmodelled)
		ipcs = append(ipcs, cfg)
	}
	props := obj{
		"provisioningState": a.provisioningState(fw.ID),
		"sku":               obj{"name": fw.SKUName, "tier": fw.SKUTier},
		"threatIntelMode":   fw.ThreatIntelMode,
		"ipConfigurations":  ipcs,
	}
	for _, kind := range collectionKinds(fw) {
		cols := []obj{}
		for _, raw := range kind.list {
			col, _ := decodeObject(raw)     // validated when stored
			name, _ := col["name"].(string) // validated when stored
			col["id"], col["etag"] = fw.ID+"/"+kind.property+"/"+name, a.etag(fw.ID)
			if p, ok := col["properties"].(obj); ok {
				p["provisioningState"] = "Succeeded"
			}
			cols = append(cols, col)
		}
		props[kind.property] = cols
	}
	if fw.FirewallPolicy != "" {
		props["firewallPolicy"] = armRef{fw.FirewallPolicy}
	}
	o := a.header(fw.ID, firewallType, fw.Location, fw.Tags)
	o["properties"] = props
	firewallFields.overlay(o, fw.Unmodelled)
	return o
}

func (a *azureState) renderFirewallPolicy(p *AzureFirewallPolicy) obj {
	firewalls := []armRef{}
	for _, id := range a.order {
		if fw, ok := lookup[*AzureFirewall](a, id); ok && strings.EqualFold(fw.FirewallPolicy, p.ID) {
			firewalls = append(firewalls, armRef{fw.ID})
		}
	}
	o := a.header(p.ID, policyType, p.Location, p.Tags)
	o["properties"] = obj{"provisioningState": "Succeeded", "threatIntelMode": "Alert",
		"firewalls": firewalls, "ruleCollectionGroups": []armRef{}}
	return o
}

// putFirewall replaces a firewall (200) or creates one (201) from the PUT
// body, as ARM's PUT does; the firewall is held until the operation
// completes. An If-Match header guards the write (see checkIfMatch).
func putFirewall(c *armCall) armReply {
	var in armFirewallIn
	if e := c.decodeBody(&in); e != nil {
		return e.reply()
	}
	if e := validateARMTags(in.Tags); e != nil {
		return e.reply()
	}
	p := &in.Properties
	fw := &AzureFirewall{
		ID: c.path, Location: in.Location, Tags: tagsOrNil(in.Tags), SKUName: p.SKU.Name, SKUTier: p.SKU.Tier, ThreatIntelMode: p.ThreatIntelMode,
		FirewallPolicy: refID(p.FirewallPolicy), NetworkRuleCollections: p.NetworkRuleCollections,
		NATRuleCollections: p.NATRuleCollections, ApplicationRuleCollections: p.ApplicationRuleCollections,
	}
	var err error
	if fw.Unmodelled, err = firewallFields.unmodelled(c.body); err != nil {
		return invalidJSON(err).reply()
	}
	existing, found := lookup[*AzureFirewall](c.a, c.path)
	if e := c.checkIfMatch(c.path, found); e != nil {
		return e.reply()
	}
	for _, raw := range p.IPConfigurations {
		var ipc armFirewallIPConfigIn
		if err := json.Unmarshal(raw, &ipc); err != nil {
			return invalidJSON(err).reply()
		}
		cfg := AzureFirewallIPConfig{Name: ipc.Name, PrivateIP: ipc.Properties.PrivateIPAddress,
			Subnet: refID(ipc.Properties.Subnet), PublicIP: refID(ipc.Properties.PublicIPAddress)}
		if cfg.Unmodelled, err = firewallIPConfigFields.unmodelled(raw); err != nil {
			return invalidJSON(err).reply()
		}
		for _, old := range existingConfigs(existing) {
			if strings.EqualFold(old.Name, cfg.Name) && cfg.PrivateIP == "" {
				cfg.PrivateIP = old.PrivateIP // allocated by Azure, not by the client
			}
		}
		fw.IPConfigurations = append(fw.IPConfigurations, cfg)
	}
	// ARM requires the location of a tracked resource in every PUT, and
	// never moves one.
	switch {
	case fw.Location == "":
		return newARMError(http.StatusBadRequest, "LocationRequired", "The location property is required for this definition.").reply()
	case found && normalLocation(fw.Location) != normalLocation(existing.Location):
		return newARMError(http.StatusBadRequest, "InvalidResourceLocation",
			"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
			nameOf(existing.ID), existing.Location, c.group, fw.Location).reply()
	case found:
		fw.ID, fw.Location = existing.ID, existing.Location
	}
	if e := c.a.checkFirewall(fw); e != nil {
		return e.reply()
	}
	if op := c.a.holder(fw.ID); op != nil {
		return c.busyFirewall(op)
	}
	status := http.StatusOK
	var undo func()
	if found {
		previous := copyJSON(*existing)
		*existing = *fw
		undo = func() { *existing = previous }
	} else {
		status = http.StatusCreated
		c.a.res[c.key()] = fw
		c.a.order = append(c.a.order, fw.ID)
		undo = func() {
			delete(c.a.res, c.key())
			c.a.order = slices.DeleteFunc(c.a.order, func(id string) bool { return strings.EqualFold(id, fw.ID) })
		}
	}
	c.a.touch(fw.ID)
	h := c.startOperation(operationSpec{
		namespace: "Microsoft.Network", location: fw.Location, name: "PutAzureFirewallOperation", lock: fw.ID,
		targets: map[string]string{c.key(): "Updating"},
		undo: func() {
			undo()
			c.a.touch(fw.ID)
		},
	})
	stored, _ := lookup[*AzureFirewall](c.a, fw.ID)
	return armReply{status: status, header: h, body: c.a.renderFirewall(stored)}
}

func existingConfigs(fw *AzureFirewall) []AzureFirewallIPConfig {
	if fw == nil {
		return nil
	}
	return fw.IPConfigurations
}

// checkFirewall validates a firewall's references and classic rule
// collections as the network provider does on a PUT, fills in the defaults
// ARM gives what a client left out, and stores each collection as a client
// wrote it, less the fields ARM computes (id, etag, provisioningState) and
// with its enumerations in ARM's casing.
func (a *azureState) checkFirewall(fw *AzureFirewall) *armError {
	fw.SKUName = firstNonEmpty(fw.SKUName, "AZFW_VNet")
	fw.SKUTier = firstNonEmpty(fw.SKUTier, "Standard")
	fw.ThreatIntelMode = firstNonEmpty(fw.ThreatIntelMode, "Alert")
	if fw.FirewallPolicy != "" && len(fw.NetworkRuleCollections)+len(fw.NATRuleCollections)+len(fw.ApplicationRuleCollections) > 0 {
		return newARMError(http.StatusBadRequest, "AzureFirewallPolicyAndRuleCollectionsConflict",
			"Azure Firewall %s is managed by Firewall Policy %s and cannot also have classic rule collections.", fw.ID, fw.FirewallPolicy)
	}
	if a.checkRef("", fw.FirewallPolicy, policyType) != nil {
		return invalidReference(fw.FirewallPolicy, fw.ID)
	}
	for _, ipc := range fw.IPConfigurations {
		if _, ok := a.subnet(ipc.Subnet); !ok && ipc.Subnet != "" {
			return invalidReference(ipc.Subnet, fw.ID)
		}
		if a.checkRef("", ipc.PublicIP, publicIPType) != nil {
			return invalidReference(ipc.PublicIP, fw.ID)
		}
	}
	publicIPs := a.firewallPublicIPs(fw)
	if e := checkDNATQuota(fw, len(publicIPs)); e != nil {
		return e
	}
	for _, kind := range collectionKinds(fw) {
		type seen struct {
			name     string
			priority int32
		}
		var earlier []seen
		for i, raw := range kind.list {
			var in struct {
				Name       string `json:"name"`
				Properties struct {
					Priority int32 `json:"priority"`
					Action   struct {
						Type string `json:"type"`
					} `json:"action"`
				} `json:"properties"`
			}
			col, err := decodeObject(raw)
			if err == nil {
				err = json.Unmarshal(raw, &in)
			}
			if err != nil {
				return invalidJSON(err)
			}
			if in.Name == "" {
				return invalidJSON(fmt.Errorf("Required property 'name' not found in JSON. Path 'properties.%s[%d]'.", kind.property, i))
			}
			name, priority := in.Name, in.Properties.Priority
			if priority < minCollectionPriority || priority > maxCollectionPriority {
				return newARMError(http.StatusBadRequest, "AzureFirewallRuleCollectionInvalidPriority",
					"Rule Collection %s in %s has invalid priority %d. Allowed range %d-%d.", name, kind.property, priority, minCollectionPriority, maxCollectionPriority)
			}
			action := indexFold(kind.actions, in.Properties.Action.Type)
			if action < 0 {
				return newARMError(http.StatusBadRequest, "AzureFirewallRuleCollectionInvalidAction",
					"Rule Collection %s in %s has invalid action %q; allowed: %s.", name, kind.property, in.Properties.Action.Type, strings.Join(kind.actions, ", "))
			}
			for _, other := range earlier {
				if strings.EqualFold(other.name, name) {
					return newARMError(http.StatusBadRequest, "AzureFirewallRuleCollectionDuplicateName",
						"Rule Collection name %s is used more than once in %s.", name, kind.property)
				}
				if other.priority == priority {
					return newARMError(http.StatusBadRequest, "AzureFirewallRuleCollectionDuplicatePriority",
						"Rule Collections %s and %s in %s have the same priority %d.", other.name, name, kind.property, priority)
				}
			}
			earlier = append(earlier, seen{name, priority})
			delete(col, "id")
			delete(col, "etag")
			props, _ := col["properties"].(obj) // present: the action was read from it
			delete(props, "provisioningState")
			if act, ok := props["action"].(obj); ok {
				act["type"] = kind.actions[action]
			}
			if kind.checkRule != nil {
				path := fmt.Sprintf("properties.%s[%d].properties.rules", kind.property, i)
				if e := checkFirewallRules(props, path, kind.checkRule, publicIPs); e != nil {
					return e
				}
			}
			if kind.list[i], err = json.Marshal(col); err != nil {
				return invalidJSON(err)
			}
		}
	}
	return nil
}

// maxDNATRulesAndPublicIPs is Azure Firewall's quota: public IP addresses
// and DNAT rules together may number 250 ("Deploy an Azure Firewall with
// multiple public IP addresses"). ARM's error code for it is not
// documented; the emulator's names the quota.
const maxDNATRulesAndPublicIPs = 250

func checkDNATQuota(fw *AzureFirewall, publicIPs int) *armError {
	n := publicIPs
	for _, raw := range fw.NATRuleCollections {
		var c struct {
			Properties struct {
				Rules []json.RawMessage `json:"rules"`
			} `json:"properties"`
		}
		if json.Unmarshal(raw, &c) == nil {
			n += len(c.Properties.Rules)
		}
	}
	if n > maxDNATRulesAndPublicIPs {
		return newARMError(http.StatusBadRequest, "AzureFirewallDnatRulesAndPublicIpsLimitReached",
			"Azure Firewall %s would have %d DNAT rules and public IP addresses; at most %d are allowed together.", fw.ID, n, maxDNATRulesAndPublicIPs)
	}
	return nil
}

// firewallPublicIPs are the addresses of the public IPs of fw's IP
// configurations: the only destinations its DNAT rules may have.
func (a *azureState) firewallPublicIPs(fw *AzureFirewall) []string {
	var out []string
	for _, ipc := range fw.IPConfigurations {
		if pip, ok := lookup[*AzurePublicIP](a, ipc.PublicIP); ok {
			out = append(out, pip.IPAddress)
		}
	}
	return out
}

// decodeObject decodes a JSON object keeping numbers as written.
func decodeObject(raw json.RawMessage) (obj, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var o obj
	if err := dec.Decode(&o); err != nil {
		return nil, err
	}
	if o == nil {
		return nil, fmt.Errorf("not a JSON object: %s", raw)
	}
	return o, nil
}

// invalidJSON is the network provider's answer to a body it cannot read.
func invalidJSON(err error) *armError {
	e := newARMError(http.StatusBadRequest, "InvalidRequestFormat", "Cannot parse the request.")
	e.Details = []armError{{Code: "InvalidJson", Message: err.Error()}}
	return e
}

// normalLocation compares locations as ARM does: "West Europe" is westeurope.
func normalLocation(l string) string { return strings.ToLower(strings.ReplaceAll(l, " ", "")) }

func invalidReference(ref, owner string) *armError {
	return newARMError(http.StatusBadRequest, "InvalidResourceReference",
		"Resource %s referenced by resource %s was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.",
		ref, owner)
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
