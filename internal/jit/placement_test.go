package jit

import (
	"fmt"
	"slices"
	"testing"
)

// feasibleByEnumeration is an oracle for placeDenies written apart from it:
// it tries every set of free priorities that could stay free (the rest may
// go to denies) and checks, by Hall's condition, that each deny then gets
// its own priority after the first free one in its window. Only for small
// ranges: it is exponential in the free priorities at or after the lowest
// lower bound.
func feasibleByEnumeration(free []int, lowers []int) bool {
	if len(lowers) == 0 {
		return true
	}
	minLower := slices.Min(lowers)
	var cand []int
	for _, p := range free {
		if p >= minLower {
			cand = append(cand, p)
		}
	}
	if len(cand) > 20 {
		panic(fmt.Sprintf("oracle asked about %d priorities", len(cand)))
	}
	for mask := 1; mask < 1<<len(cand); mask++ {
		var kept, pool []int
		for i, p := range cand {
			if mask&(1<<i) != 0 {
				kept = append(kept, p)
			} else {
				pool = append(pool, p)
			}
		}
		bounds := make([]int, 0, len(lowers))
		ok := true
		for _, l := range lowers {
			i := slices.IndexFunc(kept, func(p int) bool { return p >= l })
			if i < 0 {
				ok = false
				break
			}
			bounds = append(bounds, kept[i]+1)
		}
		if ok && hallHolds(pool, bounds) {
			return true
		}
	}
	return false
}

// hallHolds: every threshold has at least as many slots at or after it as
// denies bounded at or after it.
func hallHolds(slots, bounds []int) bool {
	for _, t := range bounds {
		s, d := 0, 0
		for _, p := range slots {
			if p >= t {
				s++
			}
		}
		for _, b := range bounds {
			if b >= t {
				d++
			}
		}
		if s < d {
			return false
		}
	}
	return true
}

func TestPlaceDenies_exactAgainstEnumeration(t *testing.T) {
	rng, cases := propertySetup(t)
	cases = max(cases/3, 100)
	stats := map[string]int{}
	for n := range cases {
		lo := pickOne(rng, 100, 990)
		hi := lo + 5 + rng.IntN(14)
		slots := newPrioritySlots(lo, hi)
		var free []int
		for p := lo; p <= hi; p++ {
			if rng.IntN(3) == 0 {
				slots.take(p)
			} else {
				free = append(free, p)
			}
		}
		denies := make([]denySlot, 1+rng.IntN(4))
		lowers := make([]int, len(denies))
		for i := range denies {
			denies[i].lower = lo + rng.IntN(hi-lo+2)
			if rng.IntN(4) == 0 {
				denies[i].lower = lo
			}
			lowers[i] = denies[i].lower
		}
		prio, ok := placeDenies(slots, nil, denies)
		want := feasibleByEnumeration(free, lowers)
		if ok != want {
			t.Fatalf("case %d: placeDenies says %v, enumeration %v: free %v, lower bounds %v", n, ok, want, free, lowers)
		}
		stats[fmt.Sprint("feasible ", ok)]++
		if ok {
			checkPlacement(t, n, slots, denies, prio)
		}
	}
	t.Logf("%d cases: %v", cases, stats)
}

func checkPlacement(t *testing.T, n int, slots *prioritySlots, denies []denySlot, prio []int) {
	t.Helper()
	after := slots.clone()
	for i, p := range prio {
		if p < denies[i].lower || p < slots.lo || p > slots.hi || (!slots.free(p) && p != denies[i].current) || !after.free(p) && p != denies[i].current {
			t.Fatalf("case %d: deny %d (lower %d) at %d, taken or out of bounds (%v)", n, i, denies[i].lower, p, prio)
		}
		after.take(p)
	}
	for i, p := range prio {
		ok := false
		for q := max(denies[i].lower, slots.lo); q < p && !ok; q++ {
			ok = after.free(q)
		}
		if !ok {
			t.Fatalf("case %d: deny %d (lower %d) at %d has no free priority in its window (%v)", n, i, denies[i].lower, p, prio)
		}
	}
}

func TestPlaceDenies_keepsValidDeniesAndPrefersTheBase(t *testing.T) {
	slots := newPrioritySlots(NSGMinPriority, NSGMaxPriority)
	for _, p := range []int{300, 1000, 2500} {
		slots.take(p)
	}
	prio, ok := placeDenies(slots, nil, []denySlot{{lower: 100}, {lower: 301}, {lower: 2001, current: 2500}, {lower: 2600, current: 1000}})
	if !ok || !slices.Equal(prio, []int{1002, 1001, 2500, 2601}) {
		t.Errorf("priorities %v, %v; want [1002 1001 2500 2601]", prio, ok)
	}
	// Two free priorities after the last rule: one deny fits, with a window.
	full := newPrioritySlots(NSGMinPriority, NSGMaxPriority)
	for p := NSGMinPriority; p <= NSGMaxPriority-2; p++ {
		full.take(p)
	}
	if prio, ok := placeDenies(full, nil, []denySlot{{lower: 100}}); !ok || prio[0] != 4096 {
		t.Errorf("priorities %v, %v; want [4096]", prio, ok)
	}
	if _, ok := placeDenies(full, nil, []denySlot{{lower: 100}, {lower: 100}}); ok {
		t.Error("two denies placed in two free priorities, leaving no window")
	}
	// A window is shared: three free priorities hold two denies.
	full.taken[4093-NSGMinPriority] = false
	if prio, ok := placeDenies(full, nil, []denySlot{{lower: 4000}, {lower: 4090}}); !ok || !slices.Equal(prio, []int{4096, 4095}) && !slices.Equal(prio, []int{4095, 4096}) {
		t.Errorf("priorities %v, %v; want 4095 and 4096", prio, ok)
	}
}

func TestPlaceDenies_aPriorityTheRuleLeavesServesAsAWindowOnly(t *testing.T) {
	// Free: 4095, 4096. 4094 holds a rule the plan removes: after the plan
	// it is free, so it may be the window, though no deny may take it (its
	// write could come before the removal).
	slots := newPrioritySlots(NSGMinPriority, NSGMaxPriority)
	for p := NSGMinPriority; p <= 4094; p++ {
		slots.take(p)
	}
	gone := newPrioritySlots(NSGMinPriority, NSGMaxPriority)
	gone.take(4094)
	if _, ok := placeDenies(slots, nil, []denySlot{{lower: 4094}, {lower: 4094}}); ok {
		t.Error("two denies and a window in two free priorities")
	}
	prio, ok := placeDenies(slots, gone, []denySlot{{lower: 4094}, {lower: 4094}})
	if !ok || !slices.Equal(slices.Sorted(slices.Values(prio)), []int{4095, 4096}) {
		t.Errorf("priorities %v, %v; want 4095 and 4096, with 4094 as the window", prio, ok)
	}
	// A deny moving away from 4090 keeps it until it has moved: no other
	// deny takes it, though it may be a window.
	prio, ok = placeDenies(slots, gone, []denySlot{{lower: 4091, current: 4090}, {lower: 4089}})
	if !ok || slices.Contains(prio, 4090) || slices.Contains(prio, 4094) {
		t.Errorf("priorities %v, %v", prio, ok)
	}
}
