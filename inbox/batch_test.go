package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/inbox"
	"github.com/dtxhq/dtx/internal/testdb"
)

// batchRig runs a Batcher whose Process records the transaction each
// message ran in, blocks the message "hold" until release is closed, and
// fails the messages in fail.
type batchRig struct {
	b       *inbox.Batcher
	held    chan struct{} // closed when "hold" runs Process
	release chan struct{}

	mu   sync.Mutex
	txOf map[string][]*sql.Tx // message id -> the transactions Process saw
}

func newBatchRig(t *testing.T, db *sql.DB, in inbox.Inbox, fx effects, group string, fail map[string]error) *batchRig {
	r := &batchRig{held: make(chan struct{}), release: make(chan struct{}), txOf: map[string][]*sql.Tx{}}
	c := inbox.Consumer{Inbox: in, DB: db, Group: group, MaxAttempts: 3, Logger: discard,
		Process: func(ctx context.Context, tx *sql.Tx, d broker.Delivery) error {
			r.mu.Lock()
			r.txOf[d.ID] = append(r.txOf[d.ID], tx)
			r.mu.Unlock()
			if d.ID == "hold" {
				close(r.held)
				<-r.release
			}
			if err := fx.apply(ctx, tx, group+"/"+d.ID); err != nil {
				return err
			}
			return fail[d.ID]
		}}
	var err error
	r.b, err = inbox.NewBatcher(c, 0)
	require.NoError(t, err)
	return r
}

// queueBehindHold delivers "hold" (which leads and blocks in Process),
// then ids, and waits until all of ids are queued behind it; it returns
// the Handle results, ready once release is closed.
func (r *batchRig) queueBehindHold(t *testing.T, ids []string) (holdErr chan error, errs []chan error) {
	ctx := context.Background()
	holdErr = make(chan error, 1)
	go func() { holdErr <- r.b.Handle(ctx, delivery("hold", 1)) }()
	<-r.held
	for _, id := range ids {
		ch := make(chan error, 1)
		errs = append(errs, ch)
		go func() { ch <- r.b.Handle(ctx, delivery(id, 1)) }()
	}
	for inbox.Queued(r.b) < len(ids) {
		runtime.Gosched() // the Handle calls are on their way to the queue
	}
	return holdErr, errs
}

// applyBehindHold queues ids behind "hold", releases it, and requires
// every delivery to be handled without error.
func (r *batchRig) applyBehindHold(t *testing.T, ids []string) {
	holdErr, errs := r.queueBehindHold(t, ids)
	close(r.release)
	require.NoError(t, <-holdErr)
	for _, ch := range errs {
		require.NoError(t, <-ch)
	}
}

