package dtx

import (
	"context"
	"time"
)

// Header names carried by every branch call, so that participants can key
// their barrier on (gid, branch, op).
const (
	HeaderGID     = "Dtx-Gid"
	HeaderBranch  = "Dtx-Branch"
	HeaderOp      = "Dtx-Op"
	HeaderAttempt = "Dtx-Attempt"
)

// Call is one branch operation to perform on a participant.
type Call struct {
	GID     string
	Branch  int
	Op      Op
	URL     string
	Payload []byte
	// Attempt numbers calls of the same operation from 1.
	Attempt int
	// Timeout bounds the call; exceeding it is an Unknown outcome.
	Timeout time.Duration
	// TraceParent, when set, is the W3C traceparent header value the call
	// carries: the transaction's trace id with a span id of its own.
	TraceParent string
}

// Transport performs branch calls. Implementations classify every result
// into an Outcome and never return Success unless the participant confirmed.
// Call is safe for concurrent use.
type Transport interface {
	Call(ctx context.Context, c Call) Outcome
}

// URLChecker is implemented by a Transport that can tell, before any call,
// whether it can call a URL: its scheme is served and the URL follows the
// scheme's rule. The coordinator checks every step URL of a transaction
// with it at submission, and refuses the transaction (dtx.ErrInvalid) if
// one fails, before anything is stored.
type URLChecker interface {
	CheckURL(rawURL string) error
}
