package brokertransport

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/participant"
)

// Serve runs fn for the branch commands published to topic (by a
// Transport, for steps whose URL is broker://<topic>), as member of the
// consumer group group, and publishes each reply to the topic the command
// names. fn is the same function participant.Handler serves over HTTP, and
// its result is answered the same way (participant.Status): a nil error
// is status 200 with result as JSON, a participant.BadRequest error 400, a
// permanent error (dtx.Permanent) 409 and any other error 500, with an
// application/problem+json body.
//
// Typed handlers serve here unchanged: participant.Typed (database/sql) and
// pgxbarrier.Typed (pgx) return a BranchFunc that decodes the payload into
// the handler's request type (a payload that does not decode is answered
// 400, a definite failure), runs the handler behind the barrier and encodes
// its response, so one typed function answers HTTP calls and broker
// commands alike:
//
//	brokertransport.Serve(ctx, b, "wallet-debit", "wallet", participant.Typed(db, barrier, debit))
//
// Commands may be delivered more than once (a redelivery, or the
// coordinator retrying after a reply that did not come in time): each
// delivery before the command's deadline runs fn again and replies again,
// so fn must be idempotent, as it is when it runs its writes through
// participant.Barrier.Do. The subscription runs until it is closed; the
// caller closes it.
func Serve(ctx context.Context, b broker.Broker, topic, group string, fn participant.BranchFunc, opts ...ServeOption) (broker.Subscription, error) {
	if err := CheckTopic(topic); err != nil {
		return nil, fmt.Errorf("brokertransport: serve: %w", err)
	}
	return b.Subscribe(ctx, topic, group, CommandHandler(b, fn, opts...))
}

// CommandHandler is the broker.Handler that Serve subscribes, for callers
// that wrap it (metrics, fault injection) before subscribing it themselves.
//
// A command received after its deadline (HeaderDeadline: its caller no
// longer waits for the reply, and sends a new command to retry) is
// acknowledged without running fn. A command without the Dtx-* branch
// headers, or with a body larger than participant.MaxBodySize, is answered
// 400 (a definite failure). A command without a valid reply topic cannot be
// answered: it is acknowledged and logged (the caller will time out and
// retry). With RequireSignature, a command whose signature is refused is
// answered 401 without running fn. fn panicking is answered 500. If the reply cannot be published,
// the handler returns the error, so the broker delivers the command again.
func CommandHandler(b broker.Broker, fn participant.BranchFunc, opts ...ServeOption) broker.Handler {
	var cfg serveConfig
	for _, o := range opts {
		o(&cfg)
	}
	return func(ctx context.Context, d broker.Delivery) error {
		replyTo := d.Headers[HeaderReplyTo]
		if err := CheckTopic(replyTo); err != nil {
			slog.Default().WarnContext(ctx, "brokertransport: command without a valid reply topic dropped",
				"topic", d.Topic, "id", d.ID, "err", err)
			return nil
		}
		if CommandExpired(d) {
			// The caller has stopped waiting and retries with a new
			// command: running this one would only delay that one.
			slog.Default().DebugContext(ctx, "brokertransport: expired command skipped", "topic", d.Topic, "id", d.ID)
			return nil
		}
		status, body, ok := cfg.refuse(ctx, d)
		if ok {
			status, body = runCommand(ctx, d, fn)
		}
		reply := broker.Message{
			ID:    d.ID + "/reply/" + strconv.Itoa(d.Attempt),
			Topic: replyTo,
			Key:   d.Key,
			Headers: map[string]string{
				HeaderStatus:               strconv.Itoa(status),
				broker.HeaderType:          TypeReply,
				broker.HeaderCausationID:   d.ID,
				broker.HeaderCorrelationID: d.Headers[broker.HeaderCorrelationID],
			},
			Payload: body,
		}
		for _, h := range []string{dtx.HeaderGID, dtx.HeaderBranch, dtx.HeaderOp, dtx.HeaderAttempt} {
			if v := d.Headers[h]; v != "" {
				reply.Headers[h] = v
			}
		}
		if reply.Headers[broker.HeaderCorrelationID] == "" {
			delete(reply.Headers, broker.HeaderCorrelationID)
		}
		if err := b.Publish(ctx, reply); err != nil {
			return fmt.Errorf("brokertransport: publish reply to %s: %w", replyTo, err)
		}
		return nil
	}
}

// CommandExpired reports whether the deadline of command d
// (HeaderDeadline) has passed: its caller no longer waits for the
// reply. A command without a deadline, or with one that does not parse,
// never expires. CommandHandler skips expired commands; a wrapper can check
// first too (the shop does, so that it injects faults only into commands
// that are still awaited).
func CommandExpired(d broker.Delivery) bool {
	v := d.Headers[HeaderDeadline]
	if v == "" {
		return false
	}
	deadline, err := time.Parse(time.RFC3339Nano, v)
	return err == nil && time.Now().After(deadline)
}

// runCommand runs fn for one command and returns the reply's status and
// body, as participant.Handler would answer over HTTP.
func runCommand(ctx context.Context, d broker.Delivery, fn participant.BranchFunc) (status int, body []byte) {
	br, err := participant.BranchFromHeaders(func(name string) string { return d.Headers[name] })
	if err != nil {
		return problemReply(http.StatusBadRequest, err.Error())
	}
	if len(d.Payload) > participant.MaxBodySize {
		return problemReply(http.StatusBadRequest, "participant: request body larger than 1 MiB")
	}
	defer func() {
		if p := recover(); p != nil {
			slog.Default().ErrorContext(ctx, "brokertransport: branch handler panicked", "topic", d.Topic, "gid", br.GID, "panic", p)
			status, body = problemReply(http.StatusInternalServerError, fmt.Sprintf("participant: handler panicked: %v", p))
		}
	}()
	result, err := fn(ctx, br, d.Payload)
	if err != nil {
		return problemReply(participant.Status(err), err.Error())
	}
	if result == nil {
		result = struct{}{}
	}
	out, err := json.Marshal(result)
	if err != nil {
		return problemReply(http.StatusInternalServerError, "participant: encode response: "+err.Error())
	}
	return http.StatusOK, out
}

// problemReply is a reply with an RFC 9457 problem details body.
func problemReply(status int, detail string) (int, []byte) {
	body, _ := json.Marshal(problem.Details{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail})
	return status, body
}
