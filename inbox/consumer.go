package inbox

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker"
)

// DefaultMaxAttempts is Consumer.MaxAttempts when zero.
const DefaultMaxAttempts = 5

// maxErrorLen bounds the error text stored with a dead letter.
const maxErrorLen = 2000

// DeadLetter is a message a Consumer gave up on.
type DeadLetter struct {
	// Group is the consumer group.
	Group string
	// Message is the message as delivered.
	Message broker.Message
	// Error is the text of the last error (truncated to 2000 bytes).
	Error string
	// Attempts is the delivery attempt that gave up (1 for a permanent
	// error on first delivery).
	Attempts int
	// Time is when the message was dead-lettered (database clock).
	Time time.Time
}

// DeadLetterParams is passed to Consumer.OnDeadLetter.
type DeadLetterParams struct {
	// Tx is the transaction recording the dead letter; writes through it
	// (an outbox message announcing the failure, say) commit with it.
	Tx *sql.Tx
	// Group is the consumer group.
	Group string
	// Delivery is the message given up on.
	Delivery broker.Delivery
	// Err is the error of the last attempt.
	Err error
}

// Consumer is an idempotent message handler with dead letters, for one
// consumer group. Its Handle method is a broker.Handler:
//
//	c := inbox.Consumer{Inbox: in, DB: db, Group: "inventory", Process: reserveStock}
//	sub, err := brk.Subscribe(ctx, "orders", c.Group, c.Handle)
//
// Each delivery runs Process through Inbox.Handle, so a message takes
// effect at most once per group. A failing delivery is counted in the
// attempts table of DB (see Inbox.CountFailure: the count survives a
// restart of the consumer, which the broker's own Delivery.Attempt does not
// on every broker) and returned to the broker for redelivery, after
// RetryDelay, until its attempt number (the larger of that count and
// broker.Delivery.Attempt) reaches MaxAttempts; then, or at once for an
// error marked dtx.Permanent, the message is recorded in the dead-letter
// table of DB and acknowledged, so that one bad message does not block
// those behind it (on Kafka, its partition) for longer. Dead letters are
// listed with DeadLetters and either replayed (Replay) once the cause is
// fixed, or discarded (Discard).
//
// A dead-lettered message counts as handled: its inbox record is written
// with the dead letter, so redeliveries of it are ignored until it is
// replayed. The fields must not be changed while the consumer is in use.
type Consumer struct {
	// Inbox holds the dialect and table names.
	Inbox Inbox
	// DB is the consumer's database; required.
	DB *sql.DB
	// Group is the consumer group name (at most MaxIDLen bytes); required.
	Group string
	// Process applies one message; its writes must go through tx. It is
	// called at most once per message that takes effect (again only after
	// a failure rolled its writes back). Return an error wrapped with
	// dtx.Permanent for a message that can never succeed (malformed, say):
	// it is dead-lettered without further attempts. Required.
	Process func(ctx context.Context, tx *sql.Tx, d broker.Delivery) error
	// MaxAttempts is the delivery attempt at which a failing message is
	// dead-lettered (default 5; 1 dead-letters on the first failure).
	MaxAttempts int
	// RetryDelay is the least time between a failed attempt and the next:
	// Handle waits this long (or until ctx is done) before returning the
	// error that makes the broker redeliver, on top of the broker's own
	// redelivery delay. Zero (the default) leaves the delay to the broker.
	RetryDelay time.Duration
	// OnDeadLetter, if set, is called inside the transaction that records
	// a dead letter, before it commits; an error aborts the recording (the
	// delivery then fails and is redelivered).
	OnDeadLetter func(ctx context.Context, p DeadLetterParams) error
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// TracerProvider records a consumer span ("dtx.inbox <topic>") per
	// delivery, a child of the span whose context the message carries in
	// its traceparent header (as package outbox writes it). Default
	// otel.GetTracerProvider(), a no-op until the application installs one.
	TracerProvider trace.TracerProvider
}

func (c Consumer) check() error {
	var errs []error
	if c.DB == nil {
		errs = append(errs, errors.New("inbox: Consumer.DB is nil"))
	}
	if c.Process == nil {
		errs = append(errs, errors.New("inbox: Consumer.Process is nil"))
	}
	if c.Group == "" || len(c.Group) > MaxIDLen {
		errs = append(errs, fmt.Errorf("inbox: Consumer.Group %q: need 1 to %d bytes", c.Group, MaxIDLen))
	}
	if c.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("inbox: negative Consumer.MaxAttempts %d", c.MaxAttempts))
	}
	if c.RetryDelay < 0 {
		errs = append(errs, fmt.Errorf("inbox: negative Consumer.RetryDelay %v", c.RetryDelay))
	}
	if _, err := c.Inbox.queries(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c Consumer) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// Handle processes one delivery; it is a broker.Handler. It returns nil
