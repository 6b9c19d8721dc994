package jit

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseDuration_acceptsTheFormsPeopleUse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"PT3H", 3 * time.Hour},
		{"PT5M", 5 * time.Minute},
		{"PT90M", 90 * time.Minute},
		{"PT30S", 30 * time.Second},
		{"P1D", 24 * time.Hour},
		{"P1W", 7 * 24 * time.Hour},
		{"P1DT12H", 36 * time.Hour},
		{"P1DT1H1M1S", 25*time.Hour + time.Minute + time.Second},
		{"PT1H30M", 90 * time.Minute},
		{"PT0.5S", 500 * time.Millisecond},
		{"PT1,25S", 1250 * time.Millisecond},
		{"PT0.000000001S", time.Nanosecond},
		{"PT0S", 0},
		{"P0D", 0},
		{"PT36H", 36 * time.Hour},
		{"P1W2D", 9 * 24 * time.Hour},
	} {
		got, err := ParseDuration(tc.in)
		if err != nil || got.Std() != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got.Std(), err, tc.want)
		}
	}
}

func TestParseDuration_rejectsWithAClearMessage(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "empty"},
		{"3H", `must start with "P"`},
		{"pt3h", "upper case"},
		{"PT3h", "upper case"},
		{"-PT1H", "negative"},
		{"P", "no components"},
		{"PT", `"T" must be followed`},
		{"P1DT", `"T" must be followed`},
		{"P1Y", "years and months have no fixed length"},
		{"P1M", "years and months have no fixed length"},
		{"P1Y2M3D", "years and months"},
		{"PT1.5H", "only seconds may have a fraction"},
		{"P1.5D", "only seconds may have a fraction"},
		{"P3H", `come after "T"`},
		{"PT1D", `come before "T"`},
		{"PT1H1H", "out-of-order"},
		{"PT1S1M", "out-of-order"},
		{"P1DT2HT3M", `"T" appears twice`},
		{"PTH", "expected a number"},
		{"PT3", "no designator"},
		{"PT1.S", "expected digits"},
		{"PT0.0000000001S", "at most 9 fractional digits"},
		{"PT3X", "out-of-order designator"},
		{"P1D ", "expected a number"},
		{"P99999999999999999999D", "too long"},
		{"P106752D", "too long"},
		{"PT2562047H47M16.854775808S", "too long"},
	} {
		_, err := ParseDuration(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "ISO 8601") {
			t.Errorf("ParseDuration(%q) error = %v; want one mentioning %q", tc.in, err, tc.msg)
		}
	}
}

func TestDurationString_isCanonical(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "PT0S"},
		{3 * time.Hour, "PT3H"},
		{90 * time.Minute, "PT1H30M"},
		{24 * time.Hour, "P1D"},
		{7 * 24 * time.Hour, "P7D"},
		{25*time.Hour + 500*time.Millisecond, "P1DT1H0.5S"},
		{time.Nanosecond, "PT0.000000001S"},
		{5 * time.Minute, "PT5M"},
		{-90 * time.Minute, "-PT1H30M"},
		{math.MinInt64, "-P106751DT23H47M16.854775808S"},
		{math.MaxInt64, "P106751DT23H47M16.854775807S"},
	} {
		if got := Duration(tc.d).String(); got != tc.want {
			t.Errorf("Duration(%v).String() = %q; want %q", tc.d, got, tc.want)
		}
	}
}

func TestParseDuration_largestValueRoundTrips(t *testing.T) {
	d, err := ParseDuration(Duration(math.MaxInt64).String())
	if err != nil || d != math.MaxInt64 {
		t.Fatalf("got %v, %v", d, err)
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"PT3H", "P1DT2H", "PT0.5S", "P1W", "P1Y", "PT", "P1DT1H1M1.000000001S"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v: negative", s, d)
		}
		canonical := d.String()
		again, err := ParseDuration(canonical)
		if err != nil || again != d {
			t.Fatalf("ParseDuration(%q) = %v, whose String %q parses to %v, %v", s, d, canonical, again, err)
		}
		if again.String() != canonical {
			t.Fatalf("String is not canonical: %q then %q", canonical, again.String())
		}
	})
}
