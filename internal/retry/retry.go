// Package retry repeats cloud calls that failed for a reason that goes away:
// throttling, another operation in progress, a transient server error. It
// honours the server's Retry-After, otherwise backs off exponentially with
// full jitter, and stops when the context (the resource's timeout) ends.
package retry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-log/tflog"
)

// Classify tells whether err is worth retrying and, when the server said so,
// after how long (0 when it did not say).
type Classify func(err error) (retryable bool, after time.Duration)

// Backoff bounds the waits between attempts when the server gives no Retry-After.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// DefaultBackoff suits ARM and EC2 write throttling.
var DefaultBackoff = Backoff{Initial: 250 * time.Millisecond, Max: 15 * time.Second}

// Do runs op until it succeeds, returns an error classify rejects, or ctx
// ends; in the last case the error says how many attempts were made and
// wraps the last failure.
func Do(ctx context.Context, b Backoff, classify Classify, op func(context.Context) error) error {
	ceiling := b.Initial
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		retryable, after := classify(err)
		if !retryable {
			return err
		}
		wait := after
		if wait > 0 {
			// A little later than asked, so that the writers a throttle
			// sent away together do not come back together.
			wait += time.Duration(rand.Int64N(int64(min(wait/5, time.Second)) + 1))
		} else {
			wait = time.Duration(rand.Int64N(int64(ceiling) + 1))
			ceiling = min(2*ceiling, b.Max)
		}
		tflog.Warn(ctx, "cloud call failed; retrying", map[string]any{
			"attempt": attempt, "wait": wait.String(), "server_asked": after.String(), "reason": err.Error(),
		})
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("gave up after %d attempts (%w): %w", attempt, context.Cause(ctx), err)
		case <-timer.C:
		}
	}
}

// After reads how long a response asks the client to wait, to the
// millisecond: ARM's x-ms-retry-after-ms and retry-after-ms first, then
// Retry-After as seconds (fractions allowed) or an HTTP date. 0 when the
// response says nothing usable.
func After(h http.Header, now time.Time) time.Duration {
	for _, name := range []string{"x-ms-retry-after-ms", "retry-after-ms"} {
		if ms, err := strconv.ParseFloat(strings.TrimSpace(h.Get(name)), 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
		return time.Duration(secs * float64(time.Second))
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}
