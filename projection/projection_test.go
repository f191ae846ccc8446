package projection_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/internal/testdb"
	"github.com/dtxhq/dtx/projection"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChildPG) != "" {
		os.Exit(runChild())
	}
	pgtest.Main(m)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// cartModel is the query model of the tests: the quantity of each sku per
// cart, and a log of every application (no unique key, so that an event
// applied twice shows as two rows).
type cartModel struct {
	db *sql.DB
	d  appdb.Dialect
}

func (m cartModel) migrate(t *testing.T) {
	for _, s := range []string{
		`CREATE TABLE cart_items (cart VARCHAR(200) NOT NULL, sku VARCHAR(200) NOT NULL, qty INT NOT NULL, PRIMARY KEY (cart, sku))`,
		`CREATE TABLE applied_log (position BIGINT NOT NULL)`,
	} {
		_, err := m.db.ExecContext(ctxFor(t), s)
		require.NoError(t, err)
	}
}

func (m cartModel) apply(ctx context.Context, tx *sql.Tx, e eventstore.Event) error {
	if _, err := tx.ExecContext(ctx, m.d.Rebind(`INSERT INTO applied_log (position) VALUES (?)`), e.Position); err != nil {
		return err
	}
	delta := 0
	switch e.Type {
	case "ItemAdded":
		delta = 1
	case "ItemRemoved":
		delta = -1
	default:
		return nil
	}
	sku := string(e.Data)
	res, err := tx.ExecContext(ctx, m.d.Rebind(`UPDATE cart_items SET qty = qty + ? WHERE cart = ? AND sku = ?`), delta, e.Stream, sku)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	_, err = tx.ExecContext(ctx, m.d.Rebind(`INSERT INTO cart_items (cart, sku, qty) VALUES (?, ?, ?)`), e.Stream, sku, delta)
	return err
}

