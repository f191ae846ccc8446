package dtx

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"time"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("1.5s", "200ms"). A bare JSON number is refused: 5 could mean
// seconds or milliseconds, and guessing wrong makes a "5 second" timeout
// one of 5 ms; the error says to write "5s".
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
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		return fmt.Errorf("duration %s is a bare number: write a Go duration string with its unit, such as \"%ss\" or \"%sms\"", cut(n.String()), cut(n.String()), cut(n.String()))
	}
	return fmt.Errorf("duration must be a string like \"5s\" or \"200ms\"")
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

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }
