// Package readcache holds what one provider process read of its clouds'
// objects (VMs, network interfaces, subnets, NSGs, firewalls, instances,
// security groups), so that one Terraform operation reads each object once
// however many resources, data sources and sweeps look at it.
//
// A provider process serves one operation: Terraform starts it for a plan
// or an apply walk and stops it after, and Configure builds a new cache
// each time. Within the operation the cache is the truth about an object
// until this process writes it: every write of the process updates the
// cached object with the cloud's answer, or forgets it when the answer is
// unknown (an error, a conflict), so the next read goes to the cloud.
// Writes of others are not seen, whether another process, a person, or
// another provider's resource applied in the same run after this process
// read the object: the clouds report them as conflicts (a priority taken,
// an ETag moved, a duplicate permission), and the writer forgets the
// object and reads it again. A read right before each write would not see
// a write landing just after it either.
package readcache

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
)

// Cache maps object IDs, compared without case as ARM compares them, to
// what was read of each. Concurrent reads of one object make one call to
// the cloud (single flight); errors are not kept.
type Cache[T any] struct {
	clone func(T) T

	mu      sync.Mutex
	entries map[string]*entry[T]
}

type entry[T any] struct {
	ready chan struct{} // closed once val or err is set
	val   T
	err   error
}

// New returns an empty cache. clone copies a value deeply enough that
// callers may change what Get returns without changing the cache; nil
// means values are never changed by callers (strings, immutable structs).
func New[T any](clone func(T) T) *Cache[T] {
	if clone == nil {
		clone = func(v T) T { return v }
	}
	return &Cache[T]{clone: clone, entries: map[string]*entry[T]{}}
}

func key(id string) string { return strings.ToLower(id) }

// Get returns what is known of the object, reading it with load when
// nothing is: a read already under way for the same object is waited for
// instead of made again.
func (c *Cache[T]) Get(ctx context.Context, id string, load func(context.Context) (T, error)) (T, error) {
	var zero T
	k := key(id)
	if IsFresh(ctx) {
		c.Forget(id)
	}
	for {
		c.mu.Lock()
		e := c.entries[k]
		if e == nil {
			e = &entry[T]{ready: make(chan struct{})}
			c.entries[k] = e
			c.mu.Unlock()
			v, err := load(ctx)
			c.mu.Lock()
			e.val, e.err = v, err
			close(e.ready)
			if err != nil && c.entries[k] == e {
				delete(c.entries, k)
			}
			c.mu.Unlock()
			if err != nil {
				return zero, err
			}
			return c.clone(v), nil
		}
		c.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
		switch {
		case e.err == nil:
			return c.clone(e.val), nil
		case ctx.Err() == nil && (errors.Is(e.err, context.Canceled) || errors.Is(e.err, context.DeadlineExceeded)):
			continue // the reader's time ran out, not ours: read again
		}
		return zero, e.err
	}
}

// GetMany returns what is known of each object, reading all those nobody
// read yet with one call of load, which must return a value for each ID it
// is given (a value standing for "absent" when T has one); reads already
// under way for some of them are waited for instead. The result is keyed
// by the IDs as given.
func (c *Cache[T]) GetMany(ctx context.Context, ids []string, load func(context.Context, []string) (map[string]T, error)) (map[string]T, error) {
	if IsFresh(ctx) {
		for _, id := range ids {
			c.Forget(id)
		}
	}
	mine := map[string]*entry[T]{} // the entries this call reads, by ID as given
	others := map[string]*entry[T]{}
	c.mu.Lock()
	for _, id := range ids {
		k := key(id)
		if e := c.entries[k]; e != nil {
			others[id] = e
			continue
		}
		e := &entry[T]{ready: make(chan struct{})}
		c.entries[k] = e
		mine[id] = e
	}
	c.mu.Unlock()
	out := make(map[string]T, len(ids))
	if len(mine) > 0 {
		missing := make([]string, 0, len(mine))
		for id := range mine {
			missing = append(missing, id)
		}
		slices.Sort(missing)
		got, err := load(ctx, missing)
		c.mu.Lock()
		for id, e := range mine {
			e.val, e.err = got[id], err
			close(e.ready)
			if err != nil && c.entries[key(id)] == e {
				delete(c.entries, key(id))
			}
		}
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		for id := range mine {
			out[id] = c.clone(got[id])
		}
	}
	for id, e := range others {
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err != nil {
			v, err := c.Get(ctx, id, func(ctx context.Context) (T, error) {
				got, err := load(ctx, []string{id})
				return got[id], err
			})
			if err != nil {
				return nil, err
			}
			out[id] = v
			continue
		}
		out[id] = c.clone(e.val)
	}
	return out, nil
}

// Has tells whether the object is known or being read.
func (c *Cache[T]) Has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[key(id)] != nil
}

// Put records what this process just wrote, or read otherwise (a list).
func (c *Cache[T]) Put(id string, v T) {
	e := &entry[T]{ready: make(chan struct{}), val: c.clone(v)}
	close(e.ready)
	c.mu.Lock()
	c.entries[key(id)] = e
	c.mu.Unlock()
}

// Update applies a write of this process to the cached object, if it is
// known. A read under way may or may not see the write, so it is
// forgotten instead: the next Get reads again.
func (c *Cache[T]) Update(id string, change func(T) T) {
	k := key(id)
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	if e == nil {
		return
	}
	select {
	case <-e.ready:
	default:
		delete(c.entries, k)
		return
	}
	next := &entry[T]{ready: make(chan struct{}), val: change(c.clone(e.val))}
	close(next.ready)
	c.entries[k] = next
}

// Forget drops what is known of the object: its next Get reads the cloud.
func (c *Cache[T]) Forget(id string) {
	c.mu.Lock()
	delete(c.entries, key(id))
	c.mu.Unlock()
}

type freshKey struct{}

// Fresh marks ctx so that every read made with it goes to the cloud (and
// keeps what it reads): for work done long after the process read an
// object, such as renewing an ephemeral grant minutes into a run, when the
// policy and the NSGs may have changed.
func Fresh(ctx context.Context) context.Context { return context.WithValue(ctx, freshKey{}, true) }

// IsFresh tells whether ctx asks for fresh reads.
func IsFresh(ctx context.Context) bool {
	fresh, _ := ctx.Value(freshKey{}).(bool)
	return fresh
}
