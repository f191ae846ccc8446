package dtx

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
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
			if durationSyntax.MatchString(s) {
				return fmt.Errorf("duration %s is out of range (at most %v)", short(s), time.Duration(math.MaxInt64))
			}
			return fmt.Errorf("duration %s: want a Go duration such as \"1.5s\" or \"200ms\"", short(s))
		}
		*d = Duration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && strings.HasPrefix(ute.Value, "number") {
			return fmt.Errorf("duration %s ms is out of range (at most %d ms)", cut(string(b)), maxMillis)
		}
		return fmt.Errorf("duration must be a string like \"5s\" or a number of milliseconds")
	}
	// time.Duration holds about ±292 years; past that the conversion
	// below wraps around, and 1e300 would read as a negative duration.
	if math.IsNaN(ms) || ms > float64(maxMillis) || ms < -float64(maxMillis) {
		return fmt.Errorf("duration %s ms is out of range (at most %d ms)", cut(string(b)), maxMillis)
	}
	*d = Duration(time.Duration(ms * float64(time.Millisecond)))
	return nil
}

// durationSyntax matches what time.ParseDuration reads, so that a string
// it refuses anyway is one out of range.
var durationSyntax = regexp.MustCompile(`^[-+]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`)

// short quotes s for a message, cut to 32 bytes.
func short(s string) string { return strconv.Quote(cut(s)) }

// cut cuts s to 32 bytes for a message (a JSON number token needs no
// quoting).
func cut(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// maxMillis is the largest number of milliseconds a Duration holds.
const maxMillis = int64(math.MaxInt64 / int64(time.Millisecond))

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }
