package cloudsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"sync/atomic"
)

// AWSFixture seeds the AWS side: one region of one account. Snapshot returns
// the same shape, with every generated ID filled in, so a dump seeds another
// emulator. An ENI's attachment lives on the ENI (instance_id, device_index),
// as in EC2's own model; an instance's subnet, VPC and private IP are those
// of its device-index-0 ENI.
type AWSFixture struct {
	Region            string                `json:"region,omitempty"`     // default us-east-1
	AccountID         string                `json:"account_id,omitempty"` // default 123456789012
	VPCs              []AWSVPC              `json:"vpcs,omitempty"`
	Subnets           []AWSSubnet           `json:"subnets,omitempty"`
	Instances         []AWSInstance         `json:"instances,omitempty"`
	NetworkInterfaces []AWSNetworkInterface `json:"network_interfaces,omitempty"`
	SecurityGroups    []AWSSecurityGroup    `json:"security_groups,omitempty"`
}

// AWSVPC is a VPC. In the default VPC a revoke of an unknown rule succeeds
// and reports it back, elsewhere it fails (see revokeSecurityGroupIngress).
type AWSVPC struct {
	ID       string            `json:"id"`
	CIDR     string            `json:"cidr"`
	IPv6CIDR string            `json:"ipv6_cidr,omitempty"`
	Default  bool              `json:"default,omitempty"`
	Tags     map[string]string `json:"tags,omitempty"`
}

// AWSSubnet is a subnet of a VPC.
type AWSSubnet struct {
	ID               string            `json:"id"`
	VPCID            string            `json:"vpc_id"`
	CIDR             string            `json:"cidr"`
	IPv6CIDR         string            `json:"ipv6_cidr,omitempty"`
	AvailabilityZone string            `json:"availability_zone,omitempty"` // default <region>a
	Tags             map[string]string `json:"tags,omitempty"`
}

// AWSInstance is an EC2 instance; its network path is the ENIs naming it.
type AWSInstance struct {
	ID           string            `json:"id"`
	State        string            `json:"state,omitempty"`         // default running
	InstanceType string            `json:"instance_type,omitempty"` // default t3.micro
	ImageID      string            `json:"image_id,omitempty"`
	Tags         map[string]string `json:"tags,omitempty"`
}

// AWSNetworkInterface is an ENI, attached to InstanceID when that is set.
type AWSNetworkInterface struct {
	ID          string            `json:"id"`
	SubnetID    string            `json:"subnet_id"`
	PrivateIP   string            `json:"private_ip"`
	IPv6        []string          `json:"ipv6,omitempty"`
	InstanceID  string            `json:"instance_id,omitempty"`
	DeviceIndex int32             `json:"device_index,omitempty"`
	Groups      []string          `json:"groups"`
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// AWSSecurityGroup is a VPC security group.
type AWSSecurityGroup struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	VPCID       string            `json:"vpc_id"`
	Tags        map[string]string `json:"tags,omitempty"`
	Ingress     []AWSRule         `json:"ingress,omitempty"`
	Egress      []AWSRule         `json:"egress,omitempty"`
}

// AWSRule is one security group rule: one protocol and port range from one
// source, which is how EC2 stores rules whatever the request bundled. Ports
// are -1 where they do not apply (all protocols, protocols other than
// TCP/UDP/ICMP); for ICMP they are type and code. ID is generated when empty.
type AWSRule struct {
	ID                string            `json:"id,omitempty"`
	Protocol          string            `json:"protocol"`
	FromPort          int32             `json:"from_port"`
	ToPort            int32             `json:"to_port"`
	CIDRIPv4          string            `json:"cidr_ipv4,omitempty"`
	CIDRIPv6          string            `json:"cidr_ipv6,omitempty"`
	PrefixListID      string            `json:"prefix_list_id,omitempty"`
	ReferencedGroupID string            `json:"referenced_group_id,omitempty"`
	Description       string            `json:"description,omitempty"`
	Tags              map[string]string `json:"tags,omitempty"`
}

// awsState is the AWS world; fx is kept normalised and is the single source
// of truth. Guarded by Sim.mu except requests, which is atomic so errors can
// be written without the lock.
type awsState struct {
	fx       AWSFixture
	ids      map[string]bool // every ID ever used, so generated IDs never repeat
	seq      int
	requests atomic.Uint64
}

var (
	awsIDPattern    = regexp.MustCompile(`^[a-z]+(-[a-z]+)?-([0-9a-f]{8}|[0-9a-f]{17})$`)
	awsAccountRegex = regexp.MustCompile(`^[0-9]{12}$`)
)

