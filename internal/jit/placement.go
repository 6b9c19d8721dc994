package jit

import (
	"cmp"
	"math"
	"slices"
)

// Placing aggregated denies (see priority.go for the scheme's reasons).
//
// A deny must come after every rule it must follow (the rules of others
// that decide its port for one of the machines it covers, and the policy's
// grants for them): at or after its lower bound. And a grant for any of
// those machines must still fit before it, after those same rules: so a
// priority in [lower bound, deny) must stay free. Denies of different ports
// may share that free priority, since a grant takes it for one request only
// when it comes and the policy's next plan makes room again.
//
// Finding distinct priorities for several denies so that each keeps a free
// one in its window is solved exactly by placeDenies: a sweep over the
// priorities in order decides which free ones stay free ("windows") and
// which go to denies, keeping, for each number of denies still waiting for
// a window, the fewest denies still waiting for their own priority (fewer
// is never worse). Given the windows, each deny's lower bound becomes the
// priority after its window, and any assignment in decreasing order of
// those bounds succeeds; among the choices it takes the lowest priority
// from DenyPriorityBase up, else the highest below it, as before.

// placeGroup is a deny covering several members (a machine's addresses
// behind an NSG, or a machine's port behind a firewall), each with the
// lower bound its own deciding rules set.
type placeGroup struct {
	bounds []int
	// windows are the members' first priorities after the rules of others
	// alone (see bound.foreign); 0 when unknown (the bound then serves).
	windows []int
	// incumbent marks the members the policy's deny covers now: a plan
	// never unlocks one of them to lock another machine instead.
	incumbent []bool
	current   int // see denySlot
	// Set by placeExcluding: which members the deny covers, and its
	// priority (0 when it covers none).
	included []bool
	prio     int
}

// placeExcluding places the groups' denies (gone: see placeDenies),
// leaving out the members whose bounds make that impossible, so one
// machine whose port some rule decides at the end of the range does not
// keep the others unlocked. A member whose bound leaves no priority for a
// deny and a window is left out first; then, while no placement exists,
// the members setting the highest bound of a deny, those the policy does
// not cover yet before its incumbents; then each member left out for want
// of room is tried again, incumbents first, lowest bound first, and kept
// if a placement still exists, so that every member left out truly could
// not be added to what is placed (adding a member only ever tightens a
// placement, so one pass suffices), and what is locked stays locked
// rather than traded for another machine.
func placeExcluding(taken, gone *prioritySlots, groups []*placeGroup) {
	for _, g := range groups {
		g.included = make([]bool, len(g.bounds))
		for i, b := range g.bounds {
			g.included[i] = b < taken.hi
		}
	}
	try := func() ([]int, bool) {
		var slots []denySlot
		for _, g := range groups {
			lower, window := -1, 0
			for i, b := range g.bounds {
				if g.included[i] {
					lower = max(lower, b)
					if g.windows != nil {
						window = max(window, g.windows[i])
					}
				}
			}
			if lower >= 0 {
				slots = append(slots, denySlot{lower: lower, window: window, current: g.current})
			}
		}
		return placeDenies(taken, gone, slots)
	}
	type ref struct{ g, i int }
	var left []ref
	incumbent := func(g *placeGroup, i int) bool { return g.incumbent != nil && g.incumbent[i] }
	for {
		if _, ok := try(); ok {
			break
		}
		worst, lower, worstIncumbent := -1, -1, true
		for gi, g := range groups {
			for i, b := range g.bounds {
				if !g.included[i] {
					continue
				}
				inc := incumbent(g, i)
				if worst < 0 || worstIncumbent && !inc || inc == worstIncumbent && b > lower {
					worst, lower, worstIncumbent = gi, b, inc
				}
			}
		}
		for i, b := range groups[worst].bounds {
			if groups[worst].included[i] && b == lower && incumbent(groups[worst], i) == worstIncumbent {
				groups[worst].included[i] = false
				left = append(left, ref{worst, i})
			}
		}
	}
	slices.SortStableFunc(left, func(a, b ref) int {
		ia, ib := incumbent(groups[a.g], a.i), incumbent(groups[b.g], b.i)
		if ia != ib {
			if ia {
				return -1
			}
			return 1
		}
		return cmp.Compare(groups[a.g].bounds[a.i], groups[b.g].bounds[b.i])
	})
	failed := make([]int, len(groups)) // lowest bound that could not be added to each group
	for i := range failed {
		failed[i] = math.MaxInt
	}
	for _, r := range left {
		if groups[r.g].bounds[r.i] >= failed[r.g] {
			continue // it would tighten the same deny at least as much
		}
		groups[r.g].included[r.i] = true
		if _, ok := try(); !ok {
			groups[r.g].included[r.i] = false
			failed[r.g] = groups[r.g].bounds[r.i]
		}
	}
	prio, _ := try()
	k := 0
	for _, g := range groups {
		g.prio = 0
		if slices.Contains(g.included, true) {
			g.prio = prio[k]
			k++
		}
	}
}

// denySlot is one deny to place.
type denySlot struct {
	lower int // first priority it may take
	// window is where a deny that stays where it is may find its window
	// (0: at lower): after the rules of others, not necessarily after the
	// policy's grants, since a later grant may go before an earlier one.
	// A deny that moves keeps its window after lower.
	window int
	// current is its priority now (0: none). A deny already at or after
	// its lower bound, with a free priority in its window, stays there.
	// Either way current stays taken: a deny that moves keeps its old
	// priority until it has moved, so the writes may run in any order.
	current int
}

