package jit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a length of time written as an ISO 8601 duration, the format
// Defender uses for maxRequestAccessDuration ("PT3H") and that JIT users
// already know. Only designators of fixed length are accepted: weeks (7 days),
// days (24 hours, ignoring daylight-saving shifts, as Defender does), hours,
// minutes and seconds. Years and months have no fixed length and are rejected.
type Duration time.Duration

// Std converts to a time.Duration for arithmetic on times.
func (d Duration) Std() time.Duration { return time.Duration(d) }

const day = 24 * time.Hour

// String is the canonical form: days, then hours, minutes and seconds, zero
// components left out and the fraction of a second trimmed ("P1DT2H",
// "PT1H30M", "PT0.5S"). Weeks are written as days, zero as "PT0S". Every
// value ParseDuration returns renders to a string it parses back to the
// same value.
func (d Duration) String() string {
	if d == 0 {
		return "PT0S"
	}
	var b strings.Builder
	// Through uint64 so that the most negative value has an absolute value.
	u := uint64(d)
	if d < 0 {
		b.WriteByte('-')
		u = -u
	}
	b.WriteByte('P')
	if days := u / uint64(day); days > 0 {
		b.WriteString(strconv.FormatUint(days, 10) + "D")
	}
	rest := u % uint64(day)
	if rest == 0 {
		return b.String()
	}
	b.WriteByte('T')
	if h := rest / uint64(time.Hour); h > 0 {
		b.WriteString(strconv.FormatUint(h, 10) + "H")
	}
	if m := rest % uint64(time.Hour) / uint64(time.Minute); m > 0 {
		b.WriteString(strconv.FormatUint(m, 10) + "M")
	}
	sec := rest % uint64(time.Minute) / uint64(time.Second)
	nanos := rest % uint64(time.Second)
	if sec > 0 || nanos > 0 {
		b.WriteString(strconv.FormatUint(sec, 10))
		if nanos > 0 {
			b.WriteString("." + strings.TrimRight(fmt.Sprintf("%09d", nanos), "0"))
		}
		b.WriteByte('S')
	}
	return b.String()
}

// durationUnits lists the designators in the order ISO 8601 requires them;
// a zero unit marks a designator that is recognised only to be refused.
var durationUnits = []struct {
	designator byte
	timePart   bool
	unit       time.Duration
}{
	{'Y', false, 0},
	{'M', false, 0},
	{'W', false, 7 * day},
	{'D', false, day},
	{'H', true, time.Hour},
	{'M', true, time.Minute},
	{'S', true, time.Second},
}

// ParseDuration reads an ISO 8601 duration such as "PT3H", "P1D",
// "P1DT12H", "PT90M" or "PT0.5S". Only seconds may carry a fraction (up to
// nanoseconds, "." or "," as separator); designators are upper case as the
// standard and Defender require.
func ParseDuration(s string) (Duration, error) {
	d, err := parseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid ISO 8601 duration %q: %w", s, err)
	}
	return d, nil
}

func parseDuration(s string) (Duration, error) {
	switch {
	case s == "":
		return 0, errors.New("empty; write for example PT3H, PT30M or P1D")
	case s[0] == '-':
		return 0, errors.New("negative durations are not allowed")
	case s[0] == 'p':
		return 0, errors.New(`designators must be upper case, as in PT3H`)
	case s[0] != 'P':
		return 0, errors.New(`must start with "P", for example PT3H, PT30M or P1D`)
	}
	var total time.Duration
	next := 0 // index in durationUnits of the first designator still allowed
	inTime, components, timeComponents := false, 0, 0
	rest := s[1:]
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return 0, errors.New(`"T" appears twice`)
			}
			inTime = true
			rest = rest[1:]
			continue
		}
		digits := len(rest) - len(strings.TrimLeft(rest, "0123456789"))
		if digits == 0 {
			return 0, fmt.Errorf("expected a number at %q", rest)
		}
		whole := rest[:digits]
		rest = rest[digits:]
		var fraction string
		if rest != "" && (rest[0] == '.' || rest[0] == ',') {
			n := len(rest) - 1 - len(strings.TrimLeft(rest[1:], "0123456789"))
			if n == 0 {
				return 0, fmt.Errorf("expected digits after %q", rest[:1])
			}
			fraction = rest[1 : 1+n]
			rest = rest[1+n:]
		}
		if rest == "" {
			return 0, fmt.Errorf("number %s has no designator (H, M, S, D or W)", whole)
		}
		designator := rest[0]
		rest = rest[1:]
		i := next
		for i < len(durationUnits) && (durationUnits[i].designator != designator || durationUnits[i].timePart != inTime) {
			i++
		}
		if i == len(durationUnits) {
			return 0, unexpectedDesignator(designator, inTime)
		}
		u := durationUnits[i]
		if u.unit == 0 {
			return 0, errors.New("years and months have no fixed length; write days (P30D) or hours instead")
		}
		if fraction != "" && u.designator != 'S' {
			return 0, errors.New("only seconds may have a fraction; write for example PT1H30M rather than PT1.5H")
		}
		v, err := componentValue(whole, fraction, u.unit)
		if err != nil {
			return 0, err
		}
		if total > math.MaxInt64-v {
			return 0, errors.New("too long")
		}
		total += v
		next = i + 1
		components++
		if inTime {
			timeComponents++
		}
	}
	switch {
	case inTime && timeComponents == 0:
		return 0, errors.New(`"T" must be followed by hours (H), minutes (M) or seconds (S)`)
	case components == 0:
		return 0, errors.New("no components; write for example PT3H, PT30M or P1D")
	}
	return Duration(total), nil
}

func unexpectedDesignator(designator byte, inTime bool) error {
	switch {
	case 'a' <= designator && designator <= 'z':
		return fmt.Errorf("designator %q must be upper case", designator)
	case !inTime && (designator == 'H' || designator == 'S'):
		return errors.New(`hours, minutes and seconds come after "T", as in PT3H`)
	case inTime && (designator == 'D' || designator == 'W'):
		return errors.New(`days and weeks come before "T", as in P1DT2H`)
	}
	return fmt.Errorf("unexpected or out-of-order designator %q (the order is W, D, T, H, M, S, each at most once)", designator)
}

// componentValue is whole[.fraction] times unit, or an error past the range
// of time.Duration (about 292 years).
func componentValue(whole, fraction string, unit time.Duration) (time.Duration, error) {
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || n > math.MaxInt64/int64(unit) {
		return 0, errors.New("too long")
	}
	v := time.Duration(n) * unit
	if fraction == "" {
		return v, nil
	}
	// Only seconds reach here, so the fraction is a count of nanoseconds.
	if len(fraction) > 9 {
		return 0, errors.New("at most 9 fractional digits (nanoseconds)")
	}
	nanos, _ := strconv.ParseInt(fraction+strings.Repeat("0", 9-len(fraction)), 10, 64)
	if v > math.MaxInt64-time.Duration(nanos) {
		return 0, errors.New("too long")
	}
	return v + time.Duration(nanos), nil
}