// validAWSID reports whether id is prefix- followed by 8 or 17 hex digits, the
// two ID lengths EC2 has used.
func validAWSID(prefix, id string) bool {
	return awsIDPattern.MatchString(id) && len(id) > len(prefix)+1 && id[:len(prefix)+1] == prefix+"-"
}

func newAWSState(fx AWSFixture) (*awsState, error) {
	a := &awsState{ids: map[string]bool{}}
	if err := a.load(fx); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *awsState) region() string { return a.fx.Region }

// snapshot deep-copies the world. Called with Sim.mu held.
func (a *awsState) snapshot() AWSFixture {
	var out AWSFixture
	b, err := json.Marshal(a.fx)
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		panic("cloudsim: copying AWS state: " + err.Error())
	}
	return out
}

// newID returns a fresh ID that looks like EC2's (prefix, 17 hex digits) and
// depends only on the account, region and how many IDs were made before.
func (a *awsState) newID(prefix string) string {
	for {
		a.seq++
		id := prefix + "-" + awsHash(fmt.Sprintf("%s/%s/%s/%d", a.fx.AccountID, a.fx.Region, prefix, a.seq))
		if !a.ids[id] {
			a.ids[id] = true
			return id
		}
	}
}

// awsDerivedID names things EC2 shows but the fixture does not store
// (reservations, attachments) stably from their owner's ID.
func awsDerivedID(prefix, owner string) string { return prefix + "-" + awsHash(prefix+"/"+owner) }

func awsHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:17]
}

