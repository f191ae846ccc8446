package dtx

import "errors"

// Sentinel errors returned by Store implementations and the coordinator.
var (
	// ErrNotFound: no transaction with that gid.
	ErrNotFound = errors.New("dtx: transaction not found")
	// ErrExists: a transaction with that gid exists already (Store.Create).
	ErrExists = errors.New("dtx: transaction already exists")
	// ErrConflict: a gid was resubmitted with different content.
	ErrConflict = errors.New("dtx: gid already used with different content")
	// ErrLeaseLost: the caller no longer holds the lease on the transaction;
	// nothing was written. The caller must stop driving it.
	ErrLeaseLost = errors.New("dtx: lease lost")
	// ErrInvalid: a definition or request is malformed.
	ErrInvalid = errors.New("dtx: invalid request")
	// ErrFinished: the operation needs an unfinished transaction.
	ErrFinished = errors.New("dtx: transaction already finished")
	// ErrClosed: the component has been closed.
	ErrClosed = errors.New("dtx: closed")
)

// ErrMisrouted marks a branch call answered by something that is not a dtx
// participant: a 404 or 405 without the problem+json body the participant
// SDK always sends, the usual sign of a mistyped step URL. errors.Is finds
// it in the transport's error. The coordinator alerts at once instead of
// waiting for AlertAfter retries.
var ErrMisrouted = errors.New("not a dtx participant: wrong URL?")

// TypeMisrouted is the problem type named in the reason of a transaction
// whose step was misrouted (see ErrMisrouted). The participant SDK never
// sends it.
const TypeMisrouted = "urn:dtx:problem:misrouted"
