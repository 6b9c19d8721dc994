package cloudsim

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Fault is injected into every call of one operation (or "*" for all).
// Through the admin API it is JSON with the field names below; durations
// are integers of nanoseconds, as encoding/json writes time.Duration.
type Fault struct {
	// Operation is an operation name from Operations(), or "*".
	Operation string `json:"operation"`
	// Latency is added before the call is handled.
	Latency time.Duration `json:"latency"`
	// FailNext fails the next N calls with Status/Code instead of handling them.
	FailNext int `json:"fail_next"`
	// FailRate fails this fraction (0..1) of calls with Status/Code.
	FailRate float64 `json:"fail_rate"`
	// Status and Code are the HTTP status and cloud error code of injected
	// failures (for example 429 "TooManyRequests", 503 "ServiceUnavailable",
	// 400 "RequestLimitExceeded").
	Status int    `json:"status"`
	Code   string `json:"code"`
	// RetryAfter, when set, is announced with failures in the ways
	// RetryAfterIn lists.
	RetryAfter time.Duration `json:"retry_after"`
	// RetryAfterIn lists how RetryAfter is announced, any of the
	// RetryAfter* ways below; empty means RetryAfterSeconds alone. ARM
	// sends milliseconds headers beside Retry-After, and clients meet
	// fractional seconds and dates too, so a client's honouring of each
	// can be tested.
	RetryAfterIn []string `json:"retry_after_in"`
	// DropAfterWrite applies the next N calls and then closes the connection
	// without a response, as a crash or network cut right after the write.
	DropAfterWrite int `json:"drop_after_write"`
	// FailOperationNext makes the long-running operations of the next N
	// ARM writes that start one end with status Failed and an ARM error
	// (Code, default InternalServerError; Status, default 500, is that of
	// a delete's Location URL) instead of Succeeded. The write itself is
	// answered as usual; only polling shows the failure. Writes refused
	// before an operation starts do not count.
	FailOperationNext int `json:"fail_operation_next"`
	// FailedOperationApplied keeps the failed write's effect, as ARM can
	// when it fails after applying part of a request; by default the
	// resource is restored to what it was before the write. Either way the
	// resources it wrote show provisioningState Failed until written again.
	FailedOperationApplied bool `json:"failed_operation_applied"`
}

// The ways a fault can announce RetryAfter.
const (
	// RetryAfterSeconds is Retry-After in whole seconds, rounded up.
	RetryAfterSeconds = "seconds"
	// RetryAfterFractional is Retry-After in seconds with a decimal
	// fraction ("0.25"), which RFC 9110 does not allow but servers send.
	RetryAfterFractional = "fractional-seconds"
	// RetryAfterHTTPDate is Retry-After as an HTTP date, which RFC 9110
	// allows beside seconds.
	RetryAfterHTTPDate = "http-date"
	// RetryAfterMsARM is x-ms-retry-after-ms, ARM's milliseconds header.
	RetryAfterMsARM = "x-ms-retry-after-ms"
	// RetryAfterMs is retry-after-ms, the milliseconds header ARM also sends.
	RetryAfterMs = "retry-after-ms"
)

var retryAfterWays = []string{RetryAfterSeconds, RetryAfterFractional, RetryAfterHTTPDate, RetryAfterMsARM, RetryAfterMs}

// check reports a fault the emulator cannot apply.
func (f Fault) check() error {
	if f.Operation == "" {
		return fmt.Errorf("a fault needs an operation")
	}
	for _, way := range f.RetryAfterIn {
		if !slices.Contains(retryAfterWays, way) {
			return fmt.Errorf("retry_after_in: %q is none of %v", way, retryAfterWays)
		}
	}
	return nil
}

// InjectFault installs f for its operation, replacing any earlier fault for
// it. A fault that cannot be applied (see the admin API's answer) is a bug
// in the caller, and panics.
func (s *Sim) InjectFault(f Fault) {
	if err := f.check(); err != nil {
		panic("cloudsim: " + err.Error())
	}
	f.RetryAfterIn = slices.Clone(f.RetryAfterIn)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := f
	s.faults[f.Operation] = &c
}

// InjectedFault is the fault installed for op as it stands now: its
// FailNext, DropAfterWrite and FailOperationNext count the calls it has
// still to meet, so a test can tell that a fault met the calls it was
// meant for.
func (s *Sim) InjectedFault(op string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults[op]
	if f == nil {
		return Fault{}, false
	}
	c := *f
	c.RetryAfterIn = slices.Clone(f.RetryAfterIn)
	return c, true
}

