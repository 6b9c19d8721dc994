package command

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// now is the fake clock's time in these tests; markers keep whole seconds.
var now = time.Date(2030, 3, 1, 12, 0, 0, 0, time.UTC)

// seeded is a world with grants on every kind of target: for each, some
// expired and some live.
type seeded struct {
	*world
	before *cloudsim.Fixture

	webOld, webAtNow, webLive, buildOld string // NSG rule names
	fwOld, fwLive                       string // firewall grant collection names
	apiOld, apiLive, dbOld              string // grant security group IDs
}

func seed(t *testing.T, opts cloudsim.Options) *seeded {
	t.Helper()
	w := newWorld(t, opts)
	s := &seeded{world: w}
	s.webOld = w.grantNSG(webNSG, webVM, "10.0.1.4", "req-web-old", now.Add(-time.Hour), "alice@example.com")
	// A grant ends at its end time exactly.
	s.webAtNow = w.grantNSG(webNSG, webVM, "10.0.1.4", "req-web-edge", now, "bob@example.com")
	s.webLive = w.grantNSG(webNSG, webVM, "10.0.1.4", "req-web-live", now.Add(time.Hour), "carol@example.com")
	s.buildOld = w.grantNSG(buildNSG, buildVM, "10.1.1.4", "req-build", now.Add(-24*time.Hour), "dave@example.com")
	// A grant marker on an outbound rule does not make it a grant: the
	// provider never writes one, and only inbound Allows grant access.
	outbound := jit.NSGRule{Name: "outbound-with-marker", Priority: 500, Direction: jit.NSGOutbound, Access: jit.NSGAllow, Protocol: jit.NSGProtocolTCP,
		SourcePrefixes: []string{"*"}, SourcePortRanges: []string{"*"}, DestinationPrefixes: []string{"*"}, DestinationPortRanges: []string{"22"},
		Description: jit.GrantMarker("prod-ssh", now.Add(-time.Hour), "mallory", "copied").String()}
	if err := w.az.ApplyNSGPlan(t.Context(), webNSG, jit.NSGPlan{Add: []jit.NSGRule{outbound}}); err != nil {
		t.Fatal(err)
	}
	s.fwOld = w.grantFirewall("req-fw-old", now.Add(-time.Minute), "erin@example.com")
	s.fwLive = w.grantFirewall("req-fw-live", now.Add(2*time.Hour), "frank@example.com")
	s.apiOld = w.grantSG(apiENI, "req-aws-old", now.Add(-time.Hour), "gina@example.com")
	s.apiLive = w.grantSG(apiENI, "req-aws-live", now.Add(time.Hour), "hal@example.com")
	s.dbOld = w.grantSG(dbENI, "req-aws-db", now.Add(-2*time.Hour), "ivy@example.com")
	s.before = w.Snapshot()
	w.ResetCalls()
	return s
}

// expired is what a run at now must revoke, sorted as the summary is.
func (s *seeded) expired() []RevokedGrant {
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	out := []RevokedGrant{
		{Cloud: "aws", Kind: KindSecurityGroup, Target: s.apiOld, Name: sgGroupName("req-aws-old", now.Add(-time.Hour)), EndTimeUTC: at(now.Add(-time.Hour)), Requestor: "gina@example.com",
			Request: sgRequest("req-aws-old", now.Add(-time.Hour)), Justification: "INC-req-aws-old"},
		{Cloud: "aws", Kind: KindSecurityGroup, Target: s.dbOld, Name: sgGroupName("req-aws-db", now.Add(-2*time.Hour)), EndTimeUTC: at(now.Add(-2 * time.Hour)), Requestor: "ivy@example.com",
			Request: sgRequest("req-aws-db", now.Add(-2*time.Hour)), Justification: "INC-req-aws-db"},
		{Cloud: "azure", Kind: KindNSGRule, Target: buildNSG, Name: s.buildOld, EndTimeUTC: at(now.Add(-24 * time.Hour)), Requestor: "dave@example.com", Request: "req-build", Justification: "INC-req-build"},
		{Cloud: "azure", Kind: KindFirewallGrant, Target: hubFW, Name: s.fwOld, EndTimeUTC: at(now.Add(-time.Minute)), Requestor: "erin@example.com", Request: "req-fw-old", Justification: "INC-req-fw-old"},
		{Cloud: "azure", Kind: KindNSGRule, Target: webNSG, Name: s.webOld, EndTimeUTC: at(now.Add(-time.Hour)), Requestor: "alice@example.com", Request: "req-web-old", Justification: "INC-req-web-old"},
		{Cloud: "azure", Kind: KindNSGRule, Target: webNSG, Name: s.webAtNow, EndTimeUTC: at(now), Requestor: "bob@example.com", Request: "req-web-edge", Justification: "INC-req-web-edge"},
	}
	slices.SortFunc(out, func(a, b RevokedGrant) int { return strings.Compare(summaryKey(a), summaryKey(b)) })
	return out
}

