package cloudsim

import (
	"maps"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// obj is a JSON object as ARM returns it.
type obj = map[string]any

// header is the envelope every tracked resource shares.
func (a *azureState) header(id, typ, location string, tags map[string]string) obj {
	o := obj{"id": id, "name": nameOf(id), "type": typ, "location": location, "etag": a.etag(id)}
	if len(tags) > 0 {
		o["tags"] = tags
	}
	return o
}

func (a *azureState) renderVM(vm *AzureVM) obj {
	nics := []obj{}
	for i, id := range vm.NetworkInterfaces {
		nics = append(nics, obj{"id": id, "properties": obj{"primary": i == 0}})
	}
	osType, size := vm.OSType, vm.Size
	if osType == "" {
		osType = "Linux"
	}
	if size == "" {
		size = "Standard_B2s"
	}
	o := a.header(vm.ID, vmType, vm.Location, vm.Tags)
	o["etag"] = a.vmETag(vm.ID)
	o["properties"] = obj{
		"vmId":              vm.VMID,
		"hardwareProfile":   obj{"vmSize": size},
		"storageProfile":    obj{"osDisk": obj{"osType": osType, "name": nameOf(vm.ID) + "_OsDisk_1", "createOption": "FromImage"}},
		"networkProfile":    obj{"networkInterfaces": nics},
		"provisioningState": a.provisioningState(vm.ID),
	}
	return o
}

// deleteVM is VirtualMachinesClient.BeginDelete: 202 and an operation
// that removes the VM when it completes. Its network interfaces stay, as
// they do in Azure unless the VM was created to delete them with it.
func deleteVM(c *armCall) armReply {
	vm, found := lookup[*AzureVM](c.a, c.path)
	if !found {
		return armReply{status: http.StatusNoContent}
	}
	h := c.startOperation(operationSpec{
		namespace: "Microsoft.Compute", location: vm.Location, name: "DeleteVMOperation",
		targets: map[string]string{c.key(): "Deleting"},
		finish:  func() { delete(c.a.res, strings.ToLower(vm.ID)) },
	})
	return armReply{status: http.StatusAccepted, header: h}
}

// vmETag is a virtual machine's ETag. Compute (since API version
// 2023-09-01) numbers a VM's versions, "1", "2", …, and sends the number,
// quoted, as its etag.
func (a *azureState) vmETag(id string) string {
	key := strings.ToLower(id)
	if a.vmVersions[key] == 0 {
		a.vmVersions[key] = 1
	}
	return strconv.Quote(strconv.Itoa(a.vmVersions[key]))
}

// touchVM gives a virtual machine its next ETag, as every write does, and
// clears the Failed state an earlier operation left.
func (a *azureState) touchVM(id string) {
	a.vmETag(id)
	a.vmVersions[strings.ToLower(id)]++
	delete(a.failed, strings.ToLower(id))
}

// checkVMPreconditions applies If-Match and If-None-Match to a write of an
// existing VM as compute does: If-Match must be "*" or the VM's current
// ETag; If-None-Match "*" (create only) fails, and no other value of it is
// supported.
func (c *armCall) checkVMPreconditions(vm *AzureVM) *armError {
	current := c.a.vmETag(vm.ID)
	if m := c.r.Header.Get("If-Match"); m != "" && m != "*" && m != current {
		return newARMError(http.StatusPreconditionFailed, "PreconditionFailed",
			"Etag provided in if-match header %s does not match etag %s of resource.", m, current)
	}
	switch m := c.r.Header.Get("If-None-Match"); m {
	case "":
	case "*":
		return newARMError(http.StatusPreconditionFailed, "PreconditionFailed",
			"Etag provided in if-none-match header * matches etag %s of resource.", current)
	default:
		return newARMError(http.StatusBadRequest, "InvalidParameter",
			"The value '%s' of the if-none-match header is not supported; only '*' is.", m)
	}
	return nil
}

// updateVM is VirtualMachinesClient.BeginUpdate: a PATCH whose tags, when
// present, replace the VM's tags; nothing else is modelled or disturbed.
// Every update gives the VM a new ETag; If-Match guards it.
func updateVM(c *armCall) armReply {
	vm, found := lookup[*AzureVM](c.a, c.path)
	if !found {
		return c.resourceNotFound(vmType, c.args[1]).reply()
	}
	var patch struct {
		Tags map[string]string `json:"tags"`
	}
	if e := c.decodeBody(&patch); e != nil {
		return e.reply()
	}
	if e := validateARMTags(patch.Tags); e != nil {
		return e.reply()
	}
	if e := c.checkVMPreconditions(vm); e != nil {
		return e.reply()
	}
	previous := vm.Tags
	if patch.Tags != nil {
		vm.Tags = tagsOrNil(patch.Tags)
	}
	c.a.touchVM(vm.ID)
	h := c.startOperation(operationSpec{
		namespace: "Microsoft.Compute", location: vm.Location, name: "UpdateVMOperation",
		targets: map[string]string{c.key(): "Updating"},
		undo: func() {
			vm.Tags = previous
			c.a.touchVM(vm.ID)
		},
	})
	rep := ok(c.a.renderVM(vm))
	rep.header = h
	return rep
}

func (a *azureState) renderNIC(n *AzureNIC) obj {
	ipcs := []obj{}
	for i, ipc := range n.IPConfigurations {
		id := n.ID + "/ipConfigurations/" + ipc.Name
		version := "IPv4"
		if addr, err := netip.ParseAddr(ipc.PrivateIP); err == nil && addr.Is6() {
			version = "IPv6"
		}
		props := obj{
			"provisioningState":         "Succeeded",
			"privateIPAddress":          ipc.PrivateIP,
			"privateIPAllocationMethod": "Dynamic",
			"privateIPAddressVersion":   version,
			"subnet":                    armRef{ipc.Subnet},
			"primary":                   i == 0,
		}
		if ipc.PublicIP != "" {
			props["publicIPAddress"] = armRef{ipc.PublicIP}
		}
		ipcs = append(ipcs, obj{"id": id, "name": ipc.Name, "etag": a.etag(n.ID),
			"type": "Microsoft.Network/networkInterfaces/ipConfigurations", "properties": props})
	}
	props := obj{
		"provisioningState": "Succeeded", "resourceGuid": derivedUUID(n.ID), "ipConfigurations": ipcs,
		"enableAcceleratedNetworking": false, "enableIPForwarding": false, "nicType": "Standard",
	}
	if n.NetworkSecurityGroup != "" {
		props["networkSecurityGroup"] = armRef{n.NetworkSecurityGroup}
	}
	// A NIC is attached to one VM at most; the VMs are looked up without
	// re-keying every resource, which made large listings slow.
	for _, r := range a.res {
		if vm, ok := r.(*AzureVM); ok && indexFold(vm.NetworkInterfaces, n.ID) >= 0 {
			props["virtualMachine"] = armRef{vm.ID}
			props["primary"] = strings.EqualFold(vm.NetworkInterfaces[0], n.ID)
			break
		}
	}
	o := a.header(n.ID, nicType, n.Location, n.Tags)
	o["properties"] = props
	return o
}

func (a *azureState) renderVNet(v *AzureVNet) obj {
	subnets := []obj{}
	for i := range v.Subnets {
		subnets = append(subnets, a.renderSubnet(v, &v.Subnets[i]))
	}
	o := a.header(v.ID, vnetType, v.Location, v.Tags)
	o["properties"] = obj{
		"provisioningState": "Succeeded", "resourceGuid": derivedUUID(v.ID),
		"addressSpace": obj{"addressPrefixes": v.AddressSpace}, "subnets": subnets,
	}
	return o
}

func (a *azureState) renderSubnet(v *AzureVNet, s *AzureSubnet) obj {
	id := v.ID + "/subnets/" + s.Name
	props := obj{"provisioningState": "Succeeded", "addressPrefix": s.AddressPrefix}
	if s.NetworkSecurityGroup != "" {
		props["networkSecurityGroup"] = armRef{s.NetworkSecurityGroup}
	}
	return obj{"id": id, "name": s.Name, "etag": a.etag(v.ID), "type": "Microsoft.Network/virtualNetworks/subnets", "properties": props}
}

// getSubnet is SubnetsClient.Get.
func getSubnet(c *armCall) armReply {
	vnet, found := lookup[*AzureVNet](c.a, c.parentPath(1))
	if !found {
		return c.resourceNotFound(vnetType, c.args[1]).reply()
	}
	s, found := c.a.subnet(c.path)
	if !found {
		return c.childNotFound().reply()
	}
	return ok(c.a.renderSubnet(vnet, s))
}

func (a *azureState) renderPublicIP(p *AzurePublicIP) obj {
	version := "IPv4"
	if addr, err := netip.ParseAddr(p.IPAddress); err == nil && addr.Is6() {
		version = "IPv6"
	}
	props := obj{
		"provisioningState": "Succeeded", "resourceGuid": derivedUUID(p.ID), "ipAddress": p.IPAddress,
		"publicIPAddressVersion": version, "publicIPAllocationMethod": "Static", "idleTimeoutInMinutes": 4,
	}
	o := a.header(p.ID, publicIPType, p.Location, p.Tags)
	o["sku"] = obj{"name": "Standard", "tier": "Regional"}
	o["properties"] = props
	return o
}

func (a *azureState) renderNSG(n *AzureNSG) obj {
	rules, defaults := []obj{}, []obj{}
	for i := range n.SecurityRules {
		rules = append(rules, a.renderSecurityRule(n, &n.SecurityRules[i]))
	}
	for i := range defaultSecurityRules {
		r := a.renderSecurityRule(n, &defaultSecurityRules[i])
		r["id"] = n.ID + "/defaultSecurityRules/" + defaultSecurityRules[i].Name
		r["type"] = "Microsoft.Network/networkSecurityGroups/defaultSecurityRules"
		r["etag"] = a.etag(n.ID)
		if p, ok := r["properties"].(obj); ok {
			p["provisioningState"] = "Succeeded"
		}
		defaults = append(defaults, r)
	}
	props := obj{
		"provisioningState": a.provisioningState(n.ID), "resourceGuid": derivedUUID(n.ID),
		"securityRules": rules, "defaultSecurityRules": defaults,
	}
	var nics, subnets []armRef
	for _, id := range a.order {
		switch r := a.res[strings.ToLower(id)].(type) {
		case *AzureNIC:
			if strings.EqualFold(r.NetworkSecurityGroup, n.ID) {
				nics = append(nics, armRef{r.ID})
			}
		case *AzureVNet:
			for _, s := range r.Subnets {
				if strings.EqualFold(s.NetworkSecurityGroup, n.ID) {
					subnets = append(subnets, armRef{r.ID + "/subnets/" + s.Name})
				}
			}
		}
	}
	if len(nics) > 0 {
		props["networkInterfaces"] = nics
	}
	if len(subnets) > 0 {
		props["subnets"] = subnets
	}
	o := a.header(n.ID, nsgType, n.Location, n.Tags)
	o["properties"] = props
	return o
}

// defaultSecurityRules are the six rules every NSG has, as ARM returns them.
var defaultSecurityRules = []AzureSecurityRule{
	{Name: "AllowVnetInBound", Priority: 65000, Direction: "Inbound", Access: "Allow", Protocol: "*",
		Description: "Allow inbound traffic from all VMs in VNET", SourceAddressPrefix: "VirtualNetwork", SourcePortRange: "*",
		DestinationAddressPrefix: "VirtualNetwork", DestinationPortRange: "*"},
	{Name: "AllowAzureLoadBalancerInBound", Priority: 65001, Direction: "Inbound", Access: "Allow", Protocol: "*",
		Description: "Allow inbound traffic from azure load balancer", SourceAddressPrefix: "AzureLoadBalancer", SourcePortRange: "*",
		DestinationAddressPrefix: "*", DestinationPortRange: "*"},
	{Name: "DenyAllInBound", Priority: 65500, Direction: "Inbound", Access: "Deny", Protocol: "*",
		Description: "Deny all inbound traffic", SourceAddressPrefix: "*", SourcePortRange: "*",
		DestinationAddressPrefix: "*", DestinationPortRange: "*"},
	{Name: "AllowVnetOutBound", Priority: 65000, Direction: "Outbound", Access: "Allow", Protocol: "*",
		Description: "Allow outbound traffic from all VMs to all VMs in VNET", SourceAddressPrefix: "VirtualNetwork", SourcePortRange: "*",
		DestinationAddressPrefix: "VirtualNetwork", DestinationPortRange: "*"},
	{Name: "AllowInternetOutBound", Priority: 65001, Direction: "Outbound", Access: "Allow", Protocol: "*",
		Description: "Allow outbound traffic from all VMs to Internet", SourceAddressPrefix: "*", SourcePortRange: "*",
		DestinationAddressPrefix: "Internet", DestinationPortRange: "*"},
	{Name: "DenyAllOutBound", Priority: 65500, Direction: "Outbound", Access: "Deny", Protocol: "*",
		Description: "Deny all outbound traffic", SourceAddressPrefix: "*", SourcePortRange: "*",
		DestinationAddressPrefix: "*", DestinationPortRange: "*"},
}

func (a *azureState) renderASG(g *AzureApplicationSecurityGroup) obj {
	o := a.header(g.ID, asgType, g.Location, g.Tags)
	o["properties"] = obj{"provisioningState": "Succeeded", "resourceGuid": derivedUUID(g.ID)}
	return o
}

// tagsAtScopePath is where the Tags API addresses a resource's tags.
const tagsAtScopePath = "/providers/Microsoft.Resources/tags/default"

// updateTagsAtScope is the Tags API's PATCH of a resource's tags
// (api-version 2021-04-01, answered synchronously), served for virtual
// machines: "Merge" adds or replaces the tags given and keeps the others,
// "Replace" sets exactly the tags given, "Delete" removes the tags given
// (one given with a value only while it has that value). ARM merges on its
// side, so two clients merging different tags never lose each other's. The
// result is checked as every tag write is (50 tags, 256 characters), and
// the VM gets a new ETag. The caller needs Microsoft.Resources/tags/write,
// not write access to the VM.
func updateTagsAtScope(c *armCall) armReply {
	vm, found := lookup[*AzureVM](c.a, c.parentPath(2))
	if !found {
		return c.resourceNotFound(vmType, c.args[1]).reply()
	}
	var patch struct {
		Operation  string `json:"operation"`
		Properties struct {
			Tags map[string]string `json:"tags"`
		} `json:"properties"`
	}
	if e := c.decodeBody(&patch); e != nil {
		return e.reply()
	}
	tags := maps.Clone(vm.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	switch strings.ToLower(patch.Operation) {
	case "merge":
		maps.Copy(tags, patch.Properties.Tags)
	case "replace":
		tags = maps.Clone(patch.Properties.Tags)
	case "delete":
		for name, value := range patch.Properties.Tags {
			for have, v := range tags {
				if strings.EqualFold(have, name) && (value == "" || v == value) {
					delete(tags, have)
				}
			}
		}
	default:
		return newARMError(http.StatusBadRequest, "InvalidRequestContent",
			"The request content was invalid: the operation '%s' is not one of Merge, Replace, Delete.", patch.Operation).reply()
	}
	if e := validateARMTags(tags); e != nil {
		return e.reply()
	}
	vm.Tags = tagsOrNil(tags)
	c.a.touchVM(vm.ID)
	if tags == nil {
		tags = map[string]string{}
	}
	return ok(obj{"id": c.path, "name": "default", "type": "Microsoft.Resources/tags", "properties": obj{"tags": tags}})
}
