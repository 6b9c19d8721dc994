package provider

import (
	"math/big"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// When the CLI renews an ephemeral resource depends on timing the test
// cannot hold still (0 to 4 renewals were seen over identical runs), so
// these tests speak the plugin protocol to the provider server themselves,
// as Terraform would, and decide when Renew happens.

// protocolClient is one provider server, configured against an emulator.
type protocolClient struct {
	t      *testing.T
	server tfprotov6.ProviderServer
	schema *tfprotov6.GetProviderSchemaResponse
}

func newProtocolClient(t *testing.T, cloud *testCloud, clock jit.Clock) *protocolClient {
	t.Helper()
	server, err := providerserver.NewProtocol6WithError(newWithClock("test", clock)())()
	if err != nil {
		t.Fatal(err)
	}
	schema, err := server.GetProviderSchema(t.Context(), &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c := &protocolClient{t: t, server: server, schema: schema}
	cfg := c.dynamic(schema.Provider.ValueType(), map[string]any{
		"azure": map[string]any{"subscription_id": testSub, "resource_manager_endpoint": cloud.URL},
		"aws":   map[string]any{"region": "eu-west-1", "endpoint": cloud.URL},
	})
	resp, err := server.ConfigureProvider(t.Context(), &tfprotov6.ConfigureProviderRequest{Config: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	c.failOn(resp.Diagnostics)
	return c
}

func (c *protocolClient) failOn(diags []*tfprotov6.Diagnostic) {
	c.t.Helper()
	for _, d := range diags {
		if d.Severity == tfprotov6.DiagnosticSeverityError {
			c.t.Fatalf("%s: %s", d.Summary, d.Detail)
		}
	}
}

// open opens jit_access and returns its private data and when to renew.
func (c *protocolClient) open(config map[string]any) ([]byte, time.Time) {
	c.t.Helper()
	cfg := c.dynamic(c.schema.EphemeralResourceSchemas["jit_access"].ValueType(), config)
	resp, err := c.server.OpenEphemeralResource(c.t.Context(), &tfprotov6.OpenEphemeralResourceRequest{TypeName: "jit_access", Config: &cfg})
	if err != nil {
		c.t.Fatal(err)
	}
	c.failOn(resp.Diagnostics)
	return resp.Private, resp.RenewAt
}

func (c *protocolClient) renew(private []byte) ([]byte, time.Time, []*tfprotov6.Diagnostic) {
	c.t.Helper()
	resp, err := c.server.RenewEphemeralResource(c.t.Context(), &tfprotov6.RenewEphemeralResourceRequest{TypeName: "jit_access", Private: private})
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.Private, resp.RenewAt, resp.Diagnostics
}

func (c *protocolClient) close(private []byte) {
	c.t.Helper()
	resp, err := c.server.CloseEphemeralResource(c.t.Context(), &tfprotov6.CloseEphemeralResourceRequest{TypeName: "jit_access", Private: private})
	if err != nil {
		c.t.Fatal(err)
	}
	c.failOn(resp.Diagnostics)
}

// dynamic encodes a configuration written as Go values (maps for objects
// and blocks, slices for lists, nil or absent for null) in the schema's type.
func (c *protocolClient) dynamic(typ tftypes.Type, v any) tfprotov6.DynamicValue {
	c.t.Helper()
	dv, err := tfprotov6.NewDynamicValue(typ, tfValue(typ, v))
	if err != nil {
		c.t.Fatal(err)
	}
	return dv
}

func tfValue(typ tftypes.Type, v any) tftypes.Value {
	if v == nil {
		return tftypes.NewValue(typ, nil)
	}
	switch t := typ.(type) {
	case tftypes.Object:
		m, _ := v.(map[string]any)
		fields := map[string]tftypes.Value{}
		for name, at := range t.AttributeTypes {
			fields[name] = tfValue(at, m[name])
		}
		return tftypes.NewValue(t, fields)
	case tftypes.List:
		items, _ := v.([]any)
		vals := make([]tftypes.Value, len(items))
		for i, item := range items {
			vals[i] = tfValue(t.ElementType, item)
		}
		return tftypes.NewValue(t, vals)
	}
	switch x := v.(type) {
	case int:
		return tftypes.NewValue(typ, big.NewFloat(float64(x)))
	default:
		return tftypes.NewValue(typ, v)
	}
}

func ephemeralConfig(machine, duration, source string) map[string]any {
	return map[string]any{
		"virtual_machine_id": machine, "justification": "pipeline run 512", "duration": duration,
		"port": []any{map[string]any{"number": 22, "allowed_source_address_prefix": source}},
	}
}

// applyPolicy locks 22 on machine, openable from 203.0.113.0/24 for at most
// two hours, as the policy's apply would.
func applyPolicy(t *testing.T, cloud *testCloud, machine string) {
	t.Helper()
	e := engine.New(jit.NewClock(), []engine.Backend{azure.NewBackend(cloud.azureClient(t), ""), aws.NewBackend(cloud.awsClient(t))})
	spec := engine.PolicySpec{Name: "renew", MachineIDs: []string{machine}, Ports: []jit.Port{
		{Number: 22, Protocol: jit.ProtocolTCP, AllowedSourcePrefixes: []string{"203.0.113.0/24"}, MaxRequestAccessDuration: jit.Duration(2 * time.Hour)},
	}}
	if _, findings := e.ApplyPolicy(t.Context(), spec, nil, engine.Expect{}); jit.HasError(findings) {
		t.Fatal(findings)
	}
}

// grantEnds reads the end every grant on machine carries in the cloud: the
// markers of its NSG rules, or its EC2 grant group's jit-grant tag.
func grantEnds(t *testing.T, cloud *testCloud, machine string) []time.Time {
	t.Helper()
	var ends []time.Time
	if strings.HasPrefix(machine, "i-") {
		out, err := cloud.ec2Client(t).DescribeSecurityGroups(t.Context(), &ec2.DescribeSecurityGroupsInput{
			Filters: []types.Filter{{Name: awssdk.String("tag-key"), Values: []string{jit.TagGrant}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range out.SecurityGroups {
			for _, tag := range g.Tags {
				if m, ok := jit.ParseMarker(awssdk.ToString(tag.Value)); ok && awssdk.ToString(tag.Key) == jit.TagGrant {
					ends = append(ends, m.End)
				}
			}
		}
		return ends
	}
	for _, nsg := range []string{"web-nic-nsg", "web-subnet-nsg"} {
		for _, r := range cloud.nsgRules(t, nsg) {
			if m, ok := jit.ParseMarker(r.Description); ok && m.Kind == jit.MarkerGrant {
				ends = append(ends, m.End)
			}
		}
	}
	return ends
}

func expectEnds(t *testing.T, cloud *testCloud, machine string, want time.Time, count int) {
	t.Helper()
	ends := grantEnds(t, cloud, machine)
	if len(ends) != count {
		t.Fatalf("%d grants carry an end in the cloud, want %d", len(ends), count)
	}
	for _, end := range ends {
		if !end.Equal(want) {
			t.Fatalf("a grant ends at %s, want %s", end.Format(time.RFC3339), want.Format(time.RFC3339))
		}
	}
}

// Renew moves the end the grant carries in the cloud (where revoke-expired
// reads it), never past the policy's maximum counted from the first Open,
// then stops asking to be renewed; Close removes the grant.
func TestAccessEphemeral_renewMovesTheEndUpToThePolicysMaximum(t *testing.T) {
	for _, tc := range []struct {
		machine string
		grants  int // places one port's grant is written
	}{{testVM + "web", 2}, {testEC2, 1}} {
		t.Run(tc.machine[strings.LastIndex(tc.machine, "/")+1:], func(t *testing.T) {
			cloud := newTestCloud(t, "world")
			clock := clocktest.New(requestEpoch)
			applyPolicy(t, cloud, tc.machine)
			c := newProtocolClient(t, cloud, clock)

			private, renewAt := c.open(ephemeralConfig(tc.machine, "PT30M", "203.0.113.7/32"))
			expectEnds(t, cloud, tc.machine, requestEpoch.Add(30*time.Minute), tc.grants)
			if !renewAt.After(requestEpoch) || !renewAt.Before(requestEpoch.Add(30*time.Minute)) {
				t.Fatalf("renew at %s, want before the end", renewAt)
			}

			clock.Set(requestEpoch.Add(25 * time.Minute))
			private, renewAt, diags := c.renew(private)
			c.failOn(diags)
			expectEnds(t, cloud, tc.machine, requestEpoch.Add(55*time.Minute), tc.grants)
			if renewAt.IsZero() {
				t.Fatal("no renewal asked for while the maximum is far")
			}

			// Past the maximum from the first Open (PT2H) no renewal reaches.
			clock.Set(requestEpoch.Add(110 * time.Minute))
			private, renewAt, diags = c.renew(private)
			c.failOn(diags)
			expectEnds(t, cloud, tc.machine, requestEpoch.Add(2*time.Hour), tc.grants)
			if !renewAt.IsZero() {
				t.Fatalf("renew at %s although the grant reached the policy's maximum", renewAt)
			}

			c.close(private)
			expectEnds(t, cloud, tc.machine, time.Time{}, 0)
		})
	}
}

// Renew checks the policy again: a source it no longer allows ends the
// grant, which is closed at once instead of renewed.
func TestAccessEphemeral_renewEndsAGrantThePolicyNoLongerAllows(t *testing.T) {
	for _, machine := range []string{testVM + "web", testEC2} {
		t.Run(machine[strings.LastIndex(machine, "/")+1:], func(t *testing.T) {
			cloud := newTestCloud(t, "world")
			clock := clocktest.New(requestEpoch)
			applyPolicy(t, cloud, machine)
			c := newProtocolClient(t, cloud, clock)
			private, _ := c.open(ephemeralConfig(machine, "PT30M", "203.0.113.7/32"))

			// The policy now allows 10.0.0.0/8 only.
			narrowed := map[string]string{"jit-port-22-tcp": "PT2H 10.0.0.0/8"}
			if strings.HasPrefix(machine, "i-") {
				client, err := aws.New(t.Context(), aws.Config{Region: "eu-west-1", Endpoint: cloud.URL})
				if err != nil {
					t.Fatal(err)
				}
				m, err := client.Machine(t.Context(), machine)
				if err == nil {
					err = client.UpdateInstanceTags(t.Context(), m, narrowed, nil)
				}
				if err != nil {
					t.Fatal(err)
				}
			} else {
				cloud.tagVM(t, "web", narrowed)
			}
			clock.Set(requestEpoch.Add(25 * time.Minute))
			_, _, diags := c.renew(private)
			var summaries []string
			for _, d := range diags {
				summaries = append(summaries, d.Summary)
			}
			if got := strings.Join(summaries, ", "); !strings.Contains(got, "Source not allowed") || !strings.Contains(got, "Access ended") {
				t.Fatalf("renew said %q, want the source refused and access ended", got)
			}
			if ends := grantEnds(t, cloud, machine); len(ends) != 0 {
				t.Fatalf("%d grants left after access ended", len(ends))
			}
		})
	}
}

// An ephemeral grant records who asked and for whom, in full, where the
// fleet view (jit_virtual_machine's active_grants) reads it back: a
// pipeline's identity acting for the person who opened the pull request.
func TestAccessEphemeral_recordsWhoAskedInFull(t *testing.T) {
	justification := "pipeline run 512 of " + strings.Repeat("infra-repo deploy to prod-web ", 6)
	for _, machine := range []string{testVM + "web", testEC2} {
		t.Run(machine[strings.LastIndex(machine, "/")+1:], func(t *testing.T) {
			cloud := newTestCloud(t, "world")
			clock := clocktest.New(requestEpoch)
			applyPolicy(t, cloud, machine)
			c := newProtocolClient(t, cloud, clock)
			config := ephemeralConfig(machine, "PT30M", "203.0.113.7/32")
			config["on_behalf_of"], config["justification"] = "carol@example.com", justification
			private, _ := c.open(config)

			e := engine.New(clock, []engine.Backend{azure.NewBackend(cloud.azureClient(t), ""), aws.NewBackend(cloud.awsClient(t))})
			a, err := e.AssessMachine(t.Context(), machine, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(a.ActiveGrants) == 0 {
				t.Fatal("no active grant seen")
			}
			for _, g := range a.ActiveGrants {
				if g.OnBehalfOf != "carol@example.com" || g.Justification != justification || g.Requestor == "" {
					t.Fatalf("grant seen as requestor %q, on behalf of %q, justification %q", g.Requestor, g.OnBehalfOf, g.Justification)
				}
			}
			c.close(private)
		})
	}
}