// requestID returns a UUID-shaped request ID, deterministic in call order.
func (a *awsState) requestID() string {
	n := a.requests.Add(1)
	h := awsHash(fmt.Sprint("request/", n)) + awsHash(fmt.Sprint("request-tail/", n))
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// claim registers an ID given by the fixture.
func (a *awsState) claim(prefix, id string) error {
	if !validAWSID(prefix, id) {
		return fmt.Errorf("%q is not a valid %s- ID (%s- and 8 or 17 lower-case hex digits)", id, prefix, prefix)
	}
	if a.ids[id] {
		return fmt.Errorf("ID %s is used twice", id)
	}
	a.ids[id] = true
	return nil
}

// load validates fx and makes it the world: defaults filled in, references
// checked, rules normalised exactly as AuthorizeSecurityGroupIngress would,
// missing rule IDs generated.
func (a *awsState) load(fx AWSFixture) error {
	a.fx = fx
	f := &a.fx
	if f.Region == "" {
		f.Region = "us-east-1"
	}
	if f.AccountID == "" {
		f.AccountID = "123456789012"
	}
	if !awsAccountRegex.MatchString(f.AccountID) {
		return fmt.Errorf("account_id %q is not 12 digits", f.AccountID)
	}
	for _, v := range f.VPCs {
		if err := a.claim("vpc", v.ID); err != nil {
			return err
		}
		if _, err := parseAWSPrefix(v.CIDR, false); err != nil {
			return fmt.Errorf("vpc %s: cidr %q: %w", v.ID, v.CIDR, err)
		}
		if _, err := parseAWSPrefix(v.IPv6CIDR, true); v.IPv6CIDR != "" && err != nil {
			return fmt.Errorf("vpc %s: ipv6_cidr %q: %w", v.ID, v.IPv6CIDR, err)
		}
	}
	for i := range f.Subnets {
		s := &f.Subnets[i]
		if err := a.claim("subnet", s.ID); err != nil {
			return err
		}
		vpc := a.vpc(s.VPCID)
		if vpc == nil {
			return fmt.Errorf("subnet %s: vpc %q does not exist", s.ID, s.VPCID)
		}
		if err := cidrWithin(s.CIDR, vpc.CIDR, false); err != nil {
			return fmt.Errorf("subnet %s: cidr: %w", s.ID, err)
		}
		if s.IPv6CIDR != "" {
			if err := cidrWithin(s.IPv6CIDR, vpc.IPv6CIDR, true); err != nil {
				return fmt.Errorf("subnet %s: ipv6_cidr: %w", s.ID, err)
			}
		}
		if s.AvailabilityZone == "" {
			s.AvailabilityZone = f.Region + "a"
		}
	}
	for i := range f.Instances {
		inst := &f.Instances[i]
		if err := a.claim("i", inst.ID); err != nil {
			return err
		}
		if inst.State == "" {
			inst.State = "running"
		}
		if _, ok := ec2InstanceStates[inst.State]; !ok {
			return fmt.Errorf("instance %s: unknown state %q", inst.ID, inst.State)
		}
		if inst.InstanceType == "" {
			inst.InstanceType = "t3.micro"
		}
		if inst.ImageID == "" {
			inst.ImageID = awsDerivedID("ami", inst.ID)
		}
	}
	for _, g := range f.SecurityGroups {
		if err := a.claim("sg", g.ID); err != nil {
			return err
		}
	}
	for i := range f.SecurityGroups {
		g := &f.SecurityGroups[i]
		if a.vpc(g.VPCID) == nil {
			return fmt.Errorf("security group %s: vpc %q does not exist", g.ID, g.VPCID)
		}
		if err := validGroupText("name", g.Name); err != nil {
			return fmt.Errorf("security group %s: %s", g.ID, err.msg)
		}
		if err := validGroupText("description", g.Description); err != nil {
			return fmt.Errorf("security group %s: %s", g.ID, err.msg)
		}
		for _, other := range f.SecurityGroups[:i] {
			if other.VPCID == g.VPCID && other.Name == g.Name {
				return fmt.Errorf("security groups %s and %s are both named %q in %s", other.ID, g.ID, g.Name, g.VPCID)
			}
		}
		for _, side := range []struct {
			dir   string
			rules []AWSRule
		}{{"ingress", g.Ingress}, {"egress", g.Egress}} {
			dir, rules, seen := side.dir, side.rules, map[string]bool{}
			for j := range rules {
				r := &rules[j]
				if r.ID != "" {
					if err := a.claim("sgr", r.ID); err != nil {
						return fmt.Errorf("security group %s %s rule %d: %w", g.ID, dir, j+1, err)
					}
				}
				if err := a.normalizeRule(r, &r.FromPort, &r.ToPort); err != nil {
					return fmt.Errorf("security group %s %s rule %d: %s", g.ID, dir, j+1, err.msg)
				}
				if seen[ruleKey(*r)] {
					return fmt.Errorf("security group %s %s rule %d: duplicates an earlier rule", g.ID, dir, j+1)
				}
				seen[ruleKey(*r)] = true
			}
		}
	}
	for i := range f.NetworkInterfaces {
		e := &f.NetworkInterfaces[i]
		if err := a.loadENI(e, f.NetworkInterfaces[:i]); err != nil {
			return fmt.Errorf("network interface %s: %w", e.ID, err)
		}
	}
	for _, inst := range f.Instances {
		if inst.State != "terminated" && a.primaryENI(inst.ID) == nil {
			return fmt.Errorf("instance %s: no network interface with device_index 0 names it", inst.ID)
		}
	}
	if err := a.checkFixtureTags(); err != nil {
		return err
	}
	// Rule IDs are generated only now, so they cannot collide with given IDs.
	for i := range f.SecurityGroups {
		g := &f.SecurityGroups[i]
		for _, rules := range [][]AWSRule{g.Ingress, g.Egress} {
			for j := range rules {
				if rules[j].ID == "" {
					rules[j].ID = a.newID("sgr")
				}
			}
		}
	}
	return nil
}

// checkFixtureTags holds every tagged resource of the fixture to EC2's
// limits on tags.
func (a *awsState) checkFixtureTags() error {
	tagged := map[string]map[string]string{}
	f := &a.fx
	for _, v := range f.VPCs {
		tagged[v.ID] = v.Tags
	}
	for _, s := range f.Subnets {
		tagged[s.ID] = s.Tags
	}
	for _, i := range f.Instances {
		tagged[i.ID] = i.Tags
	}
	for _, e := range f.NetworkInterfaces {
		tagged[e.ID] = e.Tags
	}
	for _, g := range f.SecurityGroups {
		tagged[g.ID] = g.Tags
		for j, r := range slices.Concat(g.Ingress, g.Egress) {
			tagged[fmt.Sprintf("security group %s rule %d", g.ID, j+1)] = r.Tags
		}
	}
	for _, owner := range slices.Sorted(maps.Keys(tagged)) {
		tags := tagged[owner]
		if len(tags) > maxTagsPerResource {
			return fmt.Errorf("%s: %s", owner, tagLimitExceeded().msg)
		}
		var params []awsTagParam
		for k, v := range tags {
			params = append(params, awsTagParam{key: k, value: v, hasValue: true})
		}
		if err := validateTags(params); err != nil {
			return fmt.Errorf("%s: %s", owner, err.msg)
		}
	}
	return nil
}

func (a *awsState) loadENI(e *AWSNetworkInterface, earlier []AWSNetworkInterface) error {
	if err := a.claim("eni", e.ID); err != nil {
		return err
	}
	subnet := a.subnet(e.SubnetID)
	if subnet == nil {
		return fmt.Errorf("subnet %q does not exist", e.SubnetID)
	}
	ip, err := netip.ParseAddr(e.PrivateIP)
	if prefix, _ := parseAWSPrefix(subnet.CIDR, false); err != nil || !prefix.Contains(ip) {
		return fmt.Errorf("private_ip %q is not an address of subnet %s (%s)", e.PrivateIP, subnet.ID, subnet.CIDR)
	}
	for _, s := range e.IPv6 {
		ip, err := netip.ParseAddr(s)
		prefix, perr := parseAWSPrefix(subnet.IPv6CIDR, true)
		if err != nil || perr != nil || !prefix.Contains(ip) {
			return fmt.Errorf("ipv6 %q is not an address of subnet %s (%q)", s, subnet.ID, subnet.IPv6CIDR)
		}
	}
	if e.InstanceID != "" {
		if a.instance(e.InstanceID) == nil {
			return fmt.Errorf("instance %q does not exist", e.InstanceID)
		}
		for _, o := range earlier {
			if o.InstanceID == e.InstanceID && o.DeviceIndex == e.DeviceIndex {
				return fmt.Errorf("device_index %d of instance %s is also taken by %s", e.DeviceIndex, e.InstanceID, o.ID)
			}
		}
	}
	if len(e.Groups) == 0 || len(e.Groups) > maxGroupsPerENI {
		return fmt.Errorf("needs 1 to %d security groups, has %d", maxGroupsPerENI, len(e.Groups))
	}
	for _, id := range e.Groups {
		g := a.group(id)
		if g == nil {
			return fmt.Errorf("security group %q does not exist", id)
		}
		if g.VPCID != subnet.VPCID {
			return fmt.Errorf("security group %s is in %s, the subnet in %s", id, g.VPCID, subnet.VPCID)
		}
	}
	return nil
}

// parseAWSPrefix parses a CIDR of the given family (IPv6 or not).
func parseAWSPrefix(s string, v6 bool) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, err
	}
	if p.Addr().Is6() != v6 {
		return p, fmt.Errorf("wrong address family")
	}
	return p.Masked(), nil
}

