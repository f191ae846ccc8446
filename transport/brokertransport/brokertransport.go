// Package brokertransport performs branch calls over a message broker
// (asynchronous orchestration): for a step URL "broker://<topic>" the
// coordinator publishes a command message to <topic> and waits for the
// participant's reply on its own reply topic. Participants serve commands
// with Serve (or CommandHandler), running the same participant.BranchFunc
// handlers as over HTTP. The whole protocol (URL scheme and topic rule,
// headers, calling and serving) is in this package.
//
// A Transport calls broker:// URLs only; to drive steps of other schemes
// too, put it in a scheme table (transport.Schemes) beside the HTTP
// transport.
//
// # Messages
//
// A command has
//
//   - ID "<gid>/<branch>/<op>/<attempt>/<nonce>-<n>": unique per call
//     attempt (the nonce is drawn per Transport, n counts its calls), so a
//     retry is a new message, while a redelivery of the same message keeps
//     its ID;
//   - Key = gid, so the commands of one transaction to one topic are
//     delivered in order;
//   - headers Dtx-Gid, Dtx-Branch, Dtx-Op, Dtx-Attempt (as over HTTP),
//     Dtx-Reply-To (the reply topic), Dtx-Correlation-Id (the gid),
//     Dtx-Type "dtx.command" and Dtx-Deadline (when the call stops waiting;
//     participants skip a command received after it), and with
//     Config.Signer a Dtx-Signature (package callsig) that a serving side
//     with RequireSignature verifies;
//   - the step's payload ("{}" when empty).
//
// The reply carries Dtx-Causation-Id = the command's ID, Dtx-Status (an
// HTTP status code) and the participant's JSON body (a problem+json body
// for errors).
//
// # Outcomes
//
// The reply's status is classified exactly like an HTTP answer
// (httptransport.Classify): 2xx Success, 4xx other than 408, 425 and 429 a
// definite Failure, anything else Unknown. No reply within the call's
// timeout (dtx.Call.Timeout, Config.DefaultTimeout when zero) is Unknown,
// as is a failed publish: the coordinator retries the same operation as a
// new command, so participants must be idempotent (the barrier makes them
// so); the command that went unanswered may still run later, which the
// barrier also covers, unless it reaches the participant after its
// deadline: then it is skipped, so that a queue of retried commands behind
// a slow participant drains instead of growing with every retry. A reply to a call that is no longer waited on (late,
// or a second reply to a redelivered command) is acknowledged and dropped.
//
// # Reply routing
//
// Each Transport subscribes once, at New, to its reply topic
// ("dtx-replies-<owner>") as consumer group Owner, and hands every reply to
// the call waiting for its command ID. The owner must therefore be unique
// per process (the coordinator's Owner is): two transports sharing a reply
// topic and group would split each other's replies.
package brokertransport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/callsig"
	"github.com/dtxhq/dtx/transport/httptransport"
)

var (
	_ dtx.Transport  = (*Transport)(nil)
	_ dtx.URLChecker = (*Transport)(nil)
)

// DefaultTimeout bounds a call whose dtx.Call.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// ReplyTopicPrefix starts the default reply topic.
const ReplyTopicPrefix = "dtx-replies-"

// Config configures a Transport.
type Config struct {
	// Owner names this caller: the reply topic is derived from it (see
	// ReplyTopic) and it is the reply subscription's consumer group. It
	// must be unique per process; use the coordinator's Owner. Required.
	Owner string
	// ReplyTopic overrides the reply topic (a-z, 0-9, '-'); default
	// ReplyTopicFor(Owner).
	ReplyTopic string
	// DefaultTimeout bounds a call without a timeout (default
	// DefaultTimeout).
	DefaultTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Signer, if set, signs every command (package callsig): its
	// Dtx-Deadline (then at most callsig.MaxValidity ahead) and a
	// Dtx-Signature over the gid, branch, op, attempt, deadline and payload,
	// which a serving side with RequireSignature verifies.
	Signer *callsig.Signer
}

