package engine

import (
	"context"
	"slices"
	"time"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// HeldPort is a port of a request as its state holds it.
type HeldPort struct {
	Port   jit.PortProtocol
	End    time.Time
	Status jit.GrantStatus
	Reason string
}

// RefreshPorts sets each port's status as of now: a port whose end passed
// expires, and an open one that a newer grant of the same requester took
// over (superseded, as observed) is revoked.
func (e *Engine) RefreshPorts(ctx context.Context, ports []HeldPort, superseded map[jit.PortProtocol]bool) {
	for i := range ports {
		p := &ports[i]
		p.Status, p.Reason = e.PortStatus(ctx, p.Port, p.End, p.Status, p.Reason)
		if p.Status == jit.GrantInitiated && superseded[p.Port] {
			p.Status, p.Reason = jit.GrantRevoked, ReasonSuperseded
		}
	}
}

// PlanHeldRequest plans an existing request: it refreshes its ports'
// statuses and returns the rules of the ports still open, and whether one
// of them lacks a rule in a place its grant goes (deleted out of band: it
// is granted again, until its end). The machine is read only when a port
// is still open.
func (e *Engine) PlanHeldRequest(ctx context.Context, machineID string, ports []HeldPort, rules []GrantRule) (open []GrantRule, missing bool, err error) {
	e.RefreshPorts(ctx, ports, nil)
	targets := -1 // places a port's grant has rules in, read once needed
	for _, p := range ports {
		if p.Status != jit.GrantInitiated {
			continue
		}
		have := slices.DeleteFunc(slices.Clone(rules), func(r GrantRule) bool { return r.Port != p.Port })
		open = append(open, have...)
		if targets < 0 {
			m, err := e.Machine(ctx, machineID)
			if err == nil {
				targets, err = e.GrantTargets(m)
			}
			if err != nil {
				return nil, false, err
			}
		}
		missing = missing || len(have) < targets
	}
	return open, missing, nil
}

// PortsToClose splits an update's ports: those that ended and still hold
// rules (held, as the refresh found them) are closed; the indexes of those
// still open are returned for granting again. A port closed by an earlier
// apply holds nothing any more and is left alone.
func PortsToClose(ports []HeldPort, held []GrantRule) (closed []jit.PortProtocol, open []int) {
	for i, p := range ports {
		switch {
		case p.Status == jit.GrantInitiated:
			open = append(open, i)
		case slices.ContainsFunc(held, func(h GrantRule) bool { return h.Port == p.Port }):
			closed = append(closed, p.Port)
		}
	}
	return closed, open
}
