package outbox

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/internal/backoff"
)

// Publisher is what the relay needs from a broker: broker.Broker satisfies
// it, and tests can pass any fake.
//
// Publish must return nil only once every message is durably stored (an
// error may leave any subset stored; the relay publishes them again). It
// must return soon after ctx is done: the relay cancels ctx when its lease
// is about to run out, and only then can it guarantee that no other relay
// publishes at the same time.
type Publisher interface {
	Publish(ctx context.Context, msgs ...broker.Message) error
}

var _ Publisher = broker.Broker(nil)

// Defaults for RelayConfig.
const (
	DefaultBatchSize    = 100
	DefaultPollInterval = 500 * time.Millisecond
	DefaultLeaseTTL     = 15 * time.Second
	DefaultRetryBase    = 100 * time.Millisecond
	DefaultRetryMax     = 10 * time.Second
	// MaxBatchSize bounds RelayConfig.BatchSize.
	MaxBatchSize = 1000
)

// RelayConfig configures a Relay. Zero values take the defaults.
type RelayConfig struct {
	// BatchSize is the most rows read and published per cycle (default
	// 100, at most MaxBatchSize).
	BatchSize int
	// PollInterval is how long an idle relay waits before looking for new
	// rows (default 500ms); Notify cuts the wait short. A standby relay
	// tries to take the lease at the same interval.
	PollInterval time.Duration
	// LeaseTTL is how long the relay's lease lasts without renewal (default
	// 15s): a relay that dies is replaced after at most this. The holder
	// renews it about every LeaseTTL/3 and stops publishing, by cancelling
	// the Publish context, at 4/5 of it after its last renewal.
	LeaseTTL time.Duration
	// Owner names this relay in the lease table (default: host-pid). A
	// random suffix is always appended, so that two relays never mistake
	// each other's lease for their own.
	Owner string
	// Retention is how long published rows are kept (marked with
	// published_at) before being deleted. Zero (the default) deletes each
	// row as soon as it is published, which keeps the table as small as
	// the backlog; a positive retention keeps a recent history for
	// debugging and audits, purged about every min(Retention, 1 minute).
	Retention time.Duration
	// RetryBase and RetryMax bound the backoff after a failed publish or
	// database error (defaults 100ms, 10s): the delay doubles per
	// consecutive failure and is jittered.
	RetryBase, RetryMax time.Duration
	// MaxAttempts is how many failed publishes of one message the relay
	// allows before giving it up: the row leaves the outbox for its dead
	// letters, FAILED with the last error, and the messages behind it
	// (those of its key too) go on. Failures are counted in the database,
	// so a restart or a new lease holder goes on counting. Zero (the
	// default) retries until the broker takes the message, which is what a
	// broker outage needs; with a limit, an outage longer than the retries
	// take dead-letters the oldest messages. See Outbox.DeadLetters,
	// Outbox.Replay and Outbox.Discard.
	MaxAttempts int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *RelayConfig) setDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.Owner == "" {
		host, _ := os.Hostname()
		c.Owner = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.RetryBase == 0 {
		c.RetryBase = DefaultRetryBase
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every invalid field at once.
func (c RelayConfig) Validate() error {
	var errs []error
	if c.BatchSize < 0 || c.BatchSize > MaxBatchSize {
		errs = append(errs, fmt.Errorf("outbox: BatchSize %d out of range [1, %d]", c.BatchSize, MaxBatchSize))
	}
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("outbox: negative PollInterval %v", c.PollInterval))
	}
	if c.LeaseTTL < 0 || (c.LeaseTTL > 0 && c.LeaseTTL < 10*time.Millisecond) {
		errs = append(errs, fmt.Errorf("outbox: LeaseTTL %v below 10ms", c.LeaseTTL))
	}
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("outbox: negative Retention %v", c.Retention))
	}
	if c.RetryBase < 0 || c.RetryMax < 0 || (c.RetryMax > 0 && c.RetryBase > c.RetryMax) {
		errs = append(errs, fmt.Errorf("outbox: RetryBase %v, RetryMax %v: need 0 <= RetryBase <= RetryMax", c.RetryBase, c.RetryMax))
	}
	if c.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("outbox: negative MaxAttempts %d", c.MaxAttempts))
	}
	if len(c.Owner) > 200 {
		errs = append(errs, fmt.Errorf("outbox: Owner longer than 200 bytes"))
	}
	return errors.Join(errs...)
}

