// Package engine is the orchestration between the provider (or a command)
// and the clouds: it finds a policy's machines and the filters on their
// paths, plans, observes and applies policies, opens, observes and closes
// grants, and decides expiry. It speaks the core's types (internal/jit) and
// reaches each cloud through a Backend; it imports neither the Terraform
// framework nor any cloud SDK, and never branches on the cloud. What it
// finds is returned as data (jit.Finding) for the caller to report.
package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// ErrNotFound marks a machine, filter or grant that does not exist.
// Backends wrap their clouds' not-found errors with it.
var ErrNotFound = errors.New("not found")

// IsNotFound tells whether err means something does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// ErrRolledBack reports that a cloud refused one of an apply's writes for
// a reason its plan could not know (a limit reached since), and that the
// backend took back what the apply had written: the cloud holds what it
// held before.
var ErrRolledBack = errors.New("a write was refused, so what this apply had written was taken back: the cloud holds what it held before the apply, and nothing of the plan is applied")

// Failure is an error with the summary a backend wants it reported under
// ("Cannot write security group rules"): the engine knows no cloud's words.
type Failure struct {
	Summary string
	Err     error
}

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// Fail wraps err, when not nil, with the summary to report it under.
func Fail(summary string, err error) error {
	if err == nil {
		return nil
	}
	return &Failure{Summary: summary, Err: err}
}

// failureFindings reports err as error findings: each joined error apart,
// under its own summary when it has one, else under summary.
func failureFindings(summary string, err error) []jit.Finding {
	if err == nil {
		return nil
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []jit.Finding
		for _, e := range joined.Unwrap() {
			out = append(out, failureFindings(summary, e)...)
		}
		return out
	}
	var f *Failure
	if errors.As(err, &f) {
		summary = f.Summary
	}
	return []jit.Finding{jit.Error(summary, err.Error())}
}

// splitErrors lists the errors joined in err.
func splitErrors(err error) []error {
	if err == nil {
		return nil
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		return joined.Unwrap()
	}
	return []error{err}
}

// Engine drives the configured backends.
type Engine struct {
	backends []Backend
	clock    jit.Clock
	// clouds are every cloud the provider knows, configured or not, so
	// that touching one left out says which block to add.
	clouds []Cloud

	mu sync.Mutex
	// claims are, by lowercased machine ID, the policy each machine was
	// planned into in this process: two policies of one configuration
	// listing one VM are refused at plan, before either writes.
	claims map[string]string
	// settings are, by lowercased machine ID, the settings of the policy
	// covering it as this process knows them from the policy's own state
	// or plan: requests of the same configuration are checked against
	// them, not against tags anyone with tag-write rights can edit.
	settings map[string]policySettings
}

type policySettings struct {
	name  string
	ports []jit.Port
}

// remember records the settings policy name holds for its machines.
func (e *Engine) remember(name string, ids []string, ports []jit.Port) {
	if ports == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.settings == nil {
		e.settings = map[string]policySettings{}
	}
	for _, id := range ids {
		e.settings[strings.ToLower(id)] = policySettings{name, ports}
	}
}

// remembered is what remember recorded for a machine.
func (e *Engine) remembered(id string) (policySettings, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.settings[strings.ToLower(id)]
	return s, ok
}

// New returns an engine over the configured backends; clouds are every
// cloud the provider knows, configured or not.
func New(clock jit.Clock, backends []Backend, clouds ...Cloud) *Engine {
	return &Engine{backends: backends, clock: clock, clouds: clouds}
}

// Clock is the engine's clock.
func (e *Engine) Clock() jit.Clock { return e.clock }

// Backends are the configured backends.
func (e *Engine) Backends() []Backend { return e.backends }

// backendFor finds the backend owning id: a machine or a filter.
func (e *Engine) backendFor(id string) (Backend, error) {
	for _, b := range e.backends {
		if b.Owns(id) {
			return b, nil
		}
	}
	cloud, err := CloudOfMachine(e.clouds, id)
	if err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%s is on %s but the provider configuration has no %s block; add `%s {}` to the provider \"jit\" block", id, cloud.Title, cloud.Name, cloud.Name)
}

// Machine resolves a machine in whichever configured cloud owns its ID.
func (e *Engine) Machine(ctx context.Context, id string) (*jit.Machine, error) {
	b, err := e.backendFor(id)
	if err != nil {
		return nil, err
	}
	return b.Machine(ctx, id)
}

// machineIfAny resolves a machine that may be gone: nil, and no error, then.
func (e *Engine) machineIfAny(ctx context.Context, id string) (*jit.Machine, error) {
	m, err := e.Machine(ctx, id)
	if IsNotFound(err) {
		return nil, nil
	}
	return m, err
}

// parallel runs fn for each item at once and joins the errors.
func parallel[T any](items []T, fn func(T) error) error {
	return parallelN(items, len(items), fn)
}

// readParallelism bounds how many machines one operation reads at once:
// enough that a policy's are read side by side in one round trip, few
// enough that a policy of hundreds opens tens of connections, not
// hundreds. (ARM's throttling counts requests, not how many are in
// flight: the reads a policy needs cost the same either way.)
const readParallelism = 32

// tagParallelism bounds how many machines' tags one policy writes at
// once. ARM admits a burst of writes per subscription and then about ten
// a second (aka.ms/arm-throttling): past the burst, more in flight only
// makes more refused calls, each answered with a wait.
const tagParallelism = 64

// parallelN runs fn for each item, at most n at once, and joins the errors.
func parallelN[T any](items []T, n int, fn func(T) error) error {
	errs := make([]error, len(items))
	sem := make(chan struct{}, max(n, 1))
	var wg sync.WaitGroup
	for i, item := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(item)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
