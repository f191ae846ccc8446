package inbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx/broker"
)

// DefaultMaxBatch is the most deliveries a Batcher applies in one
// transaction when NewBatcher is given 0.
const DefaultMaxBatch = 64

// errBatchPanic is what the other members of a batch get when applying it
// panicked (the panic goes on in the goroutine that ran the batch).
var errBatchPanic = errors.New("inbox: a handler of the same batch panicked")

// Batcher is a broker.Handler that applies deliveries handed to it
// concurrently (a broker runs one handler per partition) in shared
// transactions: group commit for consumers. The first delivery to arrive
// is applied at once; those that arrive while a transaction is running
// queue, and the next transaction takes up to its maximum of them, so a
// busy consumer pays one commit (one fsync) for many messages while an
// idle one adds no delay. Each Handle returns only after the transaction
// holding its delivery committed, so the broker acknowledges a message
// only once its effects and its inbox record are durable.
//
// A batch's transaction records each message in the inbox and runs
// Consumer.Process for it, in arrival order; a duplicate (of an earlier
// delivery, or of another in the same batch) is skipped. If anything in
// the transaction fails, it is rolled back and each delivery of the batch
// is applied on its own, exactly as Consumer.Handle does (failure counting,
// retry delay, dead letters): a poison message fails (or is dead-lettered)
// alone and the others take effect. Process may thus run twice for a
// message, the first time in a rolled-back transaction, which its contract
// already allows.
//
// Use a Batcher only when Process is fine sharing its transaction with the
// Process calls of other messages: it writes only through tx, does not
// depend on being alone in it, and does not keep state outside the
// database that a rollback would not undo. Messages of one key stay in
// order, since the broker hands a key's next message over only after the
// previous one's Handle returned.
type Batcher struct {
	c   Consumer
	max int

	mu      sync.Mutex
	queue   []*batchItem // waiting deliveries; non-empty only while leading
	leading bool         // a goroutine is applying batches

	// stmts are the claim and clear statements prepared on the
	// consumer's DB, prepared by the first batch (see prepared).
	stmtsOnce sync.Once
	stmts     *batchStmts
}

// batchStmts are a Batcher's prepared statements. SQLite (modernc) parses
// a statement on every unprepared Exec: with group commit that parsing was
// the largest CPU cost of a batch after the commit itself (measured with
// dtx bench --pattern events --cpuprofile); database/sql keeps each
// statement prepared on every connection it was used on.
//
// Where the dialect can (SQLite, PostgreSQL), a batch claims all its
// messages in one statement and clears their failure counts in another,
// instead of two statements per message: on PostgreSQL each statement is
// a round trip, and those round trips were most of a batch's time.
type batchStmts struct {
	claim, clear *sql.Stmt
	// claimMany and clearMany take the batch's ids as a JSON array; nil
	// where the dialect has none (MySQL).
	claimMany, clearMany *sql.Stmt
}

func (s *batchStmts) close() {
	for _, st := range []*sql.Stmt{s.claim, s.clear, s.claimMany, s.clearMany} {
		if st != nil {
			st.Close()
		}
	}
}

// batchItem is one delivery waiting in (or taken from) a Batcher's queue.
type batchItem struct {
	ctx  context.Context // carries the delivery's span
	d    broker.Delivery
	span trace.Span
	res  chan batchResult // buffered: the leader never waits on it
}

// batchResult tells a waiting Handle its outcome, or that it now leads.
type batchResult struct {
	lead    bool
	outcome string
	err     error
}