func (m cartModel) reset(ctx context.Context, tx *sql.Tx) error {
	for _, s := range []string{`DELETE FROM cart_items`, `DELETE FROM applied_log`} {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// items returns the model's non-zero quantities.
func (m cartModel) items(t *testing.T) map[string]int {
	rows, err := m.db.QueryContext(ctxFor(t), `SELECT cart, sku, qty FROM cart_items WHERE qty <> 0`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var cart, sku string
		var qty int
		require.NoError(t, rows.Scan(&cart, &sku, &qty))
		out[cart+"/"+sku] = qty
	}
	require.NoError(t, rows.Err())
	return out
}

// requireExactlyOnce checks that each of the first n positions was applied
// exactly once.
func (m cartModel) requireExactlyOnce(t *testing.T, n int64) {
	var rows, distinct, maxPos int64
	require.NoError(t, m.db.QueryRowContext(ctxFor(t),
		`SELECT COUNT(*), COUNT(DISTINCT position), COALESCE(MAX(position), 0) FROM applied_log`).Scan(&rows, &distinct, &maxPos))
	require.Equal(t, n, distinct, "every event applied")
	require.Equal(t, n, rows, "no event applied twice")
	require.Equal(t, n, maxPos)
}

// fold computes the expected model from the event store itself.
func fold(t *testing.T, s *eventstore.Store) map[string]int {
	out := map[string]int{}
	var after int64
	for {
		evs, err := s.ReadAll(ctxFor(t), after, 100)
		require.NoError(t, err)
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			after = e.Position
			k := e.Stream + "/" + string(e.Data)
			switch e.Type {
			case "ItemAdded":
				out[k]++
			case "ItemRemoved":
				out[k]--
			}
			if out[k] == 0 {
				delete(out, k)
			}
		}
	}
	return out
}

// appendCarts writes a few events to each of carts carts.
func appendCarts(t *testing.T, s *eventstore.Store, prefix string, carts int) {
	ctx := ctxFor(t)
	for c := 0; c < carts; c++ {
		cart := fmt.Sprintf("%s%d", prefix, c)
		_, err := s.Append(ctx, cart, eventstore.AnyVersion,
			eventstore.EventData{Type: "CartCreated", Data: []byte(`{}`)},
			eventstore.EventData{Type: "ItemAdded", Data: []byte("pen")},
			eventstore.EventData{Type: "ItemAdded", Data: []byte("ink")},
			eventstore.EventData{Type: "ItemAdded", Data: []byte("pen")},
			eventstore.EventData{Type: "ItemRemoved", Data: []byte("ink")})
		require.NoError(t, err)
	}
}

func newStore(t *testing.T, db testdb.DB) *eventstore.Store {
	s, err := eventstore.New(db.Open(t), eventstore.Config{Dialect: db.Dialect})
	require.NoError(t, err)
	require.NoError(t, s.Migrate(ctxFor(t)))
	return s
}

func newModel(t *testing.T, db testdb.DB) cartModel {
	m := cartModel{db: db.Open(t), d: db.Dialect}
	m.migrate(t)
	return m
}

func newRunner(t *testing.T, cfg projection.Config) *projection.Runner {
	r, err := projection.New(cfg)
	require.NoError(t, err)
	require.NoError(t, r.Migrate(ctxFor(t)))
	return r
}

func waitCaughtUp(t *testing.T, r *projection.Runner, head int64) {
	require.Eventually(t, func() bool {
		l, err := r.Lag(context.Background())
		return err == nil && l.Checkpoint == head && l.Events == 0
	}, time.Minute, 10*time.Millisecond)
}

// Commands on PostgreSQL, queries on SQLite: the runner fills the query
// model as a fold of the events would, reports its lag, follows new events
// and stops on cancellation.
func TestCommandsOnPostgresQueriesOnSQLite(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	store := newStore(t, testdb.Postgres(t))
	model := newModel(t, testdb.SQLite(t))
	appendCarts(t, store, "cart-", 10)

	r := newRunner(t, projection.Config{Name: "cart-items", Source: store, DB: model.db, Dialect: model.d,
		Apply: model.apply, Reset: model.reset, BatchSize: 7, PollInterval: time.Hour})
	lag, err := r.Lag(ctx)
	require.NoError(t, err)
	require.Equal(t, projection.Lag{Head: 50, Checkpoint: 0, Events: 50, Behind: lag.Behind}, lag)
	require.Positive(t, lag.Behind, "the oldest pending event was recorded before now")

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	waitCaughtUp(t, r, 50)
	require.Equal(t, fold(t, store), model.items(t))
	model.requireExactlyOnce(t, 50)
	lag, err = r.Lag(ctx)
	require.NoError(t, err)
	require.Equal(t, projection.Lag{Head: 50, Checkpoint: 50}, lag)
	require.ErrorIs(t, r.Run(ctx), projection.ErrRunning)

	// New events: Notify wakes the runner (the poll interval is an hour).
	appendCarts(t, store, "late-", 2)
	r.Notify()
	waitCaughtUp(t, r, 60)
	require.Equal(t, fold(t, store), model.items(t))
	model.requireExactlyOnce(t, 60)
	require.Equal(t, projection.Stats{Applied: 60}, r.Stats())

	// A rebuild while the runner runs: the model is emptied and refilled.
	require.NoError(t, r.Rebuild(ctx))
	waitCaughtUp(t, r, 60)
	require.Equal(t, fold(t, store), model.items(t))
	model.requireExactlyOnce(t, 60)
	require.Equal(t, int64(120), r.Stats().Applied)

	stop()
	require.NoError(t, <-done)
}

// A crash between applying and checkpointing cannot apply twice: both are
// one transaction. Run on every dialect, the query model in a database of
// its own.
func TestExactlyOnce(t *testing.T) {
	testdb.Each(t, func(t *testing.T, newDB func(tb testing.TB) testdb.DB) {
		t.Run("CrashMidBatchThenRestart", func(t *testing.T) {
			t.Parallel()
			testCrashAndRestart(t, newStore(t, newDB(t)), newModel(t, newDB(t)))
		})
		t.Run("RunnersInParallel", func(t *testing.T) {
			t.Parallel()
			testRunnersInParallel(t, newStore(t, newDB(t)), newModel(t, newDB(t)))
		})
	})
}

func testCrashAndRestart(t *testing.T, store *eventstore.Store, model cartModel) {
	ctx := ctxFor(t)
	appendCarts(t, store, "c", 6) // positions 1..30
	errCrash := errors.New("process dies here")
	crashing := newRunner(t, projection.Config{Name: "p", Source: store, DB: model.db, Dialect: model.d, BatchSize: 5,
		Apply: func(ctx context.Context, tx *sql.Tx, e eventstore.Event) error {
			if err := model.apply(ctx, tx, e); err != nil {
				return err
			}
			if e.Position == 8 { // applied 6, 7 and 8, checkpoint not yet written
				return errCrash
			}
			return nil
		}})
	n, err := crashing.Step(ctx)
	require.NoError(t, err)
	require.Equal(t, 5, n)
	_, err = crashing.Step(ctx)
	require.ErrorIs(t, err, errCrash)
	cp, err := crashing.Checkpoint(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(5), cp)
	model.requireExactlyOnce(t, 5)

	// The restarted process: its first attempt at position 20 fails too (a
	// transient error), and Run retries.
	var failedOnce atomic.Bool
	restarted := newRunner(t, projection.Config{Name: "p", Source: store, DB: model.db, Dialect: model.d, BatchSize: 4,
		RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond, PollInterval: 10 * time.Millisecond,
		Apply: func(ctx context.Context, tx *sql.Tx, e eventstore.Event) error {
			if err := model.apply(ctx, tx, e); err != nil {
				return err
			}
			if e.Position == 20 && failedOnce.CompareAndSwap(false, true) {
				return errors.New("transient")
			}
			return nil
		}})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- restarted.Run(runCtx) }()
	waitCaughtUp(t, restarted, 30)
	stop()
	require.NoError(t, <-done)
	model.requireExactlyOnce(t, 30)
	require.Equal(t, fold(t, store), model.items(t))
	st := restarted.Stats()
	require.Equal(t, int64(25), st.Applied)
	require.Equal(t, int64(1), st.Failures)
	require.Contains(t, st.LastError, "transient")

	// Rebuild from position 0 gives the same model.
	rebuilt := newRunner(t, projection.Config{Name: "p", Source: store, DB: model.db, Dialect: model.d,
		Apply: model.apply, Reset: model.reset})
	require.NoError(t, rebuilt.Rebuild(ctx))
	lag, err := rebuilt.Lag(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(30), lag.Events)
	require.Empty(t, model.items(t))
	for {
		n, err := rebuilt.Step(ctx)
		require.NoError(t, err)
		if n == 0 {
			break
		}
	}
	model.requireExactlyOnce(t, 30)
	require.Equal(t, fold(t, store), model.items(t))
}

