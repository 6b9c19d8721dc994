package jit

// Priority scheme, shared by NSG rules (100–4096 per direction) and Azure
// Firewall rule collections (100–65000 per collection type). A lower number
// is evaluated first, i.e. has precedence.
//
// A JIT deny must come after every existing rule that decides its port (the
// seed rule: existing rules keep precedence), and must leave at least one
// free priority before it, because a grant only works if it can be placed
// before the deny. Among the priorities satisfying both, the deny takes the
// lowest one from DenyPriorityBase up; only when none is left there does it
// take the highest one below the base. The base leaves 900 priorities
// before the deny for grants and stays clear of the low numbers people give
// hand-written rules (the portal starts at 100); a rule deciding the port
// at or after it (az vm create's default-allow-ssh sits at 1000) puts the
// deny after that rule, as for any deciding rule. Grants take the highest free priority before the first
// Deny they must precede, so the low numbers stay free for people's rules.
//
// Denies already in a valid place are not moved to make room for new ones,
// and a moving rule's old priority stays taken until it has moved, so an
// NSG near full can refuse a plan that a reshuffle with a window of
// exposure would have allowed. Since a grant never goes above a rule jit
// does not own, the free priority a deny leaves must come after the rules
// the deny follows, in its window: PlanPolicyPaths places its aggregated
// denies by that rule (placement.go).

// DenyPriorityBase is where JIT denies are placed when nothing forces them
// later and room allows.
const DenyPriorityBase = 1000

// prioritySlots records which priorities of one ordered rule list are taken.
type prioritySlots struct {
	lo, hi int
	taken  []bool // index priority-lo
}

//nolint:unparam // NSGs and firewalls both start at 100 today; each caller names its own bound.
func newPrioritySlots(lo, hi int) *prioritySlots {
	return &prioritySlots{lo: lo, hi: hi, taken: make([]bool, hi-lo+1)}
}

func (s *prioritySlots) take(p int) {
	if s.lo <= p && p <= s.hi {
		s.taken[p-s.lo] = true
	}
}

func (s *prioritySlots) free(p int) bool { return s.lo <= p && p <= s.hi && !s.taken[p-s.lo] }

// lowestFree is the first free priority, or hi+1 when all are taken.
func (s *prioritySlots) lowestFree() int {
	for i, t := range s.taken {
		if !t {
			return s.lo + i
		}
	}
	return s.hi + 1
}

// highestFree is the highest free priority in [lo, hi): where a grant
// goes, as far from the low numbers people's rules use as its window allows.
func (s *prioritySlots) highestFree(lo, hi int) (int, bool) {
	for q := min(hi-1, s.hi); q >= max(lo, s.lo); q-- {
		if s.free(q) {
			return q, true
		}
	}
	return 0, false
}
