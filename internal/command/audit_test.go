package command

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/aws"
	"github.com/jitaccess/terraform-provider-jit/internal/azure"
	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/cloudsim"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Who asked, as the tests' requests are made: longer than any marker holds.
var (
	longUPN = "first.middle.lastname_contoso.onmicrosoft.com#EXT#@fabrikam-operations-emea.onmicrosoft.com"
	// An IAM user deep in a path: past a tag's 256 characters.
	deepUser      = "arn:aws:iam::123456789012:user/" + strings.Repeat("division/department/team/", 11) + "operator"
	justification = strings.Repeat("INC-4211: the primary's data disk filled overnight; logs rotate too late. ", 4)[:256]
)

// auditWorld is the revoke world with a policy on web and api and grants
// opened through the backends as a request opens them.
type auditWorld struct {
	*world
	clock                         *clocktest.FakeClock
	webRequest, apiRequest, apiID string
	webCut                        string // a request whose record lost a tag
}

var sshPort = []jit.Port{{Number: 22, Protocol: jit.ProtocolTCP, AllowedSourcePrefixes: []string{"203.0.113.0/24"}, MaxRequestAccessDuration: jit.Duration(2 * time.Hour)}}

func newAuditWorld(t *testing.T) *auditWorld {
	t.Helper()
	w := &auditWorld{world: newWorld(t, cloudsim.Options{ListPageSize: 1}), clock: clocktest.New(now)}
	ctx := t.Context()
	tags, err := jit.PolicyTags("prod-ssh", "", sshPort)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.az.UpdateMachineTags(ctx, webVM, tags, nil); err != nil {
		t.Fatal(err)
	}
	web, err := w.az.Machine(ctx, webVM)
	if err != nil {
		t.Fatal(err)
	}
	open := func(b engine.Backend, m *jit.Machine, g engine.Grant) {
		t.Helper()
		if _, err := b.OpenGrant(ctx, m, g); err != nil {
			t.Fatal(err)
		}
	}
	ssh := func(end time.Time) []engine.GrantPort {
		return []engine.GrantPort{{Port: jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}, Source: "203.0.113.7/32", End: end}}
	}
	az := azure.NewBackend(w.az, "")
	w.webRequest = engine.NewRequestID(now.Add(-30 * time.Minute))
	open(az, web, engine.Grant{ID: w.webRequest, Policy: "prod-ssh", Requestor: longUPN, OnBehalfOf: "octocat", Justification: justification, Ports: ssh(now.Add(30 * time.Minute))})
	w.webCut = engine.NewRequestID(now.Add(-3 * time.Hour))
	open(az, web, engine.Grant{ID: w.webCut, Policy: "prod-ssh", Requestor: "ci@contoso.com", OnBehalfOf: "hubot", Justification: justification, Ports: ssh(now.Add(-time.Hour))})
	// Someone removes a tag of the second record by hand.
	if err := w.az.DeleteTags(ctx, webVM, map[string]string{jit.RecordTagPrefix(w.webCut) + jit.TagJustification: ""}); err != nil {
		t.Fatal(err)
	}
	// A grant written before records: a marker only.
	w.grantNSG(webNSG, webVM, "10.0.1.4", "req-web-old", now.Add(-time.Hour), "alice@example.com")

	tags["Name"] = "api"
	if err := w.aws.UpdateInstanceTags(ctx, &jit.Machine{ID: "i-0a000001", Tags: map[string]string{"Name": "api"}}, tags, nil); err != nil {
		t.Fatal(err)
	}
	api, err := w.aws.Machine(ctx, "i-0a000001")
	if err != nil {
		t.Fatal(err)
	}
	w.apiRequest = engine.NewRequestID(now.Add(-10 * time.Minute))
	open(aws.NewBackend(w.aws), api, engine.Grant{ID: w.apiRequest, Policy: "prod-ssh", Requestor: deepUser, OnBehalfOf: "octocat", Justification: justification, Ports: ssh(now.Add(50 * time.Minute))})
	groups := w.eniGroups(apiENI)
	w.apiID = groups[len(groups)-1]
	w.ResetCalls()
	return w
}

// audit runs the command in process.
func (w *auditWorld) audit(args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	code = Audit(w.t.Context(), append(w.flags(), args...), &out, &errOut, w.clock)
	return out.String(), errOut.String(), code
}

