package command

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Names from testdata/revoke.json.
const (
	sub      = "00000000-0000-0000-0000-0000000000a1"
	prod     = "/subscriptions/" + sub + "/resourceGroups/prod/providers/"
	dev      = "/subscriptions/" + sub + "/resourceGroups/dev/providers/"
	hub      = "/subscriptions/" + sub + "/resourceGroups/hub/providers/"
	webVM    = prod + "Microsoft.Compute/virtualMachines/web"
	buildVM  = dev + "Microsoft.Compute/virtualMachines/build"
	webNSG   = prod + "Microsoft.Network/networkSecurityGroups/web-nsg"
	buildNSG = dev + "Microsoft.Network/networkSecurityGroups/build-nsg"
	hubFW    = hub + "Microsoft.Network/azureFirewalls/fw-hub"
	awsVPC   = "vpc-0a000001"
	apiENI   = "eni-0a000001" // groups sg-0a000001, sg-0a000002
	dbENI    = "eni-0a000002" // group sg-0a000003
)

// TestMain gives the SDKs' default credential chains something to find, as
// the provider's tests do: a managed-identity endpoint served by an
// emulator and static AWS keys. Variables that could point a test at a
// real cloud, or make it scan a scope it did not ask for, are cleared.
func TestMain(m *testing.M) {
	for _, v := range []string{
		"ARM_CLIENT_ID", "ARM_CLIENT_SECRET", "ARM_TENANT_ID", "ARM_SUBSCRIPTION_ID", "ARM_ENVIRONMENT",
		"AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE",
		"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_REGION", "AWS_DEFAULT_REGION",
	} {
		os.Unsetenv(v)
	}
	sim, err := cloudsim.New(nil, cloudsim.Options{})
	if err == nil {
		identity, serr := cloudsim.Start(sim, "127.0.0.1:0")
		if serr == nil {
			for _, kv := range identity.Env() {
				if kv[0] != "AWS_REGION" { // each test says which region it scans
					os.Setenv(kv[0], kv[1])
				}
			}
			os.Setenv("AWS_CONFIG_FILE", os.DevNull)
			os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
			code := m.Run()
			_ = identity.Close()
			os.Exit(code)
		}
		err = serr
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// world is one emulated pair of clouds seeded from testdata/revoke.json,
// with real SDK clients aimed at it to seed grants and check results.
type world struct {
	*cloudsim.Server
	t   *testing.T
	az  *azure.Client
	fws *armnetwork.AzureFirewallsClient
	aws *aws.Client
	ec2 *ec2.Client
}

func newWorld(t *testing.T, opts cloudsim.Options) *world {
	t.Helper()
	fx, err := cloudsim.LoadFixture("testdata/revoke.json")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := cloudsim.New(fx, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := cloudsim.Start(sim, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	w := &world{Server: srv, t: t}
	if w.az, err = azure.New(azure.Config{SubscriptionID: sub, ResourceManagerEndpoint: srv.URL}); err != nil {
		t.Fatal(err)
	}
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	network, err := armnetwork.NewClientFactory(sub, cred, &arm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Cloud: cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: srv.URL, Audience: "https://management.azure.com"},
			}},
			InsecureAllowCredentialWithHTTP: true,
		},
		DisableRPRegistration: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.fws = network.NewAzureFirewallsClient()
	client, err := aws.New(t.Context(), aws.Config{Region: "eu-west-1", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	w.aws, w.ec2 = client, client.EC2
	return w
}

// flags point revoke-expired at both clouds of the emulator.
func (w *world) flags(extra ...string) []string {
	return append([]string{"-subscription", sub, "-azure-endpoint", w.URL, "-region", "eu-west-1", "-aws-endpoint", w.URL}, extra...)
}

// run runs revoke-expired in process and decodes its summary.
func (w *world) run(clock jit.Clock, args ...string) (Summary, string, int) {
	w.t.Helper()
	var stdout, stderr bytes.Buffer
	code := RevokeExpired(w.t.Context(), args, &stdout, &stderr, clock)
	var s Summary
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		w.t.Fatalf("revoke-expired printed no JSON summary (%v); exit %d, stderr:\n%s", err, code, stderr.String())
	}
	return s, stderr.String(), code
}

// grantNSG writes a grant of port 22 to a VM into an NSG as a request
// does: the rule jit.PlanNSGGrants plans, through the security-rules API.
func (w *world) grantNSG(nsg, vm, privateIP, request string, end time.Time, requestor string) string {
	w.t.Helper()
	ctx := w.t.Context()
	rules, err := w.az.SecurityRules(ctx, nsg)
	if err != nil {
		w.t.Fatal(err)
	}
	placed, err := jit.PlanNSGGrants(jit.NSGGrant{
		NSG: nsg, Rules: rules, Policy: "prod-ssh", Request: request, Machine: vm, PrivateIPs: []string{privateIP},
		Port: jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}, Source: "203.0.113.7/32",
		End: end, Requestor: requestor, Justification: "INC-" + request,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	rule := placed[0]
	if err := w.az.ApplyNSGPlan(ctx, nsg, jit.NSGPlan{Add: []jit.NSGRule{rule}}); err != nil {
		w.t.Fatal(err)
	}
	return rule.Name
}

// grantFirewall writes a grant of port 22 to the web VM through the hub
// firewall as a request does: the DNAT and network Allow collections
// jit.PlanFirewallGrants plans, in a read-modify-write of the firewall.
func (w *world) grantFirewall(request string, end time.Time, requestor string) string {
	w.t.Helper()
	ctx := w.t.Context()
	id, err := arm.ParseResourceID(hubFW)
	if err != nil {
		w.t.Fatal(err)
	}
	resp, err := w.fws.Get(ctx, id.ResourceGroupName, id.Name, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	fw := resp.AzureFirewall
	g := jit.FirewallGrant{
		Firewall: hubFW, PublicIP: "20.61.15.200", Policy: "prod-ssh", Request: request, Machine: webVM, PrivateIP: "10.0.1.4",
		Ports: []jit.FirewallGrantPort{{Port: jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}, Source: "203.0.113.7/32"}},
		End:   end, Requestor: requestor, Justification: "INC-" + request,
	}
	for _, col := range fw.Properties.NatRuleCollections {
		c := jit.FirewallNATCollection{Name: *col.Name, Priority: int(*col.Properties.Priority)}
		for _, r := range col.Properties.Rules {
			c.Rules = append(c.Rules, jit.FirewallNATRule{Name: *r.Name, Description: *r.Description,
				DestinationAddresses: values(r.DestinationAddresses), DestinationPorts: values(r.DestinationPorts)})
		}
		g.NAT = append(g.NAT, c)
	}
	for _, col := range fw.Properties.NetworkRuleCollections {
		c := jit.FirewallNetworkCollection{Name: *col.Name, Priority: int(*col.Properties.Priority), Action: jit.FirewallAction(*col.Properties.Action.Type)}
		for _, r := range col.Properties.Rules {
			rule := jit.FirewallNetworkRule{Name: *r.Name, Description: *r.Description, SourceAddresses: values(r.SourceAddresses),
				DestinationAddresses: values(r.DestinationAddresses), DestinationPorts: values(r.DestinationPorts)}
			for _, p := range r.Protocols {
				rule.Protocols = append(rule.Protocols, string(*p))
			}
			c.Rules = append(c.Rules, rule)
		}
		g.Network = append(g.Network, c)
	}
	plan, err := jit.PlanFirewallGrants(g)
	if err != nil {
		w.t.Fatal(err)
	}
	nat := &armnetwork.AzureFirewallNatRuleCollection{Name: to.Ptr(plan.NAT.Name), Properties: &armnetwork.AzureFirewallNatRuleCollectionProperties{
		Priority: to.Ptr(int32(plan.NAT.Priority)), Action: &armnetwork.AzureFirewallNatRCAction{Type: to.Ptr(armnetwork.AzureFirewallNatRCActionTypeDnat)}}}
	for _, r := range plan.NAT.Rules {
		nat.Properties.Rules = append(nat.Properties.Rules, &armnetwork.AzureFirewallNatRule{
			Name: to.Ptr(r.Name), Description: to.Ptr(r.Description), Protocols: firewallProtocols(r.Protocols),
			SourceAddresses: to.SliceOfPtrs(r.SourceAddresses...), DestinationAddresses: to.SliceOfPtrs(r.DestinationAddresses...),
			DestinationPorts: to.SliceOfPtrs(r.DestinationPorts...), TranslatedAddress: to.Ptr(r.TranslatedAddress), TranslatedPort: to.Ptr(r.TranslatedPort),
		})
	}
	allow := &armnetwork.AzureFirewallNetworkRuleCollection{Name: to.Ptr(plan.Allow.Name), Properties: &armnetwork.AzureFirewallNetworkRuleCollectionPropertiesFormat{
		Priority: to.Ptr(int32(plan.Allow.Priority)), Action: &armnetwork.AzureFirewallRCAction{Type: to.Ptr(armnetwork.AzureFirewallRCActionTypeAllow)}}}
	for _, r := range plan.Allow.Rules {
		allow.Properties.Rules = append(allow.Properties.Rules, &armnetwork.AzureFirewallNetworkRule{
			Name: to.Ptr(r.Name), Description: to.Ptr(r.Description), Protocols: firewallProtocols(r.Protocols),
			SourceAddresses: to.SliceOfPtrs(r.SourceAddresses...), DestinationAddresses: to.SliceOfPtrs(r.DestinationAddresses...),
			DestinationPorts: to.SliceOfPtrs(r.DestinationPorts...),
		})
	}
	fw.Properties.NatRuleCollections = append(fw.Properties.NatRuleCollections, nat)
	fw.Properties.NetworkRuleCollections = append(fw.Properties.NetworkRuleCollections, allow)
	poller, err := w.fws.BeginCreateOrUpdate(ctx, id.ResourceGroupName, id.Name, fw, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, nil); err != nil {
		w.t.Fatal(err)
	}
	return plan.NAT.Name
}

func values(ptrs []*string) []string {
	var out []string
	for _, p := range ptrs {
		out = append(out, *p)
	}
	return out
}

func firewallProtocols(protocols []string) []*armnetwork.AzureFirewallNetworkRuleProtocol {
	var out []*armnetwork.AzureFirewallNetworkRuleProtocol
	for _, p := range protocols {
		out = append(out, to.Ptr(armnetwork.AzureFirewallNetworkRuleProtocol(p)))
	}
	return out
}

// sgRequest is the request ID of the grant grantSG makes for label: one
// the provider could have made, started an hour before its end.
func sgRequest(label string, end time.Time) string {
	return fmt.Sprintf("%s-%08x", end.Add(-time.Hour).UTC().Format("20060102T150405Z"), crc32.ChecksumIEEE([]byte(label)))
}

// sgGroupName is the name of the group grantSG makes for label, made for
// its request as the provider names groups.
func sgGroupName(label string, end time.Time) string {
	return "jit-grant-" + sgRequest(label, end) + "-" + label
}

// grantSG makes an AWS grant as a request does: a security group of its
// own allowing port 22 from the requester, tagged with the grant, attached
// to the ENI beside the groups it has. label names it (its justification
// is "INC-<label>"); its request started an hour before its end.
func (w *world) grantSG(eni, label string, end time.Time, requestor string) string {
	w.t.Helper()
	ctx := w.t.Context()
	request := sgRequest(label, end)
	marker := jit.GrantMarker("prod-ssh", end, requestor, "INC-"+label).String()
	sg, err := w.ec2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName: awssdk.String(sgGroupName(label, end)), Description: awssdk.String("JIT grant " + request), VpcId: awssdk.String(awsVPC),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: []types.Tag{
			{Key: awssdk.String(jit.TagGrant), Value: awssdk.String(marker)},
			{Key: awssdk.String(jit.TagRequest), Value: awssdk.String(request)},
		}}},
	})
	if err != nil {
		w.t.Fatal(err)
	}
	id := awssdk.ToString(sg.GroupId)
	if _, err := w.ec2.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: []types.IpPermission{{
		IpProtocol: awssdk.String("tcp"), FromPort: awssdk.Int32(22), ToPort: awssdk.Int32(22),
		IpRanges: []types.IpRange{{CidrIp: awssdk.String("203.0.113.7/32")}},
	}}}); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.ec2.ModifyNetworkInterfaceAttribute(ctx, &ec2.ModifyNetworkInterfaceAttributeInput{
		NetworkInterfaceId: awssdk.String(eni), Groups: append(w.eniGroups(eni), id),
	}); err != nil {
		w.t.Fatal(err)
	}
	return id
}