func cidrWithin(inner, outer string, v6 bool) error {
	in, err := parseAWSPrefix(inner, v6)
	if err != nil {
		return fmt.Errorf("%q: %w", inner, err)
	}
	out, err := parseAWSPrefix(outer, v6)
	if err != nil || !out.Contains(in.Addr()) || in.Bits() < out.Bits() {
		return fmt.Errorf("%q is not inside the VPC's %q", inner, outer)
	}
	return nil
}

var ec2InstanceStates = map[string]int{
	"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80,
}

// byID finds an element by ID. Lookups scan: worlds are small, and slices
// keep EC2's stable output order.
func byID[T any](items []T, id string, idOf func(*T) string) *T {
	for i := range items {
		if idOf(&items[i]) == id {
			return &items[i]
		}
	}
	return nil
}

func (a *awsState) vpc(id string) *AWSVPC {
	return byID(a.fx.VPCs, id, func(x *AWSVPC) string { return x.ID })
}

func (a *awsState) subnet(id string) *AWSSubnet {
	return byID(a.fx.Subnets, id, func(x *AWSSubnet) string { return x.ID })
}

func (a *awsState) instance(id string) *AWSInstance {
	return byID(a.fx.Instances, id, func(x *AWSInstance) string { return x.ID })
}

func (a *awsState) eni(id string) *AWSNetworkInterface {
	return byID(a.fx.NetworkInterfaces, id, func(x *AWSNetworkInterface) string { return x.ID })
}

func (a *awsState) group(id string) *AWSSecurityGroup {
	return byID(a.fx.SecurityGroups, id, func(x *AWSSecurityGroup) string { return x.ID })
}

func (a *awsState) defaultVPC() *AWSVPC {
	for i := range a.fx.VPCs {
		if a.fx.VPCs[i].Default {
			return &a.fx.VPCs[i]
		}
	}
	return nil
}

func (a *awsState) primaryENI(instanceID string) *AWSNetworkInterface {
	for i := range a.fx.NetworkInterfaces {
		if e := &a.fx.NetworkInterfaces[i]; e.InstanceID == instanceID && e.DeviceIndex == 0 {
			return e
		}
	}
	return nil
}

// rule finds a rule by ID in any group.
func (a *awsState) rule(id string) (*AWSSecurityGroup, *AWSRule) {
	for i := range a.fx.SecurityGroups {
		g := &a.fx.SecurityGroups[i]
		for j := range g.Ingress {
			if g.Ingress[j].ID == id {
				return g, &g.Ingress[j]
			}
		}
		for j := range g.Egress {
			if g.Egress[j].ID == id {
				return g, &g.Egress[j]
			}
		}
	}
	return nil, nil
}