func TestBatcher(t *testing.T) {
	testdb.Each(t, func(t *testing.T, newDB func(testing.TB) testdb.DB) {
		ctx := context.Background()
		d := newDB(t)
		db := d.Open(t)
		in := inbox.Inbox{Dialect: d.Dialect}
		require.NoError(t, in.Migrate(ctx, db))
		fx := newEffects(t, db, d.Dialect)

		t.Run("QueuedDeliveriesShareOneTransaction", func(t *testing.T) {
			r := newBatchRig(t, db, in, fx, "g-share", nil)
			ids := []string{"a", "b", "c", "d"}
			r.applyBehindHold(t, ids)
			tx := r.txOf["a"][0]
			for _, id := range ids {
				require.Len(t, r.txOf[id], 1, id)
				require.Same(t, tx, r.txOf[id][0], "%s ran in the batch's transaction", id)
				require.Equal(t, 1, fx.count(t, "g-share/"+id))
			}
			require.NotSame(t, tx, r.txOf["hold"][0], "the first delivery went alone, at once")

			// A redelivery is a duplicate, batched or not.
			require.NoError(t, r.b.Handle(ctx, delivery("a", 2)))
			require.Equal(t, 1, fx.count(t, "g-share/a"))
		})

		t.Run("PoisonMessageFailsAlone", func(t *testing.T) {
			fail := map[string]error{"p": errors.New("poison"), "bad": dtx.Permanentf("malformed")}
			r := newBatchRig(t, db, in, fx, "g-poison", fail)
			ids := []string{"a", "p", "b", "bad", "c"}
			holdErr, errs := r.queueBehindHold(t, ids)
			close(r.release)
			require.NoError(t, <-holdErr)
			results := map[string]error{}
			for i, ch := range errs {
				results[ids[i]] = <-ch
			}
			for _, id := range []string{"a", "b", "c"} {
				require.NoError(t, results[id], id)
				require.Equal(t, 1, fx.count(t, "g-poison/"+id), "%s took effect once", id)
			}
			require.ErrorContains(t, results["p"], "poison")
			require.Equal(t, 0, fx.count(t, "g-poison/p"))
			n, err := in.Failures(ctx, db, "g-poison", "p")
			require.NoError(t, err)
			require.Equal(t, 1, n, "the poison message's failure is counted once")
			for _, id := range []string{"a", "b", "c"} {
				n, err := in.Failures(ctx, db, "g-poison", id)
				require.NoError(t, err)
				require.Zero(t, n, "%s is not blamed", id)
			}

			require.NoError(t, results["bad"], "a permanent failure is dead-lettered and acknowledged")
			dls, err := r.b.Consumer().DeadLetters(ctx)
			require.NoError(t, err)
			require.Len(t, dls, 1)
			require.Equal(t, "bad", dls[0].Message.ID)
		})

		t.Run("DuplicatesInOneBatch", func(t *testing.T) {
			r := newBatchRig(t, db, in, fx, "g-dup", nil)
			require.NoError(t, r.b.Handle(ctx, delivery("done", 1)))
			// Behind "hold": a message processed before, and one id twice.
			ids := []string{"x", "done", "x", "y"}
			r.applyBehindHold(t, ids)
			for _, id := range []string{"x", "y", "done"} {
				require.Equal(t, 1, fx.count(t, "g-dup/"+id), "%s took effect once", id)
			}
			require.Len(t, r.txOf["x"], 1, "a second delivery in the same batch is not processed")
			require.Len(t, r.txOf["done"], 1, "a message processed before is not processed again")
		})

		t.Run("FailureCountsClearedByTheBatch", func(t *testing.T) {
			r := newBatchRig(t, db, in, fx, "g-clear", nil)
			// Earlier failed deliveries of two of the batch's messages.
			for _, id := range []string{"f1", "f2", "f2"} {
				_, err := in.CountFailure(ctx, db, "g-clear", id)
				require.NoError(t, err)
			}
			ids := []string{"f1", "ok", "f2"}
			r.applyBehindHold(t, ids)
			require.Same(t, r.txOf["f1"][0], r.txOf["f2"][0], "one batch")
			for _, id := range ids {
				require.Equal(t, 1, fx.count(t, "g-clear/"+id))
				n, err := in.Failures(ctx, db, "g-clear", id)
				require.NoError(t, err)
				require.Zero(t, n, "%s: its failure count went with its processing", id)
			}
		})

		t.Run("ManyConcurrentDeliveries", func(t *testing.T) {
			r := newBatchRig(t, db, in, fx, "g-many", nil)
			close(r.release)
			var wg sync.WaitGroup
			const n = 200
			for i := range n {
				wg.Go(func() {
					require.NoError(t, r.b.Handle(ctx, delivery(fmt.Sprint("m", i%150), 1)))
				})
			}
			wg.Wait()
			for i := range 150 {
				require.Equal(t, 1, fx.count(t, fmt.Sprint("g-many/m", i)))
			}
			require.Zero(t, inbox.Queued(r.b))
		})
	})
}

func TestNewBatcher_Invalid(t *testing.T) {
	_, err := inbox.NewBatcher(inbox.Consumer{}, 0)
	require.Error(t, err)
	_, err = inbox.NewBatcher(inbox.Consumer{DB: &sql.DB{}, Group: "g", Process: func(context.Context, *sql.Tx, broker.Delivery) error { return nil }}, -1)
	require.ErrorContains(t, err, "negative batch size")
}