func (w *world) eniGroups(eni string) []string {
	w.t.Helper()
	out, err := w.ec2.DescribeNetworkInterfaces(w.t.Context(), &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{eni}})
	if err != nil {
		w.t.Fatal(err)
	}
	var groups []string
	for _, g := range out.NetworkInterfaces[0].Groups {
		groups = append(groups, awssdk.ToString(g.GroupId))
	}
	return groups
}

// snapshot is the emulated world as plain JSON values, so that rule
// collections compare by content, whatever their key order.
func (w *world) snapshot() any {
	w.t.Helper()
	return normalise(w.t, w.Snapshot())
}

func normalise(t *testing.T, fx *cloudsim.Fixture) any {
	t.Helper()
	b, err := json.Marshal(fx)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// without returns fx without the named grants: what revoking exactly them
// must leave.
type removal struct {
	nsgRules  map[string][]string // NSG ID → rule names
	firewall  []string            // collection names on the hub firewall
	awsGroups []string
}

func (w *world) expectAfter(before *cloudsim.Fixture, rm removal) any {
	w.t.Helper()
	b, _ := json.Marshal(before)
	var fx cloudsim.Fixture
	if err := json.Unmarshal(b, &fx); err != nil {
		w.t.Fatal(err)
	}
	for i := range fx.Azure.NetworkSecurityGroups {
		nsg := &fx.Azure.NetworkSecurityGroups[i]
		nsg.SecurityRules = slices.DeleteFunc(nsg.SecurityRules, func(r cloudsim.AzureSecurityRule) bool {
			return slices.Contains(rm.nsgRules[nsg.ID], r.Name)
		})
	}
	named := func(raw json.RawMessage) bool {
		var col struct{ Name string }
		_ = json.Unmarshal(raw, &col)
		return slices.Contains(rm.firewall, col.Name)
	}
	for i := range fx.Azure.Firewalls {
		if fx.Azure.Firewalls[i].ID == hubFW {
			fw := &fx.Azure.Firewalls[i]
			fw.NATRuleCollections = slices.DeleteFunc(fw.NATRuleCollections, named)
			fw.NetworkRuleCollections = slices.DeleteFunc(fw.NetworkRuleCollections, named)
		}
	}
	fx.AWS.SecurityGroups = slices.DeleteFunc(fx.AWS.SecurityGroups, func(g cloudsim.AWSSecurityGroup) bool { return slices.Contains(rm.awsGroups, g.ID) })
	for i := range fx.AWS.NetworkInterfaces {
		e := &fx.AWS.NetworkInterfaces[i]
		e.Groups = slices.DeleteFunc(e.Groups, func(g string) bool { return slices.Contains(rm.awsGroups, g) })
	}
	return normalise(w.t, &fx)
}

func checkWorld(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		wt, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("%s: the emulated world differs from what was expected\n%s", what, lineDiff(string(wt), string(g)))
	}
}

