// Package clocktest holds a clock for tests: expiry is decided against a
// jit.Clock, never by sleeping, so tests move time instead of waiting for
// it. Only tests import this package; it is not linked into the provider.
package clocktest

import (
	"sync"
	"time"
)

// FakeClock is a jit.Clock that stands still until told otherwise. It is
// safe for concurrent use, as a provider under test reads it from several
// goroutines.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a FakeClock showing now.
func New(now time.Time) *FakeClock { return &FakeClock{now: now} }

func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
