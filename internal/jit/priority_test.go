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
	if p, _ := s.placeGrant(999); p != 998 {
		t.Errorf("grant at %d", p)
	}
	for q := 101; q <= 997; q++ {
		s.take(q)
	}
	if _, ok := s.placeDeny(100); ok {
		t.Error("the last free priority went to a deny, leaving none before it")
	}
	if p, ok := s.placeGrant(4097); !ok || p != 100 {
		t.Errorf("grant at %d, %v", p, ok)
	}
	if _, ok := s.placeGrant(4097); ok {
		t.Error("grant placed in a full list")
	}
	s.take(99999) // out of range: ignored
}
