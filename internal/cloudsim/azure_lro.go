package cloudsim

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// armOperation is a long-running write. As in the network provider, the
// write's goal state is stored at once and shown with provisioningState
// Updating (Deleting for a deleted rule) until the operation completes,
// Options.PollInterval after it started. Completion is decided by the clock
// when the next request settles the world, not by a goroutine.
type armOperation struct {
	operationSpec
	id, sub     string
	start, done time.Time
	failure     *operationFailure // how an injected fault makes it end, or nil
}

// operationSpec is what a write hands to its long-running operation.
type operationSpec struct {
	namespace, location string
	name                string            // the provider's operation name, shown in conflict errors
	lock                string            // ID of the NSG or firewall it holds, or ""
	targets             map[string]string // lower-cased ID → provisioningState while in progress
	// finish is applied when the operation completes (e.g. removing a
	// deleted rule), and when it fails having applied the write.
	finish func()
	// undo restores what the write changed at once, when the operation
	// fails without applying it.
	undo func()
}

// operationFailure is how a failed operation ends: its ARM error (status is
// that of the delete's Location URL) and whether the write stays applied.
type operationFailure struct {
	err     *armError
	applied bool
}

// startOperation registers an operation and returns the headers announcing
// it: Azure-AsyncOperation, Location for deletes, and the retry hints. An
// injected fault may make it end Failed.
func (c *armCall) startOperation(spec operationSpec) http.Header {
	a := c.a
	a.seq++
	spec.lock = strings.ToLower(spec.lock)
	op := &armOperation{
		operationSpec: spec, id: derivedUUID(fmt.Sprint("operation/", a.seq)), sub: c.sub,
		start: c.now, done: c.now.Add(c.sim.opts.PollInterval), failure: c.sim.takeOperationFailure(c.op),
	}
	a.ops[op.id] = op
	a.active = append(a.active, op)
	h := http.Header{}
	h.Set("Azure-AsyncOperation", c.operationURL(op, "operations"))
	if c.r.Method == http.MethodDelete {
		h.Set("Location", c.operationURL(op, "operationResults"))
	}
	c.retryHeaders(h, op)
	return h
}

// operationURL is where a client polls op; it points back at this emulator.
func (c *armCall) operationURL(op *armOperation, kind string) string {
	return fmt.Sprintf("http://%s/subscriptions/%s/providers/%s/locations/%s/%s/%s?api-version=%s",
		c.r.Host, op.sub, op.namespace, op.location, kind, op.id, c.r.URL.Query().Get("api-version"))
}

// retryHeaders advertise when op completes: Retry-After in whole seconds, as
// ARM sends it, and x-ms-retry-after-ms (which azcore prefers) so that
// sub-second poll intervals keep tests fast. No hint once it is done or
// when operations complete at once.
func (c *armCall) retryHeaders(h http.Header, op *armOperation) {
	announceRetryAfter(h, op.done.Sub(c.now), []string{RetryAfterSeconds, RetryAfterMsARM}, c.now)
}

// settle completes every operation whose time has come. A failed operation
// applies or undoes its write, as its fault says, and leaves its resources
// in provisioningState Failed until their next write.
func (a *azureState) settle(now time.Time) {
	still := a.active[:0]
	for _, op := range a.active {
		if now.Before(op.done) {
			still = append(still, op)
			continue
		}
		switch {
		case op.failure != nil && !op.failure.applied:
			if op.undo != nil {
				op.undo()
			}
		case op.finish != nil:
			op.finish()
		}
		if op.failure != nil {
			for id := range op.targets {
				a.failed[id] = true
			}
		}
	}
	a.active = still
}

// provisioningState of a resource or child resource.
func (a *azureState) provisioningState(id string) string {
	key := strings.ToLower(id)
	for _, op := range a.active {
		if state := op.targets[key]; state != "" {
			return state
		}
	}
	if a.failed[key] {
		return "Failed"
	}
	return "Succeeded"
}

// holder is the operation currently holding the NSG or firewall id, if any.
func (a *azureState) holder(id string) *armOperation {
	key := strings.ToLower(id)
	for _, op := range a.active {
		if op.lock == key {
			return op
		}
	}
	return nil
}

// busyNSG is the network provider's answer to a write on an NSG another
// operation is updating: 429 RetryableError, the reason in the details.
func (c *armCall) busyNSG(op *armOperation, nsgID string) armReply {
	e := newARMError(http.StatusTooManyRequests, "RetryableError", "A retryable error occurred.")
	e.Details = []armError{{Code: "RetryableErrorDueToAnotherOperation", Message: fmt.Sprintf(
		"Operation %s (%s) is updating resource %s. The call can be retried in %s seconds.",
		op.name, op.id, nsgID, retryAfterSeconds(op.done.Sub(c.now)))}}
	e.header = http.Header{}
	c.retryHeaders(e.header, op)
	return e.reply()
}

// busyFirewall is the answer to a second write on a firewall: 409
// AnotherOperationInProgress pointing at the running operation.
func (c *armCall) busyFirewall(op *armOperation) armReply {
	e := newARMError(http.StatusConflict, "AnotherOperationInProgress",
		"Another operation on this or dependent resource is in progress. To retrieve status of the operation use uri: %s.",
		c.operationURL(op, "operations"))
	e.header = http.Header{}
	c.retryHeaders(e.header, op)
	return e.reply()
}

// findOperation resolves the {id} of an operation route.
func (c *armCall) findOperation() (*armOperation, *armError) {
	id := c.args[len(c.args)-1]
	if op := c.a.ops[strings.ToLower(id)]; op != nil {
		return op, nil
	}
	return nil, newARMError(http.StatusNotFound, "NotFound", "Operation %s not found.", id)
}

// getOperationStatus serves the Azure-AsyncOperation URL: InProgress, then
// Succeeded, or Failed with the ARM error.
func getOperationStatus(c *armCall) armReply {
	op, e := c.findOperation()
	if e != nil {
		return e.reply()
	}
	status := map[string]any{"status": "Succeeded"}
	compute := strings.EqualFold(op.namespace, "Microsoft.Compute")
	if compute {
		status["name"], status["startTime"] = op.id, op.start.UTC().Format(time.RFC3339Nano)
	}
	rep := ok(status)
	switch {
	case c.now.Before(op.done):
		status["status"] = "InProgress"
		rep.header = http.Header{}
		c.retryHeaders(rep.header, op)
		return rep
	case op.failure != nil:
		status["status"], status["error"] = "Failed", op.failure.err
	}
	if compute {
		status["endTime"] = op.done.UTC().Format(time.RFC3339Nano)
	}
	return rep
}

// getOperationResult serves the Location URL of a delete: 202 while in
// progress, then 204, or the operation's error when it failed.
func getOperationResult(c *armCall) armReply {
	op, e := c.findOperation()
	if e != nil {
		return e.reply()
	}
	if !c.now.Before(op.done) {
		if op.failure != nil {
			return op.failure.err.reply()
		}
		return armReply{status: http.StatusNoContent}
	}
	rep := armReply{status: http.StatusAccepted, header: http.Header{}}
	rep.header.Set("Location", c.operationURL(op, "operationResults"))
	c.retryHeaders(rep.header, op)
	return rep
}