func csvRows(t *testing.T, out string) []map[string]string {
	t.Helper()
	records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV (%v):\n%s", err, out)
	}
	if len(records) == 0 || !slices.Equal(records[0], AuditColumns) {
		t.Fatalf("header %v, want %v", records[0], AuditColumns)
	}
	var rows []map[string]string
	for _, r := range records[1:] {
		row := map[string]string{}
		for i, c := range AuditColumns {
			row[c] = r[i]
		}
		rows = append(rows, row)
	}
	return rows
}

func TestAudit_reportsEveryMachineAndWhoAskedInFull(t *testing.T) {
	w := newAuditWorld(t)
	out, stderr, code := w.audit()
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	rows := csvRows(t, out)
	byKey := map[string]map[string]string{}
	for _, r := range rows {
		byKey[r["virtual_machine_id"]+" "+r["request_id"]] = r
	}
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	start := func(request string) string {
		s, _ := engine.RequestStart(request)
		return at(s)
	}
	want := map[string]map[string]string{
		webVM + " " + w.webRequest: {
			"cloud": "azure", "virtual_machine_name": "web", "policy": "prod-ssh", "locked_ports": "22/TCP:PT2H:203.0.113.0/24",
			"port": "22", "protocol": "TCP", "source": "203.0.113.7/32", "start_time_utc": start(w.webRequest), "end_time_utc": at(now.Add(30 * time.Minute)),
			"status": "active", "requestor": longUPN, "on_behalf_of": "octocat", "justification": justification, "record": "whole", "vouched": "true",
			"targets": webNSG,
		},
		webVM + " " + w.webCut: {
			"status": "expired", "requestor": "ci@contoso.com", "on_behalf_of": "hubot", "record": "abbreviated",
		},
		webVM + " req-web-old": {
			"status": "expired", "requestor": "alice@example.com", "on_behalf_of": "", "justification": "INC-req-web-old", "record": "whole", "start_time_utc": "",
		},
		"i-0a000001 " + w.apiRequest: {
			"cloud": "aws", "virtual_machine_name": "api", "location": "eu-west-1", "policy": "prod-ssh", "locked_ports": "22/TCP:PT2H:203.0.113.0/24",
			"port": "22", "protocol": "TCP", "source": "203.0.113.7/32", "start_time_utc": start(w.apiRequest), "end_time_utc": at(now.Add(50 * time.Minute)),
			"status": "active", "requestor": jit.FitTagValue(deepUser), "on_behalf_of": "octocat", "justification": justification, "record": "whole",
			"vouched": "true", "targets": w.apiID, "names": "jit-grant-" + w.apiRequest + "-i-0a000001",
		},
		"i-0a000002 ": {"cloud": "aws", "virtual_machine_name": "db", "policy": "", "request_id": "", "requestor": ""},
		buildVM + " ": {"cloud": "azure", "virtual_machine_name": "build", "policy": "", "locked_ports": ""},
	}
	for key, fields := range want {
		row, ok := byKey[key]
		if !ok {
			t.Errorf("no row for %s; rows:\n%s", key, out)
			continue
		}
		for col, v := range fields {
			if row[col] != v {
				t.Errorf("%s: %s = %q, want %q", key, col, row[col], v)
			}
		}
	}
	// The AWS ARN past 256 characters is cut visibly and verifies.
	if got := byKey["i-0a000001 "+w.apiRequest]["requestor"]; !strings.Contains(got, jit.CutMark+"sha256:") || !jit.RecordedMatches(got, deepUser) {
		t.Errorf("requestor %q is not the visibly cut form of the whole", got)
	}
	// Without its tag, the justification is the marker's, marked as cut.
	if got := byKey[webVM+" "+w.webCut]["justification"]; !strings.HasSuffix(got, jit.CutMark) || !strings.HasPrefix(justification, strings.TrimSuffix(got, jit.CutMark)) {
		t.Errorf("justification without its tag: %q", got)
	}
	// One row per grant and per machine without one; nothing else.
	if len(rows) != 6 {
		t.Errorf("%d rows, want 6:\n%s", len(rows), out)
	}
	// Read-only, and lists only: no GET per VM or per NSG.
	for op, n := range w.Calls() {
		if !strings.HasSuffix(op, ".List") && !strings.HasSuffix(op, ".ListAll") && !strings.HasPrefix(op, "Describe") && op != "ManagedIdentity.GetToken" {
			t.Errorf("audit called %s %d times", op, n)
		}
	}
}

