package participant

import (
	"net/http"

	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/internal/problem"
)

// Option configures Handler.
type Option func(*handlerConfig)

type handlerConfig struct {
	verifier       *callsig.Verifier
	tracerProvider trace.TracerProvider // tracing.go
}

// RequireSignature makes Handler verify every call's Dtx-Signature with v
// (package callsig) before fn, and so before any barrier, runs: a call
// that is not signed by one of v's keys, or whose deadline has passed or is
// too far ahead, is answered 401 with a problem body and runs nothing. The
// coordinator signs its calls when given the matching key
// (httptransport.Transport.WithSigner). A nil v verifies nothing: the
// option is then the same as no option, for configurations where the key
// is optional.
func RequireSignature(v *callsig.Verifier) Option {
	return func(c *handlerConfig) { c.verifier = v }
}

// Verify checks the signature of a branch call given by its headers (get,
// as for BranchFromHeaders) and body with v. Handler runs it when given
// RequireSignature; package transport/brokertransport runs it for
// commands. Its error wraps callsig.ErrRefused.
func Verify(v *callsig.Verifier, get func(name string) string, body []byte) error {
	return v.VerifyHeaders(get, body)
}

// writeUnauthorized answers a call whose signature was refused.
func writeUnauthorized(w http.ResponseWriter, err error) {
	w.Header().Set("WWW-Authenticate", `Dtx-Signature realm="dtx branch calls"`)
	problem.Write(w, http.StatusUnauthorized, "participant: "+err.Error())
}
