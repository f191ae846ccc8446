package tracing

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/inbox"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/outbox"
)

// openBroker starts an embedded NATS JetStream server, in-process.
func openBroker(t *testing.T, ctx context.Context) broker.Broker {
	t.Helper()
	b, err := natsbroker.OpenEmbedded(ctx, t.TempDir(), natsbroker.Config{
		RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond, PollWait: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

// openDB opens a fresh SQLite database of an application.
func openDB(t *testing.T, name string) *sql.DB {
	t.Helper()
	db, err := sqlitedb.Open(context.Background(), filepath.Join(t.TempDir(), name), 0)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func newOutbox(tp trace.TracerProvider) outbox.Outbox {
	return outbox.Outbox{Dialect: appdb.SQLite, TracerProvider: tp}
}

// startRelay runs a relay of ob until the test ends.
func startRelay(t *testing.T, ctx context.Context, db *sql.DB, ob outbox.Outbox, pub outbox.Publisher) *outbox.Relay {
	t.Helper()
	r, err := outbox.NewRelay(db, ob, pub, outbox.RelayConfig{PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	ctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("relay: %v", err)
		}
	})
	return r
}

// subscribe consumes the topic "orders" with an inbox consumer on db that
// calls process with each message's id.
func subscribe(t *testing.T, ctx context.Context, brk broker.Broker, db *sql.DB, tp trace.TracerProvider,
	process func(ctx context.Context, tx *sql.Tx, id string) error) broker.Subscription {
	t.Helper()
	in := inbox.Inbox{Dialect: appdb.SQLite}
	require.NoError(t, in.Migrate(ctx, db))
	c := inbox.Consumer{Inbox: in, DB: db, Group: "inventory", TracerProvider: tp,
		Process: func(ctx context.Context, tx *sql.Tx, d broker.Delivery) error { return process(ctx, tx, d.ID) }}
	sub, err := brk.Subscribe(ctx, "orders", c.Group, c.Handle)
	require.NoError(t, err)
	return sub
}

func event(id string) broker.Message {
	return broker.Message{ID: id, Topic: "orders", Key: "order-1", Payload: []byte(`{"order":"order-1"}`),
		Headers: map[string]string{broker.HeaderType: "OrderPlaced"}}
}