func TestAudit_json(t *testing.T) {
	w := newAuditWorld(t)
	out, stderr, code := w.audit("-format", "json")
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	var r AuditReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("not the JSON report (%v):\n%s", err, out)
	}
	if r.Now != "2030-03-01T12:00:00Z" || len(r.Scopes) != 2 || len(r.Errors) != 0 {
		t.Errorf("now %s, scopes %+v, errors %+v", r.Now, r.Scopes, r.Errors)
	}
	machines := map[string]AuditedMachine{}
	for _, m := range r.Machines {
		machines[m.ID] = m
	}
	if got := slices.Sorted(maps.Keys(machines)); !slices.Equal(got, []string{buildVM, webVM, "i-0a000001", "i-0a000002"}) {
		t.Fatalf("machines %v", got)
	}
	web := machines[webVM]
	if len(web.LockedPorts) != 1 || web.LockedPorts[0].Number != 22 || len(web.Grants) != 3 {
		t.Fatalf("web: %+v", web)
	}
	g := web.Grants[2] // sorted by start: the newest last
	if g.Request != w.webRequest || g.Requestor != longUPN || g.OnBehalfOf != "octocat" || g.Justification != justification || g.Record != RecordWhole {
		t.Errorf("web's grant: %+v", g)
	}
}

func TestAudit_exitCodes(t *testing.T) {
	w := newAuditWorld(t)
	// A resource group that cannot be listed: 1, and AWS still reported.
	out, stderr, code := w.audit("-resource-group", "nowhere")
	if code != ExitFailed || !strings.Contains(stderr, "ResourceGroupNotFound") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if rows := csvRows(t, out); len(rows) != 2 || rows[0]["cloud"] != "aws" {
		t.Errorf("rows %v, want the two instances", rows)
	}
	// Usage errors: 2, nothing read.
	w.ResetCalls()
	for _, args := range [][]string{{"-format", "xml"}, {"extra"}} {
		var stdout, errOut bytes.Buffer
		if code := Audit(t.Context(), append(w.flags(), args...), &stdout, &errOut, w.clock); code != ExitUsage || stdout.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q", args, code, stdout.String())
		}
	}
	var stdout, errOut bytes.Buffer
	if code := Audit(t.Context(), nil, &stdout, &errOut, w.clock); code != ExitUsage || !strings.Contains(errOut.String(), "-subscription") {
		t.Errorf("nothing to scan: exit %d, stderr %q", code, errOut.String())
	}
	if n := len(w.Calls()); n != 0 {
		t.Errorf("usage errors made %d calls", n)
	}
}

// A record whose request can no longer be open and has no rule left is
// removed by revoke-expired; a younger one is neither removed nor counted
// as a live grant.
func TestRevokeExpired_removesRecordsTheirRequestsOutlived(t *testing.T) {
	w := newWorld(t, cloudsim.Options{})
	ctx := t.Context()
	old := engine.NewRequestID(now.Add(-25 * time.Hour))
	young := engine.NewRequestID(now.Add(-time.Hour))
	record := jit.GrantRecord{Requestor: "ci@contoso.com", OnBehalfOf: "octocat", Justification: "INC-1"}
	tags := map[string]string{"team": "web"}
	for _, request := range []string{old, young} {
		for k, v := range record.Tags(jit.RecordTagPrefix(request)) {
			tags[k] = v
		}
	}
	if err := w.az.MergeTags(ctx, webVM, tags); err != nil {
		t.Fatal(err)
	}
	sum, stderr, code := w.run(clocktest.New(now), w.flags()...)
	if code != ExitOK || len(sum.Revoked) != 0 || sum.Live != 0 {
		t.Fatalf("exit %d, revoked %+v, live %d\nstderr:\n%s", code, sum.Revoked, sum.Live, stderr)
	}
	want := []RevokedGrant{{Cloud: "azure", Kind: KindGrantRecord, Target: webVM, Name: jit.RecordTagPrefix(old) + "*",
		Requestor: "ci@contoso.com", OnBehalfOf: "octocat", Justification: "INC-1", Request: old}}
	if !slices.EqualFunc(sum.RecordsRemoved, want, func(a, b RevokedGrant) bool { return reflect.DeepEqual(a, b) }) {
		t.Fatalf("records removed %+v, want %+v", sum.RecordsRemoved, want)
	}
	m, err := w.az.Machine(ctx, webVM)
	if err != nil {
		t.Fatal(err)
	}
	if got := jit.RecordRequests(m.Tags); !slices.Equal(got, []string{young}) || m.Tags["team"] != "web" {
		t.Errorf("VM tags after the run: %v", m.Tags)
	}
}
