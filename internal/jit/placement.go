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
	d := newDenyPlacement(taken, gone, denies)
	moving := d.keepInPlace()
	if len(moving) == 0 {
		return d.prio, true
	}
	for _, i := range moving { // they leave their old priorities
		if c := denies[i].current; d.lo <= c && c <= d.hi {
			d.leaving[c-d.lo] = true
		}
	}
	slices.SortStableFunc(moving, func(a, b int) int { return cmp.Compare(denies[a].lower, denies[b].lower) })
	t, ok := d.sweep(moving)
	if !ok {
		return nil, false
	}
	d.markWindows(t)
	if !d.assign(moving) {
		return nil, false
	}
	return d.prio, true
}

// denyPlacement is one run of placeDenies over the priorities lo..hi; the
// slices of bools are indexed by priority-lo.
type denyPlacement struct {
	s       *prioritySlots // taken, and the denies' current priorities
	lo, hi  int
	denies  []denySlot
	prio    []int  // the result, by deny
	window  []bool // priorities that stay free for grants
	leaving []bool // taken now, free once the plan is written
	current []bool // a deny's current priority
}

func newDenyPlacement(taken, gone *prioritySlots, denies []denySlot) *denyPlacement {
	s := taken.clone()
	n := s.hi - s.lo + 1
	d := &denyPlacement{s: s, lo: s.lo, hi: s.hi, denies: denies, prio: make([]int, len(denies)),
		window: make([]bool, n), leaving: make([]bool, n), current: make([]bool, n)}
	for p := d.lo; p <= d.hi; p++ {
		d.leaving[p-d.lo] = gone != nil && !gone.free(p) && !s.free(p)
	}
	for _, dn := range denies {
		s.take(dn.current)
		if d.lo <= dn.current && dn.current <= d.hi {
			d.current[dn.current-d.lo] = true
			d.leaving[dn.current-d.lo] = false // unless it moves
		}
	}
	return d
}

// keepInPlace leaves where it is each deny at or after its lower bound
// that still finds a window before it, most constrained (highest lower
// bound) first, and marks that window. It returns the denies that must
// move, in that order.
func (d *denyPlacement) keepInPlace() []int {
	order := make([]int, len(d.denies))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(d.denies[b].lower, d.denies[a].lower) })
	var moving []int
	for _, i := range order {
		w, ok := d.windowInPlace(d.denies[i])
		if !ok {
			moving = append(moving, i)
			continue
		}
		d.window[w-d.lo] = true
		d.prio[i] = d.denies[i].current
	}
	return moving
}

// windowInPlace is the window of a deny that stays at its current
// priority: one already kept free for another deny if any (windows may be
// shared), else a free priority, or one a rule leaves that is not a
// deny's current priority (that deny may stay).
func (d *denyPlacement) windowInPlace(dn denySlot) (int, bool) {
	from := max(dn.lower, d.lo)
	if dn.current < from || dn.current > d.hi {
		return 0, false
	}
	if dn.window > 0 {
		from = max(min(dn.window, from), d.lo)
	}
	for p := from; p < dn.current; p++ {
		if d.window[p-d.lo] {
			return p, true
		}
	}
	for p := from; p < dn.current; p++ {
		if d.s.free(p) || d.leaving[p-d.lo] && !d.current[p-d.lo] {
			return p, true
		}
	}
	return 0, false
}

// sweepTrace is what the sweep leaves for walking back to its windows:
// the priorities swept (start..last), how many denies open (reach their
// lower bound) at each, and for each, when it closes a window, how many
// denies were waiting for it (-1: none).
type sweepTrace struct {
	start, last         int
	opensAt, windowFrom []int
}

// noWay marks, in the sweep's states, a number of waiting denies no
// choice reaches.
const noWay = math.MaxInt