func summaryKey(g RevokedGrant) string { return g.Cloud + " " + g.Target + " " + g.Name }

func (s *seeded) removedAtNow() removal {
	return removal{
		nsgRules:  map[string][]string{webNSG: {s.webOld, s.webAtNow}, buildNSG: {s.buildOld}},
		firewall:  []string{s.fwOld},
		awsGroups: []string{s.apiOld, s.dbOld},
	}
}

func checkRevoked(t *testing.T, got, want []RevokedGrant) {
	t.Helper()
	if !slices.EqualFunc(got, want, func(a, b RevokedGrant) bool { return reflect.DeepEqual(a, b) }) {
		t.Fatalf("revoked:\n%+v\nwant:\n%+v", got, want)
	}
}

func TestRevokeExpired_removesOnlyExpiredGrants(t *testing.T) {
	s := seed(t, cloudsim.Options{ListPageSize: 1}) // lists of one per page: every nextLink must be followed
	clock := clocktest.New(now)

	sum, stderr, code := s.run(clock, s.flags()...)
	if code != ExitOK || len(sum.Errors) > 0 {
		t.Fatalf("exit %d, errors %+v\nstderr:\n%s", code, sum.Errors, stderr)
	}
	if sum.Now != "2030-03-01T12:00:00Z" {
		t.Errorf("now = %q, want the clock's time", sum.Now)
	}
	wantScopes := []Scope{{Cloud: "azure", Subscription: sub}, {Cloud: "aws", Region: "eu-west-1"}}
	if !slices.Equal(sum.Scopes, wantScopes) {
		t.Errorf("scopes = %+v, want %+v", sum.Scopes, wantScopes)
	}
	checkRevoked(t, sum.Revoked, s.expired())
	if sum.Live != 3 {
		t.Errorf("live = %d, want 3 (one NSG rule, one firewall grant, one security group)", sum.Live)
	}
	if !strings.Contains(stderr, "sg-0a000004") {
		t.Errorf("stderr does not warn about the group whose jit-grant tag is no marker:\n%s", stderr)
	}
	// Exactly the expired grants are gone: live grants, the outbound rule,
	// hand-made rules, collections and groups, and the ENIs' other groups
	// are as they were.
	checkWorld(t, "after the first run", s.snapshot(), s.expectAfter(s.before, s.removedAtNow()))
	if got := s.eniGroups(apiENI); !slices.Equal(got, []string{"sg-0a000001", "sg-0a000002", s.apiLive}) {
		t.Errorf("groups of %s = %v, want its own two and the live grant's, in order", apiENI, got)
	}
	if got := s.eniGroups(dbENI); !slices.Equal(got, []string{"sg-0a000003"}) {
		t.Errorf("groups of %s = %v, want its own", dbENI, got)
	}

	// Idempotent: a second run finds nothing to do and writes nothing.
	after := s.snapshot()
	s.ResetCalls()
	sum, stderr, code = s.run(clock, s.flags()...)
	if code != ExitOK || len(sum.Revoked) != 0 || len(sum.Errors) != 0 || sum.Live != 3 {
		t.Fatalf("second run: exit %d, revoked %+v, errors %+v, live %d\nstderr:\n%s", code, sum.Revoked, sum.Errors, sum.Live, stderr)
	}
	if w := s.writes(); len(w) != 0 {
		t.Errorf("second run wrote: %v", w)
	}
	checkWorld(t, "after the second run", s.snapshot(), after)

	// Time decides: past the live grants' ends, they go too.
	clock.Advance(2*time.Hour + time.Second)
	sum, stderr, code = s.run(clock, s.flags()...)
	if code != ExitOK || len(sum.Revoked) != 3 || sum.Live != 0 {
		t.Fatalf("run after the live grants ended: exit %d, revoked %+v, live %d\nstderr:\n%s", code, sum.Revoked, sum.Live, stderr)
	}
	all := s.removedAtNow()
	all.nsgRules[webNSG] = append(all.nsgRules[webNSG], s.webLive)
	all.firewall = append(all.firewall, s.fwLive)
	all.awsGroups = append(all.awsGroups, s.apiLive)
	checkWorld(t, "after every grant ended", s.snapshot(), s.expectAfter(s.before, all))
}

