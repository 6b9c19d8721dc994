package provider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/command"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Who asks in these tests, and why: longer than a marker holds.
var (
	// A CI run's assumed role: 120 characters, whole in an EC2 tag.
	ciRole = "arn:aws:sts::123456789012:assumed-role/GitHubActions-JitRequests-Apply-Production/run-8812345678-attempt-1-pr-4711-main"
	// An IAM user deep in a path: 300 characters, past any tag.
	deepUser = "arn:aws:iam::123456789012:user/" + strings.Repeat("division/department/team/", 11) + "operator"
	// A guest user's principal name.
	guestUPN = "first.middle.lastname_contoso.onmicrosoft.com#EXT#@fabrikam-operations-emea.onmicrosoft.com"
	// 256 characters, the most a justification takes.
	why256 = strings.Repeat("INC-4211: the primary's data disk filled overnight; logs rotate too late. ", 4)[:256]
	// A principal name longer than Entra ID allows (113): the provider
	// does not count on the limit, so the cut is tested on Azure too.
	longPrincipal = strings.Repeat("x", 250) + "@contoso.onmicrosoft.com"
)

// newTestCloudAs is newTestCloud whose identity endpoints (managed
// identity and STS) answer as id, and are the ones the provider uses: the
// test sets the environment, so it cannot run in parallel. A
// user-assigned identity's client ID keeps its tokens apart from the
// system-assigned ones the other tests cached.
func newTestCloudAs(t *testing.T, fixture string, id cloudsim.Identity) *testCloud {
	t.Helper()
	fx, err := cloudsim.LoadFixture(filepath.Join("testdata", fixture+".json"))
	if err != nil {
		t.Fatal(err)
	}
	sim, err := cloudsim.New(fx, cloudsim.Options{Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := cloudsim.Start(sim, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	for _, kv := range srv.Env() {
		if kv[0] != "AWS_REGION" {
			t.Setenv(kv[0], kv[1])
		}
	}
	t.Setenv("AZURE_CLIENT_ID", fmt.Sprintf("00000000-0000-0000-0000-%012d", time.Now().UnixNano()%1e12))
	return &testCloud{Server: srv}
}

func identityOf(upn, arn string) cloudsim.Identity {
	return cloudsim.Identity{UPN: upn, ObjectID: "00000000-0000-0000-0000-0000000000bb", AWSAccount: "123456789012", AWSArn: arn}
}

// requestWith is a request for 22 from source, made for onBehalfOf.
func requestWith(name, vm, source, onBehalfOf, justification string) string {
	return fmt.Sprintf(`
resource "jit_access_request" %q {
  virtual_machine_id = %s
  justification      = %q
  on_behalf_of       = %q
  port {
    number                        = 22
    allowed_source_address_prefix = %q
    duration                      = "PT1H"
  }
}
`, name, vm, justification, onBehalfOf, source)
}

func requestID(s *terraform.State, name string) string {
	return s.RootModule().Resources["jit_access_request."+name].Primary.Attributes["id"]
}

// audit runs the audit command in process against the emulator.
func (c *testCloud) audit(t *testing.T, clock jit.Clock) command.AuditReport {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args := []string{"-format", "json", "-subscription", testSub, "-azure-endpoint", c.URL, "-region", "eu-west-1", "-aws-endpoint", c.URL}
	if code := command.Audit(t.Context(), args, &stdout, &stderr, clock); code != command.ExitOK {
		t.Fatalf("audit exit %d\n%s", code, stderr.String())
	}
	var r command.AuditReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// auditedGrant is the audit's grant of request on vm.
func auditedGrant(r command.AuditReport, vm, request string) (command.AuditedGrant, error) {
	for _, m := range r.Machines {
		for _, g := range m.Grants {
			if strings.EqualFold(m.ID, vm) && g.Request == request {
				return g, nil
			}
		}
	}
	return command.AuditedGrant{}, fmt.Errorf("audit shows no grant of %s on %s: %+v", request, vm, r.Machines)
}

// observedRecord is what Read reads back of a request's record: the
// engine's observation through the real backends over HTTP.
func (c *testCloud) observedRecord(t *testing.T, s *terraform.State, name string) (*jit.GrantRecord, error) {
	t.Helper()
	attrs := s.RootModule().Resources["jit_access_request."+name].Primary.Attributes
	ref := engine.GrantRef{MachineID: attrs["virtual_machine_id"], RequestID: attrs["id"], Requestor: attrs["requestor"], OnBehalfOf: attrs["on_behalf_of"],
		Ports: []jit.PortProtocol{{Number: 22, Protocol: jit.ProtocolTCP}}}
	client, err := aws.New(t.Context(), aws.Config{Region: "eu-west-1", Endpoint: c.URL})
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(jit.NewClock(), []engine.Backend{azure.NewBackend(c.azureClient(t), ""), aws.NewBackend(client)})
	_, o, err := e.ObserveRequest(t.Context(), ref)
	if err != nil {
		return nil, err
	}
	if o.Record == nil {
		return nil, fmt.Errorf("Read finds no whole record of %s", ref.RequestID)
	}
	return o.Record, nil
}

// revokeExpired runs revoke-expired in process at clock's time.
func (c *testCloud) revokeExpired(t *testing.T, clock jit.Clock) command.Summary {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args := []string{"-subscription", testSub, "-azure-endpoint", c.URL, "-region", "eu-west-1", "-aws-endpoint", c.URL}
	if code := command.RevokeExpired(t.Context(), args, &stdout, &stderr, clock); code != command.ExitOK {
		t.Fatalf("revoke-expired exit %d\n%s", code, stderr.String())
	}
	var s command.Summary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func checkRecorded(what, got, whole string) error {
	if got != whole {
		return fmt.Errorf("%s: %q, want %q whole", what, got, whole)
	}
	return nil
}

// checkCutVisibly proves a value recorded cut: its beginning, the mark and
// the whole's hash, which verifies.
func checkCutVisibly(what, got, whole string) error {
	if got == whole || !strings.Contains(got, jit.CutMark+"sha256:") || !jit.RecordedMatches(got, whole) || jit.TagValueLength(got) > jit.MaxTagValueLength {
		return fmt.Errorf("%s: %q is not %q cut visibly with its hash", what, got, whole)
	}
	return nil
}

// grantGroupTags are the tags of the grant group of request.
func (c *testCloud) grantGroupTags(t *testing.T, request string) map[string]string {
	out, err := c.ec2Client(t).DescribeSecurityGroups(t.Context(), &ec2.DescribeSecurityGroupsInput{
		Filters: []types.Filter{{Name: awssdk.String("tag:" + jit.TagRequest), Values: []string{request}}},
	})
	if err != nil || len(out.SecurityGroups) != 1 {
		t.Fatalf("grant group of %s: %v, %v", request, out, err)
	}
	tags := map[string]string{}
	for _, tag := range out.SecurityGroups[0].Tags {
		tags[awssdk.ToString(tag.Key)] = awssdk.ToString(tag.Value)
	}
	return tags
}

func TestAccAccessRequestAWS_recordsWhoAskedInFull(t *testing.T) {
	cloud := newTestCloudAs(t, "world", identityOf("operator@example.com", ciRole))
	clock := clocktest.New(requestEpoch)
	config := cloud.config(ec2Policy(testEC2) + requestWith("alice", "one(jit_policy.db.virtual_machine_ids)", "203.0.113.7/32", "octocat", why256))
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		CheckDestroy: func(*terraform.State) error {
			if got := cloud.grantGroups(t); len(got) != 0 {
				return fmt.Errorf("grant groups left: %v", got)
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("requestor"), knownvalue.StringExact(ciRole)),
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("on_behalf_of"), knownvalue.StringExact("octocat")),
				},
				Check: func(s *terraform.State) error {
					request := requestID(s, "alice")
					tags := cloud.grantGroupTags(t, request)
					// Each field whole in a tag of its own.
					for _, err := range []error{
						checkRecorded("jit-requestor", tags[jit.TagRequestor], ciRole),
						checkRecorded("jit-on-behalf-of", tags[jit.TagOnBehalfOf], "octocat"),
						checkRecorded("jit-justification", tags[jit.TagJustification], why256),
					} {
						if err != nil {
							return err
						}
					}
					// The marker abbreviates, visibly.
					if m, ok := jit.ParseMarker(tags[jit.TagGrant]); !ok || !strings.HasSuffix(m.Requestor, jit.CutMark) || !strings.HasSuffix(m.Justification, jit.CutMark) {
						return fmt.Errorf("marker %q does not mark what it shortened", tags[jit.TagGrant])
					}
					// Read reads it back whole.
					r, err := cloud.observedRecord(t, s, "alice")
					if err != nil {
						return err
					}
					if *r != (jit.GrantRecord{Requestor: ciRole, OnBehalfOf: "octocat", Justification: why256}) {
						return fmt.Errorf("Read's record: %+v", *r)
					}
					// Audit reads it back from the cloud alone.
					g, err := auditedGrant(cloud.audit(t, clock), testEC2, request)
					if err != nil {
						return err
					}
					if g.Requestor != ciRole || g.OnBehalfOf != "octocat" || g.Justification != why256 || g.Record != command.RecordWhole {
						return fmt.Errorf("audit: %+v", g)
					}
					return nil
				},
			},
			// Read finds the record as made: nothing to change.
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
			{
				// Past the end, revoke-expired removes the grant and says
				// who had asked, from the cloud alone.
				PreConfig: func() {
					clock.Advance(2 * time.Hour)
					s := cloud.revokeExpired(t, clock)
					if len(s.Revoked) != 1 || s.Revoked[0].Requestor != ciRole || s.Revoked[0].OnBehalfOf != "octocat" || s.Revoked[0].Justification != why256 {
						t.Errorf("revoke-expired: %+v", s.Revoked)
					}
				},
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status"), knownvalue.StringExact("Expired")),
				},
			},
		},
	})
}

