package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/command"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// buildBinary builds the provider binary from this tree, once per test.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the provider binary")
	}
	bin := filepath.Join(t.TempDir(), "terraform-provider-jit")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// The released binary's audit, as an auditor runs it: configured by the
// environment alone, against an emulator holding a grant opened the way a
// request opens one, CSV by default and JSON on request.
func TestAuditSubcommandOfTheBinary(t *testing.T) {
	bin := buildBinary(t)
	fx, err := cloudsim.LoadFixture("internal/command/testdata/revoke.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := startEmulator(t, fx)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"ARM_SUBSCRIPTION_ID=00000000-0000-0000-0000-0000000000a1", "AWS_ENDPOINT_URL_EC2=" + srv.URL,
		"AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull}
	for _, kv := range srv.Env() {
		env = append(env, kv[0]+"="+kv[1])
		t.Setenv(kv[0], kv[1])
	}

	// A request on the AWS instance api, opened through the backend: an
	// assumed role acting for a person, with a justification of 256.
	ctx := t.Context()
	client, err := aws.New(ctx, aws.Config{Region: "eu-west-1", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	tags, err := jit.PolicyTags("prod-ssh", "", []jit.Port{{Number: 22, Protocol: jit.ProtocolTCP, AllowedSourcePrefixes: []string{"203.0.113.0/24"}, MaxRequestAccessDuration: jit.Duration(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.UpdateInstanceTags(ctx, &jit.Machine{ID: "i-0a000001", Tags: map[string]string{}}, tags, nil); err != nil {
		t.Fatal(err)
	}
	api, err := client.Machine(ctx, "i-0a000001")
	if err != nil {
		t.Fatal(err)
	}
	role := "arn:aws:sts::123456789012:assumed-role/GitHubActions-JitRequests-Apply/run-8812345678-attempt-1"
	why := strings.Repeat("INC-77 replica lag; ", 13)[:256]
	request := engine.NewRequestID(time.Now().Add(-time.Minute))
	if _, err := aws.NewBackend(client).OpenGrant(ctx, api, engine.Grant{ID: request, Policy: "prod-ssh", Requestor: role, OnBehalfOf: "octocat", Justification: why,
		Ports: []engine.GrantPort{{Port: jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}, Source: "203.0.113.7/32", End: time.Now().Add(time.Hour)}}}); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(bin, append([]string{"audit", "-azure-endpoint", srv.URL}, args...)...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		code := 0
		if err := cmd.Run(); err != nil {
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatal(err)
			}
			code = exit.ExitCode()
		}
		return stdout.String(), stderr.String(), code
	}

	out, stderr, code := run()
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(records) != 5 || !slices.Equal(records[0], command.AuditColumns) {
		t.Fatalf("CSV %v (%v), want the header and 4 machines:\n%s", records, err, out)
	}
	var row []string
	for _, r := range records[1:] {
		if r[1] == "i-0a000001" {
			row = r
		}
	}
	col := func(name string) string { return row[slices.Index(command.AuditColumns, name)] }
	if row == nil || col("request_id") != request || col("requestor") != role || col("on_behalf_of") != "octocat" || col("justification") != why ||
		col("status") != "active" || col("record") != "whole" || col("source") != "203.0.113.7/32" || col("policy") != "prod-ssh" {
		t.Fatalf("api's row %q", row)
	}

	out, stderr, code = run("-format", "json")
	var report command.AuditReport
	if code != 0 || json.Unmarshal([]byte(out), &report) != nil || len(report.Machines) != 4 || len(report.Scopes) != 2 {
		t.Fatalf("JSON: exit %d, %+v\nstderr:\n%s", code, report, stderr)
	}

	// Some scope unreadable: 1, the rest still printed.
	if out, _, code = run("-resource-group", "nowhere"); code != 1 || !strings.Contains(out, "i-0a000001") {
		t.Errorf("unreadable resource group: exit %d\n%s", code, out)
	}
	// Usage errors exit 2.
	cmd := exec.Command(bin, "audit", "-format", "xml")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "ARM_SUBSCRIPTION_ID=00000000-0000-0000-0000-0000000000a1"}
	usage, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !bytes.Contains(usage, []byte("-format")) {
		t.Errorf("bad -format: %v\n%s", err, usage)
	}
	// The usage names every column.
	help, _ := exec.Command(bin, "audit", "-h").CombinedOutput()
	for _, c := range command.AuditColumns {
		if !bytes.Contains(help, []byte(c)) {
			t.Errorf("audit -h does not describe column %s", c)
		}
	}
}

// The released binary, run as cron would run it: built from this tree,
// configured by the environment alone, against an emulator, on the real
// clock, so its grants end long ago or far ahead.
func TestRevokeExpiredSubcommandOfTheBinary(t *testing.T) {
	bin := buildBinary(t)

	fx, err := cloudsim.LoadFixture("internal/command/testdata/revoke.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := startEmulator(t, fx)
	// Only what the job would be given: the emulator's identity endpoint
	// and keys, the subscription, the region and the EC2 endpoint.
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"ARM_SUBSCRIPTION_ID=00000000-0000-0000-0000-0000000000a1", "AWS_ENDPOINT_URL_EC2=" + srv.URL,
		"AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull}
	for _, kv := range srv.Env() {
		env = append(env, kv[0]+"="+kv[1])
		t.Setenv(kv[0], kv[1]) // for the clients seeding grants below
	}

	ctx := t.Context()
	az, err := azure.New(azure.Config{ResourceManagerEndpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	const (
		prod = "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/prod/providers/"
		nsg  = prod + "Microsoft.Network/networkSecurityGroups/web-nsg"
		vm   = prod + "Microsoft.Compute/virtualMachines/web"
	)
	grantNSG := func(request string, end time.Time) string {
		rules, err := az.SecurityRules(ctx, nsg)
		if err != nil {
			t.Fatal(err)
		}
		placed, err := jit.PlanNSGGrants(jit.NSGGrant{NSG: nsg, Rules: rules, Policy: "prod-ssh", Request: request, Machine: vm,
			PrivateIPs: []string{"10.0.1.4"}, Port: jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}, Source: "203.0.113.7/32",
			End: end, Requestor: "alice@example.com", Justification: "INC-1"})
		if err != nil || len(placed) != 1 {
			t.Fatalf("grant %+v, %v", placed, err)
		}
		if err := az.ApplyNSGPlan(ctx, nsg, jit.NSGPlan{Add: placed}); err != nil {
			t.Fatal(err)
		}
		return placed[0].Name
	}
	ended := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	expiredRule := grantNSG("req-ended", ended)
	grantNSG("req-ahead", time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))

	ec2Client, err := aws.New(ctx, aws.Config{Region: "eu-west-1", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	// A request the provider could have made: started an hour before its end.
	const awsRequest = "20001231T230000Z-0000a005"
	sg, err := ec2Client.EC2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName: awssdk.String("jit-grant-" + awsRequest + "-i-0a000001"), Description: awssdk.String("JIT grant " + awsRequest), VpcId: awssdk.String("vpc-0a000001"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: []types.Tag{
			{Key: awssdk.String(jit.TagGrant), Value: awssdk.String(jit.GrantMarker("prod-ssh", ended, "bob@example.com", "INC-2").String())},
			{Key: awssdk.String(jit.TagRequest), Value: awssdk.String(awsRequest)},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec2Client.EC2.ModifyNetworkInterfaceAttribute(ctx, &ec2.ModifyNetworkInterfaceAttributeInput{
		NetworkInterfaceId: awssdk.String("eni-0a000001"), Groups: []string{"sg-0a000001", "sg-0a000002", *sg.GroupId},
	}); err != nil {
		t.Fatal(err)
	}

	run := func() (command.Summary, int) {
		cmd := exec.Command(bin, "revoke-expired", "-azure-endpoint", srv.URL)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		code := 0
		if err := cmd.Run(); err != nil {
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatal(err)
			}
			code = exit.ExitCode()
		}
		var s command.Summary
		if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
			t.Fatalf("stdout is not the JSON summary (%v), exit %d:\n%s\nstderr:\n%s", err, code, stdout.String(), stderr.String())
		}
		return s, code
	}

	// A failure makes the exit code 1; the Azure grant is still revoked.
	srv.InjectFault(cloudsim.Fault{Operation: "DeleteSecurityGroup", FailRate: 1, Status: 403, Code: "UnauthorizedOperation"})
	s, code := run()
	if code != 1 || len(s.Errors) != 1 || s.Errors[0].Target != *sg.GroupId || len(s.Revoked) != 1 || s.Revoked[0].Name != expiredRule {
		t.Fatalf("run with a failing delete: exit %d, summary %+v", code, s)
	}

	srv.ClearFaults()
	s, code = run()
	want := []command.RevokedGrant{{Cloud: "aws", Kind: command.KindSecurityGroup, Target: *sg.GroupId, Name: "jit-grant-" + awsRequest + "-i-0a000001",
		EndTimeUTC: "2001-01-01T00:00:00Z", Requestor: "bob@example.com", Justification: "INC-2", Request: awsRequest}}
	if code != 0 || len(s.Errors) != 0 || !slices.EqualFunc(s.Revoked, want, func(a, b command.RevokedGrant) bool { return reflect.DeepEqual(a, b) }) || s.Live != 1 {
		t.Fatalf("second run: exit %d, summary %+v; want the AWS grant revoked and one live grant", code, s)
	}
	wantScopes := []command.Scope{{Cloud: "azure", Subscription: "00000000-0000-0000-0000-0000000000a1"}, {Cloud: "aws", Region: "eu-west-1"}}
	if !slices.Equal(s.Scopes, wantScopes) {
		t.Errorf("scopes %+v, want %+v", s.Scopes, wantScopes)
	}
	if _, err := time.Parse(time.RFC3339, s.Now); err != nil {
		t.Errorf("now %q: %v", s.Now, err)
	}
	// Read back by a fresh client: az keeps what it read and wrote itself,
	// as a provider process does, and the binary is another process.
	fresh, err := azure.New(azure.Config{ResourceManagerEndpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if rules, err := fresh.SecurityRules(ctx, nsg); err != nil || slices.ContainsFunc(rules, func(r jit.NSGRule) bool { return r.Name == expiredRule }) {
		t.Errorf("the expired rule is still in %s (%v)", nsg, err)
	}

	// Usage errors exit 2.
	cmd := exec.Command(bin, "revoke-expired")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !bytes.Contains(out, []byte("-subscription")) {
		t.Errorf("with nothing configured: %v\n%s", err, out)
	}
}

// startEmulator serves an emulator of fx on loopback until the test ends.
func startEmulator(t *testing.T, fx *cloudsim.Fixture) *cloudsim.Server {
	t.Helper()
	sim, err := cloudsim.New(fx, cloudsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := cloudsim.Start(sim, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}
