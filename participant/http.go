package participant

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/internal/problem"
)

// MaxBodySize is the largest request body Handler accepts.
const MaxBodySize = 1 << 20

// WriteError answers a failed branch operation in the coordinator's terms
// (see Status): 409 Conflict (a definite failure: nothing was applied, do
// not retry) if err is permanent (dtx.IsPermanent), 400 if it is a
// BadRequest error (also definite), else 500 (outcome unknown: retry).
// The body is application/problem+json with err's text as detail.
func WriteError(w http.ResponseWriter, err error) {
	if err == nil {
		err = errors.New("participant: WriteError called with a nil error")
	}
	problem.Write(w, Status(err), err.Error())
}

// WriteJSON answers with status and v encoded as JSON. If v cannot be
// encoded it answers 500 instead.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	problem.WriteJSON(w, status, v)
}

// BranchFunc is a branch operation as participants write it: it runs the
// operation of branch br with the request body, and returns the result to
// answer (as JSON) or an error (permanent for a definite failure, see
// WriteError). Handler serves it over HTTP; package
// transport/brokertransport serves the same function for commands from a
// broker topic.
type BranchFunc func(ctx context.Context, br Branch, body []byte) (any, error)

// Handler adapts a branch operation to HTTP. It reads the branch identity
// from the Dtx-* headers and the body (at most MaxBodySize bytes), answering
// 400 if either is missing or malformed, then calls fn with the request's
// context. A nil error is answered 200 with result as JSON ({} if result is
// nil); an error is answered by WriteError (409 if permanent, else 500).
// Only POST is accepted (405 otherwise). With RequireSignature, a call
// whose signature is refused is answered 401 before fn runs.
//
// Each call is recorded as an OpenTelemetry server span continuing the
// coordinator's trace (see WithTracerProvider); fn's context carries it.
//
// fn should run its local writes through Barrier.Do, so that retries and
// duplicate deliveries are harmless.
func Handler(fn BranchFunc, opts ...Option) http.Handler {
	var cfg handlerConfig
	for _, o := range opts {
		o(&cfg)
	}
	tracer := cfg.tracer()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			problem.Write(w, http.StatusMethodNotAllowed, "branch operations are called with POST")
			return
		}
		ctx, span := startServerSpan(tracer, r)
		br, err := BranchFromRequest(r)
		if err != nil {
			endServerSpan(span, http.StatusBadRequest, err)
			problem.Write(w, http.StatusBadRequest, err.Error())
			return
		}
		describeSpan(span, br, r.Header.Get(dtx.HeaderAttempt))
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
		if err != nil {
			endServerSpan(span, http.StatusBadRequest, err)
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				problem.Write(w, http.StatusBadRequest, "participant: request body larger than 1 MiB")
				return
			}
			problem.Write(w, http.StatusBadRequest, "participant: read request body: "+err.Error())
			return
		}
		if cfg.verifier != nil {
			if err := Verify(cfg.verifier, r.Header.Get, body); err != nil {
				endServerSpan(span, http.StatusUnauthorized, err)
				writeUnauthorized(w, err)
				return
			}
		}
		result, err := fn(ctx, br, body)
		if err != nil {
			endServerSpan(span, Status(err), err)
			WriteError(w, err)
			return
		}
		endServerSpan(span, http.StatusOK, nil)
		if result == nil {
			result = struct{}{}
		}
		WriteJSON(w, http.StatusOK, result)
	})
}
