package readcache

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestConcurrentGetsOfOneObjectReadOnce(t *testing.T) {
	c := New(slices.Clone[[]string])
	var reads atomic.Int32
	release := make(chan struct{})
	load := func(context.Context) ([]string, error) {
		reads.Add(1)
		<-release
		return []string{"rule"}, nil
	}
	var wg sync.WaitGroup
	for i := range 20 {
		id := "/subscriptions/x/NSG"
		if i%2 == 0 {
			id = "/SUBSCRIPTIONS/X/nsg"
		}
		wg.Go(func() {
			v, err := c.Get(t.Context(), id, load)
			if err != nil || !slices.Equal(v, []string{"rule"}) {
				t.Errorf("Get = %v, %v", v, err)
			}
			v[0] = "changed by a caller"
		})
	}
	close(release)
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Fatalf("%d reads, want 1", n)
	}
	v, _ := c.Get(t.Context(), "/subscriptions/x/nsg", load)
	if v[0] != "rule" {
		t.Fatalf("a caller's change reached the cache: %v", v)
	}
}

func TestErrorsAreNotKept(t *testing.T) {
	c := New[string](nil)
	calls := 0
	load := func(context.Context) (string, error) {
		calls++
		if calls == 1 {
			return "", errors.New("throttled")
		}
		return "vm", nil
	}
	if _, err := c.Get(t.Context(), "a", load); err == nil {
		t.Fatal("want the first read's error")
	}
	if v, err := c.Get(t.Context(), "a", load); err != nil || v != "vm" || calls != 2 {
		t.Fatalf("Get = %q, %v after %d reads", v, err, calls)
	}
}

func TestWritesUpdateOrForget(t *testing.T) {
	c := New(slices.Clone[[]string])
	reads := 0
	load := func(context.Context) ([]string, error) { reads++; return []string{"a"}, nil }
	c.Update("nsg", func(v []string) []string { return append(v, "never") }) // unknown: nothing to update
	if _, err := c.Get(t.Context(), "nsg", load); err != nil {
		t.Fatal(err)
	}
	c.Update("NSG", func(v []string) []string { return append(v, "b") })
	if v, _ := c.Get(t.Context(), "nsg", load); !slices.Equal(v, []string{"a", "b"}) || reads != 1 {
		t.Fatalf("after the update: %v, %d reads", v, reads)
	}
	c.Forget("nsg")
	if v, _ := c.Get(t.Context(), "nsg", load); !slices.Equal(v, []string{"a"}) || reads != 2 {
		t.Fatalf("after forget: %v, %d reads", v, reads)
	}
	c.Put("nsg", []string{"written"})
	if v, _ := c.Get(t.Context(), "nsg", load); !slices.Equal(v, []string{"written"}) || reads != 2 {
		t.Fatalf("after put: %v, %d reads", v, reads)
	}
}

// A write while a read is under way may or may not be in what the read
// returns: the object is read again afterwards.
func TestUpdateDuringAReadForgets(t *testing.T) {
	c := New[string](nil)
	started, release := make(chan struct{}), make(chan struct{})
	go func() {
		_, _ = c.Get(context.Background(), "vm", func(context.Context) (string, error) {
			close(started)
			<-release
			return "before the write", nil
		})
	}()
	<-started
	c.Update("vm", func(string) string { return "never used" })
	close(release)
	v, err := c.Get(t.Context(), "vm", func(context.Context) (string, error) { return "read again", nil })
	if err != nil || v != "read again" {
		t.Fatalf("Get = %q, %v", v, err)
	}
}

func TestAReaderWhoseTimeRanOutDoesNotFailTheOthers(t *testing.T) {
	c := New[string](nil)
	short, cancel := context.WithCancel(t.Context())
	started := make(chan struct{})
	go func() {
		_, _ = c.Get(short, "vm", func(ctx context.Context) (string, error) {
			close(started)
			<-ctx.Done()
			return "", ctx.Err()
		})
	}()
	<-started
	done := make(chan string)
	go func() {
		v, _ := c.Get(t.Context(), "vm", func(context.Context) (string, error) { return "read by the second", nil })
		done <- v
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	if v := <-done; v != "read by the second" {
		t.Fatalf("second reader got %q", v)
	}
}

// Objects read together are read in one call; those known or under way
// are not read again.
func TestGetManyReadsWhatIsMissingInOneCall(t *testing.T) {
	c := New(maps.Clone[map[string]string])
	var calls [][]string
	load := func(_ context.Context, ids []string) (map[string]map[string]string, error) {
		calls = append(calls, ids)
		out := map[string]map[string]string{}
		for _, id := range ids {
			out[id] = map[string]string{"id": id}
		}
		return out, nil
	}
	if _, err := c.Get(t.Context(), "sg-1", func(context.Context) (map[string]string, error) { return map[string]string{"id": "sg-1"}, nil }); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetMany(t.Context(), []string{"sg-3", "sg-1", "sg-2"}, load)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || !slices.Equal(calls[0], []string{"sg-2", "sg-3"}) {
		t.Fatalf("calls %v, want one for sg-2 and sg-3", calls)
	}
	for _, id := range []string{"sg-1", "sg-2", "sg-3"} {
		if got[id]["id"] != id {
			t.Fatalf("GetMany = %v", got)
		}
	}
	got["sg-2"]["id"] = "changed by a caller"
	if again, _ := c.GetMany(t.Context(), []string{"sg-2"}, load); again["sg-2"]["id"] != "sg-2" || len(calls) != 1 {
		t.Fatalf("second GetMany = %v after %d calls", again, len(calls))
	}
}

func TestHas(t *testing.T) {
	c := New[string](nil)
	if c.Has("vm") {
		t.Fatal("an empty cache has vm")
	}
	c.Put("VM", "x")
	if !c.Has("vm") {
		t.Fatal("vm put, not had")
	}
	c.Forget("vm")
	if c.Has("vm") {
		t.Fatal("vm forgotten, still had")
	}
}
