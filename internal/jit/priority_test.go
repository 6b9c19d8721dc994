package jit

import "testing"

func TestPrioritySlots(t *testing.T) {
	s := newPrioritySlots(100, 4096)
	if p, _ := s.placeDeny(100); p != DenyPriorityBase {
		t.Errorf("first deny at %d", p)
	}
	if p, _ := s.placeDeny(3000); p != 3000 {
		t.Errorf("deny after 2999 at %d", p)
	}
	for q := 1000; q <= 4096; q++ {
		s.take(q)
	}
	if p, _ := s.placeDeny(500); p != 999 {
		t.Errorf("deny with the base range full at %d; want the highest free below it", p)
	}
	if p, _ := s.highestFree(s.lo, 999); p != 998 {
		t.Errorf("grant at %d", p)
	}
	s.take(998)
	for q := 101; q <= 997; q++ {
		s.take(q)
	}
	if _, ok := s.placeDeny(100); ok {
		t.Error("the last free priority went to a deny, leaving none before it")
	}
	if p, ok := s.highestFree(s.lo, 4097); !ok || p != 100 {
		t.Errorf("grant at %d, %v", p, ok)
	}
	s.take(100)
	if _, ok := s.highestFree(s.lo, 4097); ok {
		t.Error("grant placed in a full list")
	}
	s.take(99999) // out of range: ignored
}

// placeDeny is the per-rule placement the planners used before denies were
// aggregated (placement.go): a free priority at or after after (the first
// not decided by an existing rule) with a free priority before it, taken.
// The layouts of older versions, which tests plan over, are built with it.
func (s *prioritySlots) placeDeny(after int) (int, bool) {
	after = max(after, s.lo)
	lowest := s.lowestFree()
	for q := max(after, DenyPriorityBase); q <= s.hi; q++ {
		if s.free(q) && lowest < q {
			s.take(q)
			return q, true
		}
	}
	for q := min(DenyPriorityBase-1, s.hi); q >= after; q-- {
		if s.free(q) && lowest < q {
			s.take(q)
			return q, true
		}
	}
	return 0, false
}
