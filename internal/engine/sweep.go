package engine

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/jitaccess/terraform-provider-jit/internal/jit"
)

// Sweep is one run of revoke-expired over every configured backend.
type Sweep struct {
	Scopes []Scope
	// Revoked are the expired grants now gone (or found gone when removing
	// them), sorted by cloud, target and name.
	Revoked []SweptGrant
	// Live counts the grants found that have not expired, or were renewed
	// since the scan.
	Live int
	// Skipped are things named or tagged as grants that jit cannot vouch
	// for: they are left alone.
	Skipped []SweptGrant
	// Errors are the scopes that could not be scanned and the grants that
	// could not be revoked.
	Errors []SweptGrant
}

// SweptGrant is one grant of a sweep (Err set for a failure).
type SweptGrant struct {
	Cloud string
	FoundGrant
	Err error
}

// sweepParallelism bounds how many grants are revoked at once: each takes
// its target's lock, so different targets proceed side by side without a
// retry storm on any.
const sweepParallelism = 4

// RevokeExpired removes every expired grant the backends find in their
// scopes, from the markers the grants carry (no state), and every grant
// that cannot be any policy's (Unfit). A grant renewed between the scan
// and the revoke is kept: each backend reads it again right before the
// write.
func (e *Engine) RevokeExpired(ctx context.Context) Sweep {
	var s Sweep
	var mu sync.Mutex
	type task struct {
		b Backend
		g FoundGrant
	}
	var tasks []task
	for _, b := range e.backends {
		scope, found, err := b.ScanGrants(ctx)
		s.Scopes = append(s.Scopes, scope)
		for _, err := range splitErrors(err) {
			s.Errors = append(s.Errors, SweptGrant{Cloud: b.Name(), FoundGrant: FoundGrant{Target: scope.ID}, Err: err})
		}
		for _, g := range found {
			switch {
			case !g.Vouched:
				s.Skipped = append(s.Skipped, SweptGrant{Cloud: b.Name(), FoundGrant: g})
			case g.Unfit != "" || e.expired(g.Marker):
				tasks = append(tasks, task{b, g})
			case g.Kind == KindGrantRecord:
				// A record of a request that may still be open is no grant.
			default:
				s.Live++
			}
		}
	}
	work := make(chan task)
	var wg sync.WaitGroup
	for range sweepParallelism {
		wg.Go(func() {
			for t := range work {
				revoked, err := t.b.RevokeGrant(ctx, t.g, e.expired)
				mu.Lock()
				switch {
				case err != nil:
					s.Errors = append(s.Errors, SweptGrant{Cloud: t.b.Name(), FoundGrant: t.g, Err: err})
				case revoked:
					s.Revoked = append(s.Revoked, SweptGrant{Cloud: t.b.Name(), FoundGrant: t.g})
				default: // renewed since the scan
					s.Live++
				}
				mu.Unlock()
			}
		})
	}
	for _, t := range tasks {
		work <- t
	}
	close(work)
	wg.Wait()
	for _, list := range [][]SweptGrant{s.Revoked, s.Errors, s.Skipped} {
		slices.SortFunc(list, func(a, b SweptGrant) int {
			return cmp.Or(strings.Compare(a.Cloud, b.Cloud), strings.Compare(a.Target, b.Target), strings.Compare(a.Name, b.Name))
		})
	}
	return s
}

func (e *Engine) expired(m jit.Marker) bool {
	return jit.ExpiryStatus(m.End, e.clock) == jit.GrantExpired
}