// when the message took effect, was a duplicate, or was dead-lettered, and
// the error otherwise (the broker redelivers). A misconfigured Consumer
// returns its configuration error for every delivery.
//
// Each delivery is recorded as an OpenTelemetry consumer span (see
// Consumer.TracerProvider) that continues the trace of the message's
// traceparent header; Process runs with it in its context.
func (c Consumer) Handle(ctx context.Context, d broker.Delivery) error {
	if err := c.check(); err != nil {
		return err
	}
	ctx, span := c.startSpan(ctx, d)
	outcome, err := c.handle(ctx, d)
	endSpan(span, outcome, err)
	if outcome == outcomeDeadLettered {
		return nil // recorded as handled; err was its cause
	}
	return err
}

// handle is Handle's work; outcome is how the delivery ended (see endSpan)
// and err the error of a failed or dead-lettered one.
func (c Consumer) handle(ctx context.Context, d broker.Delivery) (outcome string, _ error) {
	err := c.Inbox.Handle(ctx, c.DB, d, c.Group, func(tx *sql.Tx) error {
		if err := c.Process(ctx, tx, d); err != nil {
			return err
		}
		return c.Inbox.clearFailures(ctx, tx, c.Group, d.ID)
	})
	if err == nil {
		return outcomeProcessed, nil
	}
	if ctx.Err() != nil {
		return outcomeFailed, err
	}
	maxAttempts := c.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = DefaultMaxAttempts
	}
	attempt := d.Attempt
	if !dtx.IsPermanent(err) {
		// Count the failure where a restart does not reset it. If that
		// fails too (the database is down, say), the broker's number
		// still bounds the attempts.
		n, cerr := c.Inbox.CountFailure(ctx, c.DB, c.Group, d.ID)
		if cerr != nil && ctx.Err() == nil {
			c.logger().WarnContext(ctx, "inbox: count failed delivery", "group", c.Group, "msg_id", d.ID, "err", cerr)
		}
		attempt = max(attempt, n)
		if attempt < maxAttempts {
			c.wait(ctx)
			return outcomeFailed, err
		}
	}
	if dlErr := c.deadLetter(ctx, d, attempt, err); dlErr != nil {
		return outcomeFailed, errors.Join(err, dlErr)
	}
	c.logger().WarnContext(ctx, "inbox: message dead-lettered",
		"group", c.Group, "msg_id", d.ID, "topic", d.Topic, "attempt", attempt, "err", err)
	return outcomeDeadLettered, err
}

