package engine

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
	"github.com/jitaccess/terraform-provider-jit/internal/readcache"
)

// Request is an access request as configured: jit_access_request, or the
// ephemeral jit_access.
type Request struct {
	MachineID string
	// OnBehalfOf is the person the authenticated identity acts for (the
	// author of a pull request CI applies); may be empty.
	OnBehalfOf    string
	Justification string
	Ports         []RequestPort
	// Duration, when set, is how long every port is opened for (the
	// ephemeral resource's single duration); findings about it name the
	// top-level "duration" attribute.
	Duration string
}

// RequestPort is one requested port.
type RequestPort struct {
	Number int
	// Protocol may be empty: the policy's only port with this number.
	Protocol jit.Protocol
	Source   string
	// Exactly one of Duration (ISO 8601) and End is set, unless the
	// request has a Duration for all ports.
	Duration string
	End      time.Time
}

// Defender's status reasons.
const (
	ReasonExpired       = "Expired"
	ReasonUserRequested = "UserRequested"
	ReasonSuperseded    = "NewerRequestInitiated"
)

var pathMachine = []any{"virtual_machine_id"}

// machinePolicy reads the policy covering a machine from its tags.
func machinePolicy(m *jit.Machine) (name string, ports []jit.Port, ok bool, err error) {
	name, ports, ok, err = jit.PolicyFromTags(m.Tags)
	if err != nil {
		return "", nil, false, fmt.Errorf("%s carries a JIT policy whose tags cannot be read: %w", m.ID, err)
	}
	return name, ports, ok, nil
}

// PlanRequest checks a new request against the machine's policy as the
// cloud records it, and places its grants without writing, so a grant
// that could not work fails the plan. It returns each port's protocol as
// resolved against the policy (nil when the policy is not there yet: it
// may be created in the same apply, and the checks run again then).
func (e *Engine) PlanRequest(ctx context.Context, req Request) ([]jit.PortProtocol, []jit.Finding) {
	b, m, policy, policyPorts, f := e.requestTarget(ctx, req.MachineID)
	switch {
	case f != nil && f.Summary == summaryNoPolicy:
		return nil, []jit.Finding{jit.Warning("No JIT policy on the virtual machine yet",
			fmt.Sprintf("%s carries no jit_policy. If a policy covering it is applied first in this run, the request is checked against it at apply; otherwise the apply fails.", m.ID), pathMachine...)}
	case f != nil:
		return nil, []jit.Finding{*f}
	}
	// As Create counts from a start cut to the second, so that a duration
	// given as an end time reads in whole seconds.
	now := e.clock.Now().UTC().Truncate(time.Second)
	resolved, findings := validateRequest(req, policyPorts, now)
	if jit.HasError(findings) {
		return nil, findings
	}
	g := Grant{ID: "plan", Policy: policy, OnBehalfOf: req.OnBehalfOf, Justification: req.Justification}
	// Who asks decides which older grants this one supersedes; without
	// it, none is counted as leaving.
	if who, err := b.Requestor(ctx); err == nil {
		g.Requestor = who
	}
	for i, pp := range resolved {
		g.Ports = append(g.Ports, GrantPort{Port: pp, Source: req.Ports[i].Source, End: now.Add(time.Hour)})
	}
	return resolved, append(findings, b.CheckGrant(ctx, m, g)...)
}

const summaryNoPolicy = "No JIT policy on the virtual machine"

// requestTarget resolves the machine a request is for and the policy its
// tags record; the finding says what is missing.
func (e *Engine) requestTarget(ctx context.Context, id string) (Backend, *jit.Machine, string, []jit.Port, *jit.Finding) {
	b, err := e.backendFor(id)
	if err != nil {
		f := jit.Error("Cannot read virtual machine", err.Error(), pathMachine...)
		return nil, nil, "", nil, &f
	}
	m, err := b.Machine(ctx, id)
	if err != nil {
		f := machineError(err)
		return nil, nil, "", nil, &f
	}
	policy, ports, ok, err := machinePolicy(m)
	if _, tagged := m.Tags[jit.TagPolicy]; tagged {
		if s, known := e.remembered(m.ID); known {
			// The machine is in its policy: the policy of this
			// configuration says with which settings, not its tags. (A
			// policy not applied yet is not taken from memory: the
			// apply's own plan may run before it is, and must not find
			// less than this plan did.)
			return b, m, s.name, s.ports, nil
		}
	}
	switch {
	case err != nil:
		f := jit.Error("Unreadable JIT policy", err.Error(), pathMachine...)
		return b, m, "", nil, &f
	case !ok:
		f := jit.Error(summaryNoPolicy, fmt.Sprintf("%s is not covered by any jit_policy: there is nothing to request access to", m.ID), pathMachine...)
		return b, m, "", nil, &f
	}
	return b, m, policy, ports, nil
}

