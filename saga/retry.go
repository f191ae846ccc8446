package saga

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/dtxhq/dtx"
)

// Limits on a retry policy.
const (
	MinRetryInterval = 10 * time.Millisecond
	MaxRetryInterval = time.Hour
	MaxRetryAttempts = 1000
	MaxMultiplier    = 10
)

// RetryPolicy says how the coordinator retries one step's calls (seed
// rules F6/F7: "3 attempts, 500 ms; not on 400/404"). Zero fields take the
// coordinator's defaults (Config.RetryBase, RetryMax, RetryMaxAttempts).
//
// An action that exhausts MaxAttempts (unknown outcomes) is a definite
// failure: the saga compensates (TCC: cancels), and the step itself is
// compensated too, since it may have run (participants' barriers make a
// compensation of what never ran a no-op). A compensation, or an action
// past the pivot (a TCC confirm), that exhausts MaxAttempts is never given
// up silently: the coordinator stops calling it, raises an alert, lists it
// under attention and waits for an operator's retry (which grants a new
// MaxAttempts) or a forced abort.
type RetryPolicy struct {
	// Initial is the least wait before the first retry.
	Initial dtx.Duration `json:"initial,omitempty"`
	// Multiplier grows the wait per attempt (1..10; default 2).
	Multiplier float64 `json:"multiplier,omitempty"`
	// MaxInterval caps the wait (before jitter).
	MaxInterval dtx.Duration `json:"max_interval,omitempty"`
	// MaxAttempts bounds the calls of one operation (1..1000; 0: the
	// coordinator's default, unlimited unless configured).
	MaxAttempts int `json:"max_attempts,omitempty"`
	// NonRetryableStatuses are HTTP status codes that end the retries at
	// once: a definite failure for an action, and needs-operator for a
	// compensation or confirm (which may never be given up).
	NonRetryableStatuses []int `json:"non_retryable_statuses,omitempty"`
}

// check validates p, returning one message per problem, each naming the
// field under prefix (e.g. "steps[2].retry").
func (p *RetryPolicy) check(prefix string) []string {
	var bad []string
	for _, d := range []struct {
		field string
		v     dtx.Duration
	}{{"initial", p.Initial}, {"max_interval", p.MaxInterval}} {
		if d.v != 0 && (d.v.Std() < MinRetryInterval || d.v.Std() > MaxRetryInterval) {
			bad = append(bad, fmt.Sprintf("%s.%s: %v is outside %v..%v", prefix, d.field, d.v.Std(), MinRetryInterval, MaxRetryInterval))
		}
	}
	if p.Initial != 0 && p.MaxInterval != 0 && p.MaxInterval < p.Initial {
		bad = append(bad, fmt.Sprintf("%s.max_interval: %v is below initial %v", prefix, p.MaxInterval.Std(), p.Initial.Std()))
	}
	if p.Multiplier != 0 && (p.Multiplier < 1 || p.Multiplier > MaxMultiplier || math.IsNaN(p.Multiplier)) {
		bad = append(bad, fmt.Sprintf("%s.multiplier: %v is outside 1..%d", prefix, p.Multiplier, MaxMultiplier))
	}
	if p.MaxAttempts < 0 || p.MaxAttempts > MaxRetryAttempts {
		bad = append(bad, fmt.Sprintf("%s.max_attempts: %d is outside 1..%d", prefix, p.MaxAttempts, MaxRetryAttempts))
	}
	if len(p.NonRetryableStatuses) > 100 {
		bad = append(bad, fmt.Sprintf("%s.non_retryable_statuses: %d entries; the limit is 100", prefix, len(p.NonRetryableStatuses)))
	} else {
		for _, c := range p.NonRetryableStatuses {
			if c < 100 || c > 599 || (c >= 200 && c < 300) {
				bad = append(bad, fmt.Sprintf("%s.non_retryable_statuses: %d is not an HTTP error status", prefix, c))
			}
		}
	}
	return bad
}

// NonRetryable reports whether HTTP status code ends p's retries at once.
func (p *RetryPolicy) NonRetryable(code int) bool {
	if p == nil || code == 0 {
		return false
	}
	for _, c := range p.NonRetryableStatuses {
		if c == code {
			return true
		}
	}
	return false
}

// Delay is the wait after attempt consecutive failures, with base and
// limit standing in for Initial and MaxInterval when they are unset:
// d = initial·multiplier^(attempt-1), capped at max_interval, then drawn
// uniformly from [d, 1.25·d]. The jitter only adds: even the first retry
// waits at least Initial, as the policy promises.
func (p *RetryPolicy) Delay(base, limit time.Duration, attempt int) time.Duration {
	initial, maxInterval, mult := base, limit, 2.0
	if p.Initial != 0 {
		initial = p.Initial.Std()
	}
	if p.MaxInterval != 0 {
		maxInterval = p.MaxInterval.Std()
	}
	maxInterval = max(maxInterval, initial)
	if p.Multiplier != 0 {
		mult = p.Multiplier
	}
	d := float64(initial)
	for i := 1; i < attempt && d < float64(maxInterval); i++ {
		d *= mult
	}
	dd := time.Duration(min(d, float64(maxInterval)))
	return dd + time.Duration(rand.Int64N(int64(dd/4)+1))
}
