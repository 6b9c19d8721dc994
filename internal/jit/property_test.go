package jit

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// What the property tests share. Each draws its cases from propertySetup:
// JIT_PROPERTY_CASES sets how many (default 3000, 1000 under -race, 300
// with -short; each test takes its share of that), JIT_PROPERTY_SEED
// replays a run (the seed is logged).

func propertySetup(t *testing.T) (*rand.Rand, int) {
	cases := 3000
	switch {
	case testing.Short():
		cases = 300
	case raceDetector:
		cases = 1000
	}
	if s := os.Getenv("JIT_PROPERTY_CASES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("JIT_PROPERTY_CASES=%q: %v", s, err)
		}
		cases = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("JIT_PROPERTY_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("JIT_PROPERTY_SEED=%q: %v", s, err)
		}
		seed = n
	}
	t.Logf("seed %d (replay with JIT_PROPERTY_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), cases
}

func pickOne[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

type prioritySet struct{ in, out map[int]bool }

func usedPriorities(rules []NSGRule) prioritySet {
	s := prioritySet{map[int]bool{}, map[int]bool{}}
	for _, r := range rules {
		if r.inbound() {
			s.in[r.Priority] = true
		} else {
			s.out[r.Priority] = true
		}
	}
	return s
}

func freePriority(rng *rand.Rand, used map[int]bool, lo, hi int) (int, bool) {
	for range 50 {
		if p := lo + rng.IntN(hi-lo+1); !used[p] {
			used[p] = true
			return p, true
		}
	}
	for p := lo; p <= hi; p++ {
		if !used[p] {
			used[p] = true
			return p, true
		}
	}
	return 0, false
}

func ownedBy(r NSGRule, policy string) bool {
	m, ok := ParseMarker(r.Description)
	return ok && m.Kind == MarkerDeny && m.BelongsTo(policy)
}

// byPriority sorts a copy of the rules in evaluation order.
func byPriority(rules []NSGRule) []NSGRule {
	sorted := slices.Clone(rules)
	slices.SortFunc(sorted, func(a, b NSGRule) int { return a.Priority - b.Priority })
	return sorted
}

// addEdges adds, for each address or prefix in lists, its first and last
// address and their neighbours (where a rule's match changes), and one
// random address of fam.
func addEdges(rng *rand.Rand, fam AddressFamily, lists [][]string, add func(netip.Addr)) {
	for _, list := range lists {
		for _, s := range list {
			if first, last, ok := bruteRange(s); ok {
				add(first)
				add(last)
				add(first.Prev())
				add(last.Next())
			}
		}
	}
	if fam == IPv4 {
		add(netip.AddrFrom4([4]byte{byte(1 + rng.IntN(220)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}))
	} else {
		add(netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", rng.IntN(65536))))
	}
}
