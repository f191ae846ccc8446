// Package traceparent reads and writes the W3C Trace Context "traceparent"
// header (https://www.w3.org/TR/trace-context/), so that the branch calls of
// one global transaction join the trace of the request that submitted it.
//
// The coordinator keeps the submitter's trace id (and sampling flag) with
// the transaction and sends every branch call a traceparent with that trace
// id and a fresh span id: a participant instrumented with OpenTelemetry (or
// anything that reads the header) records its spans in the submitter's
// trace. The coordinator does not record or export spans of its own.
package traceparent

import (
	"encoding/hex"
	"math/rand/v2"
)

// Header is the name of the HTTP header.
const Header = "traceparent"

// TraceParent is a parsed traceparent (version 00).
type TraceParent struct {
	TraceID [16]byte
	SpanID  [8]byte
	// Flags are the trace flags; bit 0 is "sampled".
	Flags byte
}

// Parse reads a traceparent header value. It accepts version 00 exactly and
// later versions by their version-00 prefix, as the specification asks; it
// rejects version ff, all-zero trace or span ids, upper-case hex and any
// other malformation (ok is false: the caller then starts no trace from it).
func Parse(s string) (tp TraceParent, ok bool) {
	if len(s) < 55 {
		return tp, false
	}
	if !lowerHex(s[0:2]) || s[0:2] == "ff" || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return tp, false
	}
	if s[0:2] == "00" && len(s) != 55 {
		return tp, false
	}
	if len(s) > 55 && s[55] != '-' {
		return tp, false
	}
	if !lowerHex(s[3:35]) || !lowerHex(s[36:52]) || !lowerHex(s[53:55]) {
		return tp, false
	}
	hex.Decode(tp.TraceID[:], []byte(s[3:35]))
	hex.Decode(tp.SpanID[:], []byte(s[36:52]))
	var f [1]byte
	hex.Decode(f[:], []byte(s[53:55]))
	tp.Flags = f[0]
	if tp.TraceID == [16]byte{} || tp.SpanID == [8]byte{} {
		return TraceParent{}, false
	}
	return tp, true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Valid reports whether tp has non-zero trace and span ids.
func (tp TraceParent) Valid() bool {
	return tp.TraceID != [16]byte{} && tp.SpanID != [8]byte{}
}

// Sampled reports whether the sampled flag is set.
func (tp TraceParent) Sampled() bool { return tp.Flags&1 == 1 }

// String formats tp as a version-00 header value.
func (tp TraceParent) String() string {
	var b [55]byte
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], tp.TraceID[:])
	b[35] = '-'
	hex.Encode(b[36:52], tp.SpanID[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{tp.Flags})
	return string(b[:])
}

// TraceIDString returns the trace id as 32 lower-case hex digits.
func (tp TraceParent) TraceIDString() string { return hex.EncodeToString(tp.TraceID[:]) }

// Child returns tp with a new random, non-zero span id: the traceparent of
// an outgoing call made within tp's trace.
func (tp TraceParent) Child() TraceParent {
	for {
		v := rand.Uint64()
		if v == 0 {
			continue
		}
		for i := range tp.SpanID {
			tp.SpanID[i] = byte(v >> (8 * i))
		}
		return tp
	}
}