// machineError is the finding for a machine that cannot be read.
func machineError(err error) jit.Finding {
	if IsNotFound(err) {
		return jit.Error("Virtual machine not found", err.Error(), pathMachine...)
	}
	return jit.Error("Cannot read virtual machine", err.Error(), pathMachine...)
}

// OpenedRequest is a request as opened: the grant the cloud records and
// what it holds there.
type OpenedRequest struct {
	Grant    Grant
	Start    time.Time
	Resolved []jit.PortProtocol
	Opened   OpenedGrant
}

// OpenRequest checks the request against the machine's policy as of now
// and opens its grants. What was written is returned even with an error,
// so that it is kept in state and removed on destroy.
func (e *Engine) OpenRequest(ctx context.Context, req Request) (*OpenedRequest, []jit.Finding) {
	b, m, policy, policyPorts, f := e.requestTarget(ctx, req.MachineID)
	if f != nil {
		return nil, []jit.Finding{*f}
	}
	start := e.clock.Now().UTC().Truncate(time.Second)
	resolved, findings := validateRequest(req, policyPorts, start)
	if jit.HasError(findings) {
		return nil, findings
	}
	requestor, err := b.Requestor(ctx)
	if err != nil {
		return nil, append(findings, jit.Error("Cannot tell who is requesting", err.Error()))
	}
	o := &OpenedRequest{Start: start, Resolved: resolved, Grant: Grant{
		ID: NewRequestID(start), Policy: policy, Requestor: requestor, OnBehalfOf: req.OnBehalfOf, Justification: req.Justification,
	}}
	for i, pp := range resolved {
		o.Grant.Ports = append(o.Grant.Ports, GrantPort{Port: pp, Source: req.Ports[i].Source, End: req.end(i, start)})
	}
	o.Opened, err = b.OpenGrant(ctx, m, o.Grant)
	if err != nil {
		findings = append(findings, jit.Error("Cannot grant access", err.Error()))
	}
	return o, findings
}

// end is when port i of a request starting at start ends.
func (r Request) end(i int, start time.Time) time.Time {
	p := r.Ports[i]
	d := cmp.Or(r.Duration, p.Duration)
	if d == "" {
		return p.End.UTC()
	}
	parsed, _ := jit.ParseDuration(d)
	return start.Add(parsed.Std())
}

// validateRequest checks the request's ports against the policy's, as of
// now, and resolves each port's protocol.
func validateRequest(req Request, policy []jit.Port, now time.Time) ([]jit.PortProtocol, []jit.Finding) {
	var findings []jit.Finding
	requested := make([]jit.RequestedPort, len(req.Ports))
	for i, p := range req.Ports {
		requested[i] = jit.RequestedPort{Number: p.Number, Protocol: p.Protocol, SourcePrefix: p.Source}
		if d := cmp.Or(req.Duration, p.Duration); d != "" {
			parsed, err := jit.ParseDuration(d)
			if err != nil {
				findings = append(findings, jit.Error("Invalid duration", err.Error(), req.durationPath(i)...))
				continue
			}
			requested[i].Duration = parsed
			continue
		}
		if !p.End.After(now) {
			findings = append(findings, jit.Error("End time in the past",
				fmt.Sprintf("end_time_utc %s is not in the future (now is %s).", p.End.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)),
				"port", i, "end_time_utc"))
			continue
		}
		requested[i].Duration = jit.Duration(p.End.Sub(now))
	}
	if jit.HasError(findings) {
		return nil, findings
	}
	resolved, errs := jit.ValidateRequest(policy, requested)
	for _, fe := range errs {
		f := fe.Finding()
		// A duration is reported where the user wrote it.
		if len(fe.Path) == 3 && fe.Path[2] == "duration" {
			if i, ok := fe.Path[1].(int); ok {
				f.Path = req.durationPath(i)
			}
		}
		findings = append(findings, f)
	}
	return resolved, findings
}

// durationPath is where the duration of port i was written: the request's
// own duration, the port's, or the port's end time.
func (r Request) durationPath(i int) []any {
	switch {
	case r.Duration != "":
		return []any{"duration"}
	case r.Ports[i].Duration == "":
		return []any{"port", i, "end_time_utc"}
	}
	return []any{"port", i, "duration"}
}

// requestIDTime is the layout of the start time that begins a request ID.
const requestIDTime = "20060102T150405Z"

// NewRequestID names a request by its start and a random suffix, so two
// requests in the same second differ.
func NewRequestID(start time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return start.UTC().Format(requestIDTime) + "-" + hex.EncodeToString(b)
}

