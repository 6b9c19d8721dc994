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
	return k.LockAll(ctx, ids...).ReleaseAll
}

// LockAll takes the locks of every ID as Lock does, and returns them held,
// to be released one by one as the work on each object ends: a lock
// covers one object's read-place-write, not the whole change.
func (k *Keyed) LockAll(ctx context.Context, ids ...string) *Held {
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		keys = append(keys, strings.ToLower(id))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	h := &Held{held: make(map[string]*sync.Mutex, len(keys))}
	for _, key := range keys {
		m := k.get(key)
		if !m.TryLock() {
			start := time.Now()
			tflog.Debug(ctx, "waiting for another write of this process to the same object", map[string]any{"object": key})
			m.Lock()
			tflog.Debug(ctx, "lock acquired", map[string]any{"object": key, "waited": time.Since(start).String()})
		}
		h.held[key] = m
	}
	return h
}

// Held are locks taken together by LockAll.
type Held struct {
	mu   sync.Mutex
	held map[string]*sync.Mutex
}

// Release releases the lock of id, if it is still held; safe on nil.
func (h *Held) Release(id string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	key := strings.ToLower(id)
	if m := h.held[key]; m != nil {
		delete(h.held, key)
		m.Unlock()
	}
}

// ReleaseAll releases every lock still held; safe on nil and more than once.
func (h *Held) ReleaseAll() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, m := range h.held {
		delete(h.held, key)
		m.Unlock()
	}
}
