package cloudsim

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

const (
	minCollectionPriority = 100
	maxCollectionPriority = 65000
)

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
		NetworkRuleCollections     []json.RawMessage `json:"networkRuleCollections"`
		NATRuleCollections         []json.RawMessage `json:"natRuleCollections"`
		ApplicationRuleCollections []json.RawMessage `json:"applicationRuleCollections"`
	} `json:"properties"`
}

// collectionKind is one of the three classic collection types: its ARM
// property, the firewall's collections of that type and the allowed actions.
type collectionKind struct {
	property string
	list     []json.RawMessage
	actions  []string
}

func collectionKinds(fw *AzureFirewall) []collectionKind {
	return []collectionKind{
		{"networkRuleCollections", fw.NetworkRuleCollections, []string{"Allow", "Deny"}},
		{"natRuleCollections", fw.NATRuleCollections, []string{"Dnat"}},
		{"applicationRuleCollections", fw.ApplicationRuleCollections, []string{"Allow", "Deny"}},
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
		ipcs = append(ipcs, obj{"id": fw.ID + "/azureFirewallIpConfigurations/" + ipc.Name, "name": ipc.Name,
			"etag": a.etag(fw.ID), "type": firewallType + "/azureFirewallIpConfigurations", "properties": props})
	}
	props := obj{
		"provisioningState": a.provisioningState(fw.ID),
		"sku":               obj{"name": "AZFW_VNet", "tier": firstNonEmpty(fw.SKUTier, "Standard")},
		"threatIntelMode":   firstNonEmpty(fw.ThreatIntelMode, "Alert"),
		"ipConfigurations":  ipcs,
	}
	for _, kind := range collectionKinds(fw) {
		cols := []obj{}
		for _, raw := range kind.list {
			var col obj
			_ = json.Unmarshal(raw, &col) // validated when stored
			col["id"], col["etag"] = fw.ID+"/"+kind.property+"/"+col["name"].(string), a.etag(fw.ID)
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
// completes. If-Match is not honoured: the network provider ignores it.
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
		ID: c.path, Location: in.Location, Tags: tagsOrNil(in.Tags), SKUTier: p.SKU.Tier, ThreatIntelMode: p.ThreatIntelMode,
		FirewallPolicy: refID(p.FirewallPolicy), NetworkRuleCollections: p.NetworkRuleCollections,
		NATRuleCollections: p.NATRuleCollections, ApplicationRuleCollections: p.ApplicationRuleCollections,
	}
	existing, found := lookup[*AzureFirewall](c.a, c.path)
	for _, ipc := range p.IPConfigurations {
		cfg := AzureFirewallIPConfig{Name: ipc.Name, PrivateIP: ipc.Properties.PrivateIPAddress,
			Subnet: refID(ipc.Properties.Subnet), PublicIP: refID(ipc.Properties.PublicIPAddress)}
		for _, old := range existingConfigs(existing) {
			if strings.EqualFold(old.Name, cfg.Name) && cfg.PrivateIP == "" {
				cfg.PrivateIP = old.PrivateIP // allocated by Azure, not by the client
			}
		}
		fw.IPConfigurations = append(fw.IPConfigurations, cfg)
	}
	switch {
	case found:
		fw.ID, fw.Location = existing.ID, firstNonEmpty(fw.Location, existing.Location)
	case fw.Location == "":
		return newARMError(http.StatusBadRequest, "LocationRequired", "The location property is required for this definition.").reply()
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
// collections, and strips the collections' computed fields (id, etag,
// provisioningState) so only what a client wrote is stored.
func (a *azureState) checkFirewall(fw *AzureFirewall) *armError {
	if fw.FirewallPolicy != "" && len(fw.NetworkRuleCollections)+len(fw.NATRuleCollections)+len(fw.ApplicationRuleCollections) > 0 {
		return newARMError(http.StatusBadRequest, "AzureFirewallPolicyAndRuleCollectionsConflict",
			"Azure Firewall %s is managed by Firewall Policy %s and cannot also have classic rule collections.", fw.ID, fw.FirewallPolicy)
	}
	if a.checkRef("", fw.FirewallPolicy, policyType) != nil {
		return invalidReference(fw.FirewallPolicy, fw.ID)
	}
	for _, ipc := range fw.IPConfigurations {
		if _, _, ok := a.subnet(ipc.Subnet); !ok && ipc.Subnet != "" {
			return invalidReference(ipc.Subnet, fw.ID)
		}
		if a.checkRef("", ipc.PublicIP, publicIPType) != nil {
			return invalidReference(ipc.PublicIP, fw.ID)
		}
	}
	for _, kind := range collectionKinds(fw) {
		type seen struct {
			name     string
			priority int32
		}
		var earlier []seen
		for i, raw := range kind.list {
			var col struct {
				Name       string `json:"name"`
				Properties struct {
					Priority int32 `json:"priority"`
					Action   struct {
						Type string `json:"type"`
					} `json:"action"`
				} `json:"properties"`
			}
			stripped, err := stripComputed(raw)
			if err != nil || json.Unmarshal(stripped, &col) != nil || col.Name == "" {
				return newARMError(http.StatusBadRequest, "InvalidRequestFormat", "Cannot parse the request.")
			}
			kind.list[i] = stripped
			name, priority, action := col.Name, col.Properties.Priority, col.Properties.Action.Type
			if priority < minCollectionPriority || priority > maxCollectionPriority {
				return newARMError(http.StatusBadRequest, "AzureFirewallRuleCollectionInvalidPriority",
					"Rule Collection %s in %s has invalid priority %d. Allowed range %d-%d.", name, kind.property, priority, minCollectionPriority, maxCollectionPriority)
			}
			if indexFold(kind.actions, action) < 0 {
				return newARMError(http.StatusBadRequest, "AzureFirewallRuleCollectionInvalidAction",
					"Rule Collection %s in %s has invalid action %q; allowed: %s.", name, kind.property, action, strings.Join(kind.actions, ", "))
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
		}
	}
	return nil
}

// stripComputed drops the fields ARM computes from a rule collection.
func stripComputed(raw json.RawMessage) (json.RawMessage, error) {
	var col obj
	if err := json.Unmarshal(raw, &col); err != nil {
		return nil, err
	}
	delete(col, "id")
	delete(col, "etag")
	if p, ok := col["properties"].(obj); ok {
		delete(p, "provisioningState")
	}
	return json.Marshal(col)
}

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
