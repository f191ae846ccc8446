package pgtail

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/internal/backoff"
	"github.com/dtxhq/dtx/outbox"
)

// Stats are a Relay's counters.
type Stats struct {
	// Published counts the messages the broker acknowledged (a message
	// published again after a crash counts again).
	Published uint64
	// Failures counts failed Publish calls (each is retried).
	Failures uint64
	// Errors counts lost or refused replication sessions and database
	// errors.
	Errors uint64
	// CleanMissed counts the times the statement that deletes (or marks)
	// published rows did not find one yet; each is tried again (see
	// cleanRetries).
	CleanMissed uint64
	// Streaming reports whether the relay holds its slot and streams now.
	Streaming bool
	// ConfirmedLSN is the last log position the relay confirmed to the
	// server ("" before the first).
	ConfirmedLSN string
	// RetainedBytes is the WAL the slot retained at the relay's last look
	// (every Config.StatusInterval); see SlotStatus.
	RetainedBytes int64
}

// Relay publishes the messages of an outbox table by tailing PostgreSQL's
// log (see the package documentation). It is safe for concurrent use;
// Run must not be called twice at once.
type Relay struct {
	dsn   string
	repl  *pgconn.Config // the replication connection's
	pub   outbox.Publisher
	cfg   Config
	table appdb.Table
	log   *slog.Logger

	db *sql.DB // set by Run

	running   atomic.Bool
	streaming atomic.Bool
	published atomic.Uint64
	failures  atomic.Uint64
	errors    atomic.Uint64
	missed    atomic.Uint64 // Stats.CleanMissed
	acked     atomic.Uint64 // LSN up to which every message was acknowledged
	confirmed atomic.Uint64 // LSN last sent to the server
	retained  atomic.Int64

	cleanMu sync.Mutex
	cleanQ  []int64 // seqs published, to delete or mark
	cleanCh chan struct{}
}

// New returns a relay that publishes the outbox rows of the database at
// dsn (a PostgreSQL URL or key=value string) through pub. It checks cfg
// and dsn but does not connect; Run does.
func New(dsn string, pub outbox.Publisher, cfg Config) (*Relay, error) {
	if pub == nil {
		return nil, errors.New("pgtail: New needs a publisher")
	}
	t, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	repl, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgtail: %w", err)
	}
	repl.RuntimeParams["replication"] = "database"
	return &Relay{
		dsn:     dsn,
		repl:    repl,
		pub:     pub,
		cfg:     cfg,
		table:   t,
		log:     cfg.Logger.With("component", "outbox.pgtail", "slot", cfg.Slot),
		cleanCh: make(chan struct{}, 1),
	}, nil
}

// Stats returns a snapshot of the relay's counters.
func (r *Relay) Stats() Stats {
	s := Stats{
		Published:     r.published.Load(),
		Failures:      r.failures.Load(),
		Errors:        r.errors.Load(),
		CleanMissed:   r.missed.Load(),
		Streaming:     r.streaming.Load(),
		RetainedBytes: r.retained.Load(),
	}
	if lsn := r.confirmed.Load(); lsn != 0 {
		s.ConfirmedLSN = pglogrepl.LSN(lsn).String()
	}
	return s
}