// NewBatcher returns a Batcher applying the deliveries of c in
// transactions of up to maxBatch messages (0: DefaultMaxBatch).
func NewBatcher(c Consumer, maxBatch int) (*Batcher, error) {
	if maxBatch < 0 {
		return nil, fmt.Errorf("inbox: negative batch size %d", maxBatch)
	}
	if maxBatch == 0 {
		maxBatch = DefaultMaxBatch
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return &Batcher{c: c, max: maxBatch}, nil
}

// Consumer returns the consumer the Batcher applies deliveries with (for
// its dead letters, say).
func (b *Batcher) Consumer() Consumer { return b.c }

// Handle applies d, in a transaction shared with the deliveries arriving
// meanwhile; it is a broker.Handler and returns what Consumer.Handle would
// for d.
func (b *Batcher) Handle(ctx context.Context, d broker.Delivery) error {
	if checkIDs(b.c.Group, d.ID) != nil {
		return b.c.Handle(ctx, d) // dead-lettered under a digest, alone
	}
	it := &batchItem{d: d, res: make(chan batchResult, 1)}
	it.ctx, it.span = b.c.startSpan(ctx, d)

	b.mu.Lock()
	b.queue = append(b.queue, it)
	lead := !b.leading
	b.leading = true
	b.mu.Unlock()

	var r batchResult
	if !lead {
		r = <-it.res
	}
	if lead || r.lead {
		// it is the head of the queue: the batch lead takes includes it.
		r = b.lead(it)
	}
	endSpan(it.span, r.outcome, r.err)
	if r.outcome == outcomeDeadLettered {
		return nil
	}
	return r.err
}

// lead applies one batch from the head of the queue (which is self), hands
// the lead to the next waiting delivery, if any, and returns self's result.
func (b *Batcher) lead(self *batchItem) batchResult {
	b.mu.Lock()
	n := min(len(b.queue), b.max)
	batch := make([]*batchItem, n)
	copy(batch, b.queue)
	b.queue = b.queue[n:]
	b.mu.Unlock()

	results := make([]batchResult, len(batch))
	handedOver := false
	handOver := func() {
		handedOver = true
		b.mu.Lock()
		if len(b.queue) > 0 {
			b.queue[0].res <- batchResult{lead: true}
		} else {
			b.leading = false
			b.queue = nil
		}
		b.mu.Unlock()
	}
	defer func() {
		if p := recover(); p != nil {
			if !handedOver {
				handOver()
			}
			for _, it := range batch[1:] {
				it.res <- batchResult{outcome: outcomeFailed, err: errBatchPanic}
			}
			panic(p)
		}
	}()
	b.apply(batch, results)
	handOver()
	for i, it := range batch[1:] {
		it.res <- results[i+1]
	}
	return results[0]
}

// apply applies batch together, or one by one if that fails, and fills
// results.
func (b *Batcher) apply(batch []*batchItem, results []batchResult) {
	// A batch of one goes the same way (prepared statements); only if its
	// transaction fails is it applied as Consumer.Handle does.
	if b.together(batch) == nil {
		for i := range results {
			results[i] = batchResult{outcome: outcomeProcessed}
		}
		return
	}
	for i, it := range batch {
		outcome, err := b.c.handle(it.ctx, it.d)
		results[i] = batchResult{outcome: outcome, err: err}
	}
}

// prepared returns the Batcher's prepared statements, or nil if preparing
// them failed (the batch then runs the statements unprepared, and a real
// problem shows there).
func (b *Batcher) prepared(ctx context.Context) *batchStmts {
	b.stmtsOnce.Do(func() {
		q, err := b.c.Inbox.queries()
		if err != nil {
			return
		}
		aq, err := b.c.Inbox.attemptQueries()
		if err != nil {
			return
		}
		// Prepared for the Batcher's life, not for a delivery's.
		ctx := context.WithoutCancel(ctx)
		st := &batchStmts{}
		for _, p := range []struct {
			to *(*sql.Stmt)
			q  string
		}{{&st.claim, q.claim}, {&st.clear, aq.clear}, {&st.claimMany, q.claimMany}, {&st.clearMany, aq.clearMany}} {
			if p.q == "" {
				continue
			}
			if *p.to, err = b.c.DB.PrepareContext(ctx, p.q); err != nil {
				st.close()
				return
			}
		}
		b.stmts = st
	})
	return b.stmts
}

// claimIn is Inbox.Claim through the prepared statement, if any.
func (b *Batcher) claimIn(ctx context.Context, tx *sql.Tx, st *sql.Stmt, id string) (bool, error) {
	if st == nil {
		return b.c.Inbox.Claim(ctx, tx, b.c.Group, id)
	}
	res, err := st.ExecContext(ctx, b.c.Group, id)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil {
			return n == 1, nil
		}
	}
	return false, fmt.Errorf("inbox: claim %s/%s: %w", b.c.Group, id, err)
}