// wait sleeps RetryDelay or until ctx is done.
func (c Consumer) wait(ctx context.Context) {
	if c.RetryDelay <= 0 {
		return
	}
	t := time.NewTimer(c.RetryDelay)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// deadLetterID is the id d is recorded under: its own, or for a message
// whose id the inbox cannot store, a stable digest of its content (so
// that redeliveries of it still collapse into one dead letter).
func deadLetterID(d broker.Delivery) string {
	if d.ID != "" && len(d.ID) <= MaxIDLen {
		return d.ID
	}
	h := sha256.New()
	for _, s := range []string{d.ID, d.Topic, d.Key, string(d.Payload)} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return "invalid-id-" + hex.EncodeToString(h.Sum(nil))
}

// deadLetter records d as a dead letter together with its inbox record.
func (c Consumer) deadLetter(ctx context.Context, d broker.Delivery, attempt int, cause error) error {
	q, err := c.Inbox.queries()
	if err != nil {
		return err
	}
	id := deadLetterID(d)
	headers := []byte("{}")
	if len(d.Headers) > 0 {
		if headers, err = json.Marshal(d.Headers); err != nil {
			return fmt.Errorf("inbox: encode headers of %s: %w", id, err)
		}
	}
	payload := d.Payload
	if payload == nil {
		payload = []byte{}
	}
	tx, err := c.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("inbox: dead-letter %s: begin: %w", id, err)
	}
	defer tx.Rollback()
	first, err := c.Inbox.Claim(ctx, tx, c.Group, id)
	if err != nil {
		return fmt.Errorf("inbox: dead-letter %s: %w", id, err)
	}
	if !first {
		return nil // processed (or dead-lettered) by a concurrent delivery
	}
	if _, err := tx.ExecContext(ctx, q.addDead, c.Group, id, d.Topic, d.Key, string(headers), payload,
		truncate(cause.Error(), maxErrorLen), attempt); err != nil {
		return fmt.Errorf("inbox: dead-letter %s: %w", id, err)
	}
	if err := c.Inbox.clearFailures(ctx, tx, c.Group, id); err != nil {
		return fmt.Errorf("inbox: dead-letter %s: %w", id, err)
	}
	if c.OnDeadLetter != nil {
		if err := c.OnDeadLetter(ctx, DeadLetterParams{Tx: tx, Group: c.Group, Delivery: d, Err: cause}); err != nil {
			return fmt.Errorf("inbox: dead-letter %s: OnDeadLetter: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("inbox: dead-letter %s: commit: %w", id, err)
	}
	return nil
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// scanDead reads one dead-letter row.
func scanDead(sc interface{ Scan(...any) error }, group string) (DeadLetter, error) {
	var (
		dl      = DeadLetter{Group: group}
		headers []byte
		created int64
	)
	if err := sc.Scan(&dl.Message.ID, &dl.Message.Topic, &dl.Message.Key, &headers, &dl.Message.Payload,
		&dl.Error, &dl.Attempts, &created); err != nil {
		return DeadLetter{}, err
	}
	if len(dl.Message.Payload) == 0 {
		dl.Message.Payload = nil
	}
	if len(headers) > 0 && string(headers) != "{}" {
		if err := json.Unmarshal(headers, &dl.Message.Headers); err != nil {
			return DeadLetter{}, fmt.Errorf("inbox: decode headers of dead letter %s: %w", dl.Message.ID, err)
		}
	}
	dl.Time = time.UnixMilli(created)
	return dl, nil
}

// DeadLetters returns the consumer group's dead letters, oldest first.
func (c Consumer) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	q, _ := c.Inbox.queries()
	rows, err := c.DB.QueryContext(ctx, q.listDead, c.Group)
	if err != nil {
		return nil, fmt.Errorf("inbox: list dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		dl, err := scanDead(rows, c.Group)
		if err != nil {
			return nil, fmt.Errorf("inbox: list dead letters: %w", err)
		}
		out = append(out, dl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inbox: list dead letters: %w", err)
	}
	return out, nil
}

// Replay runs Process again for the dead letter with message id id, in one
// transaction that also removes the dead letter, so that a replay takes
// effect at most once even if run concurrently. The delivery passed to
// Process has Attempt one more than the dead letter's. If Process fails,
// nothing changes and its error is returned (wrapped); an unknown id (or
// one replayed or discarded meanwhile) gives ErrNotFound.
func (c Consumer) Replay(ctx context.Context, id string) error {
	return c.remove(ctx, id, true)
}

// Discard deletes the dead letter with message id id without processing
// it; the message stays recorded as handled, so redeliveries of it are
// ignored. An unknown id gives ErrNotFound.
func (c Consumer) Discard(ctx context.Context, id string) error {
	return c.remove(ctx, id, false)
}

func (c Consumer) remove(ctx context.Context, id string, replay bool) error {
	if err := c.check(); err != nil {
		return err
	}
	q, _ := c.Inbox.queries()
	tx, err := c.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("inbox: begin: %w", err)
	}
	defer tx.Rollback()
	dl, err := scanDead(tx.QueryRowContext(ctx, q.getDead, c.Group, id), c.Group)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: group %s, message %s", ErrNotFound, c.Group, id)
	}
	if err != nil {
		return fmt.Errorf("inbox: read dead letter %s: %w", id, err)
	}
	// Deleting first claims the dead letter: a concurrent Replay or
	// Discard waits on the row and then finds it gone.
	res, err := tx.ExecContext(ctx, q.deleteDead, c.Group, id)
	if err != nil {
		return fmt.Errorf("inbox: delete dead letter %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("inbox: delete dead letter %s: %w", id, err)
	} else if n != 1 {
		return fmt.Errorf("%w: group %s, message %s", ErrNotFound, c.Group, id)
	}
	if replay {
		d := broker.Delivery{Message: dl.Message, Attempt: dl.Attempts + 1}
		if err := c.Process(ctx, tx, d); err != nil {
			return fmt.Errorf("inbox: replay %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("inbox: commit: %w", err)
	}
	return nil
}
