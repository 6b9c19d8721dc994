package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// The fleet view: every machine of a scope classified as Defender for
// Cloud's JIT page sorts them (Configured / Not configured / Unsupported,
// with every reason), with its locked ports, the grants the cloud still
// shows, and the management ports its path leaves open to the internet.
// The backends read (Survey, Inspect); the engine classifies and filters.

// SurveyScope narrows a survey of the configured scope (the subscription,
// the region).
type SurveyScope struct {
	// ResourceGroups limits a cloud that has them to these; empty: all.
	ResourceGroups []string
	// Tags keeps the machines carrying every one of these tags.
	Tags map[string]string
	// Front is a filter in front of the machines (an Azure Firewall), or "".
	Front string
}

// MachineView is a machine as a backend reads it for the fleet view.
type MachineView struct {
	Machine *jit.Machine
	// Unsupported are reasons, beyond the machine itself, that it cannot
	// be protected: a firewall in front managed by a Firewall Policy.
	Unsupported []string
	// Exposures are the management ports its path leaves open to the
	// internet at large.
	Exposures []jit.ExposedPort
	// DefenderFilters are the filters on its path holding Defender for
	// Cloud's own JIT rules.
	DefenderFilters []string
	// Grants are the grants to it that the cloud still shows, one per
	// request and port, ended ones included.
	Grants []SeenGrant
}

// SeenGrant is one port of a request's grant as the cloud shows it.
type SeenGrant struct {
	RequestID     string
	Requestor     string
	OnBehalfOf    string // filled where the cloud records it
	Justification string
	Port          jit.PortProtocol
	Source        string
	Start, End    time.Time
	// Target is the filter holding it: an NSG, a grant's security group.
	Target string
}

// Assessment is a machine as the fleet view reports it.
type Assessment struct {
	Machine            *jit.Machine
	Classification     jit.Classification
	UnsupportedReasons []string
	// Policy and Ports are the jit_policy covering the machine, read from
	// its tags; empty when none.
	Policy string
	Ports  []jit.Port
	// ManagedByDefender are the NSGs on the path holding Defender for
	// Cloud's own JIT rules.
	ManagedByDefender []string
	Exposures         []jit.ExposedPort
	// ActiveGrants are the grants not ended yet, by start then request.
	ActiveGrants []SeenGrant
	// RecentRequests counts the requests started in the last seven days
	// whose grants the cloud still shows (ended grants are removed, so
	// older ones are gone).
	RecentRequests int
	// LastRequest is the grant of the latest request seen; zero when none.
	LastRequest SeenGrant
	// Findings are what could not be read of the machine's policy.
	Findings []jit.Finding
}

// RecentWindow is how far back RecentRequests counts, as Defender's
// Configured tab does.
const RecentWindow = 7 * 24 * time.Hour

// FleetFilter keeps some assessments of a survey.
type FleetFilter struct {
	// Classifications keeps these classifications; empty: all.
	Classifications []jit.Classification
	// Exposed keeps the machines with (true) or without (false) a
	// management port open to the internet; nil: all.
	Exposed *bool
}

// AssessMachine reads and classifies one machine. front is a filter in
// front of it (an Azure Firewall) besides the one its policy names.
func (e *Engine) AssessMachine(ctx context.Context, id, front string) (*Assessment, error) {
	b, err := e.backendFor(id)
	if err != nil {
		return nil, err
	}
	v, err := b.Inspect(ctx, id, front)
	if err != nil {
		return nil, err
	}
	a := e.assess(v)
	return &a, nil
}

// AssessFleet reads and classifies every machine of the configured
// backends' scopes, keeping those filter selects, sorted by cloud then ID.
// A backend that cannot be read is an error of its own; the others'
// machines are still returned.
func (e *Engine) AssessFleet(ctx context.Context, scope SurveyScope, filter FleetFilter) ([]Assessment, error) {
	var out []Assessment
	var errs []error
	for _, b := range e.backends {
		views, err := b.Survey(ctx, scope)
		if err != nil {
			errs = append(errs, Fail("Cannot survey "+b.Name(), err))
			continue
		}
		for _, v := range views {
			a := e.assess(v)
			if filter.keeps(a) {
				out = append(out, a)
			}
		}
	}
	slices.SortStableFunc(out, func(x, y Assessment) int {
		if c := strings.Compare(x.Machine.Cloud, y.Machine.Cloud); c != 0 {
			return c
		}
		return strings.Compare(strings.ToLower(x.Machine.ID), strings.ToLower(y.Machine.ID))
	})
	return out, errors.Join(errs...)
}

func (f FleetFilter) keeps(a Assessment) bool {
	if len(f.Classifications) > 0 && !slices.Contains(f.Classifications, a.Classification) {
		return false
	}
	return f.Exposed == nil || *f.Exposed == (len(a.Exposures) > 0)
}

// assess classifies a view and sums up its grants as of now.
func (e *Engine) assess(v *MachineView) Assessment {
	a := Assessment{Machine: v.Machine, Exposures: v.Exposures, ManagedByDefender: v.DefenderFilters}
	policy, ports, configured, err := jit.PolicyFromTags(v.Machine.Tags)
	if err != nil {
		a.Findings = append(a.Findings, jit.Warning("Unreadable policy settings", v.Machine.ID+": "+err.Error()))
	}
	a.Policy, a.Ports = policy, ports
	reasons := v.Unsupported
	if b, err := e.backendFor(v.Machine.ID); err == nil {
		reasons = append(b.Unsupported(v.Machine), reasons...)
	}
	a.Classification, a.UnsupportedReasons = jit.Classify(v.Machine, configured, reasons...)
	now := e.clock.Now()
	requests := map[string]SeenGrant{}
	seen := map[string]bool{}
	for _, g := range v.Grants {
		// A grant has a rule in each NSG on the path: one per port here.
		key := fmt.Sprintf("%s\x00%d/%s", g.RequestID, g.Port.Number, g.Port.Protocol)
		if seen[key] {
			continue
		}
		seen[key] = true
		if g.End.After(now) {
			a.ActiveGrants = append(a.ActiveGrants, g)
		}
		if cur, ok := requests[g.RequestID]; !ok || g.Start.Before(cur.Start) {
			requests[g.RequestID] = g
		}
	}
	for _, g := range requests {
		if !g.Start.IsZero() && now.Sub(g.Start) <= RecentWindow {
			a.RecentRequests++
		}
		if a.LastRequest.RequestID == "" || g.Start.After(a.LastRequest.Start) ||
			g.Start.Equal(a.LastRequest.Start) && g.RequestID > a.LastRequest.RequestID {
			a.LastRequest = g
		}
	}
	slices.SortStableFunc(a.ActiveGrants, compareSeenGrants)
	return a
}

func compareSeenGrants(x, y SeenGrant) int {
	if c := x.Start.Compare(y.Start); c != 0 {
		return c
	}
	if c := strings.Compare(x.RequestID, y.RequestID); c != 0 {
		return c
	}
	if x.Port.Number != y.Port.Number {
		return x.Port.Number - y.Port.Number
	}
	return strings.Compare(string(x.Port.Protocol), string(y.Port.Protocol))
}

// MatchesTags tells whether tags carry every one of want; backends use it
// where their cloud cannot filter by tag itself.
func MatchesTags(tags, want map[string]string) bool {
	for k, v := range want {
		if got, ok := tags[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ErrorFindings reports err as error findings, each joined error apart
// under its own summary (see Fail) or else under summary.
func ErrorFindings(summary string, err error) []jit.Finding { return failureFindings(summary, err) }