// lineDiff shows the lines only one side has, enough to see what changed.
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range wl {
		if !slices.Contains(gl, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range gl {
		if !slices.Contains(wl, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// writes counts the write calls the emulator served.
func (w *world) writes() map[string]int {
	out := map[string]int{}
	for op, n := range w.Calls() {
		if strings.Contains(op, "CreateOrUpdate") || strings.Contains(op, "Delete") || strings.HasPrefix(op, "Modify") ||
			strings.HasPrefix(op, "Create") || strings.HasPrefix(op, "Authorize") || strings.HasPrefix(op, "Revoke") {
			out[op] = n
		}
	}
	return out
}

// renewFirewallGrant rewrites a grant's collections with a later end, as a
// renewal of the same request does.
func (w *world) renewFirewallGrant(name string, end time.Time) {
	w.t.Helper()
	ctx := w.t.Context()
	id, _ := arm.ParseResourceID(hubFW)
	resp, err := w.fws.Get(ctx, id.ResourceGroupName, id.Name, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	fw := resp.AzureFirewall
	renew := func(description *string) *string {
		m, ok := jit.ParseMarker(*description)
		if !ok {
			w.t.Fatalf("%q is no marker", *description)
		}
		return to.Ptr(jit.GrantMarker("prod-ssh", end, m.Requestor, m.Justification).String())
	}
	for _, col := range fw.Properties.NatRuleCollections {
		if *col.Name == name {
			for _, r := range col.Properties.Rules {
				r.Description = renew(r.Description)
			}
		}
	}
	for _, col := range fw.Properties.NetworkRuleCollections {
		if *col.Name == name {
			for _, r := range col.Properties.Rules {
				r.Description = renew(r.Description)
			}
		}
	}
	poller, err := w.fws.BeginCreateOrUpdate(ctx, id.ResourceGroupName, id.Name, fw, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, nil); err != nil {
		w.t.Fatal(err)
	}
}

// renewSG rewrites a grant group's marker with a later end.
func (w *world) renewSG(group string, end time.Time) {
	w.t.Helper()
	marker := jit.GrantMarker("prod-ssh", end, "gina@example.com", "INC-renewed").String()
	if _, err := w.ec2.CreateTags(w.t.Context(), &ec2.CreateTagsInput{Resources: []string{group},
		Tags: []types.Tag{{Key: awssdk.String(jit.TagGrant), Value: awssdk.String(marker)}}}); err != nil {
		w.t.Fatal(err)
	}
}
