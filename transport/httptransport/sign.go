package httptransport

import (
	"net/http"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/callsig"
)

// WithSigner makes t sign every call with s (package callsig): each
// request carries a Dtx-Deadline (now plus the call's timeout, at most
// callsig.MaxValidity) and a Dtx-Signature over the gid, branch, op,
// attempt, deadline and body, which participants built with the SDK
// verify before running the call. A nil s sends calls unsigned. Set it
// before the first call; it returns t.
func (t *Transport) WithSigner(s *callsig.Signer) *Transport {
	t.signer = s
	return t
}

// sign adds the deadline and signature headers of c with body to h, if t
// has a signer.
func (t *Transport) sign(h http.Header, c dtx.Call, body []byte) {
	if t.signer == nil {
		return
	}
	t.signer.SetHeaders(h.Set, callsig.Call{
		GID: c.GID, Branch: c.Branch, Op: string(c.Op), Attempt: c.Attempt,
		Deadline: callsig.Deadline(time.Now(), c.Timeout), Body: body,
	})
}
