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
	id, sub, namespace, location string
	name                         string            // the provider's operation name, shown in conflict errors
	lock                         string            // lower-cased ID of the NSG or firewall it holds, or ""
	targets                      map[string]string // lower-cased ID → provisioningState while in progress
	start, done                  time.Time
	finish                       func() // applied at completion, e.g. removing a deleted rule
}

// startOperation registers an operation and returns the headers announcing
// it: Azure-AsyncOperation, Location for deletes, and the retry hints.
func (c *armCall) startOperation(namespace, location, name, lock string, targets map[string]string, finish func()) (*armOperation, http.Header) {
	a := c.a
	a.seq++
	op := &armOperation{
		id: derivedUUID(fmt.Sprint("operation/", a.seq)), sub: c.sub, namespace: namespace, location: location,
		name: name, lock: strings.ToLower(lock), targets: targets,
		start: c.now, done: c.now.Add(c.sim.opts.PollInterval), finish: finish,
	}
	a.ops[op.id] = op
	a.active = append(a.active, op)
	h := http.Header{}
	h.Set("Azure-AsyncOperation", c.operationURL(op, "operations"))
	if c.r.Method == http.MethodDelete {
		h.Set("Location", c.operationURL(op, "operationResults"))
	}
	c.retryHeaders(h, op)
	return op, h
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

// settle completes every operation whose time has come.
func (a *azureState) settle(now time.Time) {
	still := a.active[:0]
	for _, op := range a.active {
		if now.Before(op.done) {
			still = append(still, op)
		} else if op.finish != nil {
			op.finish()
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
	if op := c.a.ops[strings.ToLower(c.args[2])]; op != nil {
		return op, nil
	}
	return nil, newARMError(http.StatusNotFound, "NotFound", "Operation %s not found.", c.args[2])
}

// getOperationStatus serves the Azure-AsyncOperation URL.
func getOperationStatus(c *armCall) armReply {
	op, e := c.findOperation()
	if e != nil {
		return e.reply()
	}
	status := map[string]any{"status": "Succeeded"}
	if strings.EqualFold(op.namespace, "Microsoft.Compute") {
		status["name"], status["startTime"] = op.id, op.start.UTC().Format(time.RFC3339Nano)
	}
	rep := ok(status)
	if c.now.Before(op.done) {
		status["status"] = "InProgress"
		rep.header = http.Header{}
		c.retryHeaders(rep.header, op)
	} else if status["name"] != nil {
		status["endTime"] = op.done.UTC().Format(time.RFC3339Nano)
	}
	return rep
}

// getOperationResult serves the Location URL of a delete: 202 while in
// progress, then 204.
func getOperationResult(c *armCall) armReply {
	op, e := c.findOperation()
	if e != nil {
		return e.reply()
	}
	if !c.now.Before(op.done) {
		return armReply{status: http.StatusNoContent}
	}
	rep := armReply{status: http.StatusAccepted, header: http.Header{}}
	rep.header.Set("Location", c.operationURL(op, "operationResults"))
	c.retryHeaders(rep.header, op)
	return rep
}