func TestRevokeExpired_resourceGroupNarrowsTheScan(t *testing.T) {
	s := seed(t, cloudsim.Options{})
	sum, stderr, code := s.run(clocktest.New(now), "-subscription", sub, "-azure-endpoint", s.URL, "-resource-group", "prod")
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	if want := []Scope{{Cloud: "azure", Subscription: sub, ResourceGroup: "prod"}}; !slices.Equal(sum.Scopes, want) {
		t.Errorf("scopes = %+v, want %+v", sum.Scopes, want)
	}
	var want []RevokedGrant
	for _, g := range s.expired() {
		if g.Target == webNSG {
			want = append(want, g)
		}
	}
	checkRevoked(t, sum.Revoked, want)
	if sum.Live != 1 {
		t.Errorf("live = %d, want 1: only the web NSG's live grant is in resource group prod", sum.Live)
	}
	// Grants in other resource groups (dev's NSG, hub's firewall) and in
	// AWS, which was not asked for, are untouched.
	checkWorld(t, "after a run on resource group prod", s.snapshot(), s.expectAfter(s.before, removal{nsgRules: map[string][]string{webNSG: {s.webOld, s.webAtNow}}}))
}

// A failure is reported, makes the exit code 1, and does not stop the
// rest; the next run finishes the job.
func TestRevokeExpired_failureReportedWhileTheRestIsRevoked(t *testing.T) {
	s := seed(t, cloudsim.Options{})
	s.InjectFault(cloudsim.Fault{Operation: "DeleteSecurityGroup", FailRate: 1, Status: 403, Code: "UnauthorizedOperation"})
	sum, stderr, code := s.run(clocktest.New(now), s.flags()...)
	if code != ExitFailed {
		t.Fatalf("exit %d, want %d\nstderr:\n%s", code, ExitFailed, stderr)
	}
	var failed []string
	for _, e := range sum.Errors {
		if e.Cloud != "aws" || e.Kind != KindSecurityGroup || !strings.Contains(e.Error, "UnauthorizedOperation") {
			t.Errorf("unexpected error entry %+v", e)
		}
		failed = append(failed, e.Target)
	}
	want := []string{s.apiOld, s.dbOld}
	slices.Sort(want) // errors come sorted by target
	if !slices.Equal(failed, want) {
		t.Fatalf("errors name %v, want %v", failed, want)
	}
	var azureGrants []RevokedGrant
	for _, g := range s.expired() {
		if g.Cloud == "azure" {
			azureGrants = append(azureGrants, g)
		}
	}
	checkRevoked(t, sum.Revoked, azureGrants)
	// The failed groups were detached first: the access is already closed.
	if got := s.eniGroups(apiENI); !slices.Equal(got, []string{"sg-0a000001", "sg-0a000002", s.apiLive}) {
		t.Errorf("groups of %s = %v", apiENI, got)
	}
	if got := s.eniGroups(dbENI); !slices.Equal(got, []string{"sg-0a000003"}) {
		t.Errorf("groups of %s = %v", dbENI, got)
	}

	s.ClearFaults()
	sum, stderr, code = s.run(clocktest.New(now), s.flags()...)
	if code != ExitOK {
		t.Fatalf("second run: exit %d, errors %+v\nstderr:\n%s", code, sum.Errors, stderr)
	}
	var awsGrants []RevokedGrant
	for _, g := range s.expired() {
		if g.Cloud == "aws" {
			awsGrants = append(awsGrants, g)
		}
	}
	checkRevoked(t, sum.Revoked, awsGrants)
	checkWorld(t, "after the second run", s.snapshot(), s.expectAfter(s.before, s.removedAtNow()))
}

