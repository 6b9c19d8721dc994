package cloudsim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// The provider names its flow in its User-Agent (jit-flow/<flow>); the
// emulator counts every call by operation and by flow, through both SDKs'
// own ways of adding to the User-Agent.
func TestCallsByFlow(t *testing.T) {
	fx, err := LoadFixture("testdata/azure_fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	awsFx, err := LoadFixture("testdata/aws_fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	fx.AWS = awsFx.AWS
	w := newAzureWorldFrom(t, fx, Options{})
	ctx := t.Context()

	opts := azClientOptions(w.URL, 3)
	opts.Telemetry = policy.TelemetryOptions{ApplicationID: "jit-flow/configure"}
	net, comp := w.factories(t, w.cred, opts)
	if _, err := net.NewSecurityGroupsClient().Get(ctx, "rg-prod", "web-01-nsg", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := comp.NewVirtualMachinesClient().Get(ctx, "rg-prod", "web-01", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.net.NewSecurityGroupsClient().Get(ctx, "rg-prod", "web-01-nsg", nil); err != nil { // no flow
		t.Fatal(err)
	}
	audit := ec2Client(w.URL, "eu-west-1", func(o *ec2.Options) {
		o.APIOptions = append(o.APIOptions, awsmiddleware.AddUserAgentKeyValue("jit-flow", "audit"))
	})
	if _, err := audit.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
		t.Fatal(err)
	}

	want := map[string]map[string]int{
		"configure": {"SecurityGroups.Get": 1, "VirtualMachines.Get": 1},
		NoFlow:      {"SecurityGroups.Get": 1},
		"audit":     {"DescribeInstances": 1},
	}
	if got := w.CallsByFlow(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls by flow: %v, want %v", got, want)
	}
	if got := w.Calls(); got["SecurityGroups.Get"] != 2 || got["DescribeInstances"] != 1 {
		t.Fatalf("calls: %v", got)
	}

	resp, err := http.Get(w.URL + "/_admin/calls/by-flow")
	if err != nil {
		t.Fatal(err)
	}
	var admin map[string]map[string]int
	err = json.NewDecoder(resp.Body).Decode(&admin)
	_ = resp.Body.Close()
	if err != nil || !reflect.DeepEqual(admin, want) {
		t.Fatalf("admin calls by flow: %v %v", err, admin)
	}

	w.ResetCalls()
	if len(w.CallsByFlow()) != 0 || len(w.Calls()) != 0 {
		t.Fatal("ResetCalls left counts")
	}
}

// ObjectReads counts reads of single objects (ARM resource GETs, EC2
// Describe calls by the IDs they name), not lists and not operation polls:
// what "each object read once per operation" is measured with.
func TestObjectReads(t *testing.T) {
	fx, err := LoadFixture("testdata/azure_fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	awsFx, err := LoadFixture("testdata/aws_fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	fx.AWS = awsFx.AWS
	w := newAzureWorldFrom(t, fx, Options{})
	ctx := t.Context()
	for range 2 {
		if _, err := w.net.NewSecurityGroupsClient().Get(ctx, "rg-prod", "WEB-01-NSG", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.comp.NewVirtualMachinesClient().Get(ctx, "rg-prod", "web-01", nil); err != nil {
		t.Fatal(err)
	}
	pager := w.net.NewSecurityGroupsClient().NewListAllPager(nil)
	for pager.More() {
		if _, err := pager.NextPage(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ec2c := ec2Client(w.URL, "eu-west-1")
	if _, err := ec2c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"sg-0b5e3a1f2c4d6e8a0", "sg-0c7d9e1f3a5b7c9d1"}}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"/subscriptions/" + azSub + "/resourcegroups/rg-prod/providers/microsoft.network/networksecuritygroups/web-01-nsg": 2,
		"/subscriptions/" + azSub + "/resourcegroups/rg-prod/providers/microsoft.compute/virtualmachines/web-01":           1,
		"sg-0b5e3a1f2c4d6e8a0": 1,
		"sg-0c7d9e1f3a5b7c9d1": 1,
	}
	if got := w.ObjectReads(); !reflect.DeepEqual(got, want) {
		t.Fatalf("object reads: %v, want %v", got, want)
	}
	w.ResetCalls()
	if len(w.ObjectReads()) != 0 {
		t.Fatal("ResetCalls left object reads")
	}
}

// With Options.Identities, each token issued carries the next identity.
func TestIdentitiesTakeTurns(t *testing.T) {
	people := []Identity{{UPN: "alice@example.com", ObjectID: "a"}, {UPN: "bob@example.com", ObjectID: "b"}}
	w := newAzureWorld(t, Options{Identities: people})
	var got []string
	for range 3 {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, w.URL+"/msi/token?api-version=2019-08-01&resource="+armAudience, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-IDENTITY-HEADER", "x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Token string `json:"access_token"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		payload, err := base64.RawURLEncoding.DecodeString(strings.Split(body.Token, ".")[1])
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			UPN string `json:"upn"`
		}
		if err := json.Unmarshal(payload, &claims); err != nil {
			t.Fatal(err)
		}
		got = append(got, claims.UPN)
	}
	if want := []string{"alice@example.com", "bob@example.com", "alice@example.com"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("token identities %v, want %v", got, want)
	}
}