// Run creates the publication and the slot if they are missing and
// publishes the outbox's messages until ctx is done, then returns nil. A
// lost connection (PostgreSQL restarting, say), a slot held by another
// relay and broker errors are logged, counted in Stats and end the
// replication session; the relay reconnects after a backoff (at once if
// the session published something) and the server sends again what was
// not confirmed. Run returns an error only if the relay is already running
// (outbox.ErrRunning).
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return outbox.ErrRunning
	}
	defer r.running.Store(false)
	db, err := sql.Open("pgx", r.dsn)
	if err != nil {
		return fmt.Errorf("pgtail: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(4)
	r.db = db

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.clean(ctx) }()
	go func() { defer wg.Done(); r.monitor(ctx) }()
	defer wg.Wait()

	failures := 0
	for ctx.Err() == nil {
		before := r.published.Load()
		err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if r.published.Load() != before {
			failures = 0 // it got somewhere: reconnect at once
		}
		failures++
		r.errors.Add(1)
		r.log.WarnContext(ctx, "outbox tailing relay: session ended; reconnecting", "err", err, "attempt", failures)
		t := time.NewTimer(backoff.Delay(r.cfg.RetryBase, r.cfg.RetryMax, failures))
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return nil
}

// txn is one committed transaction of the stream: its outbox rows and
// the end of its commit record.
type txn struct {
	rows []row
	end  pglogrepl.LSN
}

// session streams from the slot until the connection or a publish fails,
// or ctx is done.
func (r *Relay) session(ctx context.Context) error {
	if err := r.setup(ctx); err != nil {
		return err
	}
	conn, err := pgconn.ConnectConfig(ctx, r.repl.Copy())
	if err != nil {
		return fmt.Errorf("pgtail: replication connection: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	err = pglogrepl.StartReplication(ctx, conn, r.cfg.Slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + r.cfg.Publication + "'"},
	})
	if err != nil {
		return fmt.Errorf("pgtail: start replication: %w", err)
	}
	r.streaming.Store(true)
	defer r.streaming.Store(false)
	r.log.InfoContext(ctx, "outbox tailing relay: streaming")

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	txs := make(chan txn, 64)
	readDone := make(chan error, 1)
	go func() {
		err := r.read(sctx, conn, txs)
		cancel()
		readDone <- err
	}()
	perr := r.publishLoop(sctx, txs)
	cancel()
	rerr := <-readDone
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(rerr, perr)
}

// read receives the stream, hands each committed transaction to out and
// reports the acknowledged position to the server every StatusInterval.
// It alone uses conn.
func (r *Relay) read(ctx context.Context, conn *pgconn.PgConn, out chan<- txn) error {
	type relation struct {
		outbox bool
		cols   columns
	}
	var (
		rels      = make(map[uint32]relation)
		cur       *txn
		delivered pglogrepl.LSN // end of the last transaction handed out
		idleEnd   pglogrepl.LSN // server's WAL end at a keepalive while idle
		next      = time.Now()
	)
	status := func() error {
		pos := pglogrepl.LSN(r.acked.Load())
		// With nothing outstanding, the log up to the last keepalive holds
		// nothing for us: confirm it, so the slot does not hold WAL that
		// other tables wrote.
		if cur == nil && pos >= delivered && idleEnd > pos {
			pos = idleEnd
		}
		next = time.Now().Add(r.cfg.StatusInterval)
		if pos == 0 {
			return nil
		}
		if err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: pos}); err != nil {
			return fmt.Errorf("pgtail: send status: %w", err)
		}
		r.confirmed.Store(uint64(pos))
		return nil
	}
	defer func() { _ = status() }() // best effort: the position so far

	deliver := func(t txn) error {
		delivered = t.end
		for {
			timer := time.NewTimer(time.Until(next))
			select {
			case out <- t:
				timer.Stop()
				return nil
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			case <-timer.C:
				if err := status(); err != nil {
					return err
				}
			}
		}
	}

	for {
		if !time.Now().Before(next) {
			if err := status(); err != nil {
				return err
			}
		}
		rctx, cancel := context.WithDeadline(ctx, next)
		msg, err := conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("pgtail: receive: %w", err)
		}
		var data []byte
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			data = m.Data
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("pgtail: stream: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone, *pgproto3.CommandComplete:
			return errors.New("pgtail: the server ended the stream (shutting down?)")
		default:
			return fmt.Errorf("pgtail: stream: unexpected message %T", msg)
		}
		if len(data) == 0 {
			continue
		}
		switch data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
			if err != nil {
				return fmt.Errorf("pgtail: keepalive: %w", err)
			}
			if cur == nil {
				idleEnd = max(idleEnd, pkm.ServerWALEnd)
			}
			if pkm.ReplyRequested {
				next = time.Now()
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(data[1:])
			if err != nil {
				return fmt.Errorf("pgtail: xlog data: %w", err)
			}
			lm, err := pglogrepl.Parse(xld.WALData)
			if err != nil {
				return fmt.Errorf("pgtail: decode: %w", err)
			}
			switch lm := lm.(type) {
			case *pglogrepl.RelationMessage:
				cols, ok, err := outboxColumns(lm, r.table)
				if err != nil {
					return err
				}
				rels[lm.RelationID] = relation{outbox: ok, cols: cols}
			case *pglogrepl.BeginMessage:
				cur = &txn{}
			case *pglogrepl.InsertMessage:
				rel, ok := rels[lm.RelationID]
				if !ok {
					return fmt.Errorf("pgtail: insert into unknown relation %d", lm.RelationID)
				}
				if !rel.outbox || cur == nil {
					continue
				}
				rw, err := decodeRow(rel.cols, lm.Tuple)
				if err != nil {
					return err
				}
				cur.rows = append(cur.rows, rw)
			case *pglogrepl.CommitMessage:
				if cur == nil {
					continue
				}
				cur.end = lm.TransactionEndLSN
				t := *cur
				if err := deliver(t); err != nil {
					return nil // ctx done
				}
				cur = nil
			}
		}
	}
}

