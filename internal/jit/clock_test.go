package jit

import (
	"github.com/jitaccess/terraform-provider-jit/internal/clocktest"
	"sync"
	"testing"
	"time"
)

func TestNewClock_isTheSystemClock(t *testing.T) {
	before := time.Now()
	now := NewClock().Now()
	if now.Before(before) || now.After(time.Now()) {
		t.Errorf("NewClock().Now() = %v, not between the surrounding time.Now calls", now)
	}
}

func TestFakeClock(t *testing.T) {
	c := clocktest.New(testEnd)
	if !c.Now().Equal(testEnd) {
		t.Fatalf("Now() = %v", c.Now())
	}
	c.Advance(90 * time.Minute)
	if want := testEnd.Add(90 * time.Minute); !c.Now().Equal(want) {
		t.Errorf("after Advance: %v; want %v", c.Now(), want)
	}
	c.Set(testEnd.Add(-time.Hour))
	if want := testEnd.Add(-time.Hour); !c.Now().Equal(want) {
		t.Errorf("after Set: %v; want %v", c.Now(), want)
	}

	// Safe for a provider reading it from several goroutines (run with -race).
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Second)
				_ = c.Now()
			}
		})
	}
	wg.Wait()
	if want := testEnd.Add(-time.Hour + 800*time.Second); !c.Now().Equal(want) {
		t.Errorf("after concurrent advances: %v; want %v", c.Now(), want)
	}
}

func TestExpiryStatus(t *testing.T) {
	c := clocktest.New(testEnd.Add(-time.Hour))
	for _, tc := range []struct {
		at   time.Duration // relative to the end time
		want GrantStatus
	}{
		{-time.Hour, GrantInitiated},
		{-time.Nanosecond, GrantInitiated},
		{0, GrantExpired},
		{time.Nanosecond, GrantExpired},
		{24 * time.Hour, GrantExpired},
	} {
		c.Set(testEnd.Add(tc.at))
		if got := ExpiryStatus(testEnd, c); got != tc.want {
			t.Errorf("%v from the end: %s; want %s", tc.at, got, tc.want)
		}
	}
	// The end time a marker carries (cut to the second) never extends a grant.
	m, _ := ParseMarker(GrantMarker("p", testEnd.Add(999*time.Millisecond), "a", "b").String())
	c.Set(testEnd.Add(999 * time.Millisecond))
	if ExpiryStatus(m.End, c) != GrantExpired {
		t.Error("the marker's end time outlives the request")
	}
}
