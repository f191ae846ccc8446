package coordinator

import (
	"math/rand/v2"
	"time"
)

// backoff returns the delay before attempt number attempt+1, given that
// attempt calls failed: base·2^(attempt-1) capped at max, with "equal
// jitter" (a uniform value in [d/2, d]) so retries of many transactions
// after a shared outage spread out.
func backoff(base, max time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}