func TestAccAccessRequestAWS_aRequestorPastATagIsCutVisibly(t *testing.T) {
	cloud := newTestCloudAs(t, "world", identityOf("operator@example.com", deepUser))
	clock := clocktest.New(requestEpoch)
	config := cloud.config(ec2Policy(testEC2) + requestWith("alice", "one(jit_policy.db.virtual_machine_ids)", "203.0.113.7/32", "octocat", "INC-77"))
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					// State keeps the whole; the cloud, what fits.
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("requestor"), knownvalue.StringExact(deepUser)),
				},
				Check: func(s *terraform.State) error {
					request := requestID(s, "alice")
					if err := checkCutVisibly("jit-requestor", cloud.grantGroupTags(t, request)[jit.TagRequestor], deepUser); err != nil {
						return err
					}
					g, err := auditedGrant(cloud.audit(t, clock), testEC2, request)
					if err != nil {
						return err
					}
					if err := checkCutVisibly("audit's requestor", g.Requestor, deepUser); err != nil {
						return err
					}
					if g.Record != command.RecordWhole || g.Justification != "INC-77" {
						return fmt.Errorf("audit: %+v", g)
					}
					return nil
				},
			},
			// The cut record verifies against the whole: Read is content.
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

// vmRecordTags are the jit-record-* tags of the web VM.
func (c *testCloud) vmRecordTags(t *testing.T) map[string]string {
	m, err := c.azureClient(t).Machine(t.Context(), testVM+"web")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range m.Tags {
		if strings.HasPrefix(k, "jit-record-") {
			out[k] = v
		}
	}
	return out
}

