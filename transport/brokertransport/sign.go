package brokertransport

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/participant"
)

// ServeOption configures Serve and CommandHandler.
type ServeOption func(*serveConfig)

type serveConfig struct {
	verifier *callsig.Verifier
}

// RequireSignature makes the serving side verify every command's
// Dtx-Signature with v before fn runs (see participant.RequireSignature): a
// command that is not signed by one of v's keys, or signed for other
// headers or another payload, or whose Dtx-Deadline is too far ahead, is
// answered 401 and runs nothing. A nil v verifies nothing.
func RequireSignature(v *callsig.Verifier) ServeOption {
	return func(c *serveConfig) { c.verifier = v }
}

// deadline is the Dtx-Deadline of a call made now with timeout: now plus
// timeout, capped at callsig.MaxValidity when the transport signs.
func (t *Transport) deadline(timeout time.Duration) time.Time {
	if t.cfg.Signer != nil {
		return callsig.Deadline(time.Now(), timeout)
	}
	return time.Now().Add(timeout)
}

// sign adds the signature of the command msg for c, if the transport has a
// signer. msg carries its HeaderDeadline already.
func (t *Transport) sign(msg *broker.Message, c dtx.Call, deadline time.Time) {
	if t.cfg.Signer == nil {
		return
	}
	t.cfg.Signer.SetHeaders(func(k, v string) { msg.Headers[k] = v }, callsig.Call{
		GID: c.GID, Branch: c.Branch, Op: string(c.Op), Attempt: c.Attempt,
		Deadline: deadline, Body: msg.Payload,
	})
}

// refuse returns the reply status and body of a command whose signature
// cfg's verifier refuses, or ok if it is accepted (or not checked).
func (cfg serveConfig) refuse(ctx context.Context, d broker.Delivery) (status int, body []byte, ok bool) {
	if cfg.verifier == nil {
		return 0, nil, true
	}
	err := participant.Verify(cfg.verifier, func(name string) string { return d.Headers[name] }, d.Payload)
	if err == nil {
		return 0, nil, true
	}
	slog.Default().WarnContext(ctx, "brokertransport: command with a refused signature", "topic", d.Topic, "id", d.ID, "err", err)
	status, body = problemReply(http.StatusUnauthorized, "participant: "+err.Error())
	return status, body, false
}
