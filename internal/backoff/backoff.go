// Package backoff is the one rule dtx uses to space out retries: capped
// exponential backoff with "equal jitter".
package backoff

import (
	"math/rand/v2"
	"time"
)

// Delay returns how long to wait after attempt consecutive failures:
// d = base·2^(attempt-1), capped at limit, drawn uniformly from [d/2, d]
// ("equal jitter"), so that many callers that failed together spread out
// while each still waits at least half of d. An attempt below 1 counts as
// 1; a limit below base caps d at limit; a negative d counts as 0.
func Delay(base, limit time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d > 0 && d < limit; i++ {
		if d > limit/2 { // doubling would pass the cap (or overflow)
			d = limit
			break
		}
		d *= 2
	}
	d = max(0, min(d, limit))
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}