// Two runners of one projection (two processes) while events are appended:
// each event is applied once.
func testRunnersInParallel(t *testing.T, store *eventstore.Store, model cartModel) {
	ctx := ctxFor(t)
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var runners []*projection.Runner
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		r := newRunner(t, projection.Config{Name: "p", Source: store, DB: model.db, Dialect: model.d,
			Apply: model.apply, BatchSize: 3, PollInterval: 5 * time.Millisecond})
		runners = append(runners, r)
		wg.Add(1)
		go func() { defer wg.Done(); errs <- r.Run(runCtx) }()
	}
	appendCarts(t, store, "c", 8)
	waitCaughtUp(t, runners[0], 40)
	// The checkpoint shows a batch's commit before its runner has counted
	// it: stop once both have, or a runner stopped between its commit and
	// its count would be one batch short.
	require.Eventually(t, func() bool {
		return runners[0].Stats().Applied+runners[1].Stats().Applied == 40
	}, time.Minute, 5*time.Millisecond)
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	model.requireExactlyOnce(t, 40)
	require.Equal(t, fold(t, store), model.items(t))
	require.Equal(t, int64(40), runners[0].Stats().Applied+runners[1].Stats().Applied)
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	t.Parallel()
	db := testdb.SQLite(t).Open(t)
	store, err := eventstore.New(db, eventstore.Config{})
	require.NoError(t, err)
	apply := func(context.Context, *sql.Tx, eventstore.Event) error { return nil }
	for name, cfg := range map[string]projection.Config{
		"no name":   {Source: store, DB: db, Apply: apply},
		"no source": {Name: "p", DB: db, Apply: apply},
		"no db":     {Name: "p", Source: store, Apply: apply},
		"no apply":  {Name: "p", Source: store, DB: db},
	} {
		_, err := projection.New(cfg)
		require.ErrorIs(t, err, projection.ErrInvalid, name)
	}
	_, err = projection.New(projection.Config{Name: "p", Source: store, DB: db, Apply: apply, Table: "x y"})
	require.Error(t, err)
	r := newRunner(t, projection.Config{Name: "p", Source: store, DB: db, Apply: apply})
	require.ErrorIs(t, r.Rebuild(ctxFor(t)), projection.ErrInvalid)
}
