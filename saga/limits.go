package saga

import (
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on the fields of a saga definition, besides MaxSteps,
// MaxGIDLength and MaxPayloadSize. Normalize refuses a spec past any of
// them with an error naming the field and the limit.
const (
	// MaxNameLength bounds a step name, in bytes.
	MaxNameLength = 128
	// MaxURLLength bounds an action or compensate URL, in bytes.
	MaxURLLength = 2048
	// MinTimeout is the least timeout and branch_timeout a spec may ask for
	// (zero still means the default). The upper bounds are the
	// coordinator's (coordinator.Config.MaxTimeout and MaxBranchTimeout).
	MinTimeout = 10 * time.Millisecond
)

// GIDChars describes the characters a gid may hold, for messages and docs.
const GIDChars = "letters, digits and . _ : -"

// checkGID reports what is wrong with a gid (empty: nothing). A gid goes
// into URL paths and the Dtx-Gid header of every branch call, so it is
// at most MaxGIDLength of ASCII letters, digits and . _ : -, and not a path
// segment ("." or "..").
func checkGID(gid string) string {
	if len(gid) > MaxGIDLength {
		return fmt.Sprintf("gid is %d bytes long; the limit is %d", len(gid), MaxGIDLength)
	}
	for i := 0; i < len(gid); i++ {
		if !gidChar(gid[i]) {
			return fmt.Sprintf("gid %s: byte %d is %q; a gid holds only %s (at most %d)", Quote(gid), i, gid[i], GIDChars, MaxGIDLength)
		}
	}
	if gid == "." || gid == ".." {
		return fmt.Sprintf("gid %q is a path segment, not an id", gid)
	}
	return ""
}

func gidChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '-'
}

// checkName reports what is wrong with a step name (empty: nothing): at
// most MaxNameLength bytes of valid UTF-8 without control characters.
func checkName(name string) string {
	if len(name) > MaxNameLength {
		return fmt.Sprintf("name is %d bytes long; the limit is %d", len(name), MaxNameLength)
	}
	if !utf8.ValidString(name) {
		return "name is not valid UTF-8"
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Sprintf("name %s contains a control character", Quote(name))
		}
	}
	return ""
}

// Quote quotes s for an error message, cut to its first 64 bytes so that
// a message about an oversized field stays small.
func Quote(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("... (%d bytes)", len(s))
}