// publishLoop publishes the unmarked rows of the table (backlog) and then
// the transactions of the stream, and records what the broker
// acknowledged, until ctx is done.
func (r *Relay) publishLoop(ctx context.Context, txs <-chan txn) error {
	skip, err := r.backlog(ctx)
	if err != nil {
		return err
	}
	for {
		var t txn
		select {
		case t = <-txs:
		case <-ctx.Done():
			return nil
		}
		var batch []row
		end := t.end
		add := func(rows []row) {
			for _, rw := range rows {
				if _, dup := skip[rw.seq]; dup {
					delete(skip, rw.seq) // published from the backlog already
					continue
				}
				batch = append(batch, rw)
			}
		}
		add(t.rows)
	drain:
		for len(batch) < r.cfg.BatchSize {
			select {
			case t = <-txs:
				add(t.rows)
				end = t.end
			default:
				break drain
			}
		}
		if err := r.publish(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		r.acked.Store(uint64(end))
	}
}

// backlog publishes the rows of the table that no relay marked published,
// in seq order, and returns their seqs.
//
// It reads them from one snapshot (REPEATABLE READ), taken after the
// stream started: a row the snapshot misses comes through the stream. A
// fresh snapshot per page would not do: seqs are drawn at insert, not at
// commit, so a later page could show a key's next row while its previous
// one, with a lower seq than the cursor, was still uncommitted at the
// earlier page (and would then be published after it, from the stream).
// Within one snapshot, a key's rows (committed one after another) are
// all visible or the later ones are not.
func (r *Relay) backlog(ctx context.Context) (map[int64]struct{}, error) {
	skip := make(map[int64]struct{})
	stmt := fmt.Sprintf(`SELECT seq, msg_id, topic, msg_key, headers::text, payload FROM %s
WHERE published_at IS NULL AND seq > $1 ORDER BY seq LIMIT $2`, r.table.Full)
	snap, err := r.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("pgtail: read unpublished rows: %w", err)
	}
	defer snap.Rollback()
	var after int64
	for {
		rows, err := r.fetch(ctx, snap, stmt, after)
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 {
			return skip, nil
		}
		if err := r.publish(ctx, rows); err != nil {
			return nil, err
		}
		for _, rw := range rows {
			skip[rw.seq] = struct{}{}
		}
		after = rows[len(rows)-1].seq
	}
}