func TestAccAccessRequest_recordsWhoAskedInFull(t *testing.T) {
	cloud := newTestCloudAs(t, "world", identityOf(guestUPN, "arn:aws:iam::123456789012:user/operator"))
	clock := clocktest.New(requestEpoch)
	vm := "one(jit_policy.web.virtual_machine_ids)"
	// Two people's requests through one CI identity: they coexist.
	config := cloud.config(sshPolicy +
		requestWith("alice", vm, "203.0.113.7/32", "alice-gh", why256) +
		requestWith("bob", vm, "203.0.113.9/32", "bob-gh", "INC-4212"))
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		CheckDestroy: func(*terraform.State) error {
			if tags := cloud.vmRecordTags(t); len(tags) != 0 {
				return fmt.Errorf("records left on the VM: %v", tags)
			}
			return expectGrants(t, cloud, 0)(nil)
		},
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("requestor"), knownvalue.StringExact(guestUPN)),
					statecheck.ExpectKnownValue("jit_access_request.bob", tfjsonpath.New("on_behalf_of"), knownvalue.StringExact("bob-gh")),
				},
				Check: func(s *terraform.State) error {
					alice, bob := requestID(s, "alice"), requestID(s, "bob")
					tags := cloud.vmRecordTags(t)
					at := func(request, field string) string { return tags[jit.RecordTagPrefix(request)+field] }
					for _, err := range []error{
						checkRecorded("alice's requestor", at(alice, jit.TagRequestor), guestUPN),
						checkRecorded("alice's on-behalf-of", at(alice, jit.TagOnBehalfOf), "alice-gh"),
						checkRecorded("alice's justification", at(alice, jit.TagJustification), why256),
						checkRecorded("bob's on-behalf-of", at(bob, jit.TagOnBehalfOf), "bob-gh"),
					} {
						if err != nil {
							return err
						}
					}
					// Different people: both grants stand, in both NSGs.
					if err := expectGrants(t, cloud, 2)(s); err != nil {
						return err
					}
					// The rules' markers abbreviate, visibly.
					for _, r := range cloud.nsgRules(t, "web-nic-nsg") {
						if m, ok := jit.ParseMarker(r.Description); ok && m.Kind == jit.MarkerGrant && !strings.HasSuffix(m.Requestor, jit.CutMark) {
							return fmt.Errorf("rule %s: marker %q keeps a shortened requestor unmarked", r.Name, r.Description)
						}
					}
					for name, want := range map[string]jit.GrantRecord{
						"alice": {Requestor: guestUPN, OnBehalfOf: "alice-gh", Justification: why256},
						"bob":   {Requestor: guestUPN, OnBehalfOf: "bob-gh", Justification: "INC-4212"},
					} {
						r, err := cloud.observedRecord(t, s, name)
						if err != nil {
							return err
						}
						if *r != want {
							return fmt.Errorf("Read's record of %s: %+v, want %+v", name, *r, want)
						}
					}
					report := cloud.audit(t, clock)
					g, err := auditedGrant(report, testVM+"web", alice)
					if err != nil {
						return err
					}
					if g.Requestor != guestUPN || g.OnBehalfOf != "alice-gh" || g.Justification != why256 || g.Record != command.RecordWhole ||
						g.Source != "203.0.113.7/32" || len(g.Targets) != 2 {
						return fmt.Errorf("audit of alice's grant: %+v", g)
					}
					if g, err = auditedGrant(report, testVM+"web", bob); err != nil || g.OnBehalfOf != "bob-gh" || g.Justification != "INC-4212" || g.Record != command.RecordWhole {
						return fmt.Errorf("audit of bob's grant: %+v, %w", g, err)
					}
					// A short justification stays in the marker: no tag.
					if _, ok := tags[jit.RecordTagPrefix(bob)+jit.TagJustification]; ok {
						return fmt.Errorf("bob's justification fits the marker but was tagged too: %v", tags)
					}
					return nil
				},
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
			{
				PreConfig: func() {
					clock.Advance(2 * time.Hour)
					s := cloud.revokeExpired(t, clock)
					var who []string
					for _, g := range s.Revoked {
						who = append(who, g.Requestor+"|"+g.OnBehalfOf+"|"+g.Justification)
					}
					slices.Sort(who)
					want := []string{guestUPN + "|alice-gh|" + why256, guestUPN + "|alice-gh|" + why256, guestUPN + "|bob-gh|INC-4212", guestUPN + "|bob-gh|INC-4212"}
					if !slices.Equal(who, want) {
						t.Errorf("revoke-expired reports\n%q\nwant\n%q", who, want)
					}
				},
				Config: config,
			},
		},
	})
}

