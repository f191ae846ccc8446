package participant

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"

	"github.com/dtxhq/dtx"
)

// TxFunc is a branch operation's business logic, typed: it runs in the
// barrier's open transaction tx with the decoded request and returns the
// response to encode as JSON. Return a dtx.Permanent error for a business
// "no" (a definite failure: nothing was applied) and any other error for a
// failure worth retrying; either way tx, barrier row included, is rolled
// back. tx fits sqlc's generated Queries.WithTx(tx). The operation's
// Branch is in ctx (BranchFromContext).
type TxFunc[Req, Resp any] func(ctx context.Context, tx *sql.Tx, req Req) (Resp, error)

// Typed returns the BranchFunc that serves fn behind barrier b on db:
//
//  1. it decodes the body as JSON into a Req (and calls its Validate
//     method if Req has one); a body that does not decode or validate is a
//     BadRequest error, answered 400: a definite failure, and nothing runs;
//  2. it runs fn through b.Do, so fn runs in the same transaction as the
//     barrier row: a duplicate delivery or a null compensation does not
//     call fn and is answered {} (the barrier keeps no responses), and a
//     hanging action gets ErrHanging (409);
//  3. it returns fn's Resp to be answered 200 as JSON, or fn's error,
//     answered as WriteError says (409 if permanent, else 500).
//
// Serve the result over HTTP with Handler (or use HandleJSON), or for
// broker commands with brokertransport.Serve: the same function answers
// both. Package participant/pgxbarrier has the pgx counterpart.
func Typed[Req, Resp any](db *sql.DB, b Barrier, fn TxFunc[Req, Resp]) BranchFunc {
	return func(ctx context.Context, br Branch, body []byte) (any, error) {
		req, err := DecodeRequest[Req](body)
		if err != nil {
			return nil, err
		}
		ctx = ContextWithBranch(ctx, br)
		var resp Resp
		ran := false
		err = b.Do(ctx, db, br, func(tx *sql.Tx) error {
			ran = true
			var err error
			resp, err = fn(ctx, tx, req)
			return err
		})
		if err != nil || !ran {
			return nil, err
		}
		return resp, nil
	}
}

// HandleJSON is Handler(Typed(db, b, fn), opts...): an http.Handler for a
// typed branch operation behind barrier b.
func HandleJSON[Req, Resp any](db *sql.DB, b Barrier, fn TxFunc[Req, Resp], opts ...Option) http.Handler {
	return Handler(Typed(db, b, fn), opts...)
}

// Validator is implemented by a request type that checks itself after
// decoding. DecodeRequest calls Validate; an error is a bad request.
type Validator interface {
	Validate() error
}

// DecodeRequest decodes body, one JSON value, into a Req and validates it
// (see Validator). Any failure is returned as a BadRequest error naming the
// type. It is the first step of Typed, exported for bindings of other
// drivers (participant/pgxbarrier) and for BranchFuncs written by hand.
func DecodeRequest[Req any](body []byte) (Req, error) {
	var req Req
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return req, BadRequest(fmt.Errorf("participant: decode request body as %T: %w", req, err))
	}
	if dec.More() {
		return req, BadRequest(fmt.Errorf("participant: decode request body as %T: more than one JSON value", req))
	}
	if v, ok := any(&req).(Validator); ok {
		if err := v.Validate(); err != nil {
			return req, BadRequest(fmt.Errorf("participant: invalid %T: %w", req, err))
		}
	} else if v, ok := any(req).(Validator); ok && !isNilPointer(req) {
		if err := v.Validate(); err != nil {
			return req, BadRequest(fmt.Errorf("participant: invalid %T: %w", req, err))
		}
	}
	return req, nil
}

// isNilPointer reports whether v is a nil pointer (a pointer Req decoded
// from JSON null), whose Validate must not be called.
func isNilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// BadRequestError marks a branch call whose request is malformed: it is
// answered 400, which the coordinator takes as a definite failure (nothing
// was applied, retrying the same call cannot help). It is permanent
// (dtx.IsPermanent).
type BadRequestError struct{ Err error }

func (e *BadRequestError) Error() string { return e.Err.Error() }
func (e *BadRequestError) Unwrap() error { return e.Err }

// BadRequest wraps err as a malformed request, answered 400.
// BadRequest(nil) is nil.
func BadRequest(err error) error {
	if err == nil {
		return nil
	}
	return &BadRequestError{Err: dtx.Permanent(err)}
}

// Status is the HTTP status (or broker reply status) that answers a
// branch operation failed with err: 400 for a BadRequest error, 409 for
// any other permanent error (dtx.IsPermanent), 500 otherwise. WriteError
// and package transport/brokertransport answer with it.
func Status(err error) int {
	var bad *BadRequestError
	switch {
	case errors.As(err, &bad):
		return http.StatusBadRequest
	case dtx.IsPermanent(err):
		return http.StatusConflict
	default:
		return http.StatusInternalServerError
	}
}

type branchKey struct{}

// ContextWithBranch returns ctx carrying br, for BranchFromContext.
// Typed and pgxbarrier.Typed call it before fn.
func ContextWithBranch(ctx context.Context, br Branch) context.Context {
	return context.WithValue(ctx, branchKey{}, br)
}

// BranchFromContext returns the branch operation a typed handler runs
// for (see Typed), and false outside one.
func BranchFromContext(ctx context.Context) (Branch, bool) {
	br, ok := ctx.Value(branchKey{}).(Branch)
	return br, ok
}
