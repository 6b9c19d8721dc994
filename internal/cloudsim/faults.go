package cloudsim

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Fault is injected into every call of one operation (or "*" for all).
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
	// RetryAfter, when set, is sent as the Retry-After header of failures.
	RetryAfter time.Duration `json:"retry_after"`
	// DropAfterWrite applies the next N calls and then closes the connection
	// without a response, as a crash or network cut right after the write.
	DropAfterWrite int `json:"drop_after_write"`
}

// InjectFault installs f for its operation, replacing any earlier fault for it.
func (s *Sim) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := f
	s.faults[f.Operation] = &c
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
	latency    time.Duration
	fail       bool
	status     int
	code       string
	retryAfter time.Duration
	drop       bool
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
			d.status, d.code, d.retryAfter = f.Status, f.Code, f.RetryAfter
		}
	}
	return d
}

// errorWriter renders an error in a cloud's own wire format.
type errorWriter func(w http.ResponseWriter, status int, code, message string)

// handle counts op in the request's flow, applies injected faults, and runs h. When a
// drop-after-write fault fires, h's effects are kept but its response is
// discarded and the connection closed.
func (s *Sim) handle(w http.ResponseWriter, r *http.Request, op string, writeErr errorWriter, h func(w http.ResponseWriter)) {
	s.count(op, flowOf(r))
	d := s.decideFault(op)
	if d.latency > 0 {
		select {
		case <-time.After(d.latency):
		case <-r.Context().Done():
			return
		}
	}
	if d.fail {
		status := d.status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		code := d.code
		if code == "" {
			code = "InternalServerError"
		}
		if d.retryAfter > 0 {
			w.Header().Set("Retry-After", retryAfterSeconds(d.retryAfter))
		}
		writeErr(w, status, code, "cloudsim: injected fault on "+op)
		return
	}
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

func retryAfterSeconds(d time.Duration) string {
	secs := int((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return strconv.Itoa(secs)
}
