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
