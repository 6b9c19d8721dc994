package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"

	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// protoV6ProviderFactories runs the provider in the test process, so the
// real CLI (TF_ACC_TERRAFORM_PATH) drives exactly this build.
var protoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"jit": providerserver.NewProtocol6WithError(New("test")()),
}

// TestMain gives the SDKs' default credential chains something to find: a
// managed-identity endpoint served by an emulator (as Azure App Service
// exposes one) and static AWS keys. Every test's own emulator accepts the
// tokens it issues. Variables that could point a test at a real cloud are
// cleared.
func TestMain(m *testing.M) {
	for _, v := range []string{
		"ARM_CLIENT_ID", "ARM_CLIENT_SECRET", "ARM_TENANT_ID", "ARM_SUBSCRIPTION_ID", "ARM_ENVIRONMENT",
		"AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE",
		"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2",
	} {
		os.Unsetenv(v)
	}
	identity, err := newSim(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, kv := range identity.Env() {
		os.Setenv(kv[0], kv[1])
	}
	os.Setenv("AWS_CONFIG_FILE", os.DevNull)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	code := m.Run()
	_ = identity.Close()
	os.Exit(code)
}

func newSim(fx *cloudsim.Fixture) (*cloudsim.Server, error) {
	sim, err := cloudsim.New(fx, cloudsim.Options{})
	if err != nil {
		return nil, err
	}
	return cloudsim.Start(sim, "127.0.0.1:0")
}

// testCloud is one emulated world for one test.
type testCloud struct {
	*cloudsim.Server
}

// newTestCloud starts an emulator seeded from testdata/<fixture>.json and
// stops it when the test ends.
func newTestCloud(t *testing.T, fixture string) *testCloud {
	t.Helper()
	fx, err := cloudsim.LoadFixture(filepath.Join("testdata", fixture+".json"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newSim(fx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &testCloud{Server: srv}
}

// config prefixes a test configuration with a provider block aimed at the emulator.
func (c *testCloud) config(body string) string {
	return c.ProviderBlock() + "\n" + body
}

// azureClient is a real ARM client aimed at the emulator, for checks.
func (c *testCloud) azureClient(t *testing.T) *azure.Client {
	t.Helper()
	client, err := azure.New(azure.Config{ResourceManagerEndpoint: c.URL})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// deleteVM deletes an emulated VM the way its owner would, through the
// compute API.
func (c *testCloud) deleteVM(t *testing.T, name string) {
	t.Helper()
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	env := cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
		cloud.ResourceManager: {Endpoint: c.URL, Audience: "https://management.core.windows.net/"},
	}}
	vms, err := armcompute.NewVirtualMachinesClient(testSub, cred, &arm.ClientOptions{
		ClientOptions:         policy.ClientOptions{Cloud: env, InsecureAllowCredentialWithHTTP: true},
		DisableRPRegistration: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	poller, err := vms.BeginDelete(t.Context(), "prod", name, nil)
	if err == nil {
		_, err = poller.PollUntilDone(t.Context(), &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// putRule writes a rule into an emulated NSG the way a person or another
// tool would: one rule through the security-rules API.
func (c *testCloud) putRule(t *testing.T, nsg string, rule jit.NSGRule) {
	t.Helper()
	if err := c.azureClient(t).ApplyNSGPlan(context.Background(), testNSG+nsg, jit.NSGPlan{Add: []jit.NSGRule{rule}}); err != nil {
		t.Fatal(err)
	}
}

// deleteRule removes a rule from an emulated NSG out of band.
func (c *testCloud) deleteRule(t *testing.T, nsg, name string) {
	t.Helper()
	if err := c.azureClient(t).ApplyNSGPlan(context.Background(), testNSG+nsg, jit.NSGPlan{Remove: []jit.NSGRule{{Name: name}}}); err != nil {
		t.Fatal(err)
	}
}

// writes counts the write calls the emulator served.
func (c *testCloud) writes() int {
	n := 0
	for op, calls := range c.Calls() {
		if isWrite(op) {
			n += calls
		}
	}
	return n
}

func inbound(name string, priority int, access jit.NSGAccess, port string) jit.NSGRule {
	return jit.NSGRule{
		Name: name, Priority: priority, Direction: jit.NSGInbound, Access: access, Protocol: jit.NSGProtocolTCP,
		SourcePrefixes: []string{"10.0.9.0/24"}, SourcePortRanges: []string{"*"},
		DestinationPrefixes: []string{"*"}, DestinationPortRanges: []string{port},
		Description: "written by hand",
	}
}

// tagVM sets tags on an emulated VM the way its owner would.
func (c *testCloud) tagVM(t *testing.T, name string, tags map[string]string) {
	t.Helper()
	if err := c.azureClient(t).UpdateMachineTags(t.Context(), testVM+name, tags, nil); err != nil {
		t.Fatal(err)
	}
}
