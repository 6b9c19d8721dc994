package retry

import (
	"context"
	"errors"
	"net/http"
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

func TestAfterReadsMillisecondsFractionsAndDates(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		header map[string]string
		want   time.Duration
	}{
		{map[string]string{"x-ms-retry-after-ms": "250"}, 250 * time.Millisecond},
		{map[string]string{"retry-after-ms": "40", "Retry-After": "3"}, 40 * time.Millisecond},
		{map[string]string{"Retry-After": "0.5"}, 500 * time.Millisecond},
		{map[string]string{"Retry-After": "2"}, 2 * time.Second},
		{map[string]string{"Retry-After": now.Add(3 * time.Second).Format(http.TimeFormat)}, 3 * time.Second},
		{map[string]string{"Retry-After": "soon"}, 0},
		{map[string]string{"Retry-After": "-1"}, 0},
		{nil, 0},
	} {
		h := http.Header{}
		for k, v := range tc.header {
			h.Set(k, v)
		}
		if got := After(h, now); got != tc.want {
			t.Errorf("After(%v) = %v, want %v", tc.header, got, tc.want)
		}
	}
}
