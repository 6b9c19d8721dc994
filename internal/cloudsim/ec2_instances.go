package cloudsim

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Instances, network interfaces and tags.

func (a *awsState) describeInstances(p awsParams) (any, *awsError) {
	ids := p.list("InstanceId")
	if err := checkEC2IDs("i", "InvalidInstanceID.Malformed", ids); err != nil {
		return nil, err
	}
	if err := requireIDs(ids, func(id string) bool { return a.instance(id) != nil }, "InvalidInstanceID.NotFound", "instance ID"); err != nil {
		return nil, err
	}
	filters, err := p.filters("instance-id", "vpc-id", "subnet-id", "instance-state-name", "instance-state-code",
		"instance-type", "private-ip-address", "network-interface.network-interface-id", "instance.group-id")
	if err != nil {
		return nil, err
	}
	var selected []ec2Instance
	for _, inst := range a.fx.Instances {
		if len(ids) > 0 && !slices.Contains(ids, inst.ID) {
			continue
		}
		x := a.instanceXML(inst)
		if matchEC2Filters(filters, inst.Tags, func(name string) []string {
			switch name {
			case "network-interface.network-interface-id":
				return mapSlice(x.NetworkInterfaces, func(e ec2NetworkInterface) string { return e.ID })
			case "instance.group-id":
				return mapSlice(x.Groups, func(g ec2GroupIdentifier) string { return g.GroupID })
			}
			return map[string][]string{
				"instance-id": {inst.ID}, "vpc-id": {x.VpcID}, "subnet-id": {x.SubnetID}, "instance-state-name": {inst.State},
				"instance-state-code": {strconv.Itoa(x.State.Code)}, "instance-type": {inst.InstanceType}, "private-ip-address": {x.PrivateIP},
			}[name]
		}) {
			selected = append(selected, x)
		}
	}
	idParam := ""
	if len(ids) > 0 {
		idParam = "instanceIds"
	}
	page, next, err := ec2Paginate(p, selected, idParam)
	if err != nil {
		return nil, err
	}
	out := &struct {
		ec2Meta
		Reservations []ec2Reservation `xml:"reservationSet>item"`
		NextToken    string           `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, x := range page {
		// One reservation per instance: the fixture has no launch requests.
		out.Reservations = append(out.Reservations, ec2Reservation{
			ID: awsDerivedID("r", x.ID), OwnerID: a.fx.AccountID, Instances: []ec2Instance{x},
		})
	}
	return out, nil
}

// terminateInstances deletes instances as EC2 does, except that the
// shutdown completes at once: the instance stays listed as terminated, the
// ENIs deleted with it (DeleteOnTermination, which the emulator sets on the
// primary ENI) are gone, and the others are detached. Their security groups
// are untouched. Terminating a terminated instance succeeds.
func (a *awsState) terminateInstances(p awsParams) (any, *awsError) {
	ids := p.list("InstanceId")
	if len(ids) == 0 {
		return nil, ec2MissingParameter("InstanceId")
	}
	if err := checkEC2IDs("i", "InvalidInstanceID.Malformed", ids); err != nil {
		return nil, err
	}
	if err := requireIDs(ids, func(id string) bool { return a.instance(id) != nil }, "InvalidInstanceID.NotFound", "instance ID"); err != nil {
		return nil, err
	}
	out := &struct {
		ec2Meta
		Instances []ec2StateChange `xml:"instancesSet>item"`
	}{}
	for _, id := range ids {
		inst := a.instance(id)
		previous := inst.State
		inst.State = "terminated"
		a.fx.NetworkInterfaces = slices.DeleteFunc(a.fx.NetworkInterfaces, func(e AWSNetworkInterface) bool {
			return e.InstanceID == id && e.DeviceIndex == 0
		})
		for i := range a.fx.NetworkInterfaces {
			if e := &a.fx.NetworkInterfaces[i]; e.InstanceID == id {
				e.InstanceID, e.DeviceIndex = "", 0
			}
		}
		out.Instances = append(out.Instances, ec2StateChange{
			ID:       id,
			Current:  ec2InstanceState{Code: ec2InstanceStates[inst.State], Name: inst.State},
			Previous: ec2InstanceState{Code: ec2InstanceStates[previous], Name: previous},
		})
	}
	return out, nil
}

type ec2StateChange struct {
	ID       string           `xml:"instanceId"`
	Current  ec2InstanceState `xml:"currentState"`
	Previous ec2InstanceState `xml:"previousState"`
}

func (a *awsState) instanceXML(inst AWSInstance) ec2Instance {
	x := ec2Instance{
		ID: inst.ID, ImageID: inst.ImageID, InstanceType: inst.InstanceType, Tags: ec2TagSet(inst.Tags),
		State: ec2InstanceState{Code: ec2InstanceStates[inst.State], Name: inst.State},
	}
	var enis []AWSNetworkInterface
	for _, e := range a.fx.NetworkInterfaces {
		if e.InstanceID == inst.ID {
			enis = append(enis, e)
		}
	}
	slices.SortFunc(enis, func(a, b AWSNetworkInterface) int { return int(a.DeviceIndex - b.DeviceIndex) })
	// The instance's own subnet, VPC, address and security groups are its
	// primary ENI's: groups of other ENIs show only under those ENIs.
	for i, e := range enis {
		ex := a.eniXML(e)
		if i == 0 && e.DeviceIndex == 0 {
			x.SubnetID, x.VpcID, x.PrivateIP, x.Groups = ex.SubnetID, ex.VpcID, ex.PrivateIP, ex.Groups
			x.Placement = &ec2Placement{AvailabilityZone: ex.AvailabilityZone}
		}
		x.NetworkInterfaces = append(x.NetworkInterfaces, ex)
	}
	return x
}

func (a *awsState) eniXML(e AWSNetworkInterface) ec2NetworkInterface {
	subnet := a.subnet(e.SubnetID)
	x := ec2NetworkInterface{
		ID: e.ID, SubnetID: e.SubnetID, VpcID: subnet.VPCID, AvailabilityZone: subnet.AvailabilityZone,
		Description: e.Description, OwnerID: a.fx.AccountID, Status: "available", PrivateIP: e.PrivateIP,
		SourceDestCheck: true, InterfaceType: "interface", Tags: ec2TagSet(e.Tags),
		PrivateIPs: []ec2PrivateIP{{Address: e.PrivateIP, Primary: true}},
	}
	for _, id := range e.Groups {
		x.Groups = append(x.Groups, ec2GroupIdentifier{GroupID: id, GroupName: a.group(id).Name})
	}
	for _, ip := range e.IPv6 {
		x.IPv6 = append(x.IPv6, ec2IPv6Address{Address: ip})
	}
	if e.InstanceID != "" {
		x.Status = "in-use"
		x.Attachment = &ec2Attachment{
			ID: awsDerivedID("eni-attach", e.ID), InstanceID: e.InstanceID, InstanceOwnerID: a.fx.AccountID,
			DeviceIndex: e.DeviceIndex, Status: "attached", DeleteOnTermination: e.DeviceIndex == 0,
		}
	}
	return x
}

func (a *awsState) describeNetworkInterfaces(p awsParams) (any, *awsError) {
	ids := p.list("NetworkInterfaceId")
	if err := checkEC2IDs("eni", "InvalidNetworkInterfaceID.Malformed", ids); err != nil {
		return nil, err
	}
	if err := requireIDs(ids, func(id string) bool { return a.eni(id) != nil }, "InvalidNetworkInterfaceID.NotFound", "networkInterface ID"); err != nil {
		return nil, err
	}
	filters, err := p.filters("network-interface-id", "attachment.instance-id", "attachment.device-index", "group-id",
		"vpc-id", "subnet-id", "private-ip-address", "status", "availability-zone", "description")
	if err != nil {
		return nil, err
	}
	var selected []ec2NetworkInterface
	for _, e := range a.fx.NetworkInterfaces {
		if len(ids) > 0 && !slices.Contains(ids, e.ID) {
			continue
		}
		x := a.eniXML(e)
		if matchEC2Filters(filters, e.Tags, func(name string) []string {
			attrs := map[string][]string{
				"network-interface-id": {e.ID}, "group-id": e.Groups, "vpc-id": {x.VpcID}, "subnet-id": {e.SubnetID},
				"private-ip-address": {e.PrivateIP}, "status": {x.Status}, "availability-zone": {x.AvailabilityZone},
				"description": {e.Description},
			}
			if e.InstanceID != "" {
				attrs["attachment.instance-id"] = []string{e.InstanceID}
				attrs["attachment.device-index"] = []string{strconv.Itoa(int(e.DeviceIndex))}
			}
			return attrs[name]
		}) {
			selected = append(selected, x)
		}
	}
	idParam := ""
	if len(ids) > 0 {
		idParam = "networkInterfaceIds"
	}
	page, next, err := ec2Paginate(p, selected, idParam)
	if err != nil {
		return nil, err
	}
	return &struct {
		ec2Meta
		NetworkInterfaces []ec2NetworkInterface `xml:"networkInterfaceSet>item"`
		NextToken         string                `xml:"nextToken,omitempty"`
	}{NetworkInterfaces: page, NextToken: next}, nil
}

// modifyNetworkInterfaceAttribute changes one attribute per call, as EC2
// does. SecurityGroupId.N replaces the whole list of groups.
func (a *awsState) modifyNetworkInterfaceAttribute(p awsParams) (any, *awsError) {
	id := p.get("NetworkInterfaceId")
	if id == "" {
		return nil, ec2MissingParameter("NetworkInterfaceId")
	}
	if err := checkEC2IDs("eni", "InvalidNetworkInterfaceID.Malformed", []string{id}); err != nil {
		return nil, err
	}
	e := a.eni(id)
	if e == nil {
		return nil, ec2NotFound("InvalidNetworkInterfaceID.NotFound", "networkInterface ID", []string{id})
	}
	var groups []string // duplicates collapse, as in EC2
	for _, g := range p.list("SecurityGroupId") {
		if !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	switch {
	case len(groups) > 0:
		if len(groups) > maxGroupsPerENI {
			return nil, ec2ClientError("SecurityGroupsPerInterfaceLimitExceeded", "The maximum number of security groups per interface has been reached.")
		}
		if err := checkEC2IDs("sg", "InvalidGroupId.Malformed", groups); err != nil {
			return nil, err
		}
		vpcID := a.subnet(e.SubnetID).VPCID
		for _, gid := range groups {
			g := a.group(gid)
			if g == nil {
				return nil, ec2ClientError("InvalidGroup.NotFound", "The security group '%s' does not exist", gid)
			}
			if g.VPCID != vpcID {
				return nil, ec2ClientError("InvalidParameter", "Security group %s and subnet %s belong to different networks.", gid, e.SubnetID)
			}
		}
		e.Groups = groups
	case p.has("Description.Value"):
		e.Description = p.get("Description.Value")
	case len(p.members("Attachment")) > 0 || p.has("SourceDestCheck.Value"):
		return nil, ec2ClientError("UnsupportedOperation", "cloudsim emulates only the SecurityGroupId and Description attributes")
	default:
		return nil, ec2MissingParameter("SecurityGroupId, Description, SourceDestCheck or Attachment")
	}
	return &struct {
		ec2Meta
		Return bool `xml:"return"`
	}{Return: true}, nil
}

// tagsOf finds the tags of any taggable resource by its ID.
func (a *awsState) tagsOf(id string) (*map[string]string, *awsError) {
	prefix := id[:max(strings.LastIndexByte(id, '-'), 0)]
	if !validAWSID(prefix, id) {
		return nil, ec2ClientError("InvalidID", "The ID '%s' is not valid", id)
	}
	var tags *map[string]string
	code, noun := "", ""
	switch prefix {
	case "i":
		if x := a.instance(id); x != nil {
			tags = &x.Tags
		}
		code, noun = "InvalidInstanceID.NotFound", "instance ID"
	case "eni":
		if x := a.eni(id); x != nil {
			tags = &x.Tags
		}
		code, noun = "InvalidNetworkInterfaceID.NotFound", "networkInterface ID"
	case "sg":
		if x := a.group(id); x != nil {
			tags = &x.Tags
		}
		code, noun = "InvalidGroup.NotFound", "security group"
	case "sgr":
		if _, x := a.rule(id); x != nil {
			tags = &x.Tags
		}
		code, noun = "InvalidSecurityGroupRuleId.NotFound", "security group rule ID"
	case "vpc":
		if x := a.vpc(id); x != nil {
			tags = &x.Tags
		}
		code, noun = "InvalidVpcID.NotFound", "vpc ID"
	case "subnet":
		if x := a.subnet(id); x != nil {
			tags = &x.Tags
		}
		code, noun = "InvalidSubnetID.NotFound", "subnet ID"
	default:
		return nil, ec2ClientError("InvalidID", "The ID '%s' is not valid", id)
	}
	if tags == nil {
		return nil, ec2NotFound(code, noun, []string{id})
	}
	return tags, nil
}

// taggedResources resolves ResourceId.N; every ID must exist before any
// tag changes.
func (a *awsState) taggedResources(p awsParams) ([]*map[string]string, *awsError) {
	ids := p.list("ResourceId")
	if len(ids) == 0 {
		return nil, ec2MissingParameter("ResourceId")
	}
	var out []*map[string]string
	for _, id := range ids {
		tags, err := a.tagsOf(id)
		if err != nil {
			return nil, err
		}
		out = append(out, tags)
	}
	return out, nil
}

// EC2's limits on tags: per resource, and lengths in Unicode characters.
const (
	maxTagsPerResource = 50
	maxEC2TagKeyLen    = 128
	maxEC2TagValueLen  = 256
)

func validateTags(tags []awsTagParam) *awsError {
	for _, t := range tags {
		switch {
		case t.key == "":
			return ec2ClientError("InvalidParameterValue", "Tag keys must not be empty")
		case utf8.RuneCountInString(t.key) > maxEC2TagKeyLen:
			return ec2ClientError("InvalidParameterValue", "Tag key exceeds the maximum length of %d characters", maxEC2TagKeyLen)
		case utf8.RuneCountInString(t.value) > maxEC2TagValueLen:
			return ec2ClientError("InvalidParameterValue", "Tag value exceeds the maximum length of %d characters", maxEC2TagValueLen)
		case strings.HasPrefix(strings.ToLower(t.key), "aws:"):
			return ec2ClientError("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use")
		}
	}
	return nil
}

// tagLimitExceeded is EC2's answer when a resource would have more than
// maxTagsPerResource tags.
func tagLimitExceeded() *awsError {
	return ec2ClientError("TagLimitExceeded", "The maximum number of Tags for a resource has been reached.")
}

func (a *awsState) createTags(p awsParams) (any, *awsError) {
	targets, err := a.taggedResources(p)
	if err != nil {
		return nil, err
	}
	tags := p.tags("Tag")
	if len(tags) == 0 {
		return nil, ec2MissingParameter("Tag")
	}
	if err := validateTags(tags); err != nil {
		return nil, err
	}
	updated := make([]map[string]string, len(targets))
	for i, t := range targets {
		updated[i] = maps.Clone(*t)
		if updated[i] == nil {
			updated[i] = map[string]string{}
		}
		for _, tag := range tags {
			updated[i][tag.key] = tag.value
		}
		if len(updated[i]) > maxTagsPerResource {
			return nil, tagLimitExceeded()
		}
	}
	for i, t := range targets {
		*t = updated[i]
	}
	return &struct {
		ec2Meta
		Return bool `xml:"return"`
	}{Return: true}, nil
}

// deleteTags removes the given keys; with a Value, only if it matches (an
// empty Value matches only an empty value); with no Tag.N at all, every tag.
func (a *awsState) deleteTags(p awsParams) (any, *awsError) {
	targets, err := a.taggedResources(p)
	if err != nil {
		return nil, err
	}
	tags := p.tags("Tag")
	for _, t := range targets {
		if len(tags) == 0 {
			*t = nil
		}
		for _, tag := range tags {
			if v, ok := (*t)[tag.key]; ok && (!tag.hasValue || v == tag.value) {
				delete(*t, tag.key)
			}
		}
		if len(*t) == 0 {
			*t = nil
		}
	}
	return &struct {
		ec2Meta
		Return bool `xml:"return"`
	}{Return: true}, nil
}

func mapSlice[T any](in []T, f func(T) string) []string {
	out := make([]string, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// XML shapes of instances and network interfaces.

type ec2Reservation struct {
	ID        string        `xml:"reservationId"`
	OwnerID   string        `xml:"ownerId"`
	Instances []ec2Instance `xml:"instancesSet>item"`
}

type ec2Instance struct {
	ID                string                `xml:"instanceId"`
	ImageID           string                `xml:"imageId"`
	State             ec2InstanceState      `xml:"instanceState"`
	PrivateIP         string                `xml:"privateIpAddress,omitempty"`
	InstanceType      string                `xml:"instanceType"`
	Placement         *ec2Placement         `xml:"placement,omitempty"`
	SubnetID          string                `xml:"subnetId,omitempty"`
	VpcID             string                `xml:"vpcId,omitempty"`
	Groups            []ec2GroupIdentifier  `xml:"groupSet>item"`
	Tags              []ec2Tag              `xml:"tagSet>item"`
	NetworkInterfaces []ec2NetworkInterface `xml:"networkInterfaceSet>item"`
}

type ec2InstanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type ec2Placement struct {
	AvailabilityZone string `xml:"availabilityZone"`
}

type ec2GroupIdentifier struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

// ec2NetworkInterface serves both DescribeNetworkInterfaces and the ENIs
// inside DescribeInstances; each deserializer skips the fields it lacks.
type ec2NetworkInterface struct {
	ID               string               `xml:"networkInterfaceId"`
	SubnetID         string               `xml:"subnetId"`
	VpcID            string               `xml:"vpcId"`
	AvailabilityZone string               `xml:"availabilityZone"`
	Description      string               `xml:"description"`
	OwnerID          string               `xml:"ownerId"`
	Status           string               `xml:"status"`
	PrivateIP        string               `xml:"privateIpAddress"`
	SourceDestCheck  bool                 `xml:"sourceDestCheck"`
	InterfaceType    string               `xml:"interfaceType"`
	Groups           []ec2GroupIdentifier `xml:"groupSet>item"`
	Attachment       *ec2Attachment       `xml:"attachment,omitempty"`
	PrivateIPs       []ec2PrivateIP       `xml:"privateIpAddressesSet>item"`
	IPv6             []ec2IPv6Address     `xml:"ipv6AddressesSet>item"`
	Tags             []ec2Tag             `xml:"tagSet>item"`
}

type ec2Attachment struct {
	ID                  string `xml:"attachmentId"`
	InstanceID          string `xml:"instanceId"`
	InstanceOwnerID     string `xml:"instanceOwnerId"`
	DeviceIndex         int32  `xml:"deviceIndex"`
	Status              string `xml:"status"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type ec2PrivateIP struct {
	Address string `xml:"privateIpAddress"`
	Primary bool   `xml:"primary"`
}

type ec2IPv6Address struct {
	Address string `xml:"ipv6Address"`
}