func TestAccAccessRequest_aRequestorPastATagIsCutVisibly(t *testing.T) {
	cloud := newTestCloudAs(t, "world", identityOf(longPrincipal, "arn:aws:iam::123456789012:user/operator"))
	clock := clocktest.New(requestEpoch)
	config := cloud.config(sshPolicy + requestWith("alice", "one(jit_policy.web.virtual_machine_ids)", "203.0.113.7/32", "alice-gh", "INC-4211"))
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("requestor"), knownvalue.StringExact(longPrincipal)),
				},
				Check: func(s *terraform.State) error {
					alice := requestID(s, "alice")
					if err := checkCutVisibly("requestor tag", cloud.vmRecordTags(t)[jit.RecordTagPrefix(alice)+jit.TagRequestor], longPrincipal); err != nil {
						return err
					}
					g, err := auditedGrant(cloud.audit(t, clock), testVM+"web", alice)
					if err != nil {
						return err
					}
					return checkCutVisibly("audit's requestor", g.Requestor, longPrincipal)
				},
			},
			{Config: config, ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}}},
		},
	})
}

func TestAccAccessRequest_onBehalfOfIsValidated(t *testing.T) {
	cloud := newTestCloud(t, "world")
	for _, tc := range []struct{ value, err string }{
		{"", "leave on_behalf_of out"},
		{"octo\ncat", "invisible character U+000A"},
		{"admin\u202Etxt.exe", "invisible character U+202E"},
		{strings.Repeat("a", 257), "at most 256"},
	} {
		t.Run(tc.err, func(t *testing.T) {
			resource.ParallelTest(t, resource.TestCase{
				ProtoV6ProviderFactories: protoV6ProviderFactories,
				Steps: []resource.TestStep{{
					Config:      cloud.config(requestWith("r", `"`+testVM+`web"`, "203.0.113.7/32", tc.value, "INC-1")),
					ExpectError: regexp.MustCompile(`(?s)Invalid on_behalf_of.*on_behalf_of.*` + regexp.QuoteMeta(tc.err)),
					PlanOnly:    true,
				}},
			})
		})
	}
}

