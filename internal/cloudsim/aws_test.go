package cloudsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// IDs from testdata/aws_fixture.json.
const (
	webInstance = "i-0abc1234def567890"
	dbInstance  = "i-0def4567abc890123"
	webENI      = "eni-0a0a0a0a0a0a0a0a1"
	backendENI  = "eni-0b0b0b0b0b0b0b0b2"
	dbENI       = "eni-0c0c0c0c0c0c0c0c3"
	prodVPC     = "vpc-0a1b2c3d4e5f60718"
	prodDefSG   = "sg-0d1e2f3a4b5c6d7e8"
	webSG       = "sg-0b5e3a1f2c4d6e8a0"
	dbSG        = "sg-0c7d9e1f3a5b7c9d1"
	legacySG    = "sg-0e9f8a7b6c5d4e3f2"
)

// bg is the context of every test call.
var bg = context.Background()

type awsWorld struct {
	sim *Sim
	url string
	ec2 *ec2.Client
}

func newAWSWorld(t *testing.T) *awsWorld {
	t.Helper()
	fx, err := LoadFixture("testdata/aws_fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	return newAWSWorldFrom(t, fx)
}

func newAWSWorldFrom(t *testing.T, fx *Fixture) *awsWorld {
	t.Helper()
	sim, err := New(fx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &awsWorld{sim: sim, url: srv.URL, ec2: ec2Client(srv.URL, "eu-west-1")}
}

func awsConfig(url, region string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		BaseEndpoint: aws.String(url),
		HTTPClient:   &http.Client{Transport: opaqueBody{http.DefaultTransport}},
	}
}

// opaqueBody hides the request body's WriteTo from net/http. smithy-go closes
// the request body as soon as the response headers arrive, and its body's
// WriteTo then returns io.EOF as an error; net/http's writer goroutine, if it
// has not yet made its final "no extra bytes?" read, takes that error as a
// failed write and closes the connection under the response being read. A
// loopback server answers fast enough for that race to happen under load
// (the SDK then retries, and a retried write fails as a duplicate); Read
// after close returns a plain io.EOF, which net/http accepts.
type opaqueBody struct{ http.RoundTripper }

func (o opaqueBody) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = struct{ io.ReadCloser }{r.Body}
	}
	return o.RoundTripper.RoundTrip(r)
}

func ec2Client(url, region string, opts ...func(*ec2.Options)) *ec2.Client {
	return ec2.NewFromConfig(awsConfig(url, region), opts...)
}

func noRetries(o *ec2.Options) { o.RetryMaxAttempts = 1 }

// wantAPIError asserts err is the EC2 error code with the HTTP status.
func wantAPIError(t *testing.T, err error, code string, status int) {
	t.Helper()
	var api smithy.APIError
	if !errors.As(err, &api) {
		t.Fatalf("want API error %s, got %v", code, err)
	}
	if api.ErrorCode() != code {
		t.Fatalf("want error code %s, got %s: %s", code, api.ErrorCode(), api.ErrorMessage())
	}
	var resp *smithyhttp.ResponseError
	if !errors.As(err, &resp) || resp.HTTPStatusCode() != status {
		t.Fatalf("%s: want HTTP %d, got %v", code, status, err)
	}
}

func tcpPerm(port int32, cidrs ...string) types.IpPermission {
	p := types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(port), ToPort: aws.Int32(port)}
	for _, c := range cidrs {
		p.IpRanges = append(p.IpRanges, types.IpRange{CidrIp: aws.String(c)})
	}
	return p
}