// Throttling, another operation in progress and a group EC2 still sees
// attached are retried until they pass; the user sees none of them.
func TestRevokeExpired_retriesTransientFailures(t *testing.T) {
	s := seed(t, cloudsim.Options{})
	s.InjectFault(cloudsim.Fault{Operation: "SecurityRules.Delete", FailNext: 2, Status: 429, Code: "TooManyRequests", RetryAfter: time.Second})
	s.InjectFault(cloudsim.Fault{Operation: "AzureFirewalls.CreateOrUpdate", FailNext: 1, Status: 409, Code: "AnotherOperationInProgress"})
	s.InjectFault(cloudsim.Fault{Operation: "ModifyNetworkInterfaceAttribute", FailNext: 1, Status: 503, Code: "RequestLimitExceeded"})
	s.InjectFault(cloudsim.Fault{Operation: "DeleteSecurityGroup", FailNext: 1, Status: 400, Code: "DependencyViolation"})
	sum, stderr, code := s.run(clocktest.New(now), s.flags()...)
	if code != ExitOK || len(sum.Errors) != 0 {
		t.Fatalf("exit %d, errors %+v\nstderr:\n%s", code, sum.Errors, stderr)
	}
	checkRevoked(t, sum.Revoked, s.expired())
	checkWorld(t, "after retries", s.snapshot(), s.expectAfter(s.before, s.removedAtNow()))
	calls := s.Calls()
	for op, want := range map[string]int{
		"SecurityRules.Delete":            3 + 2, // three rules, two throttled attempts
		"AzureFirewalls.CreateOrUpdate":   1 + 1,
		"ModifyNetworkInterfaceAttribute": 2 + 1,
		"DeleteSecurityGroup":             2 + 1,
	} {
		if calls[op] != want {
			t.Errorf("%s called %d times, want %d", op, calls[op], want)
		}
	}
}

