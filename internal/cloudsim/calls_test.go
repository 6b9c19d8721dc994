package cloudsim

import (
	"encoding/json"
	"net/http"
	"reflect"
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
