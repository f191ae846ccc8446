package projection_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/inbox"
	"github.com/dtxhq/dtx/internal/testdb"
	"github.com/dtxhq/dtx/outbox"
	"github.com/dtxhq/dtx/projection"
)

// recorder is the broker of the test: it keeps what the relay publishes.
type recorder struct {
	mu   sync.Mutex
	msgs []broker.Message
}

func (r *recorder) Publish(_ context.Context, msgs ...broker.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, msgs...)
	return nil
}

func (r *recorder) published() []broker.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]broker.Message(nil), r.msgs...)
}

// Events appended with the outbox reach a query model in another database
// through the relay and an inbox consumer: delivered twice, applied once.
func TestFromBroker(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	cdb := testdb.SQLite(t)
	commands := cdb.Open(t)
	ob := &outbox.Outbox{Dialect: appdb.SQLite}
	require.NoError(t, ob.Migrate(ctx, commands))
	store, err := eventstore.New(commands, eventstore.Config{Dialect: appdb.SQLite, Outbox: ob})
	require.NoError(t, err)
	require.NoError(t, store.Migrate(ctx))
	appendCarts(t, store, "c", 4)

	pub := &recorder{}
	relay, err := outbox.NewRelay(commands, *ob, pub, outbox.RelayConfig{})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(runCtx) }()
	require.Eventually(t, func() bool { return len(pub.published()) == 20 }, time.Minute, 10*time.Millisecond)
	stop()
	require.NoError(t, <-done)

	model := newModel(t, testdb.SQLite(t))
	in := inbox.Inbox{Dialect: model.d}
	require.NoError(t, in.Migrate(ctx, model.db))
	c := inbox.Consumer{Inbox: in, DB: model.db, Group: "cart-items", Process: projection.FromBroker(model.apply, store.Upcast)}
	for _, m := range append(pub.published(), pub.published()...) {
		require.NoError(t, c.Handle(ctx, broker.Delivery{Message: m, Attempt: 1}))
	}
	model.requireExactlyOnce(t, 20)
	require.Equal(t, fold(t, store), model.items(t))

	// A message that is not an event is dead-lettered, not applied.
	require.NoError(t, c.Handle(ctx, broker.Delivery{Message: broker.Message{ID: "junk", Topic: "events", Payload: []byte("x")}, Attempt: 1}))
	dead, err := c.DeadLetters(ctx)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "junk", dead[0].Message.ID)
	model.requireExactlyOnce(t, 20)
}