// The scan and the revoke are apart in time: a grant renewed in between
// (a later end written on the same rule, collections or group) is kept.
func TestRevokeExpired_keepsAGrantRenewedSinceTheScan(t *testing.T) {
	w := newWorld(t, cloudsim.Options{})
	ctx := t.Context()
	clock := clocktest.New(now)
	expired := func(m jit.Marker) bool { return jit.ExpiryStatus(m.End, clock) == jit.GrantExpired }
	azureBackend, awsBackend := azure.NewBackend(w.az, ""), aws.NewBackend(w.aws)

	// What the scan saw: three expired grants.
	w.grantNSG(webNSG, webVM, "10.0.1.4", "req-renewed", now.Add(-time.Hour), "alice@example.com")
	collections := w.grantFirewall("req-fw-renewed", now.Add(-time.Hour), "erin@example.com")
	group := w.grantSG(apiENI, "req-aws-renewed", now.Add(-time.Hour), "gina@example.com")
	_, azureFound, err := azureBackend.ScanGrants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, awsFound, err := awsBackend.ScanGrants(ctx)
	if err != nil || len(awsFound) != 2 || awsFound[1].Target != group {
		t.Fatalf("grant groups: %+v, %v", awsFound, err)
	}
	var scanned []engine.FoundGrant
	for _, g := range azureFound {
		if expired(g.Marker) {
			scanned = append(scanned, g)
		}
	}
	if len(scanned) != 2 {
		t.Fatalf("scan found %d expired Azure grants, want the rule and the firewall collections: %+v", len(scanned), scanned)
	}

	// Each renewed before its revoke.
	w.grantNSG(webNSG, webVM, "10.0.1.4", "req-renewed", now.Add(time.Hour), "alice@example.com")
	w.renewFirewallGrant(collections, now.Add(time.Hour))
	w.renewSG(group, now.Add(time.Hour))
	before := w.snapshot()
	w.ResetCalls()

	live := 0
	for _, rev := range []struct {
		b engine.Backend
		g engine.FoundGrant
	}{{azureBackend, scanned[0]}, {azureBackend, scanned[1]}, {awsBackend, awsFound[1]}} {
		revoked, err := rev.b.RevokeGrant(ctx, rev.g, expired)
		if err != nil || revoked {
			t.Errorf("renewed grant %s %s: revoked %v, error %v; want it kept", rev.g.Kind, rev.g.Name, revoked, err)
		} else {
			live++
		}
	}
	if live != 3 {
		t.Fatalf("renewed grants: %d kept and counted live, want all three", live)
	}
	if writes := w.writes(); len(writes) != 0 {
		t.Errorf("renewed grants were written to: %v", writes)
	}
	checkWorld(t, "after revoking renewed grants", w.snapshot(), before)
}

func TestRevokeExpired_usageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // in stderr
	}{
		{"nothing to scan", nil, nil, "-subscription"},
		{"resource group without subscription", []string{"-resource-group", "prod", "-region", "eu-west-1"}, nil, "-resource-group"},
		{"plain http endpoint off loopback", []string{"-subscription", sub, "-azure-endpoint", "http://10.1.2.3:8080"}, nil, "-azure-endpoint"},
		{"plain http EC2 endpoint off loopback", []string{"-region", "eu-west-1", "-aws-endpoint", "http://ec2.example.com"}, nil, "-aws-endpoint"},
		{"unknown Azure environment from the environment", nil, map[string]string{"ARM_SUBSCRIPTION_ID": sub, "ARM_ENVIRONMENT": "mars"}, "-azure-environment"},
		{"azure environment without subscription", []string{"-region", "eu-west-1", "-azure-environment", "china"}, nil, "-azure-environment needs -subscription"},
		{"no AWS region", []string{"-aws-endpoint", "http://127.0.0.1:9"}, map[string]string{"AWS_REGION": "", "AWS_PROFILE": "", "AWS_CONFIG_FILE": "/dev/null"}, "-region: no AWS region"},
		{"unknown flag", []string{"-subscriptions", sub}, nil, "-subscriptions"},
		{"argument", []string{"-subscription", sub, "now"}, nil, `"now"`},
		{"no timeout", []string{"-subscription", sub, "-timeout", "0s"}, nil, "-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr strings.Builder
			code := RevokeExpired(t.Context(), tc.args, &stdout, &stderr, clocktest.New(now))
			if code != ExitUsage {
				t.Errorf("exit %d, want %d", code, ExitUsage)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: %q, want nothing", stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr does not name %s:\n%s", tc.want, stderr.String())
			}
		})
	}
}

// The environment stands in for flags, as for the provider block.
func TestRevokeExpired_environmentFallbacks(t *testing.T) {
	s := seed(t, cloudsim.Options{})
	t.Setenv("ARM_SUBSCRIPTION_ID", sub)
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ENDPOINT_URL_EC2", s.URL)
	sum, stderr, code := s.run(clocktest.New(now), "-azure-endpoint", s.URL)
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	checkRevoked(t, sum.Revoked, s.expired())
}