// One CI identity applies everybody's requests: a newer request supersedes
// only the older grant of the same person, on both clouds.
func TestAccAccessRequest_aNewerRequestSupersedesOnlyTheSamePersonsGrant(t *testing.T) {
	for _, tc := range []struct {
		cloud, policy, vm string
		grants            func(*testCloud, *testing.T) []string
	}{
		{"azure", sshPolicy, "one(jit_policy.web.virtual_machine_ids)", func(c *testCloud, t *testing.T) []string { return c.grants(t, "web-nic-nsg") }},
		{"aws", ec2Policy(testEC2), "one(jit_policy.db.virtual_machine_ids)", func(c *testCloud, t *testing.T) []string { return c.grantGroups(t) }},
	} {
		t.Run(tc.cloud, func(t *testing.T) {
			cloud := newTestCloud(t, "world")
			clock := clocktest.New(requestEpoch)
			alice := requestWith("alice", tc.vm, "203.0.113.7/32", "alice-gh", "INC-1")
			bob := requestWith("bob", tc.vm, "203.0.113.9/32", "bob-gh", "INC-2")
			alice2 := requestWith("alice2", tc.vm, "203.0.113.8/32", "alice-gh", "INC-3")
			count := func(want int, sources ...string) resource.TestCheckFunc {
				return func(*terraform.State) error {
					got := tc.grants(cloud, t)
					for _, src := range sources {
						if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, src) }) {
							return fmt.Errorf("no grant from %s: %v", src, got)
						}
					}
					if len(got) != want {
						return fmt.Errorf("grants %v, want %d", got, want)
					}
					return nil
				}
			}
			resource.ParallelTest(t, resource.TestCase{
				ProtoV6ProviderFactories: factoriesAt(clock),
				Steps: []resource.TestStep{
					{Config: cloud.config(tc.policy + alice)},
					// Another person through the same identity: both stand.
					{PreConfig: func() { clock.Advance(time.Minute) }, Config: cloud.config(tc.policy + alice + bob), Check: count(2, "203.0.113.7/32", "203.0.113.9/32")},
					// Alice again: her older grant goes, Bob's stays.
					{PreConfig: func() { clock.Advance(time.Minute) }, Config: cloud.config(tc.policy + alice + bob + alice2), Check: count(2, "203.0.113.8/32", "203.0.113.9/32")},
					{
						Config: cloud.config(tc.policy + alice + bob + alice2),
						ConfigStateChecks: []statecheck.StateCheck{
							statecheck.ExpectKnownValue("jit_access_request.alice", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status_reason"), knownvalue.StringExact("NewerRequestInitiated")),
							statecheck.ExpectKnownValue("jit_access_request.bob", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status"), knownvalue.StringExact("Initiated")),
							statecheck.ExpectKnownValue("jit_access_request.alice2", tfjsonpath.New("port").AtSliceIndex(0).AtMapKey("status"), knownvalue.StringExact("Initiated")),
						},
					},
				},
			})
		})
	}
}