// Stats counts what a Transport did.
type Stats struct {
	// Calls is the number of commands published (or attempted).
	Calls int64 `json:"calls"`
	// Replies is the number of replies handed to a waiting call.
	Replies int64 `json:"replies"`
	// Timeouts is the number of calls that ended without a reply.
	Timeouts int64 `json:"timeouts"`
	// LateReplies is the number of replies dropped because no call waited
	// for them any more (late, duplicate, or from before a restart).
	LateReplies int64 `json:"late_replies"`
}

// reply is a reply message as handed to its waiting call.
type reply struct {
	status string
	body   []byte
}

// Transport is a dtx.Transport over a broker.Broker. Its methods are safe
// for concurrent use.
type Transport struct {
	b          broker.Broker
	cfg        Config
	replyTopic string
	nonce      string
	seq        atomic.Int64
	sub        broker.Subscription
	log        *slog.Logger

	mu      sync.Mutex
	waiting map[string]chan reply // by command ID

	closed    chan struct{}
	closeOnce sync.Once
	closeErr  error

	calls, replies, timeouts, late atomic.Int64
}

// New subscribes to the reply topic and returns the transport. ctx bounds
// the subscription's setup. Close stops it.
func New(ctx context.Context, b broker.Broker, cfg Config) (*Transport, error) {
	if b == nil {
		return nil, errors.New("brokertransport: nil broker")
	}
	if cfg.Owner == "" {
		return nil, errors.New("brokertransport: Config.Owner is required")
	}
	if cfg.ReplyTopic == "" {
		cfg.ReplyTopic = ReplyTopicFor(cfg.Owner)
	}
	if err := CheckTopic(cfg.ReplyTopic); err != nil {
		return nil, fmt.Errorf("brokertransport: reply topic: %w", err)
	}
	if cfg.DefaultTimeout < 0 {
		return nil, fmt.Errorf("brokertransport: negative default timeout %v", cfg.DefaultTimeout)
	}
	if cfg.DefaultTimeout == 0 {
		cfg.DefaultTimeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var n [6]byte
	rand.Read(n[:])
	t := &Transport{
		b: b, cfg: cfg, replyTopic: cfg.ReplyTopic,
		nonce:   hex.EncodeToString(n[:]),
		log:     cfg.Logger.With("component", "brokertransport"),
		waiting: map[string]chan reply{},
		closed:  make(chan struct{}),
	}
	sub, err := b.Subscribe(ctx, t.replyTopic, cfg.Owner, t.onReply)
	if err != nil {
		return nil, fmt.Errorf("brokertransport: subscribe to replies: %w", err)
	}
	t.sub = sub
	return t, nil
}

// ReplyTopicFor is the default reply topic of owner: "dtx-replies-" and the
// owner in lower case, with characters other than a-z, 0-9 and '-'
// replaced by '-'. When that changed the owner (or it is long), a hash of
// the original keeps distinct owners apart.
func ReplyTopicFor(owner string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9', r == '-':
			return r
		case 'A' <= r && r <= 'Z':
			return r - 'A' + 'a'
		}
		return '-'
	}, owner)
	if clean != owner || len(clean) > 64 {
		h := fnv.New32a()
		h.Write([]byte(owner))
		if len(clean) > 48 {
			clean = clean[:48]
		}
		clean = fmt.Sprintf("%s-%08x", clean, h.Sum32())
	}
	return ReplyTopicPrefix + clean
}

// ReplyTopic is the topic this transport's replies come to.
func (t *Transport) ReplyTopic() string { return t.replyTopic }

// Stats returns the counts so far.
func (t *Transport) Stats() Stats {
	return Stats{Calls: t.calls.Load(), Replies: t.replies.Load(), Timeouts: t.timeouts.Load(), LateReplies: t.late.Load()}
}

// Close stops the reply subscription; calls still waiting end at once
// with an Unknown outcome, and later calls too. It does not close the
// broker. It is idempotent.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		close(t.closed)
		t.closeErr = t.sub.Close()
	})
	return t.closeErr
}

// CheckURL accepts the URLs Call can call: broker://<topic> (see
// ParseURL). The coordinator checks step URLs with it at submission.
func (t *Transport) CheckURL(raw string) error {
	_, err := ParseURL(raw)
	return err
}