func (r *Relay) fetch(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, stmt string, after int64) ([]row, error) {
	rs, err := q.QueryContext(ctx, stmt, after, r.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("pgtail: read unpublished rows: %w", err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var (
			rw      row
			headers string
		)
		if err := rs.Scan(&rw.seq, &rw.msg.ID, &rw.msg.Topic, &rw.msg.Key, &headers, &rw.msg.Payload); err != nil {
			return nil, fmt.Errorf("pgtail: read unpublished rows: %w", err)
		}
		if len(rw.msg.Payload) == 0 {
			rw.msg.Payload = nil
		}
		if headers != "" && headers != "{}" {
			if err := json.Unmarshal([]byte(headers), &rw.msg.Headers); err != nil {
				return nil, fmt.Errorf("pgtail: headers of row %d: %w", rw.seq, err)
			}
		}
		out = append(out, rw)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("pgtail: read unpublished rows: %w", err)
	}
	return out, nil
}

// publish hands rows (in order) to the publisher in chunks of BatchSize,
// each in rounds (round i holds the i-th message of every key, so one
// Publish call never carries two messages of a key). A failed round is
// retried with backoff; once it has failed for RetryMax, publish returns
// the error, which ends the session (see Run): holding the stream through
// a broker outage would keep PostgreSQL from shutting down, since a
// walsender waits for its client to confirm the whole log before it
// exits. The published rows are queued for cleaning.
func (r *Relay) publish(ctx context.Context, rows []row) error {
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), r.cfg.BatchSize)]
		rows = rows[len(chunk):]
		for _, round := range outbox.Rounds(chunk, rowMessage) {
			msgs := make([]broker.Message, len(round))
			for i, rw := range round {
				msgs[i] = rw.msg
			}
			var failingSince time.Time
			for failures := 0; ; {
				err := r.pub.Publish(ctx, msgs...)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.failures.Add(1)
				err = fmt.Errorf("pgtail: publish %d messages (first %s): %w", len(msgs), msgs[0].ID, err)
				if failures++; failures == 1 {
					failingSince = time.Now()
				}
				if time.Since(failingSince) >= r.cfg.RetryMax {
					return err
				}
				r.log.WarnContext(ctx, "outbox tailing relay: publish", "err", err, "attempt", failures)
				t := time.NewTimer(backoff.Delay(r.cfg.RetryBase, r.cfg.RetryMax, failures))
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
			r.published.Add(uint64(len(msgs)))
		}
		seqs := make([]int64, len(chunk))
		for i, rw := range chunk {
			seqs[i] = rw.seq
		}
		r.enqueueClean(seqs)
	}
	return nil
}

func rowMessage(rw row) broker.Message { return rw.msg }

func (r *Relay) enqueueClean(seqs []int64) {
	r.cleanMu.Lock()
	r.cleanQ = append(r.cleanQ, seqs...)
	r.cleanMu.Unlock()
	select {
	case r.cleanCh <- struct{}{}:
	default:
	}
}

// Rows the clean statement did not find are tried again: a commit the
// relay decoded can reach it before the inserting transaction is visible
// to other sessions (PostgreSQL flushes the commit record, which the
// walsender may send, before it ends the transaction in shared memory).
// A row still not found after cleanRetries tries is left (it was deleted
// or marked already, or the next start publishes it again).
const (
	cleanRetries    = 10
	cleanRetryFirst = 10 * time.Millisecond
	cleanRetryMax   = time.Second
)

