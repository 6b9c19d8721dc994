package engine

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Audit is what the cloud alone shows of every machine in the scanned
// scopes: its policy, and the grants still visible on it, active or
// expired, with who asked and why.
type Audit struct {
	// Now is the time grants were judged active or expired against.
	Now    time.Time
	Scopes []Scope
	// Machines are sorted by cloud and ID; grants whose machine was not
	// found come last, under an empty ID.
	Machines []AuditedMachine
	// Errors are the scopes (or parts of them) that could not be read.
	Errors []ScopeError
}

// ScopeError is a part of a scope that could not be read.
type ScopeError struct {
	Cloud string
	Scope string
	Err   error
}

// AuditedMachine is one machine and what holds for it.
type AuditedMachine struct {
	Cloud    string
	ID       string
	Name     string
	Location string
	State    string
	// Policy is the policy covering the machine, from its tags; empty when
	// none. PolicyError tells why tags naming one could not be read.
	Policy      string
	Ports       []jit.Port
	PolicyError string
	Grants      []AuditedGrant
}

// AuditedGrant is one port of one request on one machine.
type AuditedGrant struct {
	Request string
	Port    jit.PortProtocol
	// Source is the requester's: the prefix the grant lets in.
	Source string
	// Start is when the request was made, from its ID (zero if unknown);
	// End is the marker's.
	Start, End time.Time
	// Status is GrantInitiated while the grant is open, GrantExpired
	// once its end passed.
	Status jit.GrantStatus
	// Record is who asked and why. Recorded tells whether the cloud keeps
	// the whole record; otherwise (a grant older than records) the fields
	// are the marker's abbreviations.
	Record   jit.GrantRecord
	Recorded bool
	// Vouched is false when something named or tagged as a grant carries
	// no grant marker: it is shown, and nobody can vouch for it.
	Vouched bool
	// Targets hold the grant's rules (NSGs, firewalls, security groups);
	// Names are the rules' or groups' names, in the same order.
	Targets []string
	Names   []string
}

// Audit scans every configured backend, read-only, and joins what each
// finds: machines, their policies, and the grants still visible.
func (e *Engine) Audit(ctx context.Context) Audit {
	a := Audit{Now: e.clock.Now().UTC()}
	for _, b := range e.backends {
		scope, machines, err := b.ScanMachines(ctx)
		a.Scopes = append(a.Scopes, scope)
		for _, err := range splitErrors(err) {
			a.Errors = append(a.Errors, ScopeError{Cloud: b.Name(), Scope: scope.ID, Err: err})
		}
		for _, sm := range machines {
			a.Machines = append(a.Machines, e.auditMachine(b.Name(), sm))
		}
	}
	slices.SortStableFunc(a.Machines, func(x, y AuditedMachine) int {
		// Machines not found come last in their cloud.
		return cmp.Or(strings.Compare(x.Cloud, y.Cloud), cmpBool(x.ID == "", y.ID == ""), strings.Compare(strings.ToLower(x.ID), strings.ToLower(y.ID)))
	})
	return a
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func (e *Engine) auditMachine(cloud string, sm ScannedMachine) AuditedMachine {
	am := AuditedMachine{Cloud: cloud}
	if m := sm.Machine; m != nil {
		am.ID, am.Name, am.Location, am.State = m.ID, m.Name, m.Location, m.State
		policy, ports, ok, err := jit.PolicyFromTags(m.Tags)
		switch {
		case err != nil:
			am.Policy, am.PolicyError = policy, err.Error()
		case ok:
			am.Policy, am.Ports = policy, ports
		}
	}
	// One request's port may have rules in several places (each NSG on
	// the path, the firewall): they are one grant.
	type key struct {
		request string
		port    jit.PortProtocol
		// grants that cannot be traced to a request stay apart.
		target, name string
	}
	index := map[key]int{}
	for _, sg := range sm.Grants {
		k := key{request: sg.Request, port: sg.Port}
		if sg.Request == "" {
			k.target, k.name = sg.Target, sg.Name
		}
		i, seen := index[k]
		if !seen {
			i = len(am.Grants)
			index[k] = i
			g := AuditedGrant{Request: sg.Request, Port: sg.Port, End: sg.Marker.End, Vouched: sg.Vouched}
			g.Start, _ = RequestStart(sg.Request)
			am.Grants = append(am.Grants, g)
		}
		g := &am.Grants[i]
		g.Targets, g.Names = append(g.Targets, sg.Target), append(g.Names, sg.Name)
		g.Vouched = g.Vouched && sg.Vouched
		if sg.RequesterSource && g.Source == "" {
			g.Source = sg.Source
		}
		// The latest end any part carries: the grant is open while one is.
		if sg.Marker.End.After(g.End) {
			g.End = sg.Marker.End
		}
		switch {
		case g.Recorded:
		case sg.Record != nil && (sg.RecordWhole || g.Record == (jit.GrantRecord{})):
			g.Record, g.Recorded = *sg.Record, sg.RecordWhole
		case sg.Record == nil && sg.Vouched && g.Record == (jit.GrantRecord{}):
			g.Record = jit.MarkerRecord(sg.Marker)
		}
	}
	for i := range am.Grants {
		g := &am.Grants[i]
		g.Status = jit.GrantInitiated
		if !g.End.IsZero() && jit.ExpiryStatus(g.End, e.clock) == jit.GrantExpired {
			g.Status = jit.GrantExpired
		}
		if g.Source == "" && len(sm.Grants) > 0 {
			// Only the firewall's addresses were found: the DNAT rule is gone.
			for _, sg := range sm.Grants {
				if sg.Request == g.Request && sg.Port == g.Port {
					g.Source = sg.Source
					break
				}
			}
		}
	}
	slices.SortStableFunc(am.Grants, func(x, y AuditedGrant) int {
		return cmp.Or(x.Start.Compare(y.Start), strings.Compare(x.Request, y.Request), x.Port.Number-y.Port.Number,
			strings.Compare(string(x.Port.Protocol), string(y.Port.Protocol)))
	})
	return am
}
