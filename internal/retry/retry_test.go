package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errBusy = errors.New("busy")
var errBad = errors.New("bad request")

func classify(err error) (bool, time.Duration) {
	if errors.Is(err, errBusy) {
		return true, 0
	}
	return false, 0
}

var fast = Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond}

func TestDoRetriesUntilSuccess(t *testing.T) {
	calls := 0
	err := Do(context.Background(), fast, classify, func(context.Context) error {
		calls++
		if calls < 5 {
			return errBusy
		}
		return nil
	})
	if err != nil || calls != 5 {
		t.Fatalf("err=%v calls=%d, want nil and 5", err, calls)
	}
}

func TestDoStopsOnPermanentError(t *testing.T) {
	calls := 0
	err := Do(context.Background(), fast, classify, func(context.Context) error {
		calls++
		return errBad
	})
	if !errors.Is(err, errBad) || calls != 1 {
		t.Fatalf("err=%v calls=%d, want errBad after 1 call", err, calls)
	}
}

func TestDoHonoursRetryAfter(t *testing.T) {
	calls := 0
	start := time.Now()
	err := Do(context.Background(), fast, func(error) (bool, time.Duration) { return true, 30 * time.Millisecond }, func(context.Context) error {
		calls++
		if calls < 3 {
			return errBusy
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < 60*time.Millisecond {
		t.Fatalf("two Retry-After waits of 30ms took only %v", elapsed)
	}
}

func TestDoGivesUpWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := Do(ctx, fast, classify, func(context.Context) error { return errBusy })
	if !errors.Is(err, errBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err=%v, want both the last failure and the deadline", err)
	}
}
