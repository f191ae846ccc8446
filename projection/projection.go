package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/internal/backoff"
)

// DefaultTable is the checkpoint table used when Config.Table is empty.
const DefaultTable = "dtx_projections"

// MaxNameLen bounds the length in bytes of a projection's name.
const MaxNameLen = 255

// ErrInvalid is returned (wrapped) by New for an incomplete Config and by
// Rebuild when Config.Reset is nil.
var ErrInvalid = errors.New("projection: invalid configuration")

// Source is where a Runner reads events: *eventstore.Store implements it.
// ReadAll must return the events after a position in position order,
// without skipping any that commits later (the event store guarantees it).
type Source interface {
	ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error)
	Head(ctx context.Context) (int64, error)
}

// Config configures a Runner.
type Config struct {
	// Name identifies the projection (its checkpoint row); required.
	Name string
	// Source is the event store; required.
	Source Source
	// DB is the query side's database, which may be another database, or
	// another product, than the event store's; required.
	DB *sql.DB
	// Dialect is DB's SQL flavour.
	Dialect appdb.Dialect
	// Table is the checkpoint table (default DefaultTable), optionally
	// schema-qualified.
	Table string
	// Apply updates the query model for one event inside tx, the
	// transaction that also advances the checkpoint; required. It must
	// write only through tx. An error rolls the whole batch back.
	Apply func(ctx context.Context, tx *sql.Tx, e eventstore.Event) error
	// Reset empties the query model inside tx, for Rebuild.
	Reset func(ctx context.Context, tx *sql.Tx) error
	// BatchSize bounds the events applied per transaction (default 100).
	BatchSize int
	// PollInterval is how long Run waits for new events when caught up,
	// unless Notify wakes it first (default 500ms).
	PollInterval time.Duration
	// RetryMin and RetryMax bound the backoff after a failed batch
	// (defaults 100ms and 10s).
	RetryMin, RetryMax time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Runner keeps one projection up to date: it reads events after its
// checkpoint from the Source and applies each batch to the query model in
// one transaction of the query database together with the new checkpoint,
// so that every event takes effect exactly once, whatever crashes. Several
// Runners of the same Name (one per process) may run at once: they take
// turns on the checkpoint row.
type Runner struct {
	cfg    Config
	q      queries
	wake   chan struct{}
	active atomic.Bool

	applied, failures atomic.Int64
	lastErr           atomic.Pointer[string]
}

type queries struct {
	schema                       []string
	ensure, read, lock, set, now string
}

// New validates cfg and returns a Runner. Call Migrate before Run.
func New(cfg Config) (*Runner, error) {
	switch {
	case cfg.Name == "" || len(cfg.Name) > MaxNameLen:
		return nil, fmt.Errorf("%w: Name must have 1 to %d bytes", ErrInvalid, MaxNameLen)
	case cfg.Source == nil:
		return nil, fmt.Errorf("%w: no Source", ErrInvalid)
	case cfg.DB == nil:
		return nil, fmt.Errorf("%w: no DB", ErrInvalid)
	case cfg.Apply == nil:
		return nil, fmt.Errorf("%w: no Apply", ErrInvalid)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(10*time.Second, cfg.RetryMin)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	q, err := buildQueries(cfg.Dialect, cfg.Table)
	if err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, q: q, wake: make(chan struct{}, 1)}, nil
}

func buildQueries(d appdb.Dialect, table string) (queries, error) {
	if table == "" {
		table = DefaultTable
	}
	t, err := appdb.ParseTable(table, 0)
	if err != nil {
		return queries{}, fmt.Errorf("projection: %w", err)
	}
	var schema []string
	var ensure, forUpdate string
	switch d {
	case appdb.SQLite:
		schema = []string{`CREATE TABLE IF NOT EXISTS {table} (
	name       TEXT    PRIMARY KEY,
	position   INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
)`}
		ensure = `INSERT INTO {table} (name, position, updated_at) VALUES (?, 0, {now}) ON CONFLICT DO NOTHING`
	case appdb.Postgres:
		schema = []string{`SELECT pg_advisory_xact_lock(7418880017520716358)`, `CREATE TABLE IF NOT EXISTS {table} (
	name       TEXT   PRIMARY KEY,
	position   BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
)`}
		ensure = `INSERT INTO {table} (name, position, updated_at) VALUES (?, 0, {now}) ON CONFLICT DO NOTHING`
		forUpdate = " FOR UPDATE"
	case appdb.MySQL:
		schema = []string{`CREATE TABLE IF NOT EXISTS {table} (
	name       VARBINARY(255) NOT NULL PRIMARY KEY,
	position   BIGINT         NOT NULL,
	updated_at BIGINT         NOT NULL
) ENGINE=InnoDB`}
		ensure = `INSERT IGNORE INTO {table} (name, position, updated_at) VALUES (?, 0, {now})`
		forUpdate = " FOR UPDATE"
	default:
		return queries{}, fmt.Errorf("projection: unsupported dialect %v", d)
	}
	x := func(s string) string { return d.Rebind(d.Expand(t, s)) }
	q := queries{
		ensure: x(ensure),
		read:   x(`SELECT position FROM {table} WHERE name = ?`),
		lock:   x(`SELECT position FROM {table} WHERE name = ?` + forUpdate),
		set:    x(`UPDATE {table} SET position = ?, updated_at = {now} WHERE name = ?`),
	}
	for _, s := range schema {
		q.schema = append(q.schema, d.Expand(t, s))
	}
	return q, nil
}

// Migrate creates the checkpoint table if it does not exist and this
// projection's checkpoint (position 0) if it has none. It is safe to call
// on every start.
func (r *Runner) Migrate(ctx context.Context) error {
	if err := appdb.Migrate(ctx, appdb.FromSQL(r.cfg.DB), r.q.schema); err != nil {
		return fmt.Errorf("projection: migrate: %w", err)
	}
	if _, err := r.cfg.DB.ExecContext(ctx, r.q.ensure, r.cfg.Name); err != nil {
		return fmt.Errorf("projection: create checkpoint: %w", err)
	}
	return nil
}

// Checkpoint returns the position of the last event applied.
func (r *Runner) Checkpoint(ctx context.Context) (int64, error) {
	var p int64
	if err := r.cfg.DB.QueryRowContext(ctx, r.q.read, r.cfg.Name).Scan(&p); err != nil {
		return 0, fmt.Errorf("projection %s: read checkpoint: %w", r.cfg.Name, err)
	}
	return p, nil
}

// Step applies the next batch of events after the checkpoint, if any, and
// returns how many it applied (0 when caught up). Run calls it in a loop;
// tests and tools may call it directly. If Apply fails, nothing of the
// batch is kept and the error is returned.
func (r *Runner) Step(ctx context.Context) (int, error) {
	for {
		n, moved, err := r.step(ctx)
		if !moved || err != nil {
			return n, err
		}
		// Another runner of this projection (or a Rebuild) moved the
		// checkpoint since we read it: read again.
	}
}

// step is one attempt of Step; moved reports that the checkpoint changed
// between reading it and locking it, and nothing was applied.
func (r *Runner) step(ctx context.Context) (n int, moved bool, err error) {
	cp, err := r.Checkpoint(ctx)
	if err != nil {
		return 0, false, err
	}
	evs, err := r.cfg.Source.ReadAll(ctx, cp, r.cfg.BatchSize)
	if err != nil {
		return 0, false, fmt.Errorf("projection %s: read events: %w", r.cfg.Name, err)
	}
	if len(evs) == 0 {
		return 0, false, nil
	}
	tx, err := r.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, fmt.Errorf("projection %s: begin: %w", r.cfg.Name, err)
	}
	defer tx.Rollback()
	var locked int64
	if err := tx.QueryRowContext(ctx, r.q.lock, r.cfg.Name).Scan(&locked); err != nil {
		return 0, false, fmt.Errorf("projection %s: lock checkpoint: %w", r.cfg.Name, err)
	}
	if locked != cp {
		return 0, true, nil
	}
	for _, e := range evs {
		if err := r.cfg.Apply(ctx, tx, e); err != nil {
			return 0, false, fmt.Errorf("projection %s: apply %s at position %d: %w", r.cfg.Name, e.Type, e.Position, err)
		}
	}
	if _, err := tx.ExecContext(ctx, r.q.set, evs[len(evs)-1].Position, r.cfg.Name); err != nil {
		return 0, false, fmt.Errorf("projection %s: save checkpoint: %w", r.cfg.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, false, fmt.Errorf("projection %s: commit: %w", r.cfg.Name, err)
	}
	r.applied.Add(int64(len(evs)))
	return len(evs), false, nil
}

// ErrRunning is returned by Run while the same Runner is already running.
var ErrRunning = errors.New("projection: runner already running")

// Run applies events until ctx is done, then returns nil. When caught up it
// waits PollInterval or until Notify. A failed batch (Apply, either
// database) is logged, counted in Stats and retried with backoff: an event
// that Apply always refuses stops the projection there, visibly in Lag and
// Stats, until it is fixed. A batch interrupted by the cancellation rolls
// back and is applied by the next Run.
func (r *Runner) Run(ctx context.Context) error {
	if !r.active.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.active.Store(false)
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-timer.C:
		}
		var wait time.Duration
		for {
			n, err := r.Step(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				failures++
				r.failures.Add(1)
				msg := err.Error()
				r.lastErr.Store(&msg)
				wait = backoff.Delay(r.cfg.RetryMin, r.cfg.RetryMax, failures)
				r.cfg.Logger.Warn("projection batch failed", "projection", r.cfg.Name, "err", err, "retry_in", wait)
				break
			}
			failures = 0
			if n == 0 {
				wait = r.cfg.PollInterval
				break
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// Notify wakes a waiting Run to look for new events at once (for example
// after a local append). It never blocks.
func (r *Runner) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Rebuild resets the projection to position 0 in one transaction of the
// query database: Config.Reset empties the query model and the checkpoint
// goes back to 0, so that the runner applies every event again from the
// first. A running Runner picks it up at its next batch.
func (r *Runner) Rebuild(ctx context.Context) error {
	if r.cfg.Reset == nil {
		return fmt.Errorf("%w: Rebuild needs Reset", ErrInvalid)
	}
	tx, err := r.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("projection %s: begin: %w", r.cfg.Name, err)
	}
	defer tx.Rollback()
	var cp int64
	if err := tx.QueryRowContext(ctx, r.q.lock, r.cfg.Name).Scan(&cp); err != nil {
		return fmt.Errorf("projection %s: lock checkpoint: %w", r.cfg.Name, err)
	}
	if err := r.cfg.Reset(ctx, tx); err != nil {
		return fmt.Errorf("projection %s: reset: %w", r.cfg.Name, err)
	}
	if _, err := tx.ExecContext(ctx, r.q.set, 0, r.cfg.Name); err != nil {
		return fmt.Errorf("projection %s: reset checkpoint: %w", r.cfg.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("projection %s: commit: %w", r.cfg.Name, err)
	}
	r.Notify()
	return nil
}

// Lag is how far a projection is behind the event store.
type Lag struct {
	// Head is the event store's last position, Checkpoint the last one
	// applied, Events their difference.
	Head, Checkpoint, Events int64
	// Behind is how long ago the oldest event not yet applied was
	// recorded (by the event store's database clock, compared with the
	// local clock); 0 when caught up.
	Behind time.Duration
}

// Lag reports how far the projection is behind.
func (r *Runner) Lag(ctx context.Context) (Lag, error) {
	cp, err := r.Checkpoint(ctx)
	if err != nil {
		return Lag{}, err
	}
	head, err := r.cfg.Source.Head(ctx)
	if err != nil {
		return Lag{}, fmt.Errorf("projection %s: head: %w", r.cfg.Name, err)
	}
	l := Lag{Head: head, Checkpoint: cp, Events: max(0, head-cp)}
	if l.Events > 0 {
		next, err := r.cfg.Source.ReadAll(ctx, cp, 1)
		if err != nil {
			return Lag{}, fmt.Errorf("projection %s: read events: %w", r.cfg.Name, err)
		}
		if len(next) > 0 {
			l.Behind = max(0, time.Since(next[0].RecordedAt))
		}
	}
	return l, nil
}

// Stats counts what Run did.
type Stats struct {
	// Applied counts events applied by this Runner.
	Applied int64
	// Failures counts failed batches; LastError is the latest one.
	Failures  int64
	LastError string
}

// Stats returns the runner's counters.
func (r *Runner) Stats() Stats {
	s := Stats{Applied: r.applied.Load(), Failures: r.failures.Load()}
	if p := r.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	return s
}