// OnCall runs fn right before calls of op are handled, until it returns
// true: another writer acting between a client's read and its write, or a
// look at what the cloud holds at that moment. fn sees the call's request
// (to act on one object only; an ARM request's body can be read again,
// an EC2 request's parameters are in its PostForm) and may call the
// emulator; calls handled at once run it at once.
func (s *Sim) OnCall(op string, fn func(r *http.Request) (done bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hookSeq++
	s.hooks[op] = append(s.hooks[op], callHook{id: s.hookSeq, fn: fn})
}

type callHook struct {
	id int
	fn func(*http.Request) bool
}

// runHooks runs the hooks of op, in order, and drops those that are done.
func (s *Sim) runHooks(op string, r *http.Request) {
	s.mu.Lock()
	hooks := slices.Clone(s.hooks[op])
	s.mu.Unlock()
	for _, h := range hooks {
		if h.fn(r) {
			s.mu.Lock()
			s.hooks[op] = slices.DeleteFunc(s.hooks[op], func(o callHook) bool { return o.id == h.id })
			s.mu.Unlock()
		}
	}
}

// WaitIdle waits until no call is being handled, or ctx ends: a write
// whose latency outlasted the client's patience lands after the client
// gave up, and a test waits for it before looking at the world.
func (s *Sim) WaitIdle(ctx context.Context) error {
	for s.inFlight.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("cloudsim: %d calls still being handled: %w", s.inFlight.Load(), ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// ClearFaults removes every injected fault.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[string]*Fault{}
}

func newRand() func() float64 { return rand.Float64 }

// faultDecision is what the fault layer decided for one call.
type faultDecision struct {
	latency      time.Duration
	fail         bool
	status       int
	code         string
	retryAfter   time.Duration
	retryAfterIn []string
	drop         bool
}

func (s *Sim) decideFault(op string) faultDecision {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d faultDecision
	for _, key := range []string{"*", op} {
		f := s.faults[key]
		if f == nil {
			continue
		}
		d.latency += f.Latency
		switch {
		case f.FailNext > 0:
			f.FailNext--
			d.fail = true
		case f.FailRate > 0 && s.rand() < f.FailRate:
			d.fail = true
		case f.DropAfterWrite > 0:
			f.DropAfterWrite--
			d.drop = true
		}
		if d.fail {
			d.status, d.code, d.retryAfter, d.retryAfterIn = f.Status, f.Code, f.RetryAfter, f.RetryAfterIn
		}
	}
	return d
}

// takeOperationFailure consumes one FailOperationNext of the faults for op
// (or "*") and says how the operation it hits ends; nil when none applies.
// Called with s.mu held, as operations start under it.
func (s *Sim) takeOperationFailure(op string) *operationFailure {
	for _, key := range []string{"*", op} {
		f := s.faults[key]
		if f == nil || f.FailOperationNext <= 0 {
			continue
		}
		f.FailOperationNext--
		status, code := f.Status, f.Code
		if status == 0 {
			status = http.StatusInternalServerError
		}
		if code == "" {
			code = "InternalServerError"
		}
		return &operationFailure{
			err:     newARMError(status, code, "cloudsim: injected failure of the operation of %s.", op),
			applied: f.FailedOperationApplied,
		}
	}
	return nil
}

// errorWriter renders an error in a cloud's own wire format.
type errorWriter func(w http.ResponseWriter, status int, code, message string)

// handle counts op in the request's flow, applies injected faults, and runs h. When a
// drop-after-write fault fires, h's effects are kept but its response is
// discarded and the connection closed.
func (s *Sim) handle(w http.ResponseWriter, r *http.Request, op string, writeErr errorWriter, h func(w http.ResponseWriter)) {
	s.count(op, flowOf(r))
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	d := s.decideFault(op)
	// The call is handled after its latency whether or not the client is
	// still waiting: a cloud does not learn that a client gave up (its
	// timeout ended), so a write it was sent still lands.
	time.Sleep(d.latency)
	if d.fail {
		status := d.status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		code := d.code
		if code == "" {
			code = "InternalServerError"
		}
		announceRetryAfter(w.Header(), d.retryAfter, d.retryAfterIn, time.Now())
		writeErr(w, status, code, "cloudsim: injected fault on "+op)
		return
	}
	s.runHooks(op, r)
	if !d.drop {
		h(w)
		return
	}
	rec := &discardWriter{header: http.Header{}}
	h(rec)
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

type discardWriter struct {
	header http.Header
	body   bytes.Buffer
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return d.body.Write(b) }
func (d *discardWriter) WriteHeader(int)             {}

// announceRetryAfter sets the headers that announce d in the given ways
// (RetryAfterSeconds when none); nothing when d is not positive.
func announceRetryAfter(h http.Header, d time.Duration, ways []string, now time.Time) {
	if d <= 0 {
		return
	}
	if len(ways) == 0 {
		ways = []string{RetryAfterSeconds}
	}
	ms := strconv.FormatInt(max(d.Milliseconds(), 1), 10)
	for _, way := range ways {
		switch way {
		case RetryAfterSeconds:
			h.Set("Retry-After", retryAfterSeconds(d))
		case RetryAfterFractional:
			h.Set("Retry-After", strconv.FormatFloat(d.Seconds(), 'f', -1, 64))
		case RetryAfterHTTPDate:
			// Dates have whole seconds: round up so the wait is not shortened.
			h.Set("Retry-After", now.Add(d+time.Second-1).UTC().Format(http.TimeFormat))
		case RetryAfterMsARM:
			h.Set("x-ms-retry-after-ms", ms)
		case RetryAfterMs:
			h.Set("retry-after-ms", ms)
		}
	}
}

func retryAfterSeconds(d time.Duration) string {
	secs := int((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return strconv.Itoa(secs)
}