// Call implements dtx.Transport. A URL that is not broker://<topic> is an
// Unknown outcome: such URLs are refused at submission (CheckURL);
// retrying cannot fix it, but guessing "failure" could skip work that must
// happen, so it is retried and alerted.
func (t *Transport) Call(ctx context.Context, c dtx.Call) dtx.Outcome {
	topic, err := ParseURL(c.URL)
	if err != nil {
		return dtx.Uncertain(fmt.Errorf("brokertransport: %w", err))
	}
	select {
	case <-t.closed:
		return dtx.Uncertain(fmt.Errorf("brokertransport: %w", broker.ErrClosed))
	default:
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = t.cfg.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	id := fmt.Sprintf("%s/%d/%s/%d/%s-%d", c.GID, c.Branch, c.Op, c.Attempt, t.nonce, t.seq.Add(1))
	payload := c.Payload
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	deadline := t.deadline(timeout)
	msg := broker.Message{
		ID: id, Topic: topic, Key: c.GID,
		Headers: map[string]string{
			dtx.HeaderGID:              c.GID,
			dtx.HeaderBranch:           strconv.Itoa(c.Branch),
			dtx.HeaderOp:               string(c.Op),
			dtx.HeaderAttempt:          strconv.Itoa(c.Attempt),
			HeaderReplyTo:              t.replyTopic,
			broker.HeaderCorrelationID: c.GID,
			broker.HeaderType:          TypeCommand,
			HeaderDeadline:             callsig.FormatDeadline(deadline),
		},
		Payload: payload,
	}
	t.sign(&msg, c, deadline)
	// Wait before publishing: the reply may come before Publish returns.
	ch := make(chan reply, 1)
	t.mu.Lock()
	t.waiting[id] = ch
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.waiting, id)
		t.mu.Unlock()
	}()

	t.calls.Add(1)
	if err := t.b.Publish(ctx, msg); err != nil {
		// The command may have been stored all the same.
		if ctx.Err() != nil {
			t.timeouts.Add(1)
			return dtx.Uncertain(fmt.Errorf("brokertransport: publish to %s: timeout after %v: %w", topic, timeout, err))
		}
		return dtx.Uncertain(fmt.Errorf("brokertransport: publish to %s: %w", topic, err))
	}
	select {
	case r := <-ch:
		return classify(r)
	case <-ctx.Done():
		t.timeouts.Add(1)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return dtx.Uncertain(fmt.Errorf("brokertransport: no reply from %s within %v", topic, timeout))
		}
		return dtx.Uncertain(fmt.Errorf("brokertransport: waiting for a reply from %s: %w", topic, ctx.Err()))
	case <-t.closed:
		return dtx.Uncertain(fmt.Errorf("brokertransport: waiting for a reply from %s: %w", topic, broker.ErrClosed))
	}
}

// classify maps a reply to an outcome, like an HTTP answer.
func classify(r reply) dtx.Outcome {
	code, err := strconv.Atoi(r.status)
	if err != nil || code < 100 || code > 999 {
		return dtx.Uncertain(fmt.Errorf("brokertransport: reply with malformed %s %q", HeaderStatus, r.status))
	}
	switch httptransport.Classify(code) {
	case dtx.Success:
		return dtx.Succeeded(r.body)
	case dtx.Failure:
		return dtx.Failed(&httptransport.StatusError{Code: code, Detail: httptransport.Detail(r.body)})
	default:
		return dtx.Uncertain(&httptransport.StatusError{Code: code, Detail: httptransport.Detail(r.body)})
	}
}

// onReply hands a reply to the call waiting for it, or drops it.
func (t *Transport) onReply(_ context.Context, d broker.Delivery) error {
	id := d.Headers[broker.HeaderCausationID]
	t.mu.Lock()
	ch, ok := t.waiting[id]
	if ok {
		delete(t.waiting, id) // a second reply (redelivered command) is late
	}
	t.mu.Unlock()
	if !ok {
		t.late.Add(1)
		t.log.Debug("late reply dropped", "command", id, "status", d.Headers[HeaderStatus])
		return nil
	}
	t.replies.Add(1)
	ch <- reply{status: d.Headers[HeaderStatus], body: d.Payload}
	return nil
}