// Stats is a snapshot of a relay's counters.
type Stats struct {
	// Published counts messages published (a message published again after
	// a crash or a lost update is counted again).
	Published uint64
	// Failures counts failed Publish calls.
	Failures uint64
	// DBErrors counts failed database statements (lease, fetch, update).
	DBErrors uint64
	// GivenUp counts messages moved to the dead letters after
	// RelayConfig.MaxAttempts failed publishes.
	GivenUp uint64
	// Lag is the age of the oldest unpublished message when the relay last
	// looked (0 if there was none). Only the lease holder looks, so a
	// standby relay reports the value of its last tenure.
	Lag time.Duration
	// Leader reports whether the relay currently holds the lease.
	Leader bool
}

// Relay publishes the rows of an outbox table through a Publisher, oldest
// first, and marks them published (or deletes them, see
// RelayConfig.Retention).
//
// Guarantees:
//
//   - At least once: a row is marked only after Publish returned nil for
//     it; a crash in between publishes it again.
//   - Per-key order: messages with the same Topic and Key are published in
//     seq order, and a later one is never handed to the Publisher before
//     an earlier one was acknowledged. Each cycle publishes its batch in
//     rounds, round i holding the i-th message of every key (messages
//     without a Key go in the first round), one Publish call per round, and
//     stops at the first failed round; a partial failure can therefore
//     only duplicate a message, never reorder two of one key.
//   - One publisher at a time: a relay publishes only while it holds the
//     lease row of the outbox (timed with the database's clock), so several
//     relay processes may run for availability; a dead one's lease is
//     taken over after LeaseTTL.
//
// A Relay is safe for concurrent use; Run must not be called twice at once.
type Relay struct {
	db    *sql.DB
	ob    Outbox
	q     dialectSQL
	pub   Publisher
	cfg   RelayConfig
	log   *slog.Logger
	token string // owner written to the lease row
	wake  chan struct{}

	// Marking published rows runs beside the next cycle (see startMark);
	// these are used by Run's goroutine only.
	marking  map[int64]struct{} // published rows not yet marked: fetch skips them
	markSeqs []int64            // the rows of the mark in flight
	markDone chan error         // the mark in flight's result; nil if none
	found    int                // rows the last cycle read to publish
	// noRecheck turns the short looks after an empty wake-up off (tests
	// of the other wake-ups set it).
	noRecheck bool

	running   atomic.Bool
	published atomic.Uint64
	failures  atomic.Uint64
	dbErrors  atomic.Uint64
	givenUp   atomic.Uint64
	lag       atomic.Int64
	leader    atomic.Bool
}