func (w *awsWorld) rules(t *testing.T, groupID string) []types.SecurityGroupRule {
	t.Helper()
	out, err := w.ec2.DescribeSecurityGroupRules(bg, &ec2.DescribeSecurityGroupRulesInput{
		Filters: []types.Filter{{Name: aws.String("group-id"), Values: []string{groupID}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.SecurityGroupRules
}

func ingressCount(rules []types.SecurityGroupRule) int {
	n := 0
	for _, r := range rules {
		if !aws.ToBool(r.IsEgress) {
			n++
		}
	}
	return n
}

func (w *awsWorld) eniGroups(t *testing.T, eni string) []string {
	t.Helper()
	out, err := w.ec2.DescribeNetworkInterfaces(bg, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{eni}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range out.NetworkInterfaces[0].Groups {
		ids = append(ids, aws.ToString(g.GroupId))
	}
	return ids
}

func TestAWSInstanceToENIsToGroups(t *testing.T) {
	w := newAWSWorld(t)
	out, err := w.ec2.DescribeInstances(bg, &ec2.DescribeInstancesInput{InstanceIds: []string{webInstance}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("want one reservation with one instance, got %+v", out.Reservations)
	}
	inst := out.Reservations[0].Instances[0]
	if aws.ToString(inst.InstanceId) != webInstance || inst.State.Name != types.InstanceStateNameRunning ||
		aws.ToInt32(inst.State.Code) != 16 || aws.ToString(inst.VpcId) != prodVPC ||
		aws.ToString(inst.SubnetId) != "subnet-0123456789abcdef0" || aws.ToString(inst.PrivateIpAddress) != "10.1.1.10" ||
		inst.InstanceType != types.InstanceTypeT3Small {
		t.Fatalf("unexpected instance %+v", inst)
	}
	if len(inst.Tags) != 2 || aws.ToString(inst.Tags[0].Key) != "Name" || aws.ToString(inst.Tags[0].Value) != "web-1" {
		t.Fatalf("tags: %+v", inst.Tags)
	}
	if len(inst.NetworkInterfaces) != 2 {
		t.Fatalf("want 2 ENIs, got %d", len(inst.NetworkInterfaces))
	}
	primary, backend := inst.NetworkInterfaces[0], inst.NetworkInterfaces[1]
	if aws.ToString(primary.NetworkInterfaceId) != webENI || aws.ToInt32(primary.Attachment.DeviceIndex) != 0 ||
		aws.ToString(primary.PrivateIpAddress) != "10.1.1.10" || len(primary.Ipv6Addresses) != 1 ||
		aws.ToString(primary.Ipv6Addresses[0].Ipv6Address) != "2001:db8:1:1::10" ||
		len(primary.PrivateIpAddresses) != 1 || !aws.ToBool(primary.PrivateIpAddresses[0].Primary) {
		t.Fatalf("primary ENI: %+v", primary)
	}
	if aws.ToString(backend.NetworkInterfaceId) != backendENI || aws.ToInt32(backend.Attachment.DeviceIndex) != 1 {
		t.Fatalf("backend ENI: %+v", backend)
	}
	var groupIDs []string
	for _, eni := range inst.NetworkInterfaces {
		for _, g := range eni.Groups {
			groupIDs = append(groupIDs, aws.ToString(g.GroupId))
		}
	}
	if want := []string{webSG, prodDefSG, dbSG}; !slices.Equal(groupIDs, want) {
		t.Fatalf("ENI groups %v, want %v", groupIDs, want)
	}
	// The instance-level list is the primary ENI's only, as in EC2.
	if len(inst.SecurityGroups) != 2 || aws.ToString(inst.SecurityGroups[0].GroupName) != "web" {
		t.Fatalf("instance groups: %+v", inst.SecurityGroups)
	}

	// The same ENIs by filter, and a filter that finds a shared group's other ENI.
	enis, err := w.ec2.DescribeNetworkInterfaces(bg, &ec2.DescribeNetworkInterfacesInput{
		Filters: []types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{webInstance}}},
	})
	if err != nil || len(enis.NetworkInterfaces) != 2 {
		t.Fatalf("by instance: %v %+v", err, enis)
	}
	if e := enis.NetworkInterfaces[0]; e.Status != types.NetworkInterfaceStatusInUse ||
		aws.ToString(e.Attachment.InstanceId) != webInstance || aws.ToString(e.AvailabilityZone) != "eu-west-1a" {
		t.Fatalf("ENI: %+v", e)
	}
	shared, err := w.ec2.DescribeNetworkInterfaces(bg, &ec2.DescribeNetworkInterfacesInput{
		Filters: []types.Filter{{Name: aws.String("group-id"), Values: []string{webSG}}},
	})
	if err != nil || len(shared.NetworkInterfaces) != 2 || shared.NetworkInterfaces[1].Status != types.NetworkInterfaceStatusAvailable {
		t.Fatalf("by group: %v %+v", err, shared)
	}

	groups, err := w.ec2.DescribeSecurityGroups(bg, &ec2.DescribeSecurityGroupsInput{GroupIds: groupIDs})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups.SecurityGroups) != 3 {
		t.Fatalf("want 3 groups, got %d", len(groups.SecurityGroups))
	}
	web := groups.SecurityGroups[1]
	if aws.ToString(web.GroupId) != webSG || aws.ToString(web.VpcId) != prodVPC || aws.ToString(web.OwnerId) != "123456789012" {
		t.Fatalf("web group: %+v", web)
	}
	// Port 22 from IPv4 and IPv6 folds into one permission, descriptions kept per source.
	ssh := web.IpPermissions[0]
	if aws.ToString(ssh.IpProtocol) != "tcp" || aws.ToInt32(ssh.FromPort) != 22 || len(ssh.IpRanges) != 1 || len(ssh.Ipv6Ranges) != 1 ||
		aws.ToString(ssh.IpRanges[0].Description) != "ssh from anywhere" || aws.ToString(ssh.Ipv6Ranges[0].CidrIpv6) != "::/0" {
		t.Fatalf("ssh permission: %+v", ssh)
	}
	if len(web.IpPermissions) != 3 || len(web.IpPermissionsEgress) != 1 {
		t.Fatalf("web permissions: %+v", web.IpPermissions)
	}
	// All protocols: no ports in the IpPermission view.
	if egress := web.IpPermissionsEgress[0]; aws.ToString(egress.IpProtocol) != "-1" || egress.FromPort != nil {
		t.Fatalf("egress: %+v", egress)
	}
	db := groups.SecurityGroups[2]
	if pair := db.IpPermissions[0].UserIdGroupPairs; len(pair) != 1 || aws.ToString(pair[0].GroupId) != webSG ||
		aws.ToString(pair[0].Description) != "postgres from web" {
		t.Fatalf("db group pair: %+v", db.IpPermissions[0])
	}
	if pl := db.IpPermissions[1].PrefixListIds; len(pl) != 1 || aws.ToString(pl[0].PrefixListId) != "pl-6da54004" {
		t.Fatalf("db prefix list: %+v", db.IpPermissions[1])
	}
}

func TestAWSAuthorizeRevokeRoundTrip(t *testing.T) {
	w := newAWSWorld(t)
	before := w.rules(t, dbSG)
	auth, err := w.ec2.AuthorizeSecurityGroupIngress(bg, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: aws.String(dbSG),
		IpPermissions: []types.IpPermission{
			{
				IpProtocol: aws.String("6"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
				IpRanges: []types.IpRange{
					{CidrIp: aws.String("203.0.113.7/32"), Description: aws.String("jit alice until=2030-01-01T10:00:00Z")},
					{CidrIp: aws.String("198.51.100.77/24")}, // host bits: EC2 masks them
				},
				Ipv6Ranges:       []types.Ipv6Range{{CidrIpv6: aws.String("2001:DB8:ABCD::/48"), Description: aws.String("v6")}},
				PrefixListIds:    []types.PrefixListId{{PrefixListId: aws.String("pl-0123456789abcdef0"), Description: aws.String("pl")}},
				UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String(legacySG), Description: aws.String("group")}},
			},
			{IpProtocol: aws.String("icmp"), FromPort: aws.Int32(8), ToPort: aws.Int32(-1), IpRanges: []types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}},
		},
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroupRule, Tags: []types.Tag{{Key: aws.String("jit"), Value: aws.String("grant")}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(auth.Return) || len(auth.SecurityGroupRules) != 6 {
		t.Fatalf("want 6 rules (one per source), got %+v", auth.SecurityGroupRules)
	}
	sgr := regexp.MustCompile(`^sgr-[0-9a-f]{17}$`)
	byID := map[string]types.SecurityGroupRule{}
	for _, r := range auth.SecurityGroupRules {
		id := aws.ToString(r.SecurityGroupRuleId)
		if !sgr.MatchString(id) || aws.ToString(r.GroupId) != dbSG || aws.ToBool(r.IsEgress) || len(r.Tags) != 1 {
			t.Fatalf("rule: %+v", r)
		}
		byID[id] = r
	}
	got := auth.SecurityGroupRules
	if aws.ToString(got[0].IpProtocol) != "tcp" || aws.ToString(got[0].CidrIpv4) != "203.0.113.7/32" ||
		aws.ToString(got[0].Description) != "jit alice until=2030-01-01T10:00:00Z" ||
		aws.ToString(got[1].CidrIpv4) != "198.51.100.0/24" || aws.ToString(got[2].CidrIpv6) != "2001:db8:abcd::/48" ||
		aws.ToString(got[3].PrefixListId) != "pl-0123456789abcdef0" || aws.ToString(got[4].ReferencedGroupInfo.GroupId) != legacySG ||
		aws.ToString(got[5].IpProtocol) != "icmp" || aws.ToInt32(got[5].FromPort) != 8 || aws.ToInt32(got[5].ToPort) != -1 {
		t.Fatalf("normalised rules: %+v", got)
	}

	// DescribeSecurityGroupRules returns them unchanged, beside the old ones.
	after := w.rules(t, dbSG)
	if len(after) != len(before)+6 {
		t.Fatalf("want %d rules, got %d", len(before)+6, len(after))
	}
	for _, r := range after {
		if want, ok := byID[aws.ToString(r.SecurityGroupRuleId)]; ok && !reflect.DeepEqual(r, want) {
			t.Fatalf("described %+v, authorised %+v", r, want)
		}
	}

	// Revoke two by permission (no descriptions needed) and the rest by ID.
	rev, err := w.ec2.RevokeSecurityGroupIngress(bg, &ec2.RevokeSecurityGroupIngressInput{
		GroupId: aws.String(dbSG),
		IpPermissions: []types.IpPermission{
			tcpPerm(22, "203.0.113.7/32", "198.51.100.0/24"),
		},
	})
	if err != nil || len(rev.RevokedSecurityGroupRules) != 2 || len(rev.UnknownIpPermissions) != 0 {
		t.Fatalf("revoke by permission: %v %+v", err, rev)
	}
	if r := rev.RevokedSecurityGroupRules[0]; aws.ToString(r.SecurityGroupRuleId) != aws.ToString(got[0].SecurityGroupRuleId) ||
		aws.ToString(r.Description) != "jit alice until=2030-01-01T10:00:00Z" {
		t.Fatalf("revoked: %+v", r)
	}
	var rest []string
	for _, r := range got[2:] {
		rest = append(rest, aws.ToString(r.SecurityGroupRuleId))
	}
	rev, err = w.ec2.RevokeSecurityGroupIngress(bg, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(dbSG), SecurityGroupRuleIds: rest})
	if err != nil || len(rev.RevokedSecurityGroupRules) != 4 {
		t.Fatalf("revoke by ID: %v %+v", err, rev)
	}
	if final := w.rules(t, dbSG); !reflect.DeepEqual(final, before) {
		t.Fatalf("after revoking everything added:\n%+v\nwant\n%+v", final, before)
	}
}

func TestAWSErrorCodes(t *testing.T) {
	w := newAWSWorld(t)
	ruleCount := len(w.rules(t, dbSG))
	cases := []struct {
		name string
		call func(c *ec2.Client) error
		code string
	}{
		{"unknown instance", func(c *ec2.Client) error {
			_, err := c.DescribeInstances(bg, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
			return err
		}, "InvalidInstanceID.NotFound"},
		{"malformed instance", func(c *ec2.Client) error {
			_, err := c.DescribeInstances(bg, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-nope"}})
			return err
		}, "InvalidInstanceID.Malformed"},
		{"unknown filter", func(c *ec2.Client) error {
			_, err := c.DescribeInstances(bg, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("color"), Values: []string{"red"}}}})
			return err
		}, "InvalidParameterValue"},
		{"dry run", func(c *ec2.Client) error {
			_, err := c.DescribeInstances(bg, &ec2.DescribeInstancesInput{DryRun: aws.Bool(true)})
			return err
		}, "DryRunOperation"},
		{"unknown ENI", func(c *ec2.Client) error {
			_, err := c.DescribeNetworkInterfaces(bg, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{"eni-0123456789abcdef0"}})
			return err
		}, "InvalidNetworkInterfaceID.NotFound"},
		{"unknown group", func(c *ec2.Client) error {
			_, err := c.DescribeSecurityGroups(bg, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"sg-0123456789abcdef0"}})
			return err
		}, "InvalidGroup.NotFound"},
		{"malformed group", func(c *ec2.Client) error {
			_, err := c.DescribeSecurityGroups(bg, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"web"}})
			return err
		}, "InvalidGroupId.Malformed"},
		{"unknown rule", func(c *ec2.Client) error {
			_, err := c.DescribeSecurityGroupRules(bg, &ec2.DescribeSecurityGroupRulesInput{SecurityGroupRuleIds: []string{"sgr-0123456789abcdef0"}})
			return err
		}, "InvalidSecurityGroupRuleId.NotFound"},
		{"duplicate rule, with a new one beside it", func(c *ec2.Client) error {
			_, err := c.AuthorizeSecurityGroupIngress(bg, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(webSG),
				IpPermissions: []types.IpPermission{tcpPerm(22, "192.0.2.0/24", "0.0.0.0/0")}})
			return err
		}, "InvalidPermission.Duplicate"},
		{"same permission twice", func(c *ec2.Client) error {
			_, err := c.AuthorizeSecurityGroupIngress(bg, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(dbSG),
				IpPermissions: []types.IpPermission{tcpPerm(80, "192.0.2.0/24"), tcpPerm(80, "192.0.2.0/24")}})
			return err
		}, "InvalidParameterValue"},
		{"tcp without ports", func(c *ec2.Client) error {
			_, err := c.AuthorizeSecurityGroupIngress(bg, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(dbSG),
				IpPermissions: []types.IpPermission{{IpProtocol: aws.String("tcp"), IpRanges: []types.IpRange{{CidrIp: aws.String("192.0.2.0/24")}}}}})
			return err
		}, "InvalidParameterValue"},
		{"description outside EC2's character set", func(c *ec2.Client) error {
			p := tcpPerm(80, "192.0.2.0/24")
			p.IpRanges[0].Description = aws.String("alice's grant")
			_, err := c.AuthorizeSecurityGroupIngress(bg, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(dbSG), IpPermissions: []types.IpPermission{p}})
			return err
		}, "InvalidParameterValue"},
		{"unknown referenced group", func(c *ec2.Client) error {
			_, err := c.AuthorizeSecurityGroupIngress(bg, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(dbSG),
				IpPermissions: []types.IpPermission{{IpProtocol: aws.String("-1"), UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String("sg-0123456789abcdef0")}}}}})
			return err
		}, "InvalidGroup.NotFound"},
		{"revoke a rule that is not there (non-default VPC)", func(c *ec2.Client) error {
			_, err := c.RevokeSecurityGroupIngress(bg, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(webSG),
				IpPermissions: []types.IpPermission{tcpPerm(22, "0.0.0.0/0", "192.0.2.0/24")}})
			return err
		}, "InvalidPermission.NotFound"},
		{"revoke an unknown rule ID", func(c *ec2.Client) error {
			_, err := c.RevokeSecurityGroupIngress(bg, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(webSG), SecurityGroupRuleIds: []string{"sgr-0123456789abcdef0"}})
			return err
		}, "InvalidSecurityGroupRuleId.NotFound"},
		{"create a duplicate group", func(c *ec2.Client) error {
			_, err := c.CreateSecurityGroup(bg, &ec2.CreateSecurityGroupInput{GroupName: aws.String("web"), Description: aws.String("x"), VpcId: aws.String(prodVPC)})
			return err
		}, "InvalidGroup.Duplicate"},
		{"create default", func(c *ec2.Client) error {
			_, err := c.CreateSecurityGroup(bg, &ec2.CreateSecurityGroupInput{GroupName: aws.String("default"), Description: aws.String("x"), VpcId: aws.String(prodVPC)})
			return err
		}, "InvalidGroup.Reserved"},
		{"create in an unknown VPC", func(c *ec2.Client) error {
			_, err := c.CreateSecurityGroup(bg, &ec2.CreateSecurityGroupInput{GroupName: aws.String("x"), Description: aws.String("x"), VpcId: aws.String("vpc-0123456789abcdef0")})
			return err
		}, "InvalidVpcID.NotFound"},
		{"delete an unknown group", func(c *ec2.Client) error {
			_, err := c.DeleteSecurityGroup(bg, &ec2.DeleteSecurityGroupInput{GroupId: aws.String("sg-0123456789abcdef0")})
			return err
		}, "InvalidGroup.NotFound"},
		{"delete a group referenced by another group's rule", func(c *ec2.Client) error {
			_, err := c.DeleteSecurityGroup(bg, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(legacySG)})
			if err == nil {
				t.Fatal("legacy group is attached; delete must fail")
			}
			_, err = c.DeleteSecurityGroup(bg, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(webSG)})
			return err
		}, "DependencyViolation"},
		{"delete default", func(c *ec2.Client) error {
			_, err := c.DeleteSecurityGroup(bg, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(prodDefSG)})
			return err
		}, "CannotDelete"},
		{"modify an unknown ENI", func(c *ec2.Client) error {
			_, err := c.ModifyNetworkInterfaceAttribute(bg, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String("eni-0123456789abcdef0"), Groups: []string{webSG}})
			return err
		}, "InvalidNetworkInterfaceID.NotFound"},
		{"attach an unknown group", func(c *ec2.Client) error {
			_, err := c.ModifyNetworkInterfaceAttribute(bg, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String(webENI), Groups: []string{webSG, "sg-0123456789abcdef0"}})
			return err
		}, "InvalidGroup.NotFound"},
		{"attach a group of another VPC", func(c *ec2.Client) error {
			_, err := c.ModifyNetworkInterfaceAttribute(bg, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String(webENI), Groups: []string{legacySG}})
			return err
		}, "InvalidParameter"},
		{"tag an unknown instance", func(c *ec2.Client) error {
			_, err := c.CreateTags(bg, &ec2.CreateTagsInput{Resources: []string{webSG, "i-0123456789abcdef0"}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
			return err
		}, "InvalidInstanceID.NotFound"},
		{"reserved tag key", func(c *ec2.Client) error {
			_, err := c.CreateTags(bg, &ec2.CreateTagsInput{Resources: []string{webSG}, Tags: []types.Tag{{Key: aws.String("aws:x"), Value: aws.String("v")}}})
			return err
		}, "InvalidParameterValue"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantAPIError(t, tc.call(ec2Client(w.url, "eu-west-1", noRetries)), tc.code, dryRunStatus(tc.code))
		})
	}
	// Failed calls changed nothing.
	if n := len(w.rules(t, dbSG)); n != ruleCount {
		t.Fatalf("db group has %d rules after failed calls, want %d", n, ruleCount)
	}
	if web := w.rules(t, webSG); ingressCount(web) != 4 {
		t.Fatalf("web group has %d inbound rules after failed calls, want 4", ingressCount(web))
	}
	if got := w.eniGroups(t, webENI); !slices.Equal(got, []string{webSG, prodDefSG}) {
		t.Fatalf("ENI groups changed by failed calls: %v", got)
	}

	t.Run("another region", func(t *testing.T) {
		_, err := ec2Client(w.url, "us-east-1", noRetries).DescribeInstances(bg, &ec2.DescribeInstancesInput{})
		wantAPIError(t, err, "AuthFailure", http.StatusUnauthorized)
	})
	t.Run("unknown action", func(t *testing.T) {
		resp, err := http.PostForm(w.url, url.Values{"Action": {"LaunchRockets"}, "Version": {"2016-11-15"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body.String(), "<Code>InvalidAction</Code>") {
			t.Fatalf("%d %s", resp.StatusCode, body.String())
		}
	})
}

func dryRunStatus(code string) int {
	if code == "DryRunOperation" {
		return http.StatusPreconditionFailed
	}
	return http.StatusBadRequest
}

func TestAWSRevokeUnknownInDefaultVPC(t *testing.T) {
	w := newAWSWorld(t)
	out, err := w.ec2.RevokeSecurityGroupIngress(bg, &ec2.RevokeSecurityGroupIngressInput{
		GroupId:       aws.String(legacySG),
		IpPermissions: []types.IpPermission{tcpPerm(3389, "0.0.0.0/0", "192.0.2.0/24")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(out.Return) || len(out.RevokedSecurityGroupRules) != 1 || len(out.UnknownIpPermissions) != 1 ||
		aws.ToString(out.UnknownIpPermissions[0].IpRanges[0].CidrIp) != "192.0.2.0/24" {
		t.Fatalf("default VPC revoke: %+v", out)
	}
	if n := ingressCount(w.rules(t, legacySG)); n != 0 {
		t.Fatalf("legacy group still has %d inbound rules", n)
	}
}

func TestAWSRulesPerGroupLimit(t *testing.T) {
	w := newAWSWorld(t)
	sg, err := w.ec2.CreateSecurityGroup(bg, &ec2.CreateSecurityGroupInput{GroupName: aws.String("jit-limit"), Description: aws.String("limit test"), VpcId: aws.String(prodVPC)})
	if err != nil {
		t.Fatal(err)
	}
	authorize := func(perms ...types.IpPermission) error {
		_, err := w.ec2.AuthorizeSecurityGroupIngress(bg, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: perms})
		return err
	}
	var cidrs []string
	for i := range 61 {
		cidrs = append(cidrs, fmt.Sprintf("10.9.%d.0/24", i))
	}
	if err := authorize(tcpPerm(22, cidrs[:59]...)); err != nil {
		t.Fatal(err)
	}
	// Two more would make 61: the call fails and adds neither.
	wantAPIError(t, authorize(tcpPerm(22, cidrs[59:61]...)), "RulesPerSecurityGroupLimitExceeded", http.StatusBadRequest)
	if n := ingressCount(w.rules(t, aws.ToString(sg.GroupId))); n != 59 {
		t.Fatalf("want 59 inbound rules after the failed call, got %d", n)
	}
	if err := authorize(tcpPerm(22, cidrs[59])); err != nil {
		t.Fatal(err)
	}
	wantAPIError(t, authorize(tcpPerm(23, "192.0.2.0/24")), "RulesPerSecurityGroupLimitExceeded", http.StatusBadRequest)
	// IPv6 rules have their own quota, but a group reference counts in both.
	if err := authorize(types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
		Ipv6Ranges: []types.Ipv6Range{{CidrIpv6: aws.String("2001:db8::/32")}}}); err != nil {
		t.Fatalf("IPv6 rule on a group full of IPv4 rules: %v", err)
	}
	wantAPIError(t, authorize(types.IpPermission{IpProtocol: aws.String("-1"), UserIdGroupPairs: []types.UserIdGroupPair{{GroupId: aws.String(webSG)}}}),
		"RulesPerSecurityGroupLimitExceeded", http.StatusBadRequest)
	// Outbound rules are not inbound rules: the default egress rule is still there.
	if rules := w.rules(t, aws.ToString(sg.GroupId)); len(rules) != 62 || ingressCount(rules) != 61 {
		t.Fatalf("want 61 inbound + 1 outbound, got %d (%d inbound)", len(rules), ingressCount(rules))
	}
}

func TestAWSENIGroups(t *testing.T) {
	w := newAWSWorld(t)
	var created []string
	for i := range 4 {
		out, err := w.ec2.CreateSecurityGroup(bg, &ec2.CreateSecurityGroupInput{
			GroupName: aws.String(fmt.Sprintf("jit-grant-%d", i)), Description: aws.String("grant"), VpcId: aws.String(prodVPC),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: []types.Tag{{Key: aws.String("jit"), Value: aws.String("grant")}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^sg-[0-9a-f]{17}$`).MatchString(aws.ToString(out.GroupId)) || len(out.Tags) != 1 {
			t.Fatalf("created group: %+v", out)
		}
		created = append(created, aws.ToString(out.GroupId))
	}
	// A new group has EC2's default allow-all egress rule and no inbound rules.
	if rules := w.rules(t, created[0]); len(rules) != 1 || !aws.ToBool(rules[0].IsEgress) ||
		aws.ToString(rules[0].IpProtocol) != "-1" || aws.ToString(rules[0].CidrIpv4) != "0.0.0.0/0" {
		t.Fatalf("new group's rules: %+v", rules)
	}

	modify := func(groups ...string) error {
		_, err := w.ec2.ModifyNetworkInterfaceAttribute(bg, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String(webENI), Groups: groups})
		return err
	}
	six := append([]string{webSG, prodDefSG}, created...)
	wantAPIError(t, modify(six...), "SecurityGroupsPerInterfaceLimitExceeded", http.StatusBadRequest)
	if err := modify(six[:5]...); err != nil {
		t.Fatal(err)
	}
	if got := w.eniGroups(t, webENI); !slices.Equal(got, six[:5]) {
		t.Fatalf("ENI groups %v, want %v", got, six[:5])
	}
	// The list is replaced, not merged.
	if err := modify(created[3]); err != nil {
		t.Fatal(err)
	}
	if got := w.eniGroups(t, webENI); !slices.Equal(got, []string{created[3]}) {
		t.Fatalf("ENI groups %v after replacing", got)
	}

	// An attached group cannot be deleted until it is detached.
	deleteGroup := func() error {
		_, err := w.ec2.DeleteSecurityGroup(bg, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(created[3])})
		return err
	}
	wantAPIError(t, deleteGroup(), "DependencyViolation", http.StatusBadRequest)
	if err := modify(webSG, prodDefSG); err != nil {
		t.Fatal(err)
	}
	if err := deleteGroup(); err != nil {
		t.Fatalf("delete after detaching: %v", err)
	}
	_, err := w.ec2.DescribeSecurityGroups(bg, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{created[3]}})
	wantAPIError(t, err, "InvalidGroup.NotFound", http.StatusBadRequest)
	tagged, err := w.ec2.DescribeSecurityGroups(bg, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{{Name: aws.String("tag:jit"), Values: []string{"gr*"}}}})
	if err != nil || len(tagged.SecurityGroups) != 3 {
		t.Fatalf("groups tagged jit=gr*: %v %d", err, len(tagged.SecurityGroups))
	}
}

func TestAWSTags(t *testing.T) {
	w := newAWSWorld(t)
	ssh := "sgr-0123abcd4567ef890"
	resources := []string{dbInstance, dbENI, dbSG, ssh, prodVPC}
	if _, err := w.ec2.CreateTags(bg, &ec2.CreateTagsInput{Resources: resources, Tags: []types.Tag{
		{Key: aws.String("jit-policy"), Value: aws.String("prod-web")}, {Key: aws.String("empty"), Value: aws.String("")},
	}}); err != nil {
		t.Fatal(err)
	}
	inst, err := w.ec2.DescribeInstances(bg, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag:jit-policy"), Values: []string{"prod-*"}}}})
	if err != nil || len(inst.Reservations) != 1 || aws.ToString(inst.Reservations[0].Instances[0].InstanceId) != dbInstance {
		t.Fatalf("instances tagged: %v %+v", err, inst)
	}
	rules, err := w.ec2.DescribeSecurityGroupRules(bg, &ec2.DescribeSecurityGroupRulesInput{Filters: []types.Filter{{Name: aws.String("tag-key"), Values: []string{"jit-policy"}}}})
	if err != nil || len(rules.SecurityGroupRules) != 1 || aws.ToString(rules.SecurityGroupRules[0].SecurityGroupRuleId) != ssh {
		t.Fatalf("rules tagged: %v %+v", err, rules)
	}

	deleteTags := func(tags ...types.Tag) {
		t.Helper()
		if _, err := w.ec2.DeleteTags(bg, &ec2.DeleteTagsInput{Resources: resources, Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	deleteTags(types.Tag{Key: aws.String("jit-policy"), Value: aws.String("other")}) // value differs: kept
	deleteTags(types.Tag{Key: aws.String("empty"), Value: aws.String("")})           // empty value matches only empty
	enis, err := w.ec2.DescribeNetworkInterfaces(bg, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{dbENI}})
	if err != nil || len(enis.NetworkInterfaces[0].TagSet) != 1 || aws.ToString(enis.NetworkInterfaces[0].TagSet[0].Key) != "jit-policy" {
		t.Fatalf("ENI tags: %v %+v", err, enis)
	}
	deleteTags(types.Tag{Key: aws.String("jit-policy")}) // no value: deleted whatever it is
	groups, err := w.ec2.DescribeSecurityGroups(bg, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{dbSG}})
	if err != nil || len(groups.SecurityGroups[0].Tags) != 0 {
		t.Fatalf("group tags: %v %+v", err, groups)
	}
	inst, err = w.ec2.DescribeInstances(bg, &ec2.DescribeInstancesInput{InstanceIds: []string{webInstance}})
	if err != nil || len(inst.Reservations[0].Instances[0].Tags) != 2 {
		t.Fatalf("untouched instance lost tags: %v", err)
	}
}

func TestAWSGetCallerIdentity(t *testing.T) {
	w := newAWSWorld(t)
	client := sts.NewFromConfig(awsConfig(w.url, "eu-west-1"))
	out, err := client.GetCallerIdentity(bg, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Account) != "123456789012" || aws.ToString(out.Arn) != "arn:aws:iam::123456789012:user/operator" ||
		!regexp.MustCompile(`^AIDA[0-9A-F]{17}$`).MatchString(aws.ToString(out.UserId)) {
		t.Fatalf("identity: %+v", out)
	}
	if n := w.sim.Calls()["GetCallerIdentity"]; n != 1 {
		t.Fatalf("GetCallerIdentity counted %d times", n)
	}
	if got := stsUserID("arn:aws:sts::123456789012:assumed-role/ci/run-42", "123456789012"); !regexp.MustCompile(`^AROA[0-9A-F]{17}:run-42$`).MatchString(got) {
		t.Fatalf("assumed-role user ID %q", got)
	}
}

func TestAWSInjectedFaults(t *testing.T) {
	w := newAWSWorld(t)
	grant := &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(dbSG), IpPermissions: []types.IpPermission{tcpPerm(22, "203.0.113.7/32")}}

	w.sim.InjectFault(Fault{Operation: "AuthorizeSecurityGroupIngress", FailNext: 1, Status: http.StatusServiceUnavailable, Code: "RequestLimitExceeded"})
	_, err := ec2Client(w.url, "eu-west-1", noRetries).AuthorizeSecurityGroupIngress(bg, grant)
	wantAPIError(t, err, "RequestLimitExceeded", http.StatusServiceUnavailable)
	if n := ingressCount(w.rules(t, dbSG)); n != 3 {
		t.Fatalf("a failed call added a rule: %d inbound", n)
	}
	// The SDK's own retry rides out a throttle.
	w.sim.ResetCalls()
	w.sim.InjectFault(Fault{Operation: "AuthorizeSecurityGroupIngress", FailNext: 1, Status: http.StatusServiceUnavailable, Code: "RequestLimitExceeded"})
	if _, err := w.ec2.AuthorizeSecurityGroupIngress(bg, grant); err != nil {
		t.Fatalf("with retries: %v", err)
	}
	if n := w.sim.Calls()["AuthorizeSecurityGroupIngress"]; n != 2 {
		t.Fatalf("want 2 calls (throttled, retried), got %d", n)
	}

	// Dropped after the write: the client sees an error, the rule exists, and
	// writing it again is a duplicate, which is how a retry learns it is done.
	second := &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String(dbSG), IpPermissions: []types.IpPermission{tcpPerm(3389, "203.0.113.7/32")}}
	w.sim.InjectFault(Fault{Operation: "AuthorizeSecurityGroupIngress", DropAfterWrite: 1})
	_, err = ec2Client(w.url, "eu-west-1", noRetries).AuthorizeSecurityGroupIngress(bg, second)
	var api smithy.APIError
	if err == nil || errors.As(err, &api) {
		t.Fatalf("want a transport error, got %v", err)
	}
	found := false
	for _, r := range w.rules(t, dbSG) {
		found = found || (aws.ToInt32(r.FromPort) == 3389 && aws.ToString(r.CidrIpv4) == "203.0.113.7/32")
	}
	if !found {
		t.Fatal("the dropped call's rule is missing")
	}
	_, err = w.ec2.AuthorizeSecurityGroupIngress(bg, second)
	wantAPIError(t, err, "InvalidPermission.Duplicate", http.StatusBadRequest)
}

func TestAWSSnapshotRoundTrip(t *testing.T) {
	w := newAWSWorld(t)
	sg, err := w.ec2.CreateSecurityGroup(bg, &ec2.CreateSecurityGroupInput{GroupName: aws.String("jit-alice"), Description: aws.String("grant"), VpcId: aws.String(prodVPC)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.ec2.AuthorizeSecurityGroupIngress(bg, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId,
		IpPermissions:     []types.IpPermission{tcpPerm(22, "203.0.113.7/32")},
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroupRule, Tags: []types.Tag{{Key: aws.String("end"), Value: aws.String("2030-01-01T00:00:00Z")}}}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ec2.ModifyNetworkInterfaceAttribute(bg, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String(dbENI), Groups: []string{dbSG, aws.ToString(sg.GroupId)}}); err != nil {
		t.Fatal(err)
	}

	// The dump is a fixture: it loads strictly and seeds an identical world.
	dump, err := json.Marshal(w.sim.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(dump))
	dec.DisallowUnknownFields()
	var fx Fixture
	if err := dec.Decode(&fx); err != nil {
		t.Fatal(err)
	}
	w2 := newAWSWorldFrom(t, &fx)
	if a, b := w.sim.Snapshot().AWS, w2.sim.Snapshot().AWS; !reflect.DeepEqual(a, b) {
		t.Fatalf("snapshot of the reloaded world differs:\n%+v\n%+v", a, b)
	}
	if a, b := w.rules(t, aws.ToString(sg.GroupId)), w2.rules(t, aws.ToString(sg.GroupId)); !reflect.DeepEqual(a, b) || len(a) != 2 {
		t.Fatalf("rules differ after reload:\n%+v\n%+v", a, b)
	}
	if got := w2.eniGroups(t, dbENI); !slices.Equal(got, []string{dbSG, aws.ToString(sg.GroupId)}) {
		t.Fatalf("ENI groups after reload: %v", got)
	}
	// New IDs in the reloaded world never repeat ones it was seeded with.
	sg2, err := w2.ec2.CreateSecurityGroup(bg, &ec2.CreateSecurityGroupInput{GroupName: aws.String("jit-bob"), Description: aws.String("grant"), VpcId: aws.String(prodVPC)})
	if err != nil || aws.ToString(sg2.GroupId) == aws.ToString(sg.GroupId) {
		t.Fatalf("second group: %v %v", err, sg2)
	}
	// Generated IDs depend only on the fixture and the call order.
	w3 := newAWSWorld(t)
	sg3, err := w3.ec2.CreateSecurityGroup(bg, &ec2.CreateSecurityGroupInput{GroupName: aws.String("other-name"), Description: aws.String("grant"), VpcId: aws.String(prodVPC)})
	if err != nil || aws.ToString(sg3.GroupId) != aws.ToString(sg.GroupId) {
		t.Fatalf("IDs not deterministic: %v vs %v (%v)", aws.ToString(sg3.GroupId), aws.ToString(sg.GroupId), err)
	}
}

func TestAWSPagination(t *testing.T) {
	w := newAWSWorld(t)
	all := w.rules(t, webSG)
	var paged []types.SecurityGroupRule
	pages := ec2.NewDescribeSecurityGroupRulesPaginator(w.ec2, &ec2.DescribeSecurityGroupRulesInput{MaxResults: aws.Int32(5)})
	n := 0
	for pages.HasMorePages() {
		page, err := pages.NextPage(bg)
		if err != nil {
			t.Fatal(err)
		}
		n++
		for _, r := range page.SecurityGroupRules {
			if aws.ToString(r.GroupId) == webSG {
				paged = append(paged, r)
			}
		}
	}
	if n < 3 || !reflect.DeepEqual(paged, all) {
		t.Fatalf("%d pages; paged rules differ from unpaged:\n%+v\n%+v", n, paged, all)
	}
	_, err := w.ec2.DescribeInstances(bg, &ec2.DescribeInstancesInput{InstanceIds: []string{webInstance}, MaxResults: aws.Int32(5)})
	wantAPIError(t, err, "InvalidParameterCombination", http.StatusBadRequest)
}

func TestAWSFixtureValidation(t *testing.T) {
	base := func() AWSFixture {
		fx, err := LoadFixture("testdata/aws_fixture.json")
		if err != nil {
			t.Fatal(err)
		}
		return fx.AWS
	}
	cases := []struct {
		name   string
		mutate func(*AWSFixture)
		want   string
	}{
		{"subnet in unknown VPC", func(f *AWSFixture) { f.Subnets[0].VPCID = "vpc-0123456789abcdef0" }, `vpc "vpc-0123456789abcdef0" does not exist`},
		{"malformed ID", func(f *AWSFixture) { f.Instances[0].ID = "i-web" }, `"i-web" is not a valid i- ID`},
		{"duplicate ID", func(f *AWSFixture) { f.SecurityGroups[1].ID = dbSG }, "used twice"},
		{"ENI outside its subnet", func(f *AWSFixture) { f.NetworkInterfaces[0].PrivateIP = "10.9.9.9" }, `private_ip "10.9.9.9" is not an address of subnet`},
		{"ENI with an unknown group", func(f *AWSFixture) { f.NetworkInterfaces[0].Groups = []string{"sg-0123456789abcdef0"} }, `security group "sg-0123456789abcdef0" does not exist`},
		{"ENI with a group of another VPC", func(f *AWSFixture) { f.NetworkInterfaces[0].Groups = []string{legacySG} }, "is in vpc-5e1f0c2a"},
		{"instance without a primary ENI", func(f *AWSFixture) { f.NetworkInterfaces[2].DeviceIndex = 1 }, "no network interface with device_index 0"},
		{"unknown protocol", func(f *AWSFixture) { f.SecurityGroups[1].Ingress[0].Protocol = "smtp" }, "Unknown protocol"},
		{"rule with two sources", func(f *AWSFixture) { f.SecurityGroups[1].Ingress[0].CIDRIPv6 = "::/0" }, "exactly one source"},
		{"duplicate rules", func(f *AWSFixture) {
			f.SecurityGroups[1].Ingress[2].FromPort, f.SecurityGroups[1].Ingress[2].ToPort = 22, 22
		}, "duplicates an earlier rule"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := base()
			tc.mutate(&fx)
			_, err := New(&Fixture{AWS: fx}, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
	// Defaults: an empty fixture is a valid, empty region.
	sim, err := New(nil, Options{})
	if err != nil || sim.aws.region() != "us-east-1" || sim.Snapshot().AWS.AccountID != "123456789012" {
		t.Fatalf("empty fixture: %v", err)
	}
}

func TestAWSOperationsListed(t *testing.T) {
	ops := Operations()
	for _, op := range []string{"DescribeInstances", "AuthorizeSecurityGroupIngress", "ModifyNetworkInterfaceAttribute", "GetCallerIdentity"} {
		if !slices.Contains(ops, op) {
			t.Fatalf("%s missing from Operations(): %v", op, ops)
		}
	}
}

func TestAWSTerminateInstances(t *testing.T) {
	w := newAWSWorld(t)
	out, err := w.ec2.TerminateInstances(bg, &ec2.TerminateInstancesInput{InstanceIds: []string{webInstance}})
	if err != nil || len(out.TerminatingInstances) != 1 || out.TerminatingInstances[0].CurrentState.Name != types.InstanceStateNameTerminated ||
		out.TerminatingInstances[0].PreviousState.Name != types.InstanceStateNameRunning {
		t.Fatalf("terminate: %v %+v", err, out)
	}
	inst, err := w.ec2.DescribeInstances(bg, &ec2.DescribeInstancesInput{InstanceIds: []string{webInstance}})
	if err != nil || inst.Reservations[0].Instances[0].State.Name != types.InstanceStateNameTerminated || len(inst.Reservations[0].Instances[0].NetworkInterfaces) != 0 {
		t.Fatalf("terminated instance: %v %+v", err, inst)
	}
	// The primary ENI is deleted with the instance, the secondary detached
	// with its groups.
	_, err = w.ec2.DescribeNetworkInterfaces(bg, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{webENI}})
	wantAPIError(t, err, "InvalidNetworkInterfaceID.NotFound", 400)
	enis, err := w.ec2.DescribeNetworkInterfaces(bg, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{backendENI}})
	if err != nil || enis.NetworkInterfaces[0].Attachment != nil || enis.NetworkInterfaces[0].Status != types.NetworkInterfaceStatusAvailable || len(enis.NetworkInterfaces[0].Groups) == 0 {
		t.Fatalf("secondary ENI: %v %+v", err, enis)
	}
	if _, err := w.ec2.TerminateInstances(bg, &ec2.TerminateInstancesInput{InstanceIds: []string{webInstance}}); err != nil {
		t.Fatalf("terminating again: %v", err)
	}
	_, err = w.ec2.TerminateInstances(bg, &ec2.TerminateInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	wantAPIError(t, err, "InvalidInstanceID.NotFound", 400)
}

// EC2 holds tags to 50 per resource, keys of 128 and values of 256
// characters, in CreateTags and in TagSpecification alike.
func TestAWSTagLimits(t *testing.T) {
	w := newAWSWorld(t)
	tags := func(n int) []types.Tag {
		var out []types.Tag
		for i := range n {
			out = append(out, types.Tag{Key: aws.String(fmt.Sprintf("k%02d", i)), Value: aws.String("v")})
		}
		return out
	}
	createTags := func(tags ...types.Tag) error {
		_, err := w.ec2.CreateTags(bg, &ec2.CreateTagsInput{Resources: []string{dbSG}, Tags: tags})
		return err
	}
	wantAPIError(t, createTags(types.Tag{Key: aws.String(strings.Repeat("k", 129)), Value: aws.String("v")}), "InvalidParameterValue", http.StatusBadRequest)
	wantAPIError(t, createTags(types.Tag{Key: aws.String("k"), Value: aws.String(strings.Repeat("é", 257))}), "InvalidParameterValue", http.StatusBadRequest)
	// Lengths are in characters, not bytes.
	if err := createTags(types.Tag{Key: aws.String(strings.Repeat("ü", 128)), Value: aws.String(strings.Repeat("é", 256))}); err != nil {
		t.Fatal(err)
	}
	if err := createTags(tags(49)...); err != nil { // 50 with the one above
		t.Fatal(err)
	}
	wantAPIError(t, createTags(types.Tag{Key: aws.String("one-more"), Value: aws.String("v")}), "TagLimitExceeded", http.StatusBadRequest)

	_, err := w.ec2.CreateSecurityGroup(bg, &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("jit-many-tags"), Description: aws.String("grant"), VpcId: aws.String(prodVPC),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: tags(51)}},
	})
	wantAPIError(t, err, "TagLimitExceeded", http.StatusBadRequest)

	fx, err := LoadFixture("testdata/aws_fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	fx.AWS.Instances[0].Tags = map[string]string{"k": strings.Repeat("v", 257)}
	if _, err := New(fx, Options{}); err == nil || !strings.Contains(err.Error(), "Tag value exceeds the maximum length of 256 characters") {
		t.Fatalf("fixture with a long tag value: %v", err)
	}
}