func (s *prioritySlots) clone() *prioritySlots {
	return &prioritySlots{lo: s.lo, hi: s.hi, taken: slices.Clone(s.taken)}
}

// placeDenies returns a priority for each deny, or false when no placement
// exists for the denies that must move. taken is not changed. gone (nil:
// none) marks taken priorities whose rules the plan removes: like the old
// priorities of denies that move, they are free once the plan is written,
// so they may be a deny's window (a window is never written), though never
// a deny's priority (its write could come before the rule is gone).
func placeDenies(taken, gone *prioritySlots, denies []denySlot) ([]int, bool) {
	s := taken.clone()
	lo, hi := s.lo, s.hi
	prio := make([]int, len(denies))
	window := make([]bool, hi-lo+1) // priorities that stay free for grants
	leaving := make([]bool, hi-lo+1)
	current := make([]bool, hi-lo+1)
	for p := lo; p <= hi; p++ {
		leaving[p-lo] = gone != nil && !gone.free(p) && !s.free(p)
	}

	order := make([]int, len(denies))
	for i, d := range denies {
		order[i] = i
		s.take(d.current)
		if lo <= d.current && d.current <= hi {
			current[d.current-lo] = true
			leaving[d.current-lo] = false // unless it moves, below
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(denies[b].lower, denies[a].lower) })
	var moving []int
	for _, i := range order {
		d := denies[i]
		from := max(d.lower, lo)
		if d.current < from || d.current > hi {
			moving = append(moving, i)
			continue
		}
		w := -1
		if d.window > 0 {
			from = max(min(d.window, from), lo)
		}
		for p := from; p < d.current && w < 0; p++ {
			if window[p-lo] {
				w = p
			}
		}
		for p := from; p < d.current && w < 0; p++ {
			if s.free(p) || leaving[p-lo] && !current[p-lo] {
				w = p
			}
		}
		if w < 0 {
			moving = append(moving, i)
			continue
		}
		window[w-lo] = true
		prio[i] = d.current
	}
	if len(moving) == 0 {
		return prio, true
	}
	for _, i := range moving { // they leave their old priorities
		if c := denies[i].current; lo <= c && c <= hi {
			leaving[c-lo] = true
		}
	}

	// The sweep. best[a] is the fewest denies waiting for their priority
	// when a denies wait for a window; math.MaxInt marks no way.
	slices.SortStableFunc(moving, func(a, b int) int { return cmp.Compare(denies[a].lower, denies[b].lower) })
	opensAt := make([]int, hi-lo+1)
	for _, i := range moving {
		l := max(denies[i].lower, lo)
		if l >= hi {
			return nil, false // no priority after a window
		}
		opensAt[l-lo]++
	}
	const none = math.MaxInt
	best := []int{0}
	windowFrom := make([]int, hi-lo+1) // state 0 after p came from a window at p with this many waiting; -1: not
	// Before the lowest bound nothing waits; once every deny has opened
	// and none waits any more, the rest changes nothing.
	start, last, opened := max(denies[moving[0]].lower, lo), hi, 0
	for p := start; p <= hi; p++ {
		windowFrom[p-lo] = -1
		opened += opensAt[p-lo]
		if k := opensAt[p-lo]; k > 0 {
			shifted := make([]int, len(best)+k)
			for a := range shifted {
				shifted[a] = none
			}
			for a, b := range best {
				shifted[a+k] = b
			}
			best = shifted
		}
		switch {
		case window[p-lo]: // kept free for a kept deny: a window for everyone waiting
			b0, from := none, -1
			for a, b := range best {
				if b != none && b+a < b0 {
					b0, from = b+a, a
				}
			}
			best, windowFrom[p-lo] = []int{b0}, from
		case s.free(p) || leaving[p-lo]:
			next := make([]int, len(best))
			for a, b := range best {
				next[a] = none
				if b != none {
					next[a] = b
					if s.free(p) {
						next[a] = max(b-1, 0) // p goes to a deny that has its window
					}
				}
			}
			for a := 1; a < len(best); a++ {
				if b := best[a]; b != none && b+a <= next[0] {
					next[0], windowFrom[p-lo] = b+a, a // p stays free: the waiting denies' window
				}
			}
			best = next
		}
		if opened == len(moving) && best[0] == 0 {
			last = p
			break
		}
	}
	if best[0] != 0 {
		return nil, false
	}

	// Walk back to the windows chosen.
	a := 0
	for p := last; p >= start; p-- {
		if (window[p-lo] || s.free(p) || leaving[p-lo]) && a == 0 && windowFrom[p-lo] >= 0 {
			window[p-lo] = true
			a = windowFrom[p-lo]
		}
		a -= opensAt[p-lo]
	}
	bound := make(map[int]int, len(moving))
	for _, i := range moving {
		for p := max(denies[i].lower, lo); p <= hi; p++ {
			if window[p-lo] {
				bound[i] = p + 1
				break
			}
		}
	}
	slices.SortStableFunc(moving, func(a, b int) int { return cmp.Compare(bound[b], bound[a]) })
	pool := func(p int) bool { return s.free(p) && !window[p-lo] }
	for _, i := range moving {
		p := -1
		for q := max(bound[i], DenyPriorityBase); q <= hi && p < 0; q++ {
			if pool(q) {
				p = q
			}
		}
		for q := min(DenyPriorityBase-1, hi); q >= bound[i] && p < 0; q-- {
			if pool(q) {
				p = q
			}
		}
		if p < 0 {
			return nil, false // cannot happen: the sweep proved a placement
		}
		s.take(p)
		prio[i] = p
	}
	return prio, true
}
