// Package locks serialises work per cloud object (an NSG, a firewall, an
// ENI) inside the provider process. Clouds accept one write at a time on
// these objects; queueing here instead of colliding there keeps retries for
// conflicts caused by others.
package locks

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-log/tflog"
)

// Keyed is a set of mutexes keyed by case-insensitive ID.
type Keyed struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (k *Keyed) get(id string) *sync.Mutex {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.locks == nil {
		k.locks = map[string]*sync.Mutex{}
	}
	key := strings.ToLower(id)
	m := k.locks[key]
	if m == nil {
		m = &sync.Mutex{}
		k.locks[key] = m
	}
	return m
}

// Lock takes the locks of every ID, in sorted order so that two callers
// locking overlapping sets cannot deadlock, and returns the unlock function.
// A lock that is busy is waited for, and the wait is logged: an operator
// reading TF_LOG sees which object an apply queued on and for how long.
func (k *Keyed) Lock(ctx context.Context, ids ...string) (unlock func()) {
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		keys = append(keys, strings.ToLower(id))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	held := make([]*sync.Mutex, 0, len(keys))
	for _, key := range keys {
		m := k.get(key)
		if !m.TryLock() {
			start := time.Now()
			tflog.Debug(ctx, "waiting for another write of this process to the same object", map[string]any{"object": key})
			m.Lock()
			tflog.Debug(ctx, "lock acquired", map[string]any{"object": key, "waited": time.Since(start).String()})
		}
		held = append(held, m)
	}
	return func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].Unlock()
		}
	}
}
