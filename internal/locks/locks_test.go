package locks

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestKeyedSerialisesSameIDCaseInsensitively(t *testing.T) {
	var k Keyed
	var inside, maxInside atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		id := "/subscriptions/x/nsg/A"
		if i%2 == 0 {
			id = "/SUBSCRIPTIONS/X/NSG/a"
		}
		go func() {
			defer wg.Done()
			unlock := k.Lock(t.Context(), id)
			n := inside.Add(1)
			for {
				m := maxInside.Load()
				if n <= m || maxInside.CompareAndSwap(m, n) {
					break
				}
			}
			inside.Add(-1)
			unlock()
		}()
	}
	wg.Wait()
	if maxInside.Load() != 1 {
		t.Fatalf("%d holders at once, want 1", maxInside.Load())
	}
}

func TestKeyedOverlappingSetsDoNotDeadlock(t *testing.T) {
	var k Keyed
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ids := []string{"a", "b", "c"}
			if i%2 == 1 {
				ids = []string{"c", "a", "b", "a"}
			}
			k.Lock(t.Context(), ids...)()
		}(i)
	}
	wg.Wait()
}

// Locks taken together are released one by one: another caller gets an
// object as soon as the work on it ends, not when the whole change does.
func TestHeldReleasesObjectsOneByOne(t *testing.T) {
	var k Keyed
	held := k.LockAll(t.Context(), "A", "b")
	got := make(chan struct{})
	go func() {
		k.Lock(t.Context(), "a")()
		close(got)
	}()
	held.Release("a")
	<-got
	if k.get("b").TryLock() {
		t.Fatal("b was released with a")
	}
	held.ReleaseAll()
	held.ReleaseAll()
	held.Release("b")
	if !k.get("b").TryLock() {
		t.Fatal("b still held after ReleaseAll")
	}
}