// clean deletes (or, with Retention, marks) the rows published, off the
// publishing path, and purges old marked rows, until ctx is done.
func (r *Relay) clean(ctx context.Context) {
	var (
		del  = fmt.Sprintf(`DELETE FROM %s WHERE seq = ANY($1) RETURNING seq`, r.table.Full)
		mark = fmt.Sprintf(`UPDATE %s SET published_at = %s WHERE seq = ANY($1) AND published_at IS NULL RETURNING seq`,
			r.table.Full, appdb.Postgres.NowMillis())
		ob        = outbox.Outbox{Dialect: appdb.Postgres, Table: r.cfg.Table}
		nextPurge time.Time
		late      = map[int64]int{} // seqs not found yet, with their tries
		lateTimer = time.NewTimer(time.Hour)
	)
	lateTimer.Stop()
	defer lateTimer.Stop()
	stmt := del
	if r.cfg.Retention > 0 {
		stmt = mark
	}
	// apply runs stmt on seqs and returns those it did not find.
	apply := func(ctx context.Context, seqs []int64) []int64 {
		rows, err := r.db.QueryContext(ctx, stmt, seqs)
		if err == nil {
			found := make(map[int64]bool, len(seqs))
			for rows.Next() {
				var seq int64
				if err = rows.Scan(&seq); err != nil {
					break
				}
				found[seq] = true
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
			if err == nil {
				return slices.DeleteFunc(seqs, func(seq int64) bool { return found[seq] })
			}
		}
		// The rows stay unmarked: the next start publishes them again
		// (duplicates, never a loss).
		r.errors.Add(1)
		r.log.WarnContext(ctx, "outbox tailing relay: mark rows published", "err", err, "rows", len(seqs))
		return nil
	}
	flush := func(ctx context.Context) {
		r.cleanMu.Lock()
		seqs := r.cleanQ
		r.cleanQ = nil
		r.cleanMu.Unlock()
		prev := late
		late = map[int64]int{}
		for seq := range prev {
			seqs = append(seqs, seq)
		}
		tries := 0
		for len(seqs) > 0 {
			n := min(len(seqs), outbox.MaxBatchSize)
			for _, seq := range apply(ctx, seqs[:n]) {
				r.missed.Add(1)
				if t := prev[seq] + 1; t < cleanRetries {
					late[seq] = t
					tries = max(tries, t)
				}
			}
			seqs = seqs[n:]
		}
		if len(late) > 0 {
			lateTimer.Reset(min(cleanRetryFirst<<(tries-1), cleanRetryMax))
		}
		if r.cfg.Retention > 0 && time.Now().After(nextPurge) {
			nextPurge = time.Now().Add(min(r.cfg.Retention, time.Minute))
			if _, err := ob.Purge(ctx, r.db, r.cfg.Retention, 0); err != nil && ctx.Err() == nil {
				r.errors.Add(1)
				r.log.WarnContext(ctx, "outbox tailing relay: purge published rows", "err", err)
			}
		}
	}
	var purgeTick <-chan time.Time
	if r.cfg.Retention > 0 {
		t := time.NewTicker(min(r.cfg.Retention, time.Minute))
		defer t.Stop()
		purgeTick = t.C
	}
	// Cleaning goes on after ctx is done: the messages are out, and
	// recording them saves duplicates after a restart.
	detached := func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		flush(fctx)
	}
	for {
		select {
		case <-r.cleanCh:
			detached()
		case <-lateTimer.C:
			detached()
		case <-purgeTick:
			detached()
		case <-ctx.Done():
			detached()
			return
		}
	}
}

// monitor measures the WAL the slot retains every StatusInterval and
// warns above Config.AlertRetainedBytes.
func (r *Relay) monitor(ctx context.Context) {
	t := time.NewTicker(r.cfg.StatusInterval)
	defer t.Stop()
	for {
		if s, err := SlotStatus(ctx, r.db, r.cfg.Slot); err == nil {
			r.retained.Store(s.RetainedBytes)
			if r.cfg.AlertRetainedBytes > 0 && s.RetainedBytes > r.cfg.AlertRetainedBytes {
				r.log.WarnContext(ctx, "outbox tailing relay: the slot retains much WAL (is the broker down?)",
					"retained_bytes", s.RetainedBytes, "alert_bytes", r.cfg.AlertRetainedBytes)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