// sweep decides, for the moving denies sorted by lower bound, whether
// windows and priorities exist for all of them. Its state best[a] is the
// fewest denies waiting for their priority when a denies wait for a
// window.
func (d *denyPlacement) sweep(moving []int) (sweepTrace, bool) {
	lo := d.lo
	t := sweepTrace{opensAt: make([]int, d.hi-lo+1), windowFrom: make([]int, d.hi-lo+1)}
	for _, i := range moving {
		l := max(d.denies[i].lower, lo)
		if l >= d.hi {
			return t, false // no priority after a window
		}
		t.opensAt[l-lo]++
	}
	best := []int{0}
	// Before the lowest bound nothing waits; once every deny has opened
	// and none waits any more, the rest changes nothing.
	t.start, t.last = max(d.denies[moving[0]].lower, lo), d.hi
	opened := 0
	for p := t.start; p <= d.hi; p++ {
		k := t.opensAt[p-lo]
		opened += k
		if k > 0 { // k more denies wait for a window
			shifted := make([]int, len(best)+k)
			for a := range shifted {
				shifted[a] = noWay
			}
			copy(shifted[k:], best)
			best = shifted
		}
		best, t.windowFrom[p-lo] = d.step(best, p)
		if opened == len(moving) && best[0] == 0 {
			t.last = p
			break
		}
	}
	return t, best[0] == 0
}

// step is the sweep's move over priority p: the states after it, and, when
// the best way to have no deny waiting for a window is to keep p free, how
// many were waiting (-1 otherwise).
func (d *denyPlacement) step(best []int, p int) ([]int, int) {
	switch {
	case d.window[p-d.lo]: // kept free for a kept deny: a window for everyone waiting
		b0, from := noWay, -1
		for a, b := range best {
			if b != noWay && b+a < b0 {
				b0, from = b+a, a
			}
		}
		return []int{b0}, from
	case d.s.free(p) || d.leaving[p-d.lo]:
		next, from := make([]int, len(best)), -1
		for a, b := range best {
			next[a] = noWay
			if b != noWay {
				next[a] = b
				if d.s.free(p) {
					next[a] = max(b-1, 0) // p goes to a deny that has its window
				}
			}
		}
		for a := 1; a < len(best); a++ {
			if b := best[a]; b != noWay && b+a <= next[0] {
				next[0], from = b+a, a // p stays free: the waiting denies' window
			}
		}
		return next, from
	}
	return best, -1
}

// markWindows walks the sweep back and marks the windows it chose.
func (d *denyPlacement) markWindows(t sweepTrace) {
	a := 0
	for p := t.last; p >= t.start; p-- {
		i := p - d.lo
		if (d.window[i] || d.s.free(p) || d.leaving[i]) && a == 0 && t.windowFrom[i] >= 0 {
			d.window[i] = true
			a = t.windowFrom[i]
		}
		a -= t.opensAt[i]
	}
}

// assign gives each moving deny a free priority after its first window:
// with those bounds, taking the highest bound first always succeeds. Each
// takes the lowest from DenyPriorityBase up, else the highest below it.
func (d *denyPlacement) assign(moving []int) bool {
	bound := make(map[int]int, len(moving))
	for _, i := range moving {
		for p := max(d.denies[i].lower, d.lo); p <= d.hi; p++ {
			if d.window[p-d.lo] {
				bound[i] = p + 1
				break
			}
		}
	}
	slices.SortStableFunc(moving, func(a, b int) int { return cmp.Compare(bound[b], bound[a]) })
	pool := func(p int) bool { return d.s.free(p) && !d.window[p-d.lo] }
	for _, i := range moving {
		p := -1
		for q := max(bound[i], DenyPriorityBase); q <= d.hi && p < 0; q++ {
			if pool(q) {
				p = q
			}
		}
		for q := min(DenyPriorityBase-1, d.hi); q >= bound[i] && p < 0; q-- {
			if pool(q) {
				p = q
			}
		}
		if p < 0 {
			return false // cannot happen: the sweep proved a placement
		}
		d.s.take(p)
		d.prio[i] = p
	}
	return true
}
