package dtx

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("1.5s", "200ms"). A bare JSON number is read as milliseconds.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("duration must be a string like \"5s\" or a number of milliseconds")
	}
	ns := ms * float64(time.Millisecond)
	// Converting a float outside int64's range is implementation-defined
	// (it wraps to a negative duration on amd64): refuse it instead.
	if !(ns >= math.MinInt64 && ns < math.MaxInt64) {
		return fmt.Errorf("duration %v ms is out of range (at most about 292 years)", ms)
	}
	*d = Duration(time.Duration(ns))
	return nil
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }
