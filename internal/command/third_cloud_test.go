package command

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"github.com/jitaccess/terraform-provider-jit/internal/clouds"
	"github.com/jitaccess/terraform-provider-jit/internal/engine"
	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// gcpScan is a third cloud as revoke-expired sees it: one scope holding
// one expired grant. The embedded engine.Backend is nil, so a call the
// sweep should not need panics the test.
type gcpScan struct {
	engine.Backend
	project string
	revoked []string
}

func (g *gcpScan) Name() string { return "gcp" }

func (g *gcpScan) ScanGrants(context.Context) (engine.Scope, []engine.FoundGrant, error) {
	marker := jit.Marker{Kind: jit.MarkerGrant, End: now.Add(-time.Hour), Requestor: "alice@example.com"}
	return engine.Scope{ID: "projects/" + g.project, Cloud: "gcp"},
		[]engine.FoundGrant{{Kind: "firewall-rule", Target: "projects/" + g.project + "/firewalls/default", Name: "jit-grant-1", Marker: marker, Vouched: true}}, nil
}

func (g *gcpScan) RevokeGrant(_ context.Context, found engine.FoundGrant, still func(jit.Marker) bool) (bool, error) {
	if !still(found.Marker) {
		return false, nil
	}
	g.revoked = append(g.revoked, found.Name)
	return true, nil
}

// A cloud added to clouds.All gets its flags, its place in "nothing to
// scan", its settings refused by flag, and its grants swept, with no
// change to the commands.
func TestRevokeExpired_aThirdCloudIsOneRegistration(t *testing.T) {
	gcp := &gcpScan{}
	registered := clouds.All
	clouds.All = append(slices.Clone(registered), engine.Cloud{
		Name:     "gcp",
		Title:    "GCP",
		Settings: []engine.Setting{{Name: "project", Flag: "project", Usage: "GCP project to scan", Env: "JIT_TEST_GCP_PROJECT", Selects: true}},
		Connect: func(_ context.Context, settings map[string]string, _ string) (engine.Backend, error) {
			if strings.ContainsAny(settings["project"], " /") {
				return nil, &engine.SettingError{Setting: "project", Err: fmt.Errorf("%q is not a project ID", settings["project"])}
			}
			gcp.project = settings["project"]
			return gcp, nil
		},
	})
	t.Cleanup(func() { clouds.All = registered })
	run := func(args ...string) (int, string, string) {
		var stdout, stderr strings.Builder
		code := RevokeExpired(t.Context(), args, &stdout, &stderr, clocktest.New(now))
		return code, stdout.String(), stderr.String()
	}

	if code, _, stderr := run("-h"); code != ExitOK || !strings.Contains(stderr, "-project string\n    \tGCP project to scan") {
		t.Errorf("-h: exit %d, want the -project flag listed:\n%s", code, stderr)
	}
	if code, _, stderr := run(); code != ExitUsage || !strings.Contains(stderr, "-project (or JIT_TEST_GCP_PROJECT) for GCP") {
		t.Errorf("no flags: exit %d, want nothing to scan naming -project:\n%s", code, stderr)
	}
	if code, _, stderr := run("-project", "my project"); code != ExitUsage || !strings.Contains(stderr, `-project: "my project" is not a project ID`) {
		t.Errorf("a refused project: exit %d, want the flag named:\n%s", code, stderr)
	}

	code, stdout, stderr := run("-project", "p")
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	var sum Summary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.Scopes) != 1 || sum.Scopes[0].Cloud != "gcp" {
		t.Errorf("scopes %+v, want GCP's alone", sum.Scopes)
	}
	if len(sum.Revoked) != 1 || sum.Revoked[0].Cloud != "gcp" || sum.Revoked[0].Name != "jit-grant-1" || !slices.Equal(gcp.revoked, []string{"jit-grant-1"}) {
		t.Errorf("revoked %+v (the cloud saw %q), want GCP's expired grant", sum.Revoked, gcp.revoked)
	}
}
