// Package retry repeats cloud calls that failed for a reason that goes away:
// throttling, another operation in progress, a transient server error. It
// honours the server's Retry-After, otherwise backs off exponentially with
// full jitter, and stops when the context (the resource's timeout) ends.
package retry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
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
		if wait <= 0 {
			wait = time.Duration(rand.Int64N(int64(ceiling) + 1))
			ceiling = min(2*ceiling, b.Max)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("gave up after %d attempts (%w): %w", attempt, context.Cause(ctx), err)
		case <-timer.C:
		}
	}
}
