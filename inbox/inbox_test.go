package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/inbox"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/internal/testdb"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// effects records each effect of a message as one row, so that counting
// rows counts effects.
type effects struct {
	db     *sql.DB
	insert string
}

func newEffects(t testing.TB, db *sql.DB, d appdb.Dialect) effects {
	t.Helper()
	_, err := db.Exec(`CREATE TABLE effects (msg_id VARCHAR(255) NOT NULL)`)
	require.NoError(t, err)
	ins := `INSERT INTO effects (msg_id) VALUES (?)`
	if d == appdb.Postgres {
		ins = `INSERT INTO effects (msg_id) VALUES ($1)`
	}
	return effects{db: db, insert: ins}
}

// apply writes one effect of id in tx.
func (e effects) apply(ctx context.Context, tx *sql.Tx, id string) error {
	_, err := tx.ExecContext(ctx, e.insert, id)
	return err
}

func (e effects) count(t testing.TB, id string) int {
	t.Helper()
	var n int
	require.NoError(t, e.db.QueryRow(`SELECT count(*) FROM effects WHERE msg_id = '`+id+`'`).Scan(&n))
	return n
}

func delivery(id string, attempt int) broker.Delivery {
	return broker.Delivery{
		Message: broker.Message{
			ID:      id,
			Topic:   "orders",
			Key:     "order-1",
			Headers: map[string]string{broker.HeaderType: "OrderCreated"},
			Payload: []byte(`{"order":1}`),
		},
		Attempt: attempt,
	}
}

func TestInbox(t *testing.T) {
	testdb.Each(t, func(t *testing.T, newDB func(testing.TB) testdb.DB) {
		ctx := context.Background()
		d := newDB(t)
		db := d.Open(t)
		in := inbox.Inbox{Dialect: d.Dialect}
		require.NoError(t, in.Migrate(ctx, db))
		require.NoError(t, in.Migrate(ctx, db), "Migrate is idempotent")
		fx := newEffects(t, db, d.Dialect)
		var seq atomic.Int32
		newID := func() string { return fmt.Sprintf("m-%d", seq.Add(1)) }
		handle := func(d broker.Delivery, group string, fail error) error {
			return in.Handle(ctx, db, d, group, func(tx *sql.Tx) error {
				if err := fx.apply(ctx, tx, group+"/"+d.ID); err != nil {
					return err
				}
				return fail
			})
		}

		t.Run("Duplicate", func(t *testing.T) {
			id := newID()
			require.NoError(t, handle(delivery(id, 1), "g", nil))
			require.NoError(t, handle(delivery(id, 2), "g", nil))
			require.NoError(t, handle(delivery(id, 1), "g", nil))
			require.Equal(t, 1, fx.count(t, "g/"+id))
		})

		t.Run("GroupsAreIndependent", func(t *testing.T) {
			id := newID()
			require.NoError(t, handle(delivery(id, 1), "g1", nil))
			require.NoError(t, handle(delivery(id, 1), "g2", nil))
			require.Equal(t, 1, fx.count(t, "g1/"+id))
			require.Equal(t, 1, fx.count(t, "g2/"+id))
		})

		t.Run("ConcurrentDuplicates", func(t *testing.T) {
			for range 3 {
				id := newID()
				var wg sync.WaitGroup
				start := make(chan struct{})
				errs := make([]error, 16)
				for i := range errs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						errs[i] = handle(delivery(id, 1), "g", nil)
					}()
				}
				close(start)
				wg.Wait()
				for _, err := range errs {
					require.NoError(t, err)
				}
				require.Equal(t, 1, fx.count(t, "g/"+id))
			}
		})

		t.Run("FailureRollsBack", func(t *testing.T) {
			id := newID()
			boom := errors.New("boom")
			require.Same(t, boom, handle(delivery(id, 1), "g", boom), "fn's error is returned unchanged")
			require.Equal(t, 0, fx.count(t, "g/"+id))
			refused := dtx.Permanentf("refused")
			require.Same(t, refused, handle(delivery(id, 2), "g", refused))
			require.Equal(t, 0, fx.count(t, "g/"+id))
			require.NoError(t, handle(delivery(id, 3), "g", nil), "the redelivery runs fn again")
			require.Equal(t, 1, fx.count(t, "g/"+id))
			require.NoError(t, handle(delivery(id, 4), "g", nil))
			require.Equal(t, 1, fx.count(t, "g/"+id))
		})

		t.Run("PanicRollsBack", func(t *testing.T) {
			id := newID()
			require.Panics(t, func() {
				_ = in.Handle(ctx, db, delivery(id, 1), "g", func(tx *sql.Tx) error {
					_ = fx.apply(ctx, tx, "g/"+id)
					panic("boom")
				})
			})
			require.NoError(t, handle(delivery(id, 2), "g", nil))
			require.Equal(t, 1, fx.count(t, "g/"+id))
		})

		t.Run("InvalidIDs", func(t *testing.T) {
			long := string(make([]byte, inbox.MaxIDLen+1))
			for _, c := range []struct{ id, group string }{{"", "g"}, {"x", ""}, {long, "g"}, {"x", long}} {
				err := in.Handle(ctx, db, delivery(c.id, 1), c.group, func(*sql.Tx) error { panic("must not run") })
				require.ErrorIs(t, err, inbox.ErrInvalid)
				require.True(t, dtx.IsPermanent(err))
			}
		})

		t.Run("Prune", func(t *testing.T) {
			pi := inbox.Inbox{Dialect: d.Dialect, Table: "prune_inbox"}
			require.NoError(t, pi.Migrate(ctx, db))
			id := newID()
			run := func() error {
				return pi.Handle(ctx, db, delivery(id, 1), "g", func(tx *sql.Tx) error { return fx.apply(ctx, tx, "prune/"+id) })
			}
			require.NoError(t, run())
			n, err := pi.Prune(ctx, db, time.Hour)
			require.NoError(t, err)
			require.Zero(t, n, "recent records are kept")
			require.NoError(t, run())
			require.Equal(t, 1, fx.count(t, "prune/"+id))
			// Pruned once older than a millisecond.
			require.Eventually(t, func() bool {
				n, err = pi.Prune(ctx, db, time.Millisecond)
				return err != nil || n > 0
			}, 10*time.Second, time.Millisecond)
			require.NoError(t, err)
			require.Equal(t, int64(1), n)
			require.NoError(t, run())
			require.Equal(t, 2, fx.count(t, "prune/"+id), "a duplicate after its record was pruned runs again")
		})

		t.Run("Consumer", func(t *testing.T) { testConsumer(t, db, in, fx) })
	})
}