// A VM with no room left for the request's record is a plan error naming
// it, and nothing is written.
func TestAccAccessRequest_noRoomForTheRecordIsAPlanError(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	fill := func() { cloud.fillVMTags(t, "web", 50) }
	request := requestWith("alice", "one(jit_policy.web.virtual_machine_ids)", "203.0.113.7/32", "alice-gh", "INC-1")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy)},
			{
				PreConfig:   fill,
				Config:      cloud.config(sshPolicy + request),
				ExpectError: regexp.MustCompile(`(?s)No room for the request's record.*virtual_machine_id.*virtualMachines/web\s+carries 50 tags`),
			},
			{
				Config: cloud.config(sshPolicy),
				Check: func(*terraform.State) error {
					if n := cloud.writes(); n != 0 {
						return fmt.Errorf("%d writes for a refused request", n)
					}
					return nil
				},
			},
		},
	})
}

// Requests planned together see each other's records: with room on the VM
// for two more tags, three requests made for three people fail the plan
// (each alone would fit, and the third would fail at apply), and nothing
// is written; two apply.
func TestAccAccessRequest_requestsPlannedTogetherShareTheVMsRoomForRecords(t *testing.T) {
	cloud := newTestCloud(t, "world")
	clock := clocktest.New(requestEpoch)
	fill := func() { cloud.fillVMTags(t, "web", 48) }
	vm := "one(jit_policy.web.virtual_machine_ids)"
	two := requestWith("alice", vm, "203.0.113.7/32", "alice-gh", "INC-1") + requestWith("bob", vm, "203.0.113.8/32", "bob-gh", "INC-2")
	three := two + requestWith("carol", vm, "203.0.113.9/32", "carol-gh", "INC-3")
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: factoriesAt(clock),
		Steps: []resource.TestStep{
			{Config: cloud.config(sshPolicy)},
			{
				PreConfig:   fill,
				Config:      cloud.config(sshPolicy + three),
				ExpectError: regexp.MustCompile(`(?s)No room for the request's record.*virtualMachines/web\s+carries 48 tags\s+and\s+other\s+requests\s+planned\s+with\s+this\s+one\s+take\s+2\s+more`),
			},
			{
				PreConfig: func() {
					if n := cloud.writes(); n != 0 {
						t.Fatalf("%d writes for a refused plan", n)
					}
				},
				Config: cloud.config(sshPolicy + two),
				Check:  expectGrants(t, cloud, 2),
			},
		},
	})
}

// fillVMTags tags an emulated VM with tags of others until it carries n,
// then forgets the calls made so far.
func (c *testCloud) fillVMTags(t *testing.T, vm string, n int) {
	t.Helper()
	m, err := c.azureClient(t).Machine(t.Context(), testVM+vm)
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for i := len(m.Tags); i < n; i++ {
		tags[fmt.Sprintf("cost-centre-%02d", i)] = "x"
	}
	if err := c.azureClient(t).MergeTags(t.Context(), testVM+vm, tags); err != nil {
		t.Fatal(err)
	}
	c.ResetCalls()
}

// Read warns, naming the attribute, when the cloud's record is not what
// the request was made with; a record cut visibly that verifies is fine.
func TestCheckRecord_warnsWhenTheRecordWasRewritten(t *testing.T) {
	made := jit.GrantRecord{Requestor: deepUser, OnBehalfOf: "octocat", Justification: "INC-1"}
	var diags diag.Diagnostics
	checkRecord(&diags, "r1", made, jit.GrantRecord{Requestor: jit.FitTagValue(deepUser), OnBehalfOf: "octocat", Justification: "INC-1"})
	if len(diags) != 0 {
		t.Fatalf("a verifying record warned: %v", diags)
	}
	checkRecord(&diags, "r1", made, jit.GrantRecord{Requestor: jit.FitTagValue(deepUser + "x"), OnBehalfOf: "mallory", Justification: "INC-1"})
	if len(diags) != 2 || diags.HasError() || !diags[0].(diag.DiagnosticWithPath).Path().Equal(path.Root("requestor")) ||
		!diags[1].(diag.DiagnosticWithPath).Path().Equal(path.Root("on_behalf_of")) || !strings.Contains(diags[1].Detail(), `"mallory"`) {
		t.Fatalf("diagnostics %v", diags)
	}
}