// RequestStart reads the start time a request ID begins with; ok is false
// for an ID this provider did not make.
func RequestStart(id string) (time.Time, bool) {
	if len(id) < len(requestIDTime) {
		return time.Time{}, false
	}
	t, err := time.Parse(requestIDTime, id[:len(requestIDTime)])
	return t, err == nil
}

// PortStatus is a granted port's status now: a port revoked stays so;
// otherwise it is open until its end time.
func (e *Engine) PortStatus(ctx context.Context, port jit.PortProtocol, end time.Time, status jit.GrantStatus, reason string) (jit.GrantStatus, string) {
	if status == jit.GrantRevoked {
		return jit.GrantRevoked, reason
	}
	if jit.ExpiryStatus(end, e.clock) == jit.GrantExpired {
		if status != jit.GrantExpired {
			tflog.Info(ctx, "grant ended: its rules are removed", map[string]any{"port": port.Number, "protocol": string(port.Protocol), "end": end.UTC().Format(time.RFC3339), "now": e.clock.Now().UTC().Format(time.RFC3339)})
		}
		return jit.GrantExpired, ReasonExpired
	}
	return jit.GrantInitiated, ""
}

// GrantTargets is how many places one port's grant has rules in on m.
func (e *Engine) GrantTargets(m *jit.Machine) (int, error) {
	b, err := e.backendFor(m.ID)
	if err != nil {
		return 0, err
	}
	return b.GrantTargets(m), nil
}

// ObserveRequest finds a request's grants. The machine may be gone: then
// ref.Machine is nil in what is returned.
func (e *Engine) ObserveRequest(ctx context.Context, ref GrantRef) (GrantRef, ObservedGrant, error) {
	b, err := e.backendFor(ref.MachineID)
	if err != nil {
		return ref, ObservedGrant{}, err
	}
	if ref.Machine, err = e.machineIfAny(ctx, ref.MachineID); err != nil {
		return ref, ObservedGrant{}, err
	}
	o, err := b.ObserveGrant(ctx, ref)
	return ref, o, err
}

// CloseRequest removes a request's rules for ref.Ports, wherever the
// machine's path and the state say they are.
func (e *Engine) CloseRequest(ctx context.Context, ref GrantRef) error {
	if len(ref.Ports) == 0 {
		return nil
	}
	b, err := e.backendFor(ref.MachineID)
	if err != nil {
		return err
	}
	if ref.Machine == nil {
		if ref.Machine, err = e.machineIfAny(ctx, ref.MachineID); err != nil {
			return err
		}
	}
	return b.CloseGrant(ctx, ref)
}

// Regrant writes a request's grant again: ports whose rules were deleted
// out of band until their end time, or a renewal with later ends. As for a
// new request, the policy is this configuration's when it holds the
// machine, else the one the machine's tags carry; a machine that is gone
// has nothing to grant.
func (e *Engine) Regrant(ctx context.Context, g Grant, machineID string) (OpenedGrant, error) {
	if m, err := e.machineIfAny(ctx, machineID); err != nil || m == nil {
		return OpenedGrant{}, err
	}
	b, m, policy, ports, f := e.requestTarget(ctx, machineID)
	g.Again = true
	switch {
	case f != nil && f.Summary == summaryNoPolicy:
		return b.OpenGrant(ctx, m, g) // nothing locks the port any more
	case f != nil:
		return OpenedGrant{}, fmt.Errorf("%s: %s", f.Summary, f.Detail)
	}
	// A grant is written again only while the policy could have made it
	// (port locked, source allowed, end within the maximum from the
	// request's start).
	for _, p := range g.Ports {
		claim := jit.GrantClaim{Marker: jit.GrantMarker(policy, p.End, g.Requestor, g.Justification), Request: g.ID, Port: p.Port, PortOK: true, Sources: []string{p.Source}}
		if fits, why := claim.FitsPolicy(policy, ports); !fits {
			return OpenedGrant{}, fmt.Errorf("port %d/%s of request %s is not granted again: %s", p.Port.Number, p.Port.Protocol, g.ID, why)
		}
	}
	g.Policy = policy
	return b.OpenGrant(ctx, m, g)
}

// ConnectionDetails is where a granted port is reached directly: the
// machine's first private address.
func ConnectionDetails(m *jit.Machine, port jit.PortProtocol) string {
	ips := m.PrivateIPs()
	if len(ips) == 0 {
		return ""
	}
	return fmt.Sprintf("%s:%d", ips[0], port.Number)
}

