package dtx

import (
	"errors"
	"fmt"
)

// Class is the outcome class of a branch call. Saga, TCC and XA policy is a
// function of the class only; error text is never inspected.
type Class int

// Outcome classes.
const (
	// Unknown: the operation may or may not have been applied (timeout,
	// connection error, 5xx). Retry the same operation.
	Unknown Class = iota
	// Success: the participant applied the operation.
	Success
	// Failure: a definite business refusal. Nothing was applied; retrying the
	// same operation will not help.
	Failure
)

func (c Class) String() string {
	switch c {
	case Success:
		return "success"
	case Failure:
		return "failure"
	default:
		return "unknown"
	}
}

// Outcome is the classified result of one branch call.
type Outcome struct {
	Class Class
	// Err explains a Failure or Unknown outcome.
	Err error
	// Body is the participant's response body on success (may be nil).
	Body []byte
}

// Succeeded returns a Success outcome.
func Succeeded(body []byte) Outcome { return Outcome{Class: Success, Body: body} }

// Failed returns a definite Failure outcome.
func Failed(err error) Outcome { return Outcome{Class: Failure, Err: err} }

// Uncertain returns an Unknown outcome.
func Uncertain(err error) Outcome { return Outcome{Class: Unknown, Err: err} }

// Reason is a one-line description of the outcome for logs and the store.
func (o Outcome) Reason() string {
	if o.Err == nil {
		return o.Class.String()
	}
	return o.Err.Error()
}

// PermanentError marks an error as a definite business failure. Participants
// return it (through Permanent) to refuse an operation; the participant SDK
// maps it to HTTP 409 and the HTTP transport maps 409 back to Failure.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a definite failure. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error {
	return &PermanentError{Err: fmt.Errorf(format, args...)}
}

// IsPermanent reports whether err is (or wraps) a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// IsRetryable reports whether err is non-nil and not permanent: the operation
// may succeed if tried again.
func IsRetryable(err error) bool { return err != nil && !IsPermanent(err) }