// NewRelay returns a relay that publishes the rows of ob in db through pub.
// It checks cfg (see RelayConfig.Validate) and ob but touches neither the
// database nor pub; call ob.Migrate first, and then Run.
func NewRelay(db *sql.DB, ob Outbox, pub Publisher, cfg RelayConfig) (*Relay, error) {
	if db == nil || pub == nil {
		return nil, errors.New("outbox: NewRelay needs a database and a publisher")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	q, err := ob.queries()
	if err != nil {
		return nil, err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	token := cfg.Owner + "#" + hex.EncodeToString(b[:])
	return &Relay{
		db:      db,
		ob:      ob,
		q:       q,
		pub:     pub,
		cfg:     cfg,
		log:     cfg.Logger.With("component", "outbox.relay", "owner", token),
		token:   token,
		wake:    make(chan struct{}, 1),
		marking: map[int64]struct{}{},
	}, nil
}

// Owner returns the name this relay writes into the lease row.
func (r *Relay) Owner() string { return r.token }

// Notify wakes the relay to look for new rows now rather than at the end of
// its PollInterval; call it after committing a transaction that added
// messages. It never blocks; a relay that is backing off after a failure or
// does not hold the lease ignores it.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the relay's counters.
func (r *Relay) Stats() Stats {
	return Stats{
		Published: r.published.Load(),
		Failures:  r.failures.Load(),
		DBErrors:  r.dbErrors.Load(),
		GivenUp:   r.givenUp.Load(),
		Lag:       time.Duration(r.lag.Load()) * time.Millisecond,
		Leader:    r.leader.Load(),
	}
}

// Run publishes outbox rows until ctx is done, then gives up its lease (so
// that a standby relay takes over at once) and returns nil. Database and
// publish errors are logged, counted in Stats and retried with backoff;
// Run returns an error only if the relay is already running (ErrRunning).
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)
	defer r.release(ctx)
	defer r.finishMarks(ctx)
	defer register(r)()
	lctx, stopListening := context.WithCancel(ctx)
	var listening sync.WaitGroup
	listening.Go(func() { r.listen(lctx) })
	defer listening.Wait()
	defer stopListening()

	var (
		woken       bool          // the last wait ended on a wake-up
		recheck     time.Duration // the next short look after an empty wake-up
		leaseUntil  time.Time     // local time up to which we may publish
		failures    int           // consecutive failures, for the backoff
		nextPurge   time.Time
		ttl         = r.cfg.LeaseTTL
		renewMargin = ttl / 2 // renew when less than this is left
	)
	for ctx.Err() == nil {
		wait := r.cfg.PollInterval
		wakeable := true
		fail := func() {
			failures++
			wait = backoff.Delay(r.cfg.RetryBase, r.cfg.RetryMax, failures)
			wakeable = false
		}

		if time.Until(leaseUntil) < renewMargin {
			held, until, err := r.claim(ctx)
			switch {
			case err != nil:
				if ctx.Err() != nil {
					return nil
				}
				r.dbErrors.Add(1)
				r.log.WarnContext(ctx, "outbox relay: claim lease", "err", err)
				fail()
			case held && !r.leader.Load():
				r.log.InfoContext(ctx, "outbox relay: lease acquired")
			case !held && r.leader.Load():
				r.log.InfoContext(ctx, "outbox relay: lease lost")
			}
			r.leader.Store(held)
			leaseUntil = until
		}

		if r.leader.Load() && time.Now().Before(leaseUntil) {
			more, err := r.cycle(ctx, leaseUntil)
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				r.log.WarnContext(ctx, "outbox relay: publish", "err", err, "attempt", failures+1)
				fail()
			default:
				failures = 0
				switch {
				case more:
					wait = 0
				case r.found > 0:
					recheck = 0
				case (woken || recheck > 0) && !r.noRecheck:
					// Woken by Add before its commit, probably: look
					// again soon, less and less often.
					recheck = max(firstRecheck, 2*recheck)
					if recheck <= maxRecheck && recheck < wait {
						wait = recheck
					} else {
						recheck = 0
					}
				}
			}
			if r.cfg.Retention > 0 && time.Now().After(nextPurge) {
				nextPurge = time.Now().Add(min(r.cfg.Retention, time.Minute))
				if err := r.purge(ctx); err != nil && ctx.Err() == nil {
					r.dbErrors.Add(1)
					r.log.WarnContext(ctx, "outbox relay: purge published rows", "err", err)
				}
			}
			// Wake up in time to renew the lease.
			wait = max(0, min(wait, time.Until(leaseUntil)-renewMargin))
		}

		if wait <= 0 {
			continue
		}
		// Going idle: let the mark in flight commit first, so that the
		// table and Stats show what was published.
		if err := r.collectMark(true); err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "outbox relay: mark published rows", "err", err, "attempt", failures+1)
			fail()
		}
		var wake <-chan struct{}
		if wakeable && r.leader.Load() {
			wake = r.wake
		}
		t := time.NewTimer(wait)
		woken = false
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-wake:
			woken = true
			recheck = 0
		}
		t.Stop()
	}
	return nil
}

// claim takes or renews the lease. until is the local time up to which the
// relay may publish: the lease expires LeaseTTL after the database ran the
// update, which is after start, so stopping at start+4/5·TTL leaves a fifth
// of the TTL for clock-rate differences and for Publish to notice its
// cancelled context.
func (r *Relay) claim(ctx context.Context) (held bool, until time.Time, err error) {
	start := time.Now()
	ttl := r.cfg.LeaseTTL
	res, err := r.db.ExecContext(ctx, r.q.claim, r.token, ttl.Milliseconds(), r.token)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("outbox: claim lease: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, time.Time{}, fmt.Errorf("outbox: claim lease: %w", err)
	}
	if n != 1 {
		return false, time.Time{}, nil
	}
	return true, start.Add(ttl - ttl/5), nil
}

