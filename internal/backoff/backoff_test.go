package backoff_test

import (
	"math"
	"testing"
	"time"

	"github.com/dtxhq/dtx/internal/backoff"
)

func TestDelayBounds(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name        string
		base, limit time.Duration
		attempt     int
		d           time.Duration // the delay before jitter
	}{
		{"first", 100 * ms, time.Second, 1, 100 * ms},
		{"second doubles", 100 * ms, time.Second, 2, 200 * ms},
		{"fourth", 100 * ms, time.Second, 4, 800 * ms},
		{"capped", 100 * ms, time.Second, 5, time.Second},
		{"far past the cap", 100 * ms, time.Second, 1000, time.Second},
		{"huge attempt, huge cap", time.Nanosecond, math.MaxInt64, math.MaxInt32, math.MaxInt64},
		{"attempt 0 counts as 1", 100 * ms, time.Second, 0, 100 * ms},
		{"negative attempt", 100 * ms, time.Second, -3, 100 * ms},
		{"cap below base", 2 * time.Second, time.Second, 1, time.Second},
		{"base equals cap", time.Second, time.Second, 3, time.Second},
		{"zero base", 0, time.Second, 10, 0},
		{"negative base", -ms, time.Second, 3, 0},
		{"odd nanoseconds", 3, 1000, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi := tc.d/2, tc.d
			for range 200 {
				got := backoff.Delay(tc.base, tc.limit, tc.attempt)
				if got < lo || got > hi {
					t.Fatalf("Delay(%v, %v, %d) = %v, want in [%v, %v]", tc.base, tc.limit, tc.attempt, got, lo, hi)
				}
			}
		})
	}
}

// TestDelayCapIsMonotone checks that the upper bound never shrinks as the
// attempts grow and settles at the cap.
func TestDelayCapIsMonotone(t *testing.T) {
	base, limit := 10*time.Millisecond, 700*time.Millisecond
	prev := time.Duration(0)
	for attempt := 1; attempt <= 64; attempt++ {
		hi := time.Duration(0)
		for range 300 {
			hi = max(hi, backoff.Delay(base, limit, attempt))
		}
		if hi > limit {
			t.Fatalf("attempt %d: %v beyond the cap %v", attempt, hi, limit)
		}
		// The largest of 300 draws from [d/2, d] is close to d; allow for
		// the draws falling short by a tenth.
		if hi < prev*9/10 {
			t.Fatalf("attempt %d: largest delay %v shrank from %v", attempt, hi, prev)
		}
		prev = max(prev, hi)
	}
	if prev < limit*9/10 {
		t.Fatalf("delays settled at %v, want near the cap %v", prev, limit)
	}
}

// TestDelaySpreads checks that the jitter spreads: equal jitter draws from
// the whole of [d/2, d], not from one point.
func TestDelaySpreads(t *testing.T) {
	d := time.Second
	var low, high int
	for range 1000 {
		switch got := backoff.Delay(d, d, 1); {
		case got < 3*d/4:
			low++
		default:
			high++
		}
	}
	if low < 300 || high < 300 {
		t.Fatalf("1000 delays in [d/2, d]: %d below 3d/4 and %d above; want both near 500", low, high)
	}
}