// SortGrantRules orders a request's rules the one way state shows them:
// by target, port and name, so a refresh never reorders them.
func SortGrantRules(rules []GrantRule) {
	slices.SortFunc(rules, func(a, b GrantRule) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.TargetID), strings.ToLower(b.TargetID)), cmp.Compare(a.Port.Number, b.Port.Number),
			strings.Compare(string(a.Port.Protocol), string(b.Port.Protocol)), strings.Compare(a.Name, b.Name))
	})
}

// Renewal is an open grant of an ephemeral request, kept between its Open,
// Renews and Close.
type Renewal struct {
	MachineID string
	// Duration is how long each opening lasts, as configured.
	Duration string
	// Opened is the first Open: no renewal reaches past the policy's
	// maximum counted from it.
	Opened time.Time
	Grant  Grant
}

// OpenEphemeral opens a request for the length of a run.
func (e *Engine) OpenEphemeral(ctx context.Context, req Request) (*OpenedRequest, *Renewal, []jit.Finding) {
	o, findings := e.OpenRequest(ctx, req)
	if o == nil {
		return nil, nil, findings
	}
	return o, &Renewal{MachineID: req.MachineID, Duration: req.Duration, Opened: o.Start, Grant: o.Grant}, findings
}

// Renew extends an open grant by its duration, checked against the policy
// as it is now: a port no longer locked, or a source no longer allowed,
// ends the grant (it is closed and the finding says why). No port is
// extended past the policy's maximum for it counted from the first Open;
// final is true once every port has reached it, so nothing is left to
// renew.
func (e *Engine) Renew(ctx context.Context, r *Renewal) (final bool, findings []jit.Finding) {
	// Minutes into a run, what the process read at Open is stale.
	ctx = readcache.Fresh(ctx)
	b, m, _, policyPorts, f := e.requestTarget(ctx, r.MachineID)
	now := e.clock.Now().UTC().Truncate(time.Second)
	d, err := jit.ParseDuration(r.Duration)
	switch {
	case f != nil:
		findings = []jit.Finding{*f}
	case err != nil:
		findings = []jit.Finding{jit.Error("Invalid duration", err.Error(), "duration")}
	default:
		req := Request{MachineID: r.MachineID, Duration: r.Duration}
		for _, p := range r.Grant.Ports {
			req.Ports = append(req.Ports, RequestPort{Number: p.Port.Number, Protocol: p.Port.Protocol, Source: p.Source})
		}
		_, findings = validateRequest(req, policyPorts, now)
	}
	if jit.HasError(findings) {
		ended := append(findings, jit.Error("Access ended", fmt.Sprintf("The grant of request %s no longer fits the policy of %s, so it was closed rather than renewed.", r.Grant.ID, r.MachineID)))
		if err := e.CloseRequest(ctx, r.ref()); err != nil {
			ended = append(ended, jit.Error("Cannot revoke access", err.Error()))
		}
		return true, ended
	}
	final = true
	over := 0
	for i := range r.Grant.Ports {
		p := &r.Grant.Ports[i]
		limit := r.Opened.Add(maxFor(policyPorts, p.Port).Std())
		p.End = now.Add(d.Std())
		if !p.End.Before(limit) {
			p.End = limit
		} else {
			final = false
		}
		if !limit.After(now) {
			over++
		}
	}
	if over == len(r.Grant.Ports) {
		if err := e.CloseRequest(ctx, r.ref()); err != nil {
			return true, []jit.Finding{jit.Error("Cannot revoke access", err.Error())}
		}
		return true, []jit.Finding{jit.Warning("Access reached the policy's maximum",
			fmt.Sprintf("Request %s has been open since %s, as long as the policy allows; it was closed.", r.Grant.ID, r.Opened.Format(time.RFC3339)))}
	}
	if _, err := b.OpenGrant(ctx, m, r.Grant); err != nil {
		return final, []jit.Finding{jit.Error("Cannot extend access", err.Error())}
	}
	return final, nil
}

// ref names the open grant for closing it, for good: its record goes too.
func (r *Renewal) ref() GrantRef {
	ref := GrantRef{MachineID: r.MachineID, RequestID: r.Grant.ID, Final: true}
	for _, p := range r.Grant.Ports {
		ref.Ports = append(ref.Ports, p.Port)
	}
	return ref
}

// CloseEphemeral revokes an open grant.
func (e *Engine) CloseEphemeral(ctx context.Context, r *Renewal) error {
	return e.CloseRequest(ctx, r.ref())
}

// maxFor is the policy's maximum duration for a granted port (the port the
// request resolved to, locked alone or under "*").
func maxFor(policy []jit.Port, port jit.PortProtocol) jit.Duration {
	for _, p := range policy {
		if p.Number == port.Number && p.Protocol.Covers(port.Protocol) {
			return p.MaxRequestAccessDuration
		}
	}
	return 0
}