// release gives up the lease if this relay holds it.
func (r *Relay) release(ctx context.Context) {
	wasLeader := r.leader.Swap(false)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := r.db.ExecContext(ctx, r.q.release, r.token); err != nil {
		r.dbErrors.Add(1)
		if wasLeader {
			r.log.WarnContext(ctx, "outbox relay: release lease (a standby takes over after LeaseTTL)", "err", err)
		}
		return
	}
	if wasLeader {
		r.log.InfoContext(ctx, "outbox relay: lease released")
	}
}

// row is one outbox row as the relay reads it.
type row struct {
	seq       int64
	createdAt int64
	msg       broker.Message
}

// cycle publishes one batch of the oldest unpublished rows, stopping at
// the first failure or at until, and records the published ones. more
// reports a full batch (more rows are probably waiting).
func (r *Relay) cycle(ctx context.Context, until time.Time) (more bool, err error) {
	pctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	r.found = 0
	if err := r.collectMark(false); err != nil {
		return false, err
	}
	if r.markDone == nil && len(r.markSeqs) > 0 {
		// An earlier mark failed: retry it, even with nothing new to
		// publish, so that its rows leave the table.
		if err := r.startMark(ctx, nil); err != nil {
			return false, err
		}
	}
	fetched, now, err := r.fetch(pctx, r.cfg.BatchSize+len(r.marking))
	if err != nil {
		r.dbErrors.Add(1)
		return false, err
	}
	// Rows published in an earlier cycle whose mark is still running (or
	// failed and is to be retried) are not published again.
	rows := fetched[:0]
	for _, rw := range fetched {
		if _, ok := r.marking[rw.seq]; !ok {
			rows = append(rows, rw)
		}
	}
	r.found = len(rows)
	if len(rows) == 0 {
		r.lag.Store(0)
		return false, nil
	}
	r.lag.Store(max(0, now-rows[0].createdAt))

	var done []int64
	var perr error
	for _, round := range Rounds(rows, rowMessage) {
		if err := pctx.Err(); err != nil {
			perr = fmt.Errorf("outbox: lease about to expire: %w", err)
			break
		}
		msgs := make([]broker.Message, len(round))
		for i, rw := range round {
			msgs[i] = rw.msg
		}
		errs, err := r.publish(pctx, msgs)
		if err != nil {
			r.failures.Add(1)
			perr = fmt.Errorf("outbox: publish %d messages (first %s): %w", len(msgs), msgs[0].ID, err)
			if r.cfg.MaxAttempts == 0 || pctx.Err() != nil {
				// What the broker reported stored is done; the rest
				// (and the later messages of their keys) waits.
				for i, rw := range round {
					if errs != nil && errs[i] == nil {
						done = append(done, rw.seq)
					}
				}
				break
			}
			var stuck bool
			done, stuck = r.attribute(pctx, round, err, errs, done)
			if stuck {
				break
			}
			perr = nil // every failing message was given up: go on
			continue
		}
		for _, rw := range round {
			done = append(done, rw.seq)
		}
	}
	if len(done) > 0 {
		if err := r.startMark(ctx, done); err != nil {
			return false, errors.Join(perr, err)
		}
	}
	if perr != nil {
		return false, perr
	}
	return len(rows) == r.cfg.BatchSize, nil
}

// startMark marks the published rows done (and those of an earlier failed
// mark) in the background, so that the next cycle reads and publishes
// while the database commits the mark: the relay's cycle is then one read
// and one publish, not also a durable write. The rows stay in r.marking,
// which fetch skips, until their mark committed; per-key order is kept,
// since a row is in done only once the broker acknowledged it. At most one
// mark runs at a time: startMark first waits for the previous one. A crash
// before a mark commits publishes its rows again, as before (at least
// once).
func (r *Relay) startMark(ctx context.Context, done []int64) error {
	err := r.collectMark(true)
	seqs := append(slices.Clone(r.markSeqs), done...) // markSeqs: a failed mark's rows
	for _, s := range done {
		r.marking[s] = struct{}{}
	}
	r.markSeqs = seqs
	r.markDone = make(chan error, 1)
	// Record even if ctx is done: the messages are out, and recording them
	// saves duplicates after a restart.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	go func(ch chan<- error) {
		defer cancel()
		ch <- r.markPublished(mctx, seqs)
	}(r.markDone)
	return err
}