// An ENI must keep one group: a grant that is its last group cannot be
// detached, and the run says so instead of leaving the ENI groupless or
// swapping in a group nobody chose.
func TestRevokeExpired_grantThatIsAnENIsOnlyGroupIsAnError(t *testing.T) {
	w := newWorld(t, cloudsim.Options{})
	group := w.grantSG(dbENI, "req-alone", now.Add(-time.Hour), "gina@example.com")
	if _, err := w.ec2.ModifyNetworkInterfaceAttribute(t.Context(), &ec2.ModifyNetworkInterfaceAttributeInput{
		NetworkInterfaceId: awssdk.String(dbENI), Groups: []string{group},
	}); err != nil {
		t.Fatal(err)
	}
	before := w.snapshot()
	sum, stderr, code := w.run(clocktest.New(now), w.flags()...)
	if code != ExitFailed || len(sum.Errors) != 1 || sum.Errors[0].Target != group || !strings.Contains(sum.Errors[0].Error, dbENI) {
		t.Fatalf("exit %d, errors %+v\nstderr:\n%s", code, sum.Errors, stderr)
	}
	checkWorld(t, "after refusing to empty the ENI", w.snapshot(), before)
}

// A collection named like a grant but holding a rule without a grant
// marker is someone else's: it is left alone, with a warning.
func TestRevokeExpired_leavesAlonePretendedFirewallGrants(t *testing.T) {
	w := newWorld(t, cloudsim.Options{})
	name := w.grantFirewall("req-edited", now.Add(-time.Hour), "erin@example.com")
	ctx := t.Context()
	id, _ := arm.ParseResourceID(hubFW)
	resp, err := w.fws.Get(ctx, id.ResourceGroupName, id.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	fw := resp.AzureFirewall
	for _, col := range fw.Properties.NetworkRuleCollections {
		if *col.Name == name {
			col.Properties.Rules[0].Description = to.Ptr("kept open by hand")
		}
	}
	poller, err := w.fws.BeginCreateOrUpdate(ctx, id.ResourceGroupName, id.Name, fw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	before := w.snapshot()
	sum, stderr, code := w.run(clocktest.New(now), w.flags()...)
	if code != ExitOK || len(sum.Revoked) != 0 || sum.Live != 0 {
		t.Fatalf("exit %d, revoked %+v, live %d", code, sum.Revoked, sum.Live)
	}
	if !strings.Contains(stderr, name) {
		t.Errorf("no warning about collection %s:\n%s", name, stderr)
	}
	checkWorld(t, "after the run", w.snapshot(), before)
}

// A scope that cannot be listed is an error; the other cloud is still done.
func TestRevokeExpired_unlistableScopeIsAnError(t *testing.T) {
	s := seed(t, cloudsim.Options{})
	sum, stderr, code := s.run(clocktest.New(now), "-subscription", sub, "-azure-endpoint", s.URL, "-resource-group", "nowhere",
		"-region", "eu-west-1", "-aws-endpoint", s.URL)
	if code != ExitFailed {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	scope := "/subscriptions/" + sub + "/resourceGroups/nowhere"
	if len(sum.Errors) != 3 {
		t.Fatalf("errors %+v, want the VM, NSG and firewall lists of %s", sum.Errors, scope)
	}
	for _, e := range sum.Errors {
		if e.Target != scope || !strings.Contains(e.Error, "ResourceGroupNotFound") {
			t.Fatalf("errors %+v, want the VM, NSG and firewall lists of %s", sum.Errors, scope)
		}
	}
	var awsGrants []RevokedGrant
	for _, g := range s.expired() {
		if g.Cloud == "aws" {
			awsGrants = append(awsGrants, g)
		}
	}
	checkRevoked(t, sum.Revoked, awsGrants)
}