func testConsumer(t *testing.T, db *sql.DB, in inbox.Inbox, fx effects) {
	ctx := context.Background()
	var (
		broken atomic.Bool
		calls  atomic.Int32
		n      atomic.Int32
	)
	newGroup := func() string { return fmt.Sprintf("grp-%d", n.Add(1)) }
	newConsumer := func(group string) inbox.Consumer {
		return inbox.Consumer{
			Inbox:       in,
			DB:          db,
			Group:       group,
			MaxAttempts: 3,
			Logger:      discard,
			Process: func(ctx context.Context, tx *sql.Tx, d broker.Delivery) error {
				calls.Add(1)
				if err := fx.apply(ctx, tx, group+"/"+d.ID); err != nil {
					return err
				}
				if d.Payload == nil {
					return dtx.Permanentf("no payload")
				}
				if broken.Load() {
					return errors.New("downstream unavailable")
				}
				return nil
			},
		}
	}
	var h broker.Handler = newConsumer("x").Handle // it is a broker.Handler
	_ = h

	t.Run("DeadLetterAfterMaxAttemptsAndReplay", func(t *testing.T) {
		c := newConsumer(newGroup())
		broken.Store(true)
		defer broken.Store(false)
		d := delivery("m-dead", 1)
		require.Error(t, c.Handle(ctx, d))
		d.Attempt = 2
		require.Error(t, c.Handle(ctx, d))
		d.Attempt = 3
		require.NoError(t, c.Handle(ctx, d), "acknowledged once dead-lettered")
		require.Equal(t, 0, fx.count(t, c.Group+"/m-dead"))

		dls, err := c.DeadLetters(ctx)
		require.NoError(t, err)
		require.Len(t, dls, 1)
		dl := dls[0]
		require.Equal(t, d.Message, dl.Message)
		require.Equal(t, c.Group, dl.Group)
		require.Equal(t, 3, dl.Attempts)
		require.Contains(t, dl.Error, "downstream unavailable")
		require.WithinDuration(t, time.Now(), dl.Time, time.Minute)

		before := calls.Load()
		d.Attempt = 4
		require.NoError(t, c.Handle(ctx, d), "a redelivery of a dead letter is ignored")
		require.Equal(t, before, calls.Load())

		require.Error(t, c.Replay(ctx, "m-dead"), "still broken")
		dls, err = c.DeadLetters(ctx)
		require.NoError(t, err)
		require.Len(t, dls, 1, "a failed replay keeps the dead letter")

		broken.Store(false)
		require.NoError(t, c.Replay(ctx, "m-dead"))
		require.Equal(t, 1, fx.count(t, c.Group+"/m-dead"))
		dls, err = c.DeadLetters(ctx)
		require.NoError(t, err)
		require.Empty(t, dls)
		require.ErrorIs(t, c.Replay(ctx, "m-dead"), inbox.ErrNotFound)
		require.NoError(t, c.Handle(ctx, d))
		require.Equal(t, 1, fx.count(t, c.Group+"/m-dead"), "still one effect")
	})

	t.Run("PermanentAtOnce", func(t *testing.T) {
		c := newConsumer(newGroup())
		d := delivery("m-perm", 1)
		d.Payload = nil
		require.NoError(t, c.Handle(ctx, d))
		dls, err := c.DeadLetters(ctx)
		require.NoError(t, err)
		require.Len(t, dls, 1)
		require.Equal(t, 1, dls[0].Attempts)
		require.Nil(t, dls[0].Message.Payload)
		require.NoError(t, c.Discard(ctx, "m-perm"))
		require.ErrorIs(t, c.Discard(ctx, "m-perm"), inbox.ErrNotFound)
		require.NoError(t, c.Handle(ctx, d), "a discarded message stays handled")
		require.Equal(t, 0, fx.count(t, c.Group+"/m-perm"))
	})

	t.Run("SucceedsBeforeMaxAttempts", func(t *testing.T) {
		c := newConsumer(newGroup())
		broken.Store(true)
		d := delivery("m-late", 1)
		require.Error(t, c.Handle(ctx, d))
		broken.Store(false)
		d.Attempt = 2
		require.NoError(t, c.Handle(ctx, d))
		require.Equal(t, 1, fx.count(t, c.Group+"/m-late"))
		dls, err := c.DeadLetters(ctx)
		require.NoError(t, err)
		require.Empty(t, dls)
	})

	t.Run("ConcurrentReplay", func(t *testing.T) {
		c := newConsumer(newGroup())
		d := delivery("m-conc", 1)
		d.Payload = nil // permanent: dead-lettered at once
		require.NoError(t, c.Handle(ctx, d))
		c.Process = func(ctx context.Context, tx *sql.Tx, d broker.Delivery) error {
			if d.Attempt != 2 {
				return fmt.Errorf("replayed as attempt %d, want 2", d.Attempt)
			}
			return fx.apply(ctx, tx, c.Group+"/"+d.ID)
		}
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = c.Replay(ctx, "m-conc") }()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else {
				require.ErrorIs(t, err, inbox.ErrNotFound)
			}
		}
		require.Equal(t, 1, ok)
		require.Equal(t, 1, fx.count(t, c.Group+"/m-conc"))
	})

	t.Run("OnDeadLetter", func(t *testing.T) {
		c := newConsumer(newGroup())
		hookErr := errors.New("hook failed")
		var fail atomic.Bool
		fail.Store(true)
		c.OnDeadLetter = func(ctx context.Context, p inbox.DeadLetterParams) error {
			if err := fx.apply(ctx, p.Tx, "dlq/"+p.Group+"/"+p.Delivery.ID); err != nil {
				return err
			}
			if !dtx.IsPermanent(p.Err) {
				return fmt.Errorf("p.Err = %v, want a permanent error", p.Err)
			}
			if fail.Load() {
				return hookErr
			}
			return nil
		}
		d := delivery("m-hook", 1)
		d.Payload = nil
		require.ErrorIs(t, c.Handle(ctx, d), hookErr, "not acknowledged if the dead letter could not be recorded")
		dls, err := c.DeadLetters(ctx)
		require.NoError(t, err)
		require.Empty(t, dls)
		require.Equal(t, 0, fx.count(t, "dlq/"+c.Group+"/m-hook"))

		fail.Store(false)
		d.Attempt = 2
		require.NoError(t, c.Handle(ctx, d))
		require.Equal(t, 1, fx.count(t, "dlq/"+c.Group+"/m-hook"), "the hook's writes commit with the dead letter")
	})

	t.Run("InvalidMessageID", func(t *testing.T) {
		c := newConsumer(newGroup())
		d := delivery("", 1)
		require.NoError(t, c.Handle(ctx, d), "dead-lettered under a content digest")
		require.NoError(t, c.Handle(ctx, d))
		dls, err := c.DeadLetters(ctx)
		require.NoError(t, err)
		require.Len(t, dls, 1)
		require.Contains(t, dls[0].Message.ID, "invalid-id-")
		require.Contains(t, dls[0].Error, "invalid")
	})

	t.Run("Misconfigured", func(t *testing.T) {
		for _, c := range []inbox.Consumer{
			{Inbox: in, Group: "g", Process: newConsumer("g").Process},
			{Inbox: in, DB: db, Process: newConsumer("g").Process},
			{Inbox: in, DB: db, Group: "g"},
			{Inbox: inbox.Inbox{Table: "bad name"}, DB: db, Group: "g", Process: newConsumer("g").Process},
		} {
			require.Error(t, c.Handle(ctx, delivery("m-x", 9)))
			_, err := c.DeadLetters(ctx)
			require.Error(t, err)
		}
	})
}

func TestSchema(t *testing.T) {
	for _, d := range []appdb.Dialect{appdb.SQLite, appdb.Postgres, appdb.MySQL} {
		stmts, err := inbox.Inbox{Dialect: d, Table: "shop.inbox"}.Schema()
		require.NoError(t, err)
		joined := fmt.Sprint(stmts)
		require.Contains(t, joined, "CREATE TABLE IF NOT EXISTS shop.inbox (")
		require.Contains(t, joined, "CREATE TABLE IF NOT EXISTS shop.inbox_dead (")
		require.Contains(t, joined, "CREATE TABLE IF NOT EXISTS shop.inbox_attempts (")
	}
	_, err := inbox.Inbox{Dialect: 42}.Schema()
	require.Error(t, err)
	_, err = inbox.Inbox{Table: "x; DROP TABLE y"}.Schema()
	require.Error(t, err)
}