// collectMark takes the result of the mark in flight, waiting for it if
// wait is set (else only if it is over). Marked rows leave r.marking; after
// a failure they stay there and in r.markSeqs, for the next mark to retry,
// and the error is returned (the relay backs off).
func (r *Relay) collectMark(wait bool) error {
	if r.markDone == nil {
		return nil
	}
	var err error
	if wait {
		err = <-r.markDone
	} else {
		select {
		case err = <-r.markDone:
		default:
			return nil
		}
	}
	r.markDone = nil
	if err != nil {
		r.dbErrors.Add(1)
		return err
	}
	for _, s := range r.markSeqs {
		delete(r.marking, s)
	}
	r.published.Add(uint64(len(r.markSeqs)))
	r.markSeqs = nil
	return nil
}

// finishMarks waits for the mark in flight when Run ends and retries a
// failed one once, so that a stopping relay leaves no published row
// unmarked that it could mark.
func (r *Relay) finishMarks(ctx context.Context) {
	if err := r.collectMark(true); err == nil || len(r.markSeqs) == 0 {
		return
	}
	r.markDone = make(chan error, 1)
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	r.markDone <- r.markPublished(mctx, r.markSeqs)
	if err := r.collectMark(true); err != nil {
		r.log.WarnContext(ctx, "outbox relay: mark published rows (they are published again)", "rows", len(r.markSeqs), "err", err)
	}
}

// Rounds splits items (in publishing order) into publish rounds: round i
// holds the i-th item of each (topic, key) of msg(item), so that one
// Publish call never carries two messages of a key; items without a key
// all go in round 0. Publishing the rounds one after another, each only
// once the previous one was acknowledged, keeps per-key order. Both relays
// (this package's and outbox/pgtail's) publish this way.
func Rounds[T any](items []T, msg func(T) broker.Message) [][]T {
	type orderKey struct{ topic, key string }
	next := make(map[orderKey]int)
	var out [][]T
	for _, it := range items {
		i := 0
		if m := msg(it); m.Key != "" {
			k := orderKey{m.Topic, m.Key}
			i = next[k]
			next[k] = i + 1
		}
		for len(out) <= i {
			out = append(out, nil)
		}
		out[i] = append(out[i], it)
	}
	return out
}

func rowMessage(rw row) broker.Message { return rw.msg }

// fetch reads the oldest unpublished rows and the database clock.
func (r *Relay) fetch(ctx context.Context, limit int) ([]row, int64, error) {
	rs, err := r.db.QueryContext(ctx, r.q.fetch, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("outbox: read unpublished rows: %w", err)
	}
	defer rs.Close()
	var (
		out []row
		now int64
	)
	for rs.Next() {
		var (
			rw      row
			headers []byte
		)
		if err := rs.Scan(&rw.seq, &rw.msg.ID, &rw.msg.Topic, &rw.msg.Key, &headers, &rw.msg.Payload, &rw.createdAt, &now); err != nil {
			return nil, 0, fmt.Errorf("outbox: read unpublished rows: %w", err)
		}
		if len(rw.msg.Payload) == 0 {
			rw.msg.Payload = nil // drivers differ on empty BLOBs
		}
		if len(headers) > 0 && string(headers) != "{}" {
			if err := json.Unmarshal(headers, &rw.msg.Headers); err != nil {
				return nil, 0, fmt.Errorf("outbox: decode headers of row %d: %w", rw.seq, err)
			}
		}
		out = append(out, rw)
	}
	if err := rs.Err(); err != nil {
		return nil, 0, fmt.Errorf("outbox: read unpublished rows: %w", err)
	}
	return out, now, nil
}

