package cloudsim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// Names from testdata/azure_fixture.json.
const (
	azSub        = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
	azTenant     = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	azProd       = "/subscriptions/" + azSub + "/resourceGroups/rg-prod/providers/"
	azHub        = "/subscriptions/" + azSub + "/resourceGroups/rg-hub/providers/"
	azWebVM      = azProd + "Microsoft.Compute/virtualMachines/web-01"
	azWebNIC     = azProd + "Microsoft.Network/networkInterfaces/web-01-nic"
	azWebNSG     = azProd + "Microsoft.Network/networkSecurityGroups/web-01-nsg"
	azSubnetNSG  = azProd + "Microsoft.Network/networkSecurityGroups/web-subnet-nsg"
	azWebSubnet  = azProd + "Microsoft.Network/virtualNetworks/vnet-prod/subnets/web"
	azHubFW      = azHub + "Microsoft.Network/azureFirewalls/fw-hub"
	azManagedFW  = azHub + "Microsoft.Network/azureFirewalls/fw-managed"
	armAudience  = "https://management.azure.com"
	azAPIVersion = "2024-05-01"
)

// azPoll polls fast: the emulator's hints decide the real cadence.
var azPoll = &runtime.PollUntilDoneOptions{Frequency: 5 * time.Millisecond}

type azWorld struct {
	*Server
	cred azcore.TokenCredential
	opts *arm.ClientOptions
	net  *armnetwork.ClientFactory
	comp *armcompute.ClientFactory
}

func newAzureWorld(t *testing.T, opts Options) *azWorld {
	t.Helper()
	fx, err := LoadFixture("testdata/azure_fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	return newAzureWorldFrom(t, fx, opts)
}

func newAzureWorldFrom(t *testing.T, fx *Fixture, opts Options) *azWorld {
	t.Helper()
	sim, err := New(fx, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(sim, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	w := &azWorld{Server: srv, cred: tokenCred{sim}, opts: azClientOptions(srv.URL, 3)}
	w.net, w.comp = w.factories(t, w.cred, w.opts)
	return w
}

// azClientOptions points the SDK at the emulator; maxRetries < 0 disables
// azcore's own retries so errors surface as they are sent.
func azClientOptions(url string, maxRetries int32) *arm.ClientOptions {
	return &arm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Cloud: cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: url, Audience: armAudience},
			}},
			InsecureAllowCredentialWithHTTP: true,
			Retry:                           policy.RetryOptions{MaxRetries: maxRetries, RetryDelay: time.Millisecond, MaxRetryDelay: 2 * time.Second},
		},
		DisableRPRegistration: true,
	}
}