// clearIn is Inbox.clearFailures through the prepared statement, if any.
func (b *Batcher) clearIn(ctx context.Context, tx *sql.Tx, st *sql.Stmt, id string) error {
	if st == nil {
		return b.c.Inbox.clearFailures(ctx, tx, b.c.Group, id)
	}
	if _, err := st.ExecContext(ctx, b.c.Group, id); err != nil {
		return fmt.Errorf("inbox: clear failures of %s/%s: %w", b.c.Group, id, err)
	}
	return nil
}

// together applies batch in one transaction.
func (b *Batcher) together(batch []*batchItem) (err error) {
	c := b.c
	ctx := batch[0].ctx
	// Before BeginTx: preparing takes a connection of its own, and a pool
	// of one (SQLite) would otherwise wait for this transaction's.
	st := b.prepared(ctx)
	tx, err := c.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("inbox: begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if st != nil && st.claimMany != nil && st.clearMany != nil {
		err = b.applyAll(ctx, tx, st, batch)
	} else {
		err = b.applyEach(tx, st, batch)
	}
	if err != nil {
		return err
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("inbox: commit batch of %d: %w", len(batch), err)
	}
	return nil
}

// applyEach claims, processes and clears the batch's messages one by one,
// in order, in tx.
func (b *Batcher) applyEach(tx *sql.Tx, st *batchStmts, batch []*batchItem) error {
	// The transaction's views of the prepared statements (closed with it).
	var claimSt, clearSt *sql.Stmt
	if st != nil {
		ctx := batch[0].ctx
		claimSt, clearSt = tx.StmtContext(ctx, st.claim), tx.StmtContext(ctx, st.clear)
	}
	for _, it := range batch {
		first, err := b.claimIn(it.ctx, tx, claimSt, it.d.ID)
		if err != nil {
			return err
		}
		if !first {
			continue
		}
		if err := b.c.Process(it.ctx, tx, it.d); err != nil {
			return err
		}
		if err := b.clearIn(it.ctx, tx, clearSt, it.d.ID); err != nil {
			return err
		}
	}
	return nil
}

// applyAll claims the batch's messages in one statement, processes those
// it claimed in order (a second delivery of one id in the batch is a
// duplicate), and clears their failure counts in one statement, in tx.
// Within the transaction this is the same as applyEach: nothing else sees
// the claims before the commit.
func (b *Batcher) applyAll(ctx context.Context, tx *sql.Tx, st *batchStmts, batch []*batchItem) error {
	ids := make([]string, len(batch))
	for i, it := range batch {
		ids[i] = it.d.ID
	}
	// Claimed in sorted order: two batches that share ids (a redelivery
	// racing its original in another member) take their row locks in the
	// same order, so they wait for each other instead of deadlocking.
	slices.Sort(ids)
	claimed, err := b.claimAll(ctx, tx, st.claimMany, ids)
	if err != nil {
		return fmt.Errorf("inbox: claim a batch of %d: %w", len(batch), err)
	}
	processed := ids[:0] // ids is not read again
	for _, it := range batch {
		if !claimed[it.d.ID] {
			continue
		}
		delete(claimed, it.d.ID)
		if err := b.c.Process(it.ctx, tx, it.d); err != nil {
			return err
		}
		processed = append(processed, it.d.ID)
	}
	if len(processed) == 0 {
		return nil
	}
	list, err := json.Marshal(processed)
	if err == nil {
		_, err = tx.StmtContext(ctx, st.clearMany).ExecContext(ctx, b.c.Group, string(list))
	}
	if err != nil {
		return fmt.Errorf("inbox: clear failures of a batch of %d: %w", len(processed), err)
	}
	return nil
}

// claimAll claims ids in tx with claimMany and returns those it claimed
// (not claimed before). The rows are closed before it returns: the
// transaction's connection runs Process next.
func (b *Batcher) claimAll(ctx context.Context, tx *sql.Tx, claimMany *sql.Stmt, ids []string) (map[string]bool, error) {
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	rows, err := tx.StmtContext(ctx, claimMany).QueryContext(ctx, b.c.Group, string(list))
	if err != nil {
		return nil, err
	}
	claimed := make(map[string]bool, len(ids))
	for rows.Next() {
		var id string
		if err = rows.Scan(&id); err != nil {
			break
		}
		claimed[id] = true
	}
	if err == nil {
		err = rows.Err()
	}
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return claimed, err
}

// queued returns the number of deliveries waiting for a transaction.
func (b *Batcher) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}