// markPublished marks (or, without retention, deletes) the rows seqs.
func (r *Relay) markPublished(ctx context.Context, seqs []int64) error {
	head := r.q.deletePublished
	if r.cfg.Retention > 0 {
		head = r.q.markPublished
	}
	args := make([]any, len(seqs))
	for i, s := range seqs {
		args[i] = s
	}
	stmt := r.ob.Dialect.Rebind(head + appdb.List(len(seqs)) + ")")
	if _, err := r.db.ExecContext(ctx, stmt, args...); err != nil {
		return fmt.Errorf("outbox: mark %d rows published: %w", len(seqs), err)
	}
	if r.cfg.MaxAttempts > 0 {
		return r.clearFailures(ctx, args)
	}
	return nil
}

// purge deletes the published rows older than the retention, in bounded
// batches (see Outbox.Purge).
func (r *Relay) purge(ctx context.Context) error {
	_, err := r.ob.Purge(ctx, r.db, r.cfg.Retention, 0)
	return err
}

// publish publishes one round: through broker.BatchPublisher when the
// publisher has it, which keeps every acknowledgement of the round in
// flight at once and says which message failed (errs, nil if none did),
// else through Publish (errs nil). err is the first failure.
//
// Per-key order does not rest on the broker ordering a round's messages:
// a round holds at most one message per key, and the next round starts
// only once this one is acknowledged, so a key's next message is never
// published before its previous one is stored. A single ordered stream
// per key (NATS and Kafka keep the order of one connection's publishes)
// would allow more in flight, but after a failed acknowledgement its
// successors may already be stored, and publishing the failed one again
// would put it after them.
func (r *Relay) publish(ctx context.Context, msgs []broker.Message) (errs []error, err error) {
	bp, ok := r.pub.(broker.BatchPublisher)
	if !ok {
		return nil, r.pub.Publish(ctx, msgs...)
	}
	errs = bp.PublishBatch(ctx, msgs)
	if errs == nil {
		return nil, nil
	}
	if len(errs) != len(msgs) {
		return nil, fmt.Errorf("outbox: broker returned %d results for %d messages", len(errs), len(msgs))
	}
	for _, e := range errs {
		if e != nil {
			return errs, e
		}
	}
	return nil, nil
}

// attribute handles a failed round under RelayConfig.MaxAttempts: it finds
// which messages fail (from errs, the broker's per-message results, or by
// publishing a round of several one by one), adds
// those published to done, counts a failed attempt for each of the others
// and gives up those that reached MaxAttempts. stuck reports that a
// message is still to be retried (or that the database failed), so that
// the cycle stops and backs off.
func (r *Relay) attribute(ctx context.Context, round []row, err error, errs []error, done []int64) (_ []int64, stuck bool) {
	type failed struct {
		rw  row
		err error
	}
	var fails []failed
	if errs != nil { // the broker said which failed
		for i, rw := range round {
			if errs[i] != nil {
				fails = append(fails, failed{rw, errs[i]})
			} else {
				done = append(done, rw.seq)
			}
		}
	} else if len(round) == 1 {
		fails = append(fails, failed{round[0], err})
	} else {
		for _, rw := range round {
			if err := r.pub.Publish(ctx, rw.msg); err != nil {
				if ctx.Err() != nil {
					return done, true
				}
				fails = append(fails, failed{rw, err})
				continue
			}
			done = append(done, rw.seq)
		}
	}
	for _, f := range fails {
		n, err := r.ob.countFailure(ctx, r.db, f.rw.seq, f.err)
		if err != nil {
			r.dbErrors.Add(1)
			r.log.WarnContext(ctx, "outbox relay: count failed publish", "seq", f.rw.seq, "err", err)
			stuck = true
			continue
		}
		if n < r.cfg.MaxAttempts {
			stuck = true
			continue
		}
		if err := r.ob.giveUp(ctx, r.db, f.rw.seq, n, f.err); err != nil {
			r.dbErrors.Add(1)
			r.log.WarnContext(ctx, "outbox relay: give up message", "seq", f.rw.seq, "err", err)
			stuck = true
			continue
		}
		r.givenUp.Add(1)
		r.log.ErrorContext(ctx, "outbox relay: message FAILED, moved to the dead letters",
			"seq", f.rw.seq, "msg_id", f.rw.msg.ID, "topic", f.rw.msg.Topic, "attempts", n, "err", f.err)
	}
	return done, stuck
}
