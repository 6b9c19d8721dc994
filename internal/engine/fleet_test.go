package engine

import (
	"testing"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// The fleet view counts requests, not rules: a grant has a rule in each
// NSG on the path and one per port, and only requests started within the
// last seven days count, while every grant not ended yet is active.
func TestAssessFleet_grantsSummedPerRequestOverSevenDays(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	cloud := newFirewallCloud("a", "b", "c")
	cloud.machines["projects/p/instances/a"].Tags[jit.TagPolicy] = "web"
	cloud.machines["projects/p/instances/a"].Tags["jit-port-22-tcp"] = "PT3H *"
	ssh := jit.PortProtocol{Number: 22, Protocol: jit.ProtocolTCP}
	rdp := jit.PortProtocol{Number: 3389, Protocol: jit.ProtocolTCP}
	grant := func(id, by string, start time.Time, end time.Duration, port jit.PortProtocol, target string) SeenGrant {
		return SeenGrant{RequestID: id, Requestor: by, Port: port, Source: "203.0.113.7/32", Start: start, End: start.Add(end), Target: target}
	}
	old := now.Add(-8 * 24 * time.Hour)
	recent := now.Add(-2 * time.Hour)
	latest := now.Add(-30 * time.Minute)
	cloud.grants = map[string][]SeenGrant{"projects/p/instances/a": {
		grant("r-old", "ann", old, time.Hour, ssh, "fw1"),
		grant("r-recent", "bob", recent, time.Hour, ssh, "fw1"), // ended
		grant("r-latest", "cyd", latest, time.Hour, ssh, "fw1"),
		grant("r-latest", "cyd", latest, time.Hour, ssh, "fw2"), // same port, second filter
		grant("r-latest", "cyd", latest, time.Hour, rdp, "fw1"),
	}}
	cloud.exposed = map[string][]jit.ExposedPort{"projects/p/instances/b": {{Port: ssh, Rules: []string{"fw/allow-ssh"}}}}
	e := New(clocktest.New(now), []Backend{cloud})

	all, err := e.AssessFleet(t.Context(), SurveyScope{}, FleetFilter{})
	if err != nil || len(all) != 3 {
		t.Fatalf("AssessFleet: %d machines, %v", len(all), err)
	}
	a := all[0]
	if a.Classification != jit.Configured || a.Policy != "web" || len(a.Ports) != 1 {
		t.Errorf("a: %s policy %q ports %v", a.Classification, a.Policy, a.Ports)
	}
	if a.RecentRequests != 2 {
		t.Errorf("a: %d requests in the last 7 days, want 2 (r-recent, r-latest)", a.RecentRequests)
	}
	if a.LastRequest.RequestID != "r-latest" || a.LastRequest.Requestor != "cyd" || !a.LastRequest.Start.Equal(latest) {
		t.Errorf("a: last request %+v", a.LastRequest)
	}
	if len(a.ActiveGrants) != 2 || a.ActiveGrants[0].Port != ssh || a.ActiveGrants[1].Port != rdp {
		t.Errorf("a: active grants %+v, want r-latest's 22 and 3389 once each", a.ActiveGrants)
	}
	if b := all[1]; b.Classification != jit.NotConfigured || b.RecentRequests != 0 || b.LastRequest.RequestID != "" || len(b.Exposures) != 1 {
		t.Errorf("b: %+v", b)
	}

	exposed := true
	notConfigured, err := e.AssessFleet(t.Context(), SurveyScope{}, FleetFilter{Classifications: []jit.Classification{jit.NotConfigured}, Exposed: &exposed})
	if err != nil || len(notConfigured) != 1 || notConfigured[0].Machine.ID != "projects/p/instances/b" {
		t.Fatalf("exposed and not configured: %v %v", notConfigured, err)
	}
	tagged, err := e.AssessFleet(t.Context(), SurveyScope{Tags: map[string]string{jit.TagPolicy: "web"}}, FleetFilter{})
	if err != nil || len(tagged) != 1 || tagged[0].Machine.ID != "projects/p/instances/a" {
		t.Fatalf("tagged: %v %v", tagged, err)
	}
}