func (w *azWorld) factories(t *testing.T, cred azcore.TokenCredential, opts *arm.ClientOptions) (*armnetwork.ClientFactory, *armcompute.ClientFactory) {
	t.Helper()
	n, err := armnetwork.NewClientFactory(azSub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := armcompute.NewClientFactory(azSub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	return n, c
}

// noRetryRules is a security-rules client that surfaces 429s instead of
// letting azcore retry them.
func (w *azWorld) noRetryRules(t *testing.T) *armnetwork.SecurityRulesClient {
	n, _ := w.factories(t, w.cred, azClientOptions(w.URL, -1))
	return n.NewSecurityRulesClient()
}

// tokenCred issues emulator tokens without the managed-identity round trip.
type tokenCred struct{ sim *Sim }

func (c tokenCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, exp := issueToken(armAudience, c.sim.azure.tenant, c.sim.opts.Identity, time.Now())
	return azcore.AccessToken{Token: tok, ExpiresOn: exp}, nil
}

// rawCred hands out a fixed string as the token.
type rawCred string

func (c rawCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(c), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func wantARMError(t *testing.T, err error, status int, code string) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want %d %s, got %v", status, code, err)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("want %d %s, got %d %s: %v", status, code, re.StatusCode, re.ErrorCode, err)
	}
	return re
}

func sshRule(priority int32, source string) armnetwork.SecurityRule {
	return armnetwork.SecurityRule{Properties: &armnetwork.SecurityRulePropertiesFormat{
		Priority: to.Ptr(priority), Direction: to.Ptr(armnetwork.SecurityRuleDirectionInbound),
		Access: to.Ptr(armnetwork.SecurityRuleAccessDeny), Protocol: to.Ptr(armnetwork.SecurityRuleProtocolTCP),
		SourceAddressPrefix: to.Ptr(source), SourcePortRange: to.Ptr("*"),
		DestinationAddressPrefixes: []*string{to.Ptr("10.10.1.4"), to.Ptr("10.10.1.5")}, DestinationPortRange: to.Ptr("22"),
		Description: to.Ptr("jit: deny ssh"),
	}}
}

// rawARM sends a request without the SDK, for what the SDK cannot express.
func (w *azWorld) rawARM(t *testing.T, method, path, token string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, w.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	return resp, body
}

func (w *azWorld) token() string {
	tok, _ := issueToken(armAudience, w.Sim.azure.tenant, w.Sim.opts.Identity, time.Now())
	return tok
}

func TestAzureManagedIdentityCredential(t *testing.T) {
	w := newAzureWorld(t, Options{Identity: Identity{UPN: "alice@contoso.com", ObjectID: "11111111-aaaa-4bbb-8ccc-222222222222"}})
	t.Setenv("IDENTITY_ENDPOINT", w.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "anything")
	// MSAL caches managed-identity tokens for the whole process, keyed by
	// identity: a fresh client ID keeps this test's token (and its claims)
	// from being served to, or by, another emulator in the same process.
	clientID := derivedUUID(time.Now().String())
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: azcore.ClientOptions{InsecureAllowCredentialWithHTTP: true},
		ID:            azidentity.ClientID(clientID),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, comp := w.factories(t, cred, w.opts)
	vm, err := comp.NewVirtualMachinesClient().Get(context.Background(), "rg-prod", "web-01", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *vm.ID != azWebVM {
		t.Fatalf("got VM %s", *vm.ID)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{armAudience + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok.Token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"aud": armAudience, "tid": azTenant, "oid": "11111111-aaaa-4bbb-8ccc-222222222222", "upn": "alice@contoso.com"}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	if time.Until(tok.ExpiresOn) < time.Hour {
		t.Errorf("token expires too soon: %s", tok.ExpiresOn)
	}
	if w.Calls()["ManagedIdentity.GetToken"] == 0 {
		t.Error("the token endpoint was not called")
	}
}

func TestAzureVMToNICToNSGs(t *testing.T) {
	w := newAzureWorld(t, Options{})
	ctx := context.Background()
	vm, err := w.comp.NewVirtualMachinesClient().Get(ctx, "RG-PROD", "WEB-01", nil) // IDs ignore case
	if err != nil {
		t.Fatal(err)
	}
	if *vm.Name != "web-01" || *vm.Location != "westeurope" || *vm.Tags["env"] != "prod" || *vm.Properties.VMID == "" ||
		*vm.Properties.StorageProfile.OSDisk.OSType != armcompute.OperatingSystemTypesLinux {
		t.Fatalf("unexpected VM: %+v", vm.VirtualMachine)
	}
	nics := vm.Properties.NetworkProfile.NetworkInterfaces
	if len(nics) != 1 || *nics[0].ID != azWebNIC || !*nics[0].Properties.Primary {
		t.Fatalf("unexpected NICs: %+v", nics)
	}
	nic, err := w.net.NewInterfacesClient().Get(ctx, "rg-prod", "web-01-nic", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := nic.Properties
	if *p.NetworkSecurityGroup.ID != azWebNSG || *p.VirtualMachine.ID != azWebVM || len(p.IPConfigurations) != 2 {
		t.Fatalf("unexpected NIC: %+v", p)
	}
	ipc := p.IPConfigurations[0].Properties
	if *ipc.PrivateIPAddress != "10.10.1.4" || *ipc.PrivateIPAddressVersion != armnetwork.IPVersionIPv4 || !*ipc.Primary ||
		*ipc.Subnet.ID != azWebSubnet || !strings.HasSuffix(*ipc.PublicIPAddress.ID, "/web-01-pip") {
		t.Fatalf("unexpected IP configuration: %+v", ipc)
	}
	if v := p.IPConfigurations[1].Properties.PrivateIPAddressVersion; *v != armnetwork.IPVersionIPv6 {
		t.Fatalf("second IP configuration is %s", *v)
	}
	subnet, err := w.net.NewSubnetsClient().Get(ctx, "rg-prod", "vnet-prod", "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *subnet.Properties.AddressPrefix != "10.10.1.0/24" || *subnet.Properties.NetworkSecurityGroup.ID != azSubnetNSG {
		t.Fatalf("unexpected subnet: %+v", subnet.Properties)
	}
	nsg, err := w.net.NewSecurityGroupsClient().Get(ctx, "rg-prod", "web-subnet-nsg", nil)
	if err != nil {
		t.Fatal(err)
	}
	np := nsg.Properties
	if *np.ProvisioningState != armnetwork.ProvisioningStateSucceeded || *nsg.Etag == "" || len(np.SecurityRules) != 1 ||
		len(np.Subnets) != 1 || *np.Subnets[0].ID != azWebSubnet || len(np.NetworkInterfaces) != 0 {
		t.Fatalf("unexpected NSG: %+v", np)
	}
	rule := np.SecurityRules[0].Properties
	if *rule.Priority != 200 || len(rule.SourceAddressPrefixes) != 2 || rule.SourceAddressPrefix != nil || len(rule.DestinationPortRanges) != 3 {
		t.Fatalf("unexpected rule: %+v", rule)
	}
	var defaults []string
	for _, r := range np.DefaultSecurityRules {
		defaults = append(defaults, *r.Name+"/"+string(*r.Properties.Direction)+"/"+string(*r.Properties.Access))
	}
	wantDefaults := []string{"AllowVnetInBound/Inbound/Allow", "AllowAzureLoadBalancerInBound/Inbound/Allow", "DenyAllInBound/Inbound/Deny",
		"AllowVnetOutBound/Outbound/Allow", "AllowInternetOutBound/Outbound/Allow", "DenyAllOutBound/Outbound/Deny"}
	if !reflect.DeepEqual(defaults, wantDefaults) {
		t.Fatalf("default rules %v", defaults)
	}
	nicNSG, err := w.net.NewSecurityGroupsClient().Get(ctx, "rg-prod", "web-01-nsg", nil)
	if err != nil {
		t.Fatal(err)
	}
	if refs := nicNSG.Properties.NetworkInterfaces; len(refs) != 1 || *refs[0].ID != azWebNIC {
		t.Fatalf("NSG back-references: %+v", refs)
	}
	pip, err := w.net.NewPublicIPAddressesClient().Get(ctx, "rg-hub", "fw-hub-pip", nil)
	if err != nil || *pip.Properties.IPAddress != "20.61.15.200" {
		t.Fatalf("public IP: %v %+v", err, pip)
	}
	if _, err := w.net.NewVirtualNetworksClient().Get(ctx, "rg-prod", "vnet-prod", nil); err != nil {
		t.Fatal(err)
	}

	vms := w.comp.NewVirtualMachinesClient()
	if n := drain(t, vms.NewListPager("rg-prod", nil), func(p armcompute.VirtualMachinesClientListResponse) int { return len(p.Value) }); n != 2 {
		t.Errorf("%d VMs in rg-prod, want 2", n)
	}
	if n := drain(t, vms.NewListAllPager(nil), func(p armcompute.VirtualMachinesClientListAllResponse) int { return len(p.Value) }); n != 3 {
		t.Errorf("%d VMs in the subscription, want 3", n)
	}
	if n := drain(t, w.net.NewSecurityGroupsClient().NewListAllPager(nil), func(p armnetwork.SecurityGroupsClientListAllResponse) int { return len(p.Value) }); n != 3 {
		t.Errorf("%d NSGs, want 3", n)
	}
	if n := drain(t, w.net.NewInterfacesClient().NewListPager("rg-prod", nil), func(p armnetwork.InterfacesClientListResponse) int { return len(p.Value) }); n != 3 {
		t.Errorf("%d NICs in rg-prod, want 3", n)
	}
	if n := drain(t, w.net.NewSecurityRulesClient().NewListPager("rg-prod", "web-01-nsg", nil), func(p armnetwork.SecurityRulesClientListResponse) int { return len(p.Value) }); n != 2 {
		t.Errorf("%d rules in web-01-nsg, want 2", n)
	}
}

// drain reads every page and sums their sizes.
func drain[T any](t *testing.T, pager *runtime.Pager[T], size func(T) int) int {
	t.Helper()
	n := 0
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n += size(page)
	}
	return n
}

func TestAzureSecurityRuleLifecycle(t *testing.T) {
	for _, interval := range []time.Duration{0, 50 * time.Millisecond} {
		t.Run(interval.String(), func(t *testing.T) {
			w := newAzureWorld(t, Options{PollInterval: interval})
			ctx := context.Background()
			rules := w.net.NewSecurityRulesClient()

			start := time.Now()
			poller, err := rules.BeginCreateOrUpdate(ctx, "rg-prod", "web-01-nsg", "jit-deny-22", sshRule(100, "*"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if interval > 0 {
				nsg, err := w.net.NewSecurityGroupsClient().Get(ctx, "rg-prod", "web-01-nsg", nil)
				if err != nil {
					t.Fatal(err)
				}
				if *nsg.Properties.ProvisioningState != armnetwork.ProvisioningStateUpdating || len(nsg.Properties.SecurityRules) != 3 {
					t.Fatalf("NSG during the write: %s with %d rules", *nsg.Properties.ProvisioningState, len(nsg.Properties.SecurityRules))
				}
			}
			created, err := poller.PollUntilDone(ctx, azPoll)
			if err != nil {
				t.Fatal(err)
			}
			if elapsed := time.Since(start); elapsed < interval {
				t.Fatalf("completed after %s, before the poll interval %s", elapsed, interval)
			}
			if *created.Properties.ProvisioningState != armnetwork.ProvisioningStateSucceeded || *created.Properties.Priority != 100 ||
				*created.ID != azWebNSG+"/securityRules/jit-deny-22" || len(created.Properties.DestinationAddressPrefixes) != 2 {
				t.Fatalf("created rule: %+v", created.Properties)
			}

			update := sshRule(110, "203.0.113.7/32")
			poller, err = rules.BeginCreateOrUpdate(ctx, "rg-prod", "web-01-nsg", "JIT-DENY-22", update, nil)
			if err != nil {
				t.Fatal(err)
			}
			updated, err := poller.PollUntilDone(ctx, azPoll)
			if err != nil {
				t.Fatal(err)
			}
			if *updated.Name != "jit-deny-22" || *updated.Properties.Priority != 110 || *updated.Properties.SourceAddressPrefix != "203.0.113.7/32" {
				t.Fatalf("updated rule: %s %+v", *updated.Name, updated.Properties)
			}
			if *updated.Etag == *created.Etag {
				t.Error("the ETag did not change on update")
			}

			del, err := rules.BeginDelete(ctx, "rg-prod", "web-01-nsg", "jit-deny-22", nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := del.PollUntilDone(ctx, azPoll); err != nil {
				t.Fatal(err)
			}
			_, err = rules.Get(ctx, "rg-prod", "web-01-nsg", "jit-deny-22", nil)
			wantARMError(t, err, http.StatusNotFound, "NotFound")

			// Deleting what is not there is a success without an operation.
			del, err = rules.BeginDelete(ctx, "rg-prod", "web-01-nsg", "jit-deny-22", nil)
			if err != nil || !del.Done() {
				t.Fatalf("second delete: %v", err)
			}
			if calls := w.Calls(); calls["SecurityRules.CreateOrUpdate"] != 2 || calls["SecurityRules.Delete"] != 2 || calls["NetworkOperations.Get"] < 3 {
				t.Fatalf("calls: %v", calls)
			}
		})
	}
}

func TestAzureDeleteLocationURL(t *testing.T) {
	w := newAzureWorld(t, Options{PollInterval: 80 * time.Millisecond})
	resp, _ := w.rawARM(t, http.MethodDelete, azWebNSG+"/securityRules/allow-https?api-version="+azAPIVersion, w.token())
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Azure-AsyncOperation") == "" || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("delete: %d %v", resp.StatusCode, resp.Header)
	}
	location := strings.TrimPrefix(resp.Header.Get("Location"), w.URL)
	resp, _ = w.rawARM(t, http.MethodGet, location, w.token())
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Location") == "" {
		t.Fatalf("location while in progress: %d", resp.StatusCode)
	}
	status := strings.TrimPrefix(resp.Header.Get("Location"), w.URL)
	status = strings.Replace(status, "/operationResults/", "/operations/", 1)
	if _, body := w.rawARM(t, http.MethodGet, status, w.token()); body["status"] != "InProgress" {
		t.Fatalf("status while in progress: %v", body)
	}
	time.Sleep(100 * time.Millisecond)
	if resp, _ = w.rawARM(t, http.MethodGet, location, w.token()); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("location when done: %d", resp.StatusCode)
	}
	if _, body := w.rawARM(t, http.MethodGet, status, w.token()); body["status"] != "Succeeded" {
		t.Fatalf("status when done: %v", body)
	}
}

func TestAzureErrorCodes(t *testing.T) {
	w := newAzureWorld(t, Options{})
	ctx := context.Background()
	rules := w.net.NewSecurityRulesClient()
	put := func(name string, rule armnetwork.SecurityRule) error {
		_, err := rules.BeginCreateOrUpdate(ctx, "rg-prod", "web-subnet-nsg", name, rule, nil)
		return err
	}
	with := func(change func(p *armnetwork.SecurityRulePropertiesFormat)) armnetwork.SecurityRule {
		r := sshRule(150, "*")
		change(r.Properties)
		return r
	}
	cases := []struct {
		name   string
		call   func() error
		status int
		code   string
	}{
		{"priority below 100", func() error { return put("r", sshRule(99, "*")) }, 400, "SecurityRuleInvalidPriority"},
		{"priority above 4096", func() error { return put("r", sshRule(4097, "*")) }, 400, "SecurityRuleInvalidPriority"},
		{"same priority and direction", func() error { return put("r", sshRule(200, "*")) }, 400, "SecurityRuleConflict"},
		{"description over 140", func() error {
			return put("r", with(func(p *armnetwork.SecurityRulePropertiesFormat) { p.Description = to.Ptr(strings.Repeat("x", 141)) }))
		}, 400, "SecurityRuleDescriptionTooLong"},
		{"name over 80", func() error { return put(strings.Repeat("n", 81), sshRule(150, "*")) }, 400, "InvalidResourceName"},
		{"invalid protocol", func() error {
			return put("r", with(func(p *armnetwork.SecurityRulePropertiesFormat) {
				p.Protocol = to.Ptr(armnetwork.SecurityRuleProtocol("Gre"))
			}))
		}, 400, "InvalidRequestFormat"},
		{"invalid access", func() error {
			return put("r", with(func(p *armnetwork.SecurityRulePropertiesFormat) {
				p.Access = to.Ptr(armnetwork.SecurityRuleAccess("Block"))
			}))
		}, 400, "InvalidRequestFormat"},
		{"invalid direction", func() error {
			return put("r", with(func(p *armnetwork.SecurityRulePropertiesFormat) {
				p.Direction = to.Ptr(armnetwork.SecurityRuleDirection("Sideways"))
			}))
		}, 400, "InvalidRequestFormat"},
		{"singular and plural prefixes", func() error {
			return put("r", with(func(p *armnetwork.SecurityRulePropertiesFormat) {
				p.SourceAddressPrefixes = []*string{to.Ptr("10.0.0.0/8")}
			}))
		}, 400, "SecurityRuleParametersConflict"},
		{"prefix with host bits", func() error { return put("r", sshRule(150, "10.0.0.1/8")) }, 400, "SecurityRuleInvalidAddressPrefix"},
		{"tag in plural prefixes", func() error {
			return put("r", with(func(p *armnetwork.SecurityRulePropertiesFormat) {
				p.SourceAddressPrefix, p.SourceAddressPrefixes = nil, []*string{to.Ptr("Internet")}
			}))
		}, 400, "SecurityRuleParameterContainsUnsupportedValue"},
		{"bad port", func() error {
			return put("r", with(func(p *armnetwork.SecurityRulePropertiesFormat) { p.DestinationPortRange = to.Ptr("any") }))
		}, 400, "SecurityRuleInvalidPortRange"},
		{"missing resource group", func() error {
			return errOf(rules.Get(ctx, "rg-nope", "web-subnet-nsg", "r", nil))
		}, 404, "ResourceGroupNotFound"},
		{"missing NSG", func() error { return errOf(w.net.NewSecurityGroupsClient().Get(ctx, "rg-prod", "nope", nil)) }, 404, "ResourceNotFound"},
		{"missing NSG of a rule write", func() error {
			return errOf(rules.BeginCreateOrUpdate(ctx, "rg-prod", "nope", "r", sshRule(150, "*"), nil))
		}, 404, "ResourceNotFound"},
		{"missing rule", func() error { return errOf(rules.Get(ctx, "rg-prod", "web-subnet-nsg", "nope", nil)) }, 404, "NotFound"},
		{"missing VM", func() error { return errOf(w.comp.NewVirtualMachinesClient().Get(ctx, "rg-prod", "nope", nil)) }, 404, "ResourceNotFound"},
		{"dangling NIC of a VM", func() error {
			return errOf(w.net.NewInterfacesClient().Get(ctx, "rg-legacy", "deleted-nic", nil))
		}, 404, "ResourceNotFound"},
		{"missing subnet", func() error {
			return errOf(w.net.NewSubnetsClient().Get(ctx, "rg-prod", "vnet-prod", "nope", nil))
		}, 404, "NotFound"},
		{"whole-NSG PUT is refused", func() error {
			return errOf(w.net.NewSecurityGroupsClient().BeginCreateOrUpdate(ctx, "rg-prod", "db-nsg", armnetwork.SecurityGroup{Location: to.Ptr("westeurope")}, nil))
		}, 405, "MethodNotAllowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantARMError(t, c.call(), c.status, c.code) })
	}
	_, err := w.net.NewSecurityGroupsClient().Get(ctx, "rg-prod", "nope", nil)
	if !strings.Contains(err.Error(), "The Resource 'Microsoft.Network/networkSecurityGroups/nope' under resource group 'rg-prod' was not found") {
		t.Errorf("ResourceNotFound message: %v", err)
	}
	// A rule with the same priority in the other direction is no conflict.
	out := sshRule(200, "*")
	out.Properties.Direction = to.Ptr(armnetwork.SecurityRuleDirectionOutbound)
	if err := put("outbound-200", out); err != nil {
		t.Fatal(err)
	}
	if len(w.Snapshot().Azure.NetworkSecurityGroups[1].SecurityRules) != 2 {
		t.Fatal("the outbound rule was not stored")
	}
}

// errOf keeps the error of a two-result call.
func errOf[T any](_ T, err error) error { return err }

func TestAzureRuleLimit(t *testing.T) {
	nsg := AzureNSG{ID: azProd + "Microsoft.Network/networkSecurityGroups/full"}
	for i := range maxSecurityRules {
		nsg.SecurityRules = append(nsg.SecurityRules, AzureSecurityRule{
			Name: "r" + strconv.Itoa(i), Priority: int32(100 + i), Direction: "Inbound", Access: "Allow", Protocol: "Tcp",
			SourceAddressPrefix: "*", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: strconv.Itoa(i + 1),
		})
	}
	w := newAzureWorldFrom(t, &Fixture{Azure: AzureFixture{NetworkSecurityGroups: []AzureNSG{nsg}}}, Options{})
	rule := sshRule(4096, "*")
	rule.Properties.Direction = to.Ptr(armnetwork.SecurityRuleDirectionOutbound)
	_, err := w.net.NewSecurityRulesClient().BeginCreateOrUpdate(context.Background(), "rg-prod", "full", "one-more", rule, nil)
	wantARMError(t, err, http.StatusBadRequest, "SecurityRuleCountLimitReached")
}

// The 4,000 addresses or ranges an NSG's rules may name are counted over
// all its rules, separately for source and destination.
func TestAzureRuleAddressLimit(t *testing.T) {
	nsg := AzureNSG{ID: azProd + "Microsoft.Network/networkSecurityGroups/crowded"}
	for i := range 10 {
		var sources, destinations []string
		for j := range maxAddressesOrPortsInNSG / 10 {
			n := i*maxAddressesOrPortsInNSG/10 + j
			sources = append(sources, fmt.Sprintf("192.168.%d.%d", n/256, n%256))
			destinations = append(destinations, fmt.Sprintf("10.10.%d.%d", n/256, n%256))
		}
		nsg.SecurityRules = append(nsg.SecurityRules, AzureSecurityRule{
			Name: "r" + strconv.Itoa(i), Priority: int32(100 + i), Direction: "Inbound", Access: "Deny", Protocol: "Tcp",
			SourceAddressPrefixes: sources, SourcePortRange: "*", DestinationAddressPrefixes: destinations, DestinationPortRange: "22",
		})
	}
	w := newAzureWorldFrom(t, &Fixture{Azure: AzureFixture{NetworkSecurityGroups: []AzureNSG{nsg}}}, Options{})
	rules := w.net.NewSecurityRulesClient()
	// Tags and '*' do not count.
	if _, err := rules.BeginCreateOrUpdate(t.Context(), "rg-prod", "crowded", "tagged", sshRuleTo(200, "Internet", "*"), nil); err != nil {
		t.Fatal(err)
	}
	_, err := rules.BeginCreateOrUpdate(t.Context(), "rg-prod", "crowded", "one-more", sshRuleTo(201, "*", "10.20.0.1"), nil)
	re := wantARMError(t, err, http.StatusBadRequest, "SecurityRuleAddressesOrPortsPerSecurityGroupLimitReached")
	if !strings.Contains(re.Error(), "has 4001 DestinationAddressPrefixes") {
		t.Fatalf("message: %v", re)
	}

	nsg.SecurityRules[0].DestinationAddressPrefixes = append(nsg.SecurityRules[0].DestinationAddressPrefixes, "10.20.0.1")
	_, err = New(&Fixture{Azure: AzureFixture{NetworkSecurityGroups: []AzureNSG{nsg}}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "4001 DestinationAddressPrefixes") {
		t.Fatalf("fixture over the limit: %v", err)
	}
}

// sshRuleTo is an inbound SSH deny from source to one destination.
func sshRuleTo(priority int32, source, destination string) armnetwork.SecurityRule {
	r := sshRule(priority, source)
	r.Properties.DestinationAddressPrefixes, r.Properties.DestinationAddressPrefix = nil, to.Ptr(destination)
	return r
}

// IPv4 and IPv6 never share a rule: ARM refuses a rule whose prefixes,
// source and destination together, are of both families. Service tags and
// '*' belong to neither.
func TestAzureRuleAddressFamilies(t *testing.T) {
	w := newAzureWorld(t, Options{})
	rules := w.net.NewSecurityRulesClient()
	put := func(name string, rule armnetwork.SecurityRule) error {
		return errOf(rules.BeginCreateOrUpdate(t.Context(), "rg-prod", "db-nsg", name, rule, nil))
	}
	mixedDestinations := sshRule(100, "*")
	mixedDestinations.Properties.DestinationAddressPrefixes = []*string{to.Ptr("10.10.1.4"), to.Ptr("fd00:db8:10:1::4")}
	for name, rule := range map[string]armnetwork.SecurityRule{
		"mixed-destinations":      mixedDestinations,
		"v6-source-v4-dest":       sshRuleTo(100, "2001:db8::/32", "10.10.1.4"),
		"v4-source-v6-dest":       sshRuleTo(100, "203.0.113.7", "fd00:db8:10:1::4"),
		"v4-mapped-source-v4-dst": sshRuleTo(100, "::ffff:203.0.113.7", "10.10.1.4"),
	} {
		re := wantARMError(t, put(name, rule), http.StatusBadRequest, "ResourceCannotContainAddressPrefixesFromDifferentAddressFamilies")
		if !strings.Contains(re.Error(), "/securityRules/"+name+" contains IP addresses or prefixes that belong to different address families") {
			t.Errorf("%s: message %v", name, re)
		}
	}
	for i, rule := range []armnetwork.SecurityRule{
		sshRuleTo(100, "*", "fd00:db8:10:1::4"),
		sshRuleTo(101, "Internet", "fd00:db8:10:1::4"),
		sshRuleTo(102, "2001:db8::/32", "fd00:db8:10:1::4"),
		sshRuleTo(103, "203.0.113.0/24", "VirtualNetwork"),
	} {
		if err := put("ok-"+strconv.Itoa(i), rule); err != nil {
			t.Errorf("rule %d: %v", i, err)
		}
	}
	fx, err := LoadFixture("testdata/azure_fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	fx.Azure.NetworkSecurityGroups[0].SecurityRules[0].SourceAddressPrefix = "2001:db8::/32"
	fx.Azure.NetworkSecurityGroups[0].SecurityRules[0].DestinationAddressPrefix = "10.10.1.4"
	if _, err := New(fx, Options{}); err == nil || !strings.Contains(err.Error(), "different address families") {
		t.Fatalf("fixture with a mixed rule: %v", err)
	}
}

// Rules may name application security groups in place of a side's address
// prefixes; ARM keeps and returns them as {"id"} references.
func TestAzureRuleApplicationSecurityGroups(t *testing.T) {
	asg := azProd + "Microsoft.Network/applicationSecurityGroups/asg-bastion"
	fx, err := LoadFixture("testdata/azure_fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	fx.Azure.NetworkSecurityGroups[2].SecurityRules = []AzureSecurityRule{{
		Name: "from-bastion", Priority: 200, Direction: "Inbound", Access: "Allow", Protocol: "Tcp",
		SourceApplicationSecurityGroups: []string{asg}, SourcePortRange: "*", DestinationAddressPrefix: "10.10.3.4", DestinationPortRange: "22",
	}}
	w := newAzureWorldFrom(t, fx, Options{})
	ctx := t.Context()
	rules := w.net.NewSecurityRulesClient()
	got, err := rules.Get(ctx, "rg-prod", "db-nsg", "from-bastion", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Properties; len(p.SourceApplicationSecurityGroups) != 1 || *p.SourceApplicationSecurityGroups[0].ID != asg ||
		p.SourceAddressPrefix != nil || len(p.DestinationApplicationSecurityGroups) != 0 {
		t.Fatalf("rule with an ASG: %+v", p)
	}
	if g, err := w.net.NewApplicationSecurityGroupsClient().Get(ctx, "rg-prod", "asg-bastion", nil); err != nil || *g.ID != asg {
		t.Fatalf("the ASG: %v", err)
	}

	toBastion := sshRuleTo(300, "203.0.113.7", "10.10.3.4")
	toBastion.Properties.DestinationAddressPrefix = nil
	toBastion.Properties.DestinationApplicationSecurityGroups = []*armnetwork.ApplicationSecurityGroup{{ID: to.Ptr(asg)}}
	p, err := rules.BeginCreateOrUpdate(ctx, "rg-prod", "db-nsg", "to-bastion", toBastion, nil)
	if err != nil {
		t.Fatal(err)
	}
	if put, err := p.PollUntilDone(ctx, azPoll); err != nil || *put.Properties.DestinationApplicationSecurityGroups[0].ID != asg {
		t.Fatalf("written rule with an ASG: %v", err)
	}
	if snap := w.Snapshot().Azure.NetworkSecurityGroups[2].SecurityRules; snap[1].DestinationApplicationSecurityGroups[0] != asg {
		t.Fatalf("snapshot: %+v", snap)
	}

	with := func(change func(p *armnetwork.SecurityRulePropertiesFormat)) error {
		r := sshRuleTo(400, "203.0.113.7", "10.10.3.4")
		change(r.Properties)
		return errOf(rules.BeginCreateOrUpdate(ctx, "rg-prod", "db-nsg", "bad", r, nil))
	}
	asgs := func(ids ...string) []*armnetwork.ApplicationSecurityGroup {
		var out []*armnetwork.ApplicationSecurityGroup
		for _, id := range ids {
			out = append(out, &armnetwork.ApplicationSecurityGroup{ID: to.Ptr(id)})
		}
		return out
	}
	wantARMError(t, with(func(p *armnetwork.SecurityRulePropertiesFormat) { p.SourceApplicationSecurityGroups = asgs(asg) }),
		http.StatusBadRequest, "SecurityRuleParametersConflict")
	wantARMError(t, with(func(p *armnetwork.SecurityRulePropertiesFormat) {
		p.SourceAddressPrefix, p.SourceApplicationSecurityGroups = nil, asgs(azProd+"Microsoft.Network/applicationSecurityGroups/nope")
	}), http.StatusBadRequest, "InvalidResourceReference")
	eleven := make([]string, 11)
	for i := range eleven {
		eleven[i] = asg
	}
	wantARMError(t, with(func(p *armnetwork.SecurityRulePropertiesFormat) {
		p.SourceAddressPrefix, p.SourceApplicationSecurityGroups = nil, asgs(eleven...)
	}), http.StatusBadRequest, "NumberOfApplicationSecurityGroupsReferencedInSecurityRuleLimitReached")
}

func TestAzureAuthentication(t *testing.T) {
	w := newAzureWorld(t, Options{})
	path := azWebVM + "?api-version=" + azAPIVersion
	resp, body := w.rawARM(t, http.MethodGet, path, "")
	if resp.StatusCode != 401 || body["error"].(map[string]any)["code"] != "AuthenticationFailed" || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d %v", resp.StatusCode, body)
	}
	resp, body = w.rawARM(t, http.MethodGet, azWebVM, w.token())
	if resp.StatusCode != 400 || body["error"].(map[string]any)["code"] != "MissingApiVersionParameter" {
		t.Fatalf("no api-version: %d %v", resp.StatusCode, body)
	}
	expired, _ := issueToken(armAudience, azTenant, Identity{}, time.Now().Add(-25*time.Hour))
	wrongAudience, _ := issueToken("https://vault.azure.net", azTenant, Identity{}, time.Now())
	for token, code := range map[string]string{
		"not-a-jwt": "InvalidAuthenticationToken", expired: "ExpiredAuthenticationToken", wrongAudience: "InvalidAuthenticationTokenAudience",
	} {
		_, comp := w.factories(t, rawCred(token), w.opts)
		_, err := comp.NewVirtualMachinesClient().Get(context.Background(), "rg-prod", "web-01", nil)
		wantARMError(t, err, http.StatusUnauthorized, code)
	}
	resp, body = w.rawARM(t, http.MethodGet, "/subscriptions/00000000-0000-0000-0000-00000000dead/providers/Microsoft.Compute/virtualMachines?api-version=1", w.token())
	if resp.StatusCode != 404 || body["error"].(map[string]any)["code"] != "SubscriptionNotFound" {
		t.Fatalf("unknown subscription: %d %v", resp.StatusCode, body)
	}
}

func TestAzureOneWritePerNSG(t *testing.T) {
	w := newAzureWorld(t, Options{PollInterval: 300 * time.Millisecond})
	ctx := context.Background()
	rules := w.noRetryRules(t)

	first, err := rules.BeginCreateOrUpdate(ctx, "rg-prod", "web-01-nsg", "first", sshRule(100, "*"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rules.BeginCreateOrUpdate(ctx, "rg-prod", "web-01-nsg", "second", sshRule(101, "*"), nil)
	re := wantARMError(t, err, http.StatusTooManyRequests, "RetryableError")
	if re.RawResponse.Header.Get("Retry-After") == "" || !strings.Contains(err.Error(), "RetryableErrorDueToAnotherOperation") {
		t.Fatalf("429 without Retry-After or reason: %v %v", re.RawResponse.Header, err)
	}
	_, err = rules.BeginDelete(ctx, "rg-prod", "web-01-nsg", "allow-https", nil)
	wantARMError(t, err, http.StatusTooManyRequests, "RetryableError")

	// Other NSGs are not held: writes to them proceed in parallel.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, nsg := range []string{"web-subnet-nsg", "db-nsg"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := rules.BeginCreateOrUpdate(ctx, "rg-prod", nsg, "parallel", sshRule(300, "*"), nil)
			if err == nil {
				_, err = p.PollUntilDone(ctx, azPoll)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := first.PollUntilDone(ctx, azPoll); err != nil {
		t.Fatal(err)
	}
	if _, err := rules.BeginCreateOrUpdate(ctx, "rg-prod", "web-01-nsg", "second", sshRule(101, "*"), nil); err != nil {
		t.Fatalf("write after the first completed: %v", err)
	}

	// Concurrent writers to one NSG: exactly one wins, the others get 429.
	w2 := newAzureWorld(t, Options{PollInterval: 300 * time.Millisecond})
	rules2 := w2.noRetryRules(t)
	results := make(chan error, 8)
	for i := range 8 {
		go func() {
			_, err := rules2.BeginCreateOrUpdate(ctx, "rg-prod", "db-nsg", "r"+strconv.Itoa(i), sshRule(int32(500+i), "*"), nil)
			results <- err
		}()
	}
	wins := 0
	for range 8 {
		if err := <-results; err == nil {
			wins++
		} else {
			wantARMError(t, err, http.StatusTooManyRequests, "RetryableError")
		}
	}
	if wins != 1 {
		t.Fatalf("%d concurrent writes succeeded, want 1", wins)
	}

	// azcore retries 429 itself, honouring the emulator's hint.
	w3 := newAzureWorld(t, Options{PollInterval: 100 * time.Millisecond})
	retrying := w3.net.NewSecurityRulesClient()
	if _, err := retrying.BeginCreateOrUpdate(ctx, "rg-prod", "db-nsg", "a", sshRule(100, "*"), nil); err != nil {
		t.Fatal(err)
	}
	p, err := retrying.BeginCreateOrUpdate(ctx, "rg-prod", "db-nsg", "b", sshRule(101, "*"), nil)
	if err != nil {
		t.Fatalf("azcore did not retry through the 429: %v", err)
	}
	if _, err := p.PollUntilDone(ctx, azPoll); err != nil {
		t.Fatal(err)
	}
}

func TestAzureFirewall(t *testing.T) {
	w := newAzureWorld(t, Options{PollInterval: 50 * time.Millisecond})
	ctx := context.Background()
	fws := w.net.NewAzureFirewallsClient()
	got, err := fws.Get(ctx, "rg-hub", "fw-hub", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := got.Properties
	if len(p.NetworkRuleCollections) != 1 || len(p.NatRuleCollections) != 1 || len(p.ApplicationRuleCollections) != 1 ||
		*p.IPConfigurations[0].Properties.PrivateIPAddress != "10.10.255.4" || p.FirewallPolicy != nil {
		t.Fatalf("unexpected firewall: %+v", p)
	}
	// Read-modify-write: add a deny collection, keep everything else.
	fw := got.AzureFirewall
	fw.Properties.NetworkRuleCollections = append(fw.Properties.NetworkRuleCollections, &armnetwork.AzureFirewallNetworkRuleCollection{
		Name: to.Ptr("jit-deny"),
		Properties: &armnetwork.AzureFirewallNetworkRuleCollectionPropertiesFormat{
			Priority: to.Ptr[int32](150), Action: &armnetwork.AzureFirewallRCAction{Type: to.Ptr(armnetwork.AzureFirewallRCActionTypeDeny)},
			Rules: []*armnetwork.AzureFirewallNetworkRule{{
				Name: to.Ptr("deny-ssh-web"), Protocols: []*armnetwork.AzureFirewallNetworkRuleProtocol{to.Ptr(armnetwork.AzureFirewallNetworkRuleProtocolTCP)},
				SourceAddresses: []*string{to.Ptr("*")}, DestinationAddresses: []*string{to.Ptr("10.10.1.4")}, DestinationPorts: []*string{to.Ptr("22")},
			}},
		},
	})
	poller, err := fws.BeginCreateOrUpdate(ctx, "rg-hub", "fw-hub", fw, nil)
	if err != nil {
		t.Fatal(err)
	}
	// One write at a time per firewall.
	_, err = w.net.NewAzureFirewallsClient().BeginCreateOrUpdate(ctx, "rg-hub", "fw-hub", fw, nil)
	if re := wantARMError(t, err, http.StatusConflict, "AnotherOperationInProgress"); re.RawResponse.Header.Get("Retry-After") == "" {
		t.Fatal("409 without Retry-After")
	}
	done, err := poller.PollUntilDone(ctx, azPoll)
	if err != nil {
		t.Fatal(err)
	}
	dp := done.Properties
	if *dp.ProvisioningState != armnetwork.ProvisioningStateSucceeded || len(dp.NetworkRuleCollections) != 2 ||
		*dp.NetworkRuleCollections[1].Properties.Rules[0].DestinationPorts[0] != "22" || len(dp.ApplicationRuleCollections) != 1 ||
		*dp.ApplicationRuleCollections[0].Properties.Rules[0].TargetFqdns[0] != "*.ubuntu.com" ||
		*dp.NatRuleCollections[0].Properties.Rules[0].TranslatedAddress != "10.10.1.4" {
		t.Fatalf("firewall after the write: %+v", dp)
	}

	bad := func(change func(p *armnetwork.AzureFirewallPropertiesFormat)) error {
		cp, _ := fws.Get(ctx, "rg-hub", "fw-hub", nil)
		change(cp.Properties)
		_, err := fws.BeginCreateOrUpdate(ctx, "rg-hub", "fw-hub", cp.AzureFirewall, nil)
		return err
	}
	wantARMError(t, bad(func(p *armnetwork.AzureFirewallPropertiesFormat) {
		*p.NetworkRuleCollections[1].Properties.Priority = 65001
	}),
		400, "AzureFirewallRuleCollectionInvalidPriority")
	wantARMError(t, bad(func(p *armnetwork.AzureFirewallPropertiesFormat) {
		*p.NetworkRuleCollections[1].Properties.Priority = 200
	}),
		400, "AzureFirewallRuleCollectionDuplicatePriority")
	wantARMError(t, bad(func(p *armnetwork.AzureFirewallPropertiesFormat) {
		p.NatRuleCollections[0].Properties.Action.Type = to.Ptr(armnetwork.AzureFirewallNatRCActionType("Allow"))
	}), 400, "AzureFirewallRuleCollectionInvalidAction")
	wantARMError(t, bad(func(p *armnetwork.AzureFirewallPropertiesFormat) {
		p.NetworkRuleCollections[1].Properties.Action.Type = to.Ptr(armnetwork.AzureFirewallRCActionType("Dnat"))
	}), 400, "AzureFirewallRuleCollectionInvalidAction")

	managed, err := fws.Get(ctx, "rg-hub", "fw-managed", nil)
	if err != nil {
		t.Fatal(err)
	}
	if managed.Properties.FirewallPolicy == nil || len(managed.Properties.NetworkRuleCollections) != 0 {
		t.Fatalf("managed firewall: %+v", managed.Properties)
	}
	managed.Properties.NetworkRuleCollections = fw.Properties.NetworkRuleCollections
	_, err = fws.BeginCreateOrUpdate(ctx, "rg-hub", "fw-managed", managed.AzureFirewall, nil)
	wantARMError(t, err, http.StatusBadRequest, "AzureFirewallPolicyAndRuleCollectionsConflict")
	policy, err := w.net.NewFirewallPoliciesClient().Get(ctx, "rg-hub", "fwpol-hub", nil)
	if err != nil || len(policy.Properties.Firewalls) != 1 {
		t.Fatalf("firewall policy: %v %+v", err, policy)
	}
}

func TestAzureVMTagUpdate(t *testing.T) {
	w := newAzureWorld(t, Options{PollInterval: 20 * time.Millisecond})
	ctx := context.Background()
	vms := w.comp.NewVirtualMachinesClient()
	before, err := vms.Get(ctx, "rg-prod", "web-01", nil)
	if err != nil {
		t.Fatal(err)
	}
	tags := before.Tags
	tags["jit-policy"] = to.Ptr("prod-web")
	poller, err := vms.BeginUpdate(ctx, "rg-prod", "web-01", armcompute.VirtualMachineUpdate{Tags: tags}, nil)
	if err != nil {
		t.Fatal(err)
	}
	after, err := poller.PollUntilDone(ctx, azPoll)
	if err != nil {
		t.Fatal(err)
	}
	if *after.Tags["jit-policy"] != "prod-web" || *after.Tags["env"] != "prod" || len(after.Tags) != 3 {
		t.Fatalf("tags: %v", after.Tags)
	}
	if *after.Properties.VMID != *before.Properties.VMID || len(after.Properties.NetworkProfile.NetworkInterfaces) != 1 ||
		*after.Properties.HardwareProfile.VMSize != *before.Properties.HardwareProfile.VMSize {
		t.Fatal("a tag update changed other properties")
	}
}

func TestAzureInjectedFaults(t *testing.T) {
	w := newAzureWorld(t, Options{})
	ctx := context.Background()
	rules := w.noRetryRules(t)
	w.InjectFault(Fault{Operation: "SecurityRules.CreateOrUpdate", FailNext: 1, Status: 429, Code: "TooManyRequests", RetryAfter: time.Second})
	_, err := rules.BeginCreateOrUpdate(ctx, "rg-prod", "db-nsg", "r1", sshRule(100, "*"), nil)
	if re := wantARMError(t, err, http.StatusTooManyRequests, "TooManyRequests"); re.RawResponse.Header.Get("Retry-After") != "1" {
		t.Fatal("injected 429 without Retry-After")
	}
	if n := len(w.Snapshot().Azure.NetworkSecurityGroups[2].SecurityRules); n != 0 {
		t.Fatalf("a failed write left %d rules", n)
	}

	w.InjectFault(Fault{Operation: "SecurityRules.CreateOrUpdate", DropAfterWrite: 1})
	_, err = rules.BeginCreateOrUpdate(ctx, "rg-prod", "db-nsg", "r1", sshRule(100, "*"), nil)
	var re *azcore.ResponseError
	if err == nil || errors.As(err, &re) {
		t.Fatalf("want a connection error, got %v", err)
	}
	got, err := rules.Get(ctx, "rg-prod", "db-nsg", "r1", nil)
	if err != nil || *got.Properties.Priority != 100 {
		t.Fatalf("the dropped write was not applied: %v", err)
	}
}

// A write slower than the client's patience still lands: the cloud never
// learns that the client gave up, as a real one does not.
func TestAzureWriteOutlastingTheClientStillLands(t *testing.T) {
	w := newAzureWorld(t, Options{})
	rules := w.noRetryRules(t)
	w.InjectFault(Fault{Operation: "SecurityRules.CreateOrUpdate", Latency: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := rules.BeginCreateOrUpdate(ctx, "rg-prod", "db-nsg", "late", sshRule(100, "*"), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the client's deadline, got %v", err)
	}
	if err := w.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := rules.Get(context.Background(), "rg-prod", "db-nsg", "late", nil)
	if err != nil || *got.Properties.Priority != 100 {
		t.Fatalf("the write the client gave up on was not applied: %v", err)
	}
}

func TestAzureSnapshotRoundTrip(t *testing.T) {
	w := newAzureWorld(t, Options{PollInterval: time.Hour}) // the write stays in progress
	if _, err := w.net.NewSecurityRulesClient().BeginCreateOrUpdate(context.Background(), "rg-prod", "db-nsg", "new", sshRule(100, "*"), nil); err != nil {
		t.Fatal(err)
	}
	first := w.Snapshot()
	if rules := first.Azure.NetworkSecurityGroups[2].SecurityRules; len(rules) != 1 || rules[0].Name != "new" || rules[0].DestinationAddressPrefixes[1] != "10.10.1.5" {
		t.Fatalf("snapshot rules: %+v", rules)
	}
	b, err := json.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	var reloaded Fixture
	if err := json.Unmarshal(b, &reloaded); err != nil {
		t.Fatal(err)
	}
	sim, err := New(&reloaded, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if second := sim.Snapshot(); !reflect.DeepEqual(first.Azure, second.Azure) {
		a, _ := json.Marshal(first.Azure)
		c, _ := json.Marshal(second.Azure)
		t.Fatalf("round trip changed the world:\n%s\n%s", a, c)
	}
}

func TestAzureFixtureValidation(t *testing.T) {
	base := func() AzureFixture {
		fx, err := LoadFixture("testdata/azure_fixture.json")
		if err != nil {
			t.Fatal(err)
		}
		return fx.Azure
	}
	cases := map[string]struct {
		change func(*AzureFixture)
		want   string
	}{
		"missing NIC":           {func(fx *AzureFixture) { fx.VirtualMachines[0].NetworkInterfaces[0] += "x" }, "web-01-nicx does not exist"},
		"missing subnet":        {func(fx *AzureFixture) { fx.NetworkInterfaces[0].IPConfigurations[0].Subnet += "x" }, `subnet "` + azWebSubnet + `x" does not exist`},
		"NSG of the wrong type": {func(fx *AzureFixture) { fx.NetworkInterfaces[0].NetworkSecurityGroup = azWebNIC }, "is not an existing Microsoft.Network/networkSecurityGroups"},
		"bad ID":                {func(fx *AzureFixture) { fx.NetworkSecurityGroups[0].ID = azWebNIC + "2" }, "is not a Microsoft.Network/networkSecurityGroups ID"},
		"duplicate ID": {func(fx *AzureFixture) {
			fx.NetworkSecurityGroups[1].ID = strings.ToUpper(fx.NetworkSecurityGroups[0].ID)
		}, "defined twice"},
		"invalid rule":  {func(fx *AzureFixture) { fx.NetworkSecurityGroups[0].SecurityRules[0].Priority = 5000 }, "invalid Priority"},
		"rule conflict": {func(fx *AzureFixture) { fx.NetworkSecurityGroups[0].SecurityRules[0].Priority = 1000 }, "conflicts with rule"},
		"shared NIC":    {func(fx *AzureFixture) { fx.VirtualMachines[1].NetworkInterfaces[0] = azWebNIC }, "attached to both"},
		"policy and classic rules": {func(fx *AzureFixture) {
			fx.Firewalls[0].FirewallPolicy = fx.FirewallPolicies[0].ID
		}, "cannot also have classic rule collections"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			fx := base()
			c.change(&fx)
			_, err := New(&Fixture{Azure: fx}, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error containing %q, got %v", c.want, err)
			}
		})
	}
}

func TestAzureOperationsListed(t *testing.T) {
	for _, op := range []string{"VirtualMachines.Get", "VirtualMachines.Update", "VirtualMachines.ListAll", "Interfaces.Get", "Subnets.Get",
		"SecurityGroups.List", "SecurityRules.CreateOrUpdate", "SecurityRules.Delete", "AzureFirewalls.CreateOrUpdate",
		"PublicIPAddresses.Get", "NetworkOperations.Get", "ComputeOperations.Get", "ManagedIdentity.GetToken"} {
		if indexFold(Operations(), op) < 0 {
			t.Errorf("%s is not listed", op)
		}
	}
}

func TestAzureVMDeleteKeepsItsNICs(t *testing.T) {
	w := newAzureWorld(t, Options{})
	ctx := context.Background()
	vms := w.comp.NewVirtualMachinesClient()
	poller, err := vms.BeginDelete(ctx, "rg-prod", "web-01", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	var re *azcore.ResponseError
	if _, err := vms.Get(ctx, "rg-prod", "web-01", nil); !errors.As(err, &re) || re.StatusCode != 404 || re.ErrorCode != "ResourceNotFound" {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := w.net.NewInterfacesClient().Get(ctx, "rg-prod", "web-01-nic", nil); err != nil {
		t.Fatalf("the VM's NIC went with it: %v", err)
	}
	// Deleting what is gone is no error, as in ARM.
	poller, err = vms.BeginDelete(ctx, "rg-prod", "web-01", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
}

// Injected throttling announces its wait in each way a client may meet, and
// azcore honours the milliseconds headers: a 300 ms hint is waited for, and
// not rounded up to a second.
func TestAzureFaultRetryAfterWays(t *testing.T) {
	w := newAzureWorld(t, Options{})
	ctx := t.Context()
	rules := w.noRetryRules(t)
	get := func() http.Header {
		t.Helper()
		_, err := rules.Get(ctx, "rg-prod", "web-01-nsg", "allow-https", nil)
		return wantARMError(t, err, http.StatusTooManyRequests, "TooManyRequests").RawResponse.Header
	}
	throttle := func(d time.Duration, ways ...string) {
		w.InjectFault(Fault{Operation: "SecurityRules.Get", FailNext: 1, Status: 429, Code: "TooManyRequests", RetryAfter: d, RetryAfterIn: ways})
	}

	throttle(1500 * time.Millisecond)
	if h := get(); h.Get("Retry-After") != "2" || h.Get("x-ms-retry-after-ms") != "" {
		t.Fatalf("default: %v", h)
	}
	throttle(250*time.Millisecond, RetryAfterFractional, RetryAfterMsARM, RetryAfterMs)
	if h := get(); h.Get("Retry-After") != "0.25" || h.Get("x-ms-retry-after-ms") != "250" || h.Get("retry-after-ms") != "250" {
		t.Fatalf("fractional and milliseconds: %v", h)
	}
	throttle(2*time.Second, RetryAfterHTTPDate)
	at, err := http.ParseTime(get().Get("Retry-After"))
	if until := time.Until(at); err != nil || until < time.Second || until > 4*time.Second {
		t.Fatalf("http-date: %v %s", err, until)
	}

	for _, way := range []string{RetryAfterMsARM, RetryAfterMs} {
		throttle(300*time.Millisecond, RetryAfterSeconds, way)
		start := time.Now()
		if _, err := w.net.NewSecurityRulesClient().Get(ctx, "rg-prod", "web-01-nsg", "allow-https", nil); err != nil {
			t.Fatal(err)
		}
		if elapsed := time.Since(start); elapsed < 300*time.Millisecond || elapsed >= time.Second {
			t.Fatalf("%s: azcore waited %s for a 300 ms hint", way, elapsed)
		}
	}

	for _, bad := range []string{`{"operation":"*","retry_after_in":["minutes"]}`, `{"operation":"*","retry_afer":5}`, `{"fail_next":1}`} {
		resp, err := http.Post(w.URL+"/_admin/faults", "application/json", strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("admin accepted %s: %d", bad, resp.StatusCode)
		}
	}
}

// A fault can make a write's long-running operation end Failed with an ARM
// error: the write is accepted as usual and only polling shows the failure.
// The resource is restored, or keeps the write when the fault says it was
// applied, and shows provisioningState Failed until it is written again.
func TestAzureOperationFails(t *testing.T) {
	w := newAzureWorld(t, Options{PollInterval: 20 * time.Millisecond})
	ctx := t.Context()
	rules := w.net.NewSecurityRulesClient()
	nsgState := func(name string) armnetwork.ProvisioningState {
		t.Helper()
		nsg, err := w.net.NewSecurityGroupsClient().Get(ctx, "rg-prod", name, nil)
		if err != nil {
			t.Fatal(err)
		}
		return *nsg.Properties.ProvisioningState
	}
	put := func(name string, rule armnetwork.SecurityRule) error {
		t.Helper()
		p, err := rules.BeginCreateOrUpdate(ctx, "rg-prod", "db-nsg", name, rule, nil)
		if err != nil {
			t.Fatalf("the write itself was refused: %v", err)
		}
		_, err = p.PollUntilDone(ctx, azPoll)
		return err
	}

	w.InjectFault(Fault{Operation: "SecurityRules.CreateOrUpdate", FailOperationNext: 1, Code: "NetworkOperationFailed"})
	// A write refused before its operation starts does not use the fault up.
	_, err := rules.BeginCreateOrUpdate(ctx, "rg-prod", "db-nsg", "r1", sshRule(99, "*"), nil)
	wantARMError(t, err, http.StatusBadRequest, "SecurityRuleInvalidPriority")
	re := wantARMError(t, put("r1", sshRule(100, "*")), http.StatusOK, "NetworkOperationFailed")
	if !strings.Contains(re.Error(), "injected failure") {
		t.Fatalf("error body: %v", re)
	}
	_, err = rules.Get(ctx, "rg-prod", "db-nsg", "r1", nil)
	wantARMError(t, err, http.StatusNotFound, "NotFound")
	if s := nsgState("db-nsg"); s != armnetwork.ProvisioningStateFailed {
		t.Fatalf("NSG after a failed write: %s", s)
	}
	if err := put("r1", sshRule(100, "*")); err != nil {
		t.Fatalf("the next write: %v", err)
	}
	if s := nsgState("db-nsg"); s != armnetwork.ProvisioningStateSucceeded {
		t.Fatalf("NSG after a good write: %s", s)
	}

	// Failed after applying: the update stays.
	w.InjectFault(Fault{Operation: "SecurityRules.CreateOrUpdate", FailOperationNext: 1, FailedOperationApplied: true})
	wantARMError(t, put("r1", sshRule(110, "*")), http.StatusOK, "InternalServerError")
	got, err := rules.Get(ctx, "rg-prod", "db-nsg", "r1", nil)
	if err != nil || *got.Properties.Priority != 110 || *got.Properties.ProvisioningState != armnetwork.ProvisioningStateFailed {
		t.Fatalf("rule after a failure that applied: %v %+v", err, got.Properties)
	}

	// A failed update that did not apply restores the rule as it was.
	w.InjectFault(Fault{Operation: "SecurityRules.CreateOrUpdate", FailOperationNext: 1})
	wantARMError(t, put("r1", sshRule(120, "*")), http.StatusOK, "InternalServerError")
	if got, err := rules.Get(ctx, "rg-prod", "db-nsg", "r1", nil); err != nil || *got.Properties.Priority != 110 {
		t.Fatalf("rule after a failed update: %v %+v", err, got.Properties)
	}

	// A failed delete leaves the rule; its Location URL answers the error.
	w.InjectFault(Fault{Operation: "SecurityRules.Delete", FailOperationNext: 1, Status: http.StatusConflict, Code: "Conflict"})
	resp, _ := w.rawARM(t, http.MethodDelete, azWebNSG+"/securityRules/allow-https?api-version="+azAPIVersion, w.token())
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	time.Sleep(30 * time.Millisecond)
	location := strings.TrimPrefix(resp.Header.Get("Location"), w.URL)
	if resp, body := w.rawARM(t, http.MethodGet, location, w.token()); resp.StatusCode != http.StatusConflict || body["error"].(map[string]any)["code"] != "Conflict" {
		t.Fatalf("location of a failed delete: %d %v", resp.StatusCode, body)
	}
	status := strings.TrimPrefix(resp.Header.Get("Azure-AsyncOperation"), w.URL)
	if _, body := w.rawARM(t, http.MethodGet, status, w.token()); body["status"] != "Failed" || body["error"].(map[string]any)["code"] != "Conflict" {
		t.Fatalf("status of a failed delete: %v", body)
	}
	if _, err := rules.Get(ctx, "rg-prod", "web-01-nsg", "allow-https", nil); err != nil {
		t.Fatalf("the rule of a failed delete: %v", err)
	}

	// A firewall's failed read-modify-write restores the firewall.
	fws := w.net.NewAzureFirewallsClient()
	fw, err := fws.Get(ctx, "rg-hub", "fw-hub", nil)
	if err != nil {
		t.Fatal(err)
	}
	fw.Properties.NetworkRuleCollections = nil
	w.InjectFault(Fault{Operation: "AzureFirewalls.CreateOrUpdate", FailOperationNext: 1})
	p, err := fws.BeginCreateOrUpdate(ctx, "rg-hub", "fw-hub", fw.AzureFirewall, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.PollUntilDone(ctx, azPoll)
	wantARMError(t, err, http.StatusOK, "InternalServerError")
	if after, err := fws.Get(ctx, "rg-hub", "fw-hub", nil); err != nil || len(after.Properties.NetworkRuleCollections) != 1 ||
		*after.Properties.ProvisioningState != armnetwork.ProvisioningStateFailed {
		t.Fatalf("firewall after a failed write: %v %+v", err, after.Properties)
	}

	// Compute's operation status carries its times; the tags are restored.
	vms := w.comp.NewVirtualMachinesClient()
	w.InjectFault(Fault{Operation: "VirtualMachines.Update", FailOperationNext: 1, Code: "OperationPreempted"})
	vp, err := vms.BeginUpdate(ctx, "rg-prod", "web-01", armcompute.VirtualMachineUpdate{Tags: map[string]*string{"only": to.Ptr("this")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = vp.PollUntilDone(ctx, azPoll)
	wantARMError(t, err, http.StatusOK, "OperationPreempted")
	vm, err := vms.Get(ctx, "rg-prod", "web-01", nil)
	if err != nil || len(vm.Tags) != 2 || *vm.Properties.ProvisioningState != "Failed" {
		t.Fatalf("VM after a failed update: %v %v %v", err, vm.Tags, vm.Properties.ProvisioningState)
	}
}

// ARM holds every resource to 50 tags, names of 512 and values of 256
// characters, and refuses reserved characters in names.
func TestAzureTagLimits(t *testing.T) {
	w := newAzureWorld(t, Options{})
	ctx := t.Context()
	vms := w.comp.NewVirtualMachinesClient()
	update := func(tags map[string]*string) error {
		return errOf(vms.BeginUpdate(ctx, "rg-prod", "web-01", armcompute.VirtualMachineUpdate{Tags: tags}, nil))
	}
	many := func(n int) map[string]*string {
		tags := map[string]*string{}
		for i := range n {
			tags[fmt.Sprintf("k%02d", i)] = to.Ptr("v")
		}
		return tags
	}
	re := wantARMError(t, update(many(51)), http.StatusBadRequest, "InvalidTags")
	if !strings.Contains(re.Error(), "Requested tag count - '51'. Maximum number of tags allowed - '50'.") {
		t.Fatalf("message: %v", re)
	}
	for name, c := range map[string]struct {
		tags map[string]*string
		code string
	}{
		"slash in a name":   {map[string]*string{"jit/policy": to.Ptr("x")}, "InvalidTagNameCharacters"},
		"control character": {map[string]*string{"jit\tpolicy": to.Ptr("x")}, "InvalidTagNameCharacters"},
		"blank name":        {map[string]*string{" ": to.Ptr("x")}, "InvalidTagName"},
		"long name":         {map[string]*string{strings.Repeat("n", 513): to.Ptr("x")}, "InvalidTagName"},
		"long value":        {map[string]*string{"n": to.Ptr(strings.Repeat("v", 257))}, "InvalidTagValueLength"},
	} {
		t.Run(name, func(t *testing.T) { wantARMError(t, update(c.tags), http.StatusBadRequest, c.code) })
	}
	limits := many(49)
	limits[strings.Repeat("n", 512)] = to.Ptr(strings.Repeat("v", 256))
	if err := update(limits); err != nil {
		t.Fatalf("50 tags at the length limits: %v", err)
	}

	fws := w.net.NewAzureFirewallsClient()
	fw, err := fws.Get(ctx, "rg-hub", "fw-hub", nil)
	if err != nil {
		t.Fatal(err)
	}
	fw.Tags = map[string]*string{"owner": to.Ptr(strings.Repeat("v", 257))}
	_, err = fws.BeginCreateOrUpdate(ctx, "rg-hub", "fw-hub", fw.AzureFirewall, nil)
	wantARMError(t, err, http.StatusBadRequest, "InvalidTagValueLength")

	fx, err := LoadFixture("testdata/azure_fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	fx.Azure.NetworkSecurityGroups[1].Tags = map[string]string{"a<b": "x"}
	if _, err := New(fx, Options{}); err == nil || !strings.Contains(err.Error(), "reserved characters") {
		t.Fatalf("fixture with a reserved character in a tag name: %v", err)
	}
}

// Virtual machines carry an ETag, "1", "2", …, that every write changes; an
// update with an If-Match that is neither "*" nor the current ETag fails
// with 412 and changes nothing.
func TestAzureVMETag(t *testing.T) {
	w := newAzureWorld(t, Options{})
	ctx := t.Context()
	vms := w.comp.NewVirtualMachinesClient()
	update := func(opts *armcompute.VirtualMachinesClientBeginUpdateOptions, tags map[string]*string) (armcompute.VirtualMachine, error) {
		t.Helper()
		p, err := vms.BeginUpdate(ctx, "rg-prod", "web-01", armcompute.VirtualMachineUpdate{Tags: tags}, opts)
		if err != nil {
			return armcompute.VirtualMachine{}, err
		}
		done, err := p.PollUntilDone(ctx, azPoll)
		return done.VirtualMachine, err
	}
	vm, err := vms.Get(ctx, "rg-prod", "web-01", nil)
	if err != nil {
		t.Fatal(err)
	}
	first := vm.Etag
	if first == nil || *first != `"1"` {
		t.Fatalf("etag of an unwritten VM: %v", first)
	}
	tags := vm.Tags
	tags["jit-policy"] = to.Ptr("prod-web")
	second, err := update(&armcompute.VirtualMachinesClientBeginUpdateOptions{IfMatch: first}, tags)
	if err != nil {
		t.Fatal(err)
	}
	if *second.Etag != `"2"` {
		t.Fatalf("etag after a write: %s", *second.Etag)
	}

	_, err = update(&armcompute.VirtualMachinesClientBeginUpdateOptions{IfMatch: first}, map[string]*string{"lost": to.Ptr("update")})
	re := wantARMError(t, err, http.StatusPreconditionFailed, "PreconditionFailed")
	if !strings.Contains(re.Error(), `Etag provided in if-match header \"1\" does not match etag \"2\" of resource.`) {
		t.Fatalf("message: %v", re)
	}
	if got, _ := vms.Get(ctx, "rg-prod", "web-01", nil); got.Tags["lost"] != nil || *got.Etag != `"2"` {
		t.Fatalf("a failed precondition changed the VM: %v %s", got.Tags, *got.Etag)
	}
	_, err = update(&armcompute.VirtualMachinesClientBeginUpdateOptions{IfNoneMatch: to.Ptr("*")}, tags)
	wantARMError(t, err, http.StatusPreconditionFailed, "PreconditionFailed")

	if third, err := update(&armcompute.VirtualMachinesClientBeginUpdateOptions{IfMatch: to.Ptr("*")}, tags); err != nil || *third.Etag != `"3"` {
		t.Fatalf("If-Match *: %v", err)
	}
	if fourth, err := update(nil, tags); err != nil || *fourth.Etag != `"4"` {
		t.Fatalf("no If-Match: %v", err)
	}
}

// rawJSON sends a JSON body without the SDK, which drops fields it does not
// model, and decodes the answer.
func (w *azWorld) rawJSON(t *testing.T, method, path string, body any) (*http.Response, map[string]any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, w.URL+path, strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+w.token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

// Every field a client writes to a firewall is kept and returned, so a
// read-modify-write that loses one cannot pass unseen; read-only fields are
// ignored, as ARM ignores them.
func TestAzureFirewallKeepsEveryField(t *testing.T) {
	w := newAzureWorld(t, Options{})
	path := azHubFW + "?api-version=" + azAPIVersion
	_, fw := w.rawARM(t, http.MethodGet, path, w.token())
	props := fw["properties"].(map[string]any)
	if zones := fw["zones"].([]any); len(zones) != 3 || props["additionalProperties"].(map[string]any)["Network.DNS.EnableProxy"] != "true" {
		t.Fatalf("the fixture's unmodelled fields: %v %v", fw["zones"], props["additionalProperties"])
	}

	fw["futureTopLevel"] = "kept"
	fw["etag"], fw["id"] = `W/"made-up"`, azHubFW+"-elsewhere"
	props["futureProperty"] = map[string]any{"nested": []any{1, 2.5, "x"}}
	props["provisioningState"] = "Failed"
	props["sku"].(map[string]any)["futureSkuField"] = true
	ipc := props["ipConfigurations"].([]any)[0].(map[string]any)
	ipc["properties"].(map[string]any)["futureIPConfigField"] = "kept"
	col := props["networkRuleCollections"].([]any)[0].(map[string]any)
	col["futureCollectionField"] = 7
	rule := col["properties"].(map[string]any)["rules"].([]any)[0].(map[string]any)
	rule["destinationIpGroups"] = []any{}
	rule["futureRuleField"] = "kept"
	if resp, body := w.rawJSON(t, http.MethodPut, path, fw); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %d %v", resp.StatusCode, body)
	}

	_, got := w.rawARM(t, http.MethodGet, path, w.token())
	gp := got["properties"].(map[string]any)
	gcol := gp["networkRuleCollections"].([]any)[0].(map[string]any)
	grule := gcol["properties"].(map[string]any)["rules"].([]any)[0].(map[string]any)
	switch {
	case got["futureTopLevel"] != "kept", len(got["zones"].([]any)) != 3:
		t.Fatalf("top level: %v", got)
	case !reflect.DeepEqual(gp["futureProperty"], map[string]any{"nested": []any{1.0, 2.5, "x"}}), gp["sku"].(map[string]any)["futureSkuField"] != true:
		t.Fatalf("properties: %v", gp)
	case gp["ipConfigurations"].([]any)[0].(map[string]any)["properties"].(map[string]any)["futureIPConfigField"] != "kept":
		t.Fatalf("IP configuration: %v", gp["ipConfigurations"])
	case gcol["futureCollectionField"] != 7.0, grule["futureRuleField"] != "kept":
		t.Fatalf("collection: %v", gcol)
	case got["id"] != azHubFW, got["etag"] == `W/"made-up"`, gp["provisioningState"] != "Succeeded":
		t.Fatalf("read-only fields were taken from the request: %v %v %v", got["id"], got["etag"], gp["provisioningState"])
	}
	if fx := w.Snapshot().Azure.Firewalls[0]; string(fx.Unmodelled["futureTopLevel"]) != `"kept"` || fx.IPConfigurations[0].Unmodelled["properties.futureIPConfigField"] == nil {
		t.Fatalf("snapshot: %v %v", fx.Unmodelled, fx.IPConfigurations[0].Unmodelled)
	}

	// The SDK models fewer fields than a client may write: its
	// read-modify-write loses the others, and the next read shows it.
	ctx := t.Context()
	fws := w.net.NewAzureFirewallsClient()
	sdk, err := fws.Get(ctx, "rg-hub", "fw-hub", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := fws.BeginCreateOrUpdate(ctx, "rg-hub", "fw-hub", sdk.AzureFirewall, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, azPoll); err != nil {
		t.Fatal(err)
	}
	_, after := w.rawARM(t, http.MethodGet, path, w.token())
	ap := after["properties"].(map[string]any)
	if after["futureTopLevel"] != nil || ap["futureProperty"] != nil || len(after["zones"].([]any)) != 3 || ap["additionalProperties"] == nil {
		t.Fatalf("after the SDK's read-modify-write: %v", after)
	}
}

// A firewall PUT is checked as the network provider checks it: rule
// protocols, DNAT to one of the firewall's public IPs on one port,
// translated to one address and port, IPv4 only, ports 1-65535, collection
// priorities and names unique per collection type.
func TestAzureFirewallValidation(t *testing.T) {
	w := newAzureWorld(t, Options{})
	ctx := t.Context()
	fws := w.net.NewAzureFirewallsClient()
	put := func(change func(p *armnetwork.AzureFirewallPropertiesFormat, fw *armnetwork.AzureFirewall)) error {
		t.Helper()
		got, err := fws.Get(ctx, "rg-hub", "fw-hub", nil)
		if err != nil {
			t.Fatal(err)
		}
		change(got.Properties, &got.AzureFirewall)
		return errOf(fws.BeginCreateOrUpdate(ctx, "rg-hub", "fw-hub", got.AzureFirewall, nil))
	}
	network := func(change func(r *armnetwork.AzureFirewallNetworkRule)) func(*armnetwork.AzureFirewallPropertiesFormat, *armnetwork.AzureFirewall) {
		return func(p *armnetwork.AzureFirewallPropertiesFormat, _ *armnetwork.AzureFirewall) {
			change(p.NetworkRuleCollections[0].Properties.Rules[0])
		}
	}
	nat := func(change func(r *armnetwork.AzureFirewallNatRule)) func(*armnetwork.AzureFirewallPropertiesFormat, *armnetwork.AzureFirewall) {
		return func(p *armnetwork.AzureFirewallPropertiesFormat, _ *armnetwork.AzureFirewall) {
			change(p.NatRuleCollections[0].Properties.Rules[0])
		}
	}
	protocols := func(ps ...string) []*armnetwork.AzureFirewallNetworkRuleProtocol {
		var out []*armnetwork.AzureFirewallNetworkRuleProtocol
		for _, p := range ps {
			out = append(out, to.Ptr(armnetwork.AzureFirewallNetworkRuleProtocol(p)))
		}
		return out
	}
	cases := map[string]struct {
		change func(*armnetwork.AzureFirewallPropertiesFormat, *armnetwork.AzureFirewall)
		code   string
	}{
		"network protocol GRE": {network(func(r *armnetwork.AzureFirewallNetworkRule) { r.Protocols = protocols("GRE") }), "InvalidRequestFormat"},
		"no protocol":          {network(func(r *armnetwork.AzureFirewallNetworkRule) { r.Protocols = nil }), "AzureFirewallRuleAtLeastOneProtocolRequired"},
		"no destination ports": {network(func(r *armnetwork.AzureFirewallNetworkRule) { r.DestinationPorts = nil }), "AzureFirewallRuleIpAddressesAndPortsMustBeSpecified"},
		"address with host bits": {network(func(r *armnetwork.AzureFirewallNetworkRule) {
			r.SourceAddresses = []*string{to.Ptr("10.10.0.1/16")}
		}), "AzureFirewallRuleInvalidIpAddressOrRangeFormat"},
		"IPv6 destination": {network(func(r *armnetwork.AzureFirewallNetworkRule) {
			r.DestinationAddresses = []*string{to.Ptr("fd00:db8:10:1::4")}
		}), "InvalidIPAddressFamily"},
		"port 0":       {network(func(r *armnetwork.AzureFirewallNetworkRule) { r.DestinationPorts = []*string{to.Ptr("0-22")} }), "AzureFirewallRuleInvalidPortOrRangeFormat"},
		"DNAT ICMP":    {nat(func(r *armnetwork.AzureFirewallNatRule) { r.Protocols = protocols("ICMP") }), "AzureFirewallRuleInvalidDnatProtocol"},
		"DNAT Any":     {nat(func(r *armnetwork.AzureFirewallNatRule) { r.Protocols = protocols("TCP", "Any") }), "AzureFirewallRuleInvalidDnatProtocol"},
		"DNAT to a VM": {nat(func(r *armnetwork.AzureFirewallNatRule) { r.DestinationAddresses = []*string{to.Ptr("10.10.1.4")} }), "AzureFirewallRuleInvalidDnatDestinationAddress"},
		"DNAT to two": {nat(func(r *armnetwork.AzureFirewallNatRule) {
			r.DestinationAddresses = append(r.DestinationAddresses, to.Ptr("20.61.15.201"))
		}), "AzureFirewallRuleInvalidDnatDestinationAddress"},
		"DNAT two ports": {nat(func(r *armnetwork.AzureFirewallNatRule) {
			r.DestinationPorts = append(r.DestinationPorts, to.Ptr("8443"))
		}), "AzureFirewallRuleInvalidDnatPortOrRangeFormat"},
		"DNAT port range":     {nat(func(r *armnetwork.AzureFirewallNatRule) { r.DestinationPorts = []*string{to.Ptr("443-444")} }), "AzureFirewallRuleInvalidDnatPortOrRangeFormat"},
		"DNAT no translation": {nat(func(r *armnetwork.AzureFirewallNatRule) { r.TranslatedAddress = nil }), "AzureFirewallRuleIpAddressesAndPortsMustBeSpecified"},
		"DNAT any port":       {nat(func(r *armnetwork.AzureFirewallNatRule) { r.TranslatedPort = to.Ptr("*") }), "AzureFirewallRuleInvalidDnatPortOrRangeFormat"},
		"DNAT to a prefix":    {nat(func(r *armnetwork.AzureFirewallNatRule) { r.TranslatedAddress = to.Ptr("10.10.1.0/24") }), "AzureFirewallRuleInvalidIpAddressOrRangeFormat"},
		"collection name twice, other case": {func(p *armnetwork.AzureFirewallPropertiesFormat, _ *armnetwork.AzureFirewall) {
			twin := *p.NetworkRuleCollections[0]
			twin.Name = to.Ptr("ALLOW-DNS")
			twin.Properties = &armnetwork.AzureFirewallNetworkRuleCollectionPropertiesFormat{
				Priority: to.Ptr[int32](250), Action: p.NetworkRuleCollections[0].Properties.Action, Rules: p.NetworkRuleCollections[0].Properties.Rules,
			}
			p.NetworkRuleCollections = append(p.NetworkRuleCollections, &twin)
		}, "AzureFirewallRuleCollectionDuplicateName"},
		// Public IPs and DNAT rules share a quota of 250: the fixture's
		// firewall has one public IP, so 250 DNAT rules are one too many.
		"DNAT quota": {func(p *armnetwork.AzureFirewallPropertiesFormat, _ *armnetwork.AzureFirewall) {
			col := p.NatRuleCollections[0].Properties
			first := *col.Rules[0]
			col.Rules = nil
			for i := range 250 {
				r := first
				r.Name, r.DestinationPorts = to.Ptr(fmt.Sprintf("dnat-%d", i)), []*string{to.Ptr(fmt.Sprint(20000 + i))}
				col.Rules = append(col.Rules, &r)
			}
		}, "AzureFirewallDnatRulesAndPublicIpsLimitReached"},
		"no location": {func(_ *armnetwork.AzureFirewallPropertiesFormat, fw *armnetwork.AzureFirewall) { fw.Location = nil }, "LocationRequired"},
		"moved": {func(_ *armnetwork.AzureFirewallPropertiesFormat, fw *armnetwork.AzureFirewall) {
			fw.Location = to.Ptr("eastus")
		}, "InvalidResourceLocation"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) { wantARMError(t, put(c.change), http.StatusBadRequest, c.code) })
	}

	// Enumerations are stored in ARM's casing; locations compare as ARM's do.
	p, err := fws.BeginCreateOrUpdate(ctx, "rg-hub", "fw-hub", func() armnetwork.AzureFirewall {
		got, _ := fws.Get(ctx, "rg-hub", "fw-hub", nil)
		got.Location = to.Ptr("West Europe")
		got.Properties.NetworkRuleCollections[0].Properties.Rules[0].Protocols = protocols("udp", "tcp")
		got.Properties.NatRuleCollections[0].Properties.Action.Type = to.Ptr(armnetwork.AzureFirewallNatRCActionType("DNAT"))
		return got.AzureFirewall
	}(), nil)
	if err != nil {
		t.Fatal(err)
	}
	done, err := p.PollUntilDone(ctx, azPoll)
	if err != nil {
		t.Fatal(err)
	}
	if got := done.Properties.NetworkRuleCollections[0].Properties.Rules[0].Protocols; *got[0] != "UDP" || *got[1] != "TCP" ||
		*done.Properties.NatRuleCollections[0].Properties.Action.Type != "Dnat" || *done.Location != "westeurope" {
		t.Fatalf("casing: %v %s %s", got, *done.Properties.NatRuleCollections[0].Properties.Action.Type, *done.Location)
	}
}

// ARM throttles each subscription with token buckets: 200 writes refilled
// at 10 a second, 250 reads at 25. An empty bucket answers 429
// SubscriptionRequestsThrottled with Retry-After; every answer says how
// many requests are left.
func TestAzureThrottling(t *testing.T) {
	w := newAzureWorld(t, Options{})
	del := azWebNSG + "/securityRules/not-there?api-version=" + azAPIVersion
	for i := range 200 {
		resp, _ := w.rawARM(t, http.MethodDelete, del, w.token())
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("write %d: %d", i+1, resp.StatusCode)
		}
		if left := resp.Header.Get("x-ms-ratelimit-remaining-subscription-writes"); i == 0 && left != "199" {
			t.Fatalf("writes left after the first: %q", left)
		}
	}
	resp, body := w.rawARM(t, http.MethodDelete, del, w.token())
	if resp.StatusCode != http.StatusTooManyRequests || body["error"].(map[string]any)["code"] != "SubscriptionRequestsThrottled" ||
		resp.Header.Get("Retry-After") != "1" || resp.Header.Get("x-ms-ratelimit-remaining-subscription-writes") != "0" {
		t.Fatalf("write 201: %d %v %v", resp.StatusCode, resp.Header, body)
	}
	// Reads have their own bucket.
	get := azWebNSG + "?api-version=" + azAPIVersion
	if resp, _ := w.rawARM(t, http.MethodGet, get, w.token()); resp.StatusCode != http.StatusOK ||
		resp.Header.Get("x-ms-ratelimit-remaining-subscription-reads") != "249" {
		t.Fatalf("a read after the writes ran out: %d %v", resp.StatusCode, resp.Header)
	}
	time.Sleep(120 * time.Millisecond) // a write token comes back every 100 ms
	if resp, _ := w.rawARM(t, http.MethodDelete, del, w.token()); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("write after a refill: %d", resp.StatusCode)
	}
	// azcore waits for the Retry-After ARM sends and succeeds.
	for i := 0; ; i++ {
		if resp, _ := w.rawARM(t, http.MethodGet, get, w.token()); resp.StatusCode == http.StatusTooManyRequests {
			break
		} else if i > 400 {
			t.Fatal("reads were never throttled")
		}
	}
	start := time.Now()
	if _, err := w.net.NewSecurityGroupsClient().Get(t.Context(), "rg-prod", "web-01-nsg", nil); err != nil || time.Since(start) < 20*time.Millisecond {
		t.Fatalf("read through a throttle: %v after %s", err, time.Since(start))
	}
}

// The network provider honours If-Match on writes, though the SDK's
// options cannot set it: a client that sends the ETag it read learns of a
// concurrent write with 412, instead of overwriting it.
func TestAzureNetworkIfMatch(t *testing.T) {
	w := newAzureWorld(t, Options{})
	ifMatch := func(etag string) context.Context {
		return policy.WithHTTPHeader(t.Context(), http.Header{"If-Match": {etag}})
	}
	rules := w.net.NewSecurityRulesClient()
	rule, err := rules.Get(t.Context(), "rg-prod", "web-01-nsg", "allow-https", nil)
	if err != nil {
		t.Fatal(err)
	}
	read := *rule.Etag
	p, err := rules.BeginCreateOrUpdate(ifMatch(read), "rg-prod", "web-01-nsg", "allow-https", rule.SecurityRule, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(t.Context(), azPoll); err != nil {
		t.Fatal(err)
	}
	_, err = rules.BeginCreateOrUpdate(ifMatch(read), "rg-prod", "web-01-nsg", "allow-https", rule.SecurityRule, nil)
	re := wantARMError(t, err, http.StatusPreconditionFailed, "PreconditionFailed")
	if !strings.Contains(re.Error(), "PreconditionFailedEtagMismatch") {
		t.Fatalf("412 without its detail: %v", re)
	}
	_, err = rules.BeginCreateOrUpdate(ifMatch("*"), "rg-prod", "web-01-nsg", "new-rule", sshRule(150, "*"), nil)
	wantARMError(t, err, http.StatusPreconditionFailed, "PreconditionFailed")
	_, err = rules.BeginDelete(ifMatch(read), "rg-prod", "web-01-nsg", "allow-https", nil)
	wantARMError(t, err, http.StatusPreconditionFailed, "PreconditionFailed")

	fws := w.net.NewAzureFirewallsClient()
	fw, err := fws.Get(t.Context(), "rg-hub", "fw-hub", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fws.BeginCreateOrUpdate(ifMatch(*fw.Etag), "rg-hub", "fw-hub", fw.AzureFirewall, nil); err != nil {
		t.Fatal(err)
	}
	_, err = fws.BeginCreateOrUpdate(ifMatch(*fw.Etag), "rg-hub", "fw-hub", fw.AzureFirewall, nil)
	wantARMError(t, err, http.StatusPreconditionFailed, "PreconditionFailed")
}

// What the emulator renders for what a client left out (defaults) is stored
// as such: the SDK's read-modify-write of an untouched firewall, which
// sends those defaults back, changes nothing in the world.
func TestAzureFirewallRoundTripChangesNothing(t *testing.T) {
	w := newAzureWorld(t, Options{})
	ctx := t.Context()
	before := w.Snapshot().Azure.Firewalls
	fws := w.net.NewAzureFirewallsClient()
	for _, name := range []string{"fw-hub", "fw-managed"} {
		fw, err := fws.Get(ctx, "rg-hub", name, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := fws.BeginCreateOrUpdate(ctx, "rg-hub", name, fw.AzureFirewall, nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, azPoll)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if after := w.Snapshot().Azure.Firewalls; !reflect.DeepEqual(before, after) {
		b, _ := json.Marshal(before)
		a, _ := json.Marshal(after)
		t.Fatalf("a round trip changed the firewalls:\n%s\n%s", b, a)
	}
}
