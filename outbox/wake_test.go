package outbox_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/internal/testdb"
	"github.com/dtxhq/dtx/outbox"
)

// idle is a relay configuration under which neither polling nor renewing
// the lease wakes the relay during a test: only a wake-up can.
func idle() outbox.RelayConfig {
	return fast(outbox.RelayConfig{PollInterval: time.Hour, LeaseTTL: time.Hour})
}

// runRelayNoRecheck is runRelay with the short looks after an empty
// wake-up turned off: only the wake-up under test publishes.
func runRelayNoRecheck(t *testing.T, db *sql.DB, ob outbox.Outbox, pub outbox.Publisher, cfg outbox.RelayConfig) *outbox.Relay {
	cfg.Logger = discard
	r, err := outbox.NewRelay(db, ob, pub, cfg)
	require.NoError(t, err)
	outbox.NoRecheck(r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return r
}

func TestRelay_AddWakesIdleRelay(t *testing.T) {
	db := testdbSQLite(t)
	// A table of its own: Add wakes the relays of its table only, so no
	// other test's Add can wake this relay.
	ob := outbox.Outbox{Table: "wake_on_add"}
	require.NoError(t, ob.Migrate(context.Background(), db))
	pub := &recorder{}
	add(t, db, ob, true, msg("a", 1))
	r, _ := runRelay(t, db, ob, pub, idle())
	require.Eventually(t, func() bool { return r.Stats().Published == 1 }, waitLong, 5*time.Millisecond)

	// Add wakes the relay before its transaction commits; the relay looks
	// again at short intervals until the commit shows. No Notify.
	add(t, db, ob, true, msg("a", 2))
	require.Eventually(t, func() bool { return pub.distinct() == 2 }, waitLong, 5*time.Millisecond)
}

func TestOutbox_NotifyWakesRelaysOfItsTableOnly(t *testing.T) {
	db := testdbSQLite(t)
	ob := outbox.Outbox{Table: "wake_notify"}
	other := outbox.Outbox{Table: "wake_notify_other"}
	ctx := context.Background()
	require.NoError(t, ob.Migrate(ctx, db))
	require.NoError(t, other.Migrate(ctx, db))
	pub := &recorder{}
	r := runRelayNoRecheck(t, db, ob, pub, idle())
	require.Eventually(t, func() bool { return r.Stats().Leader }, waitLong, 5*time.Millisecond)

	// A row written without Add (another process, say): only a wake-up
	// publishes it before the hour-long poll.
	_, err := db.ExecContext(ctx, `INSERT INTO wake_notify (msg_id, topic, msg_key, headers, payload, created_at) VALUES ('x-1', 'orders', 'x', '{}', X'7B7D', 0)`)
	require.NoError(t, err)
	other.Notify()
	ob.Notify()
	require.Eventually(t, func() bool { return pub.distinct() == 1 }, waitLong, 5*time.Millisecond)
}

// The relay marks published rows while it reads and publishes the next
// ones; it must not publish a row again while that row's mark is still
// running. With a broker that never fails, every message goes out once;
// small batches make many cycles overlap a mark.
func TestRelay_PipelinedMarkPublishesOnce(t *testing.T) {
	testdb.Each(t, func(t *testing.T, newDB func(testing.TB) testdb.DB) {
		d := newDB(t)
		db := d.Open(t)
		ob := outbox.Outbox{Dialect: d.Dialect}
		require.NoError(t, ob.Migrate(context.Background(), db))
		pub := &recorder{}
		r, stop := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{BatchSize: 7}))
		want := writeKeys(t, db, ob, keys(8), 40, r.Notify)
		require.Eventually(t, func() bool { return r.Stats().Published == 320 }, waitLong, 5*time.Millisecond)
		stop()
		require.Len(t, pub.messages(), 320, "no message published twice")
		require.Equal(t, want, firstSeen(pub.messages()))
		require.Zero(t, countRows(t, db, "1=1"), "every published row is deleted")
	})
}

// On PostgreSQL the relay LISTENs on its table's channel: a row added by
// another process, with a NOTIFY in its transaction, is published at once.
func TestRelay_ListensOnPostgres(t *testing.T) {
	ctx := context.Background()
	db := testdb.Postgres(t).Open(t)
	ob := outbox.Outbox{Dialect: appdb.Postgres, Table: "listen_test"}
	require.NoError(t, ob.Migrate(ctx, db))
	pub := &recorder{}
	r := runRelayNoRecheck(t, db, ob, pub, idle())
	require.Eventually(t, func() bool { return r.Stats().Leader }, waitLong, 5*time.Millisecond)

	// Written with plain SQL, as another process would: no in-process
	// wake-up. Repeated until the relay's LISTEN is in place (a
	// notification sent before it is not delivered).
	_, err := db.ExecContext(ctx, `INSERT INTO listen_test (msg_id, topic, msg_key, headers, payload, created_at) VALUES ('x-1', 'orders', 'x', '{}', '\x7b7d', 0)`)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := db.ExecContext(ctx, `NOTIFY `+ob.NotifyChannel())
		require.NoError(t, err)
		return pub.distinct() == 1
	}, waitLong, 20*time.Millisecond)
}

// NotifyOnCommit makes Add notify the table's channel, delivered when its
// transaction commits (and not before).
func TestOutbox_NotifyOnCommit(t *testing.T) {
	ctx := context.Background()
	d := testdb.Postgres(t)
	db := d.Open(t)
	ob := outbox.Outbox{Dialect: appdb.Postgres, Table: "notify_on_commit", NotifyOnCommit: true}
	require.NoError(t, ob.Migrate(ctx, db))

	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, `LISTEN `+ob.NotifyChannel())
	require.NoError(t, err)
	wait := func(d time.Duration) error {
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return conn.Raw(func(dc any) error {
			_, err := dc.(interface{ Conn() *pgx.Conn }).Conn().WaitForNotification(wctx)
			return err
		})
	}

	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, ob.Add(ctx, tx, msg("a", 1)))
	require.ErrorIs(t, wait(50*time.Millisecond), context.DeadlineExceeded, "nothing before the commit")
	require.NoError(t, tx.Commit())
	require.NoError(t, wait(waitLong), "notified at commit")

	plain := outbox.Outbox{Dialect: appdb.Postgres, Table: "notify_on_commit"}
	add(t, db, plain, true, msg("a", 2))
	require.ErrorIs(t, wait(50*time.Millisecond), context.DeadlineExceeded, "off by default")
}

func TestOutbox_NotifyChannel(t *testing.T) {
	require.Equal(t, "dtx_outbox", outbox.Outbox{}.NotifyChannel())
	require.Equal(t, "app.events", outbox.Outbox{Table: "app.events"}.NotifyChannel())
	long := outbox.Outbox{Table: "s" + strings.Repeat("x", 62) + ".t"}.NotifyChannel()
	require.Len(t, long, 63)
}

// A mark (here the delete of published rows) that fails is retried, even
// with nothing new to publish, and its rows are not published again
// meanwhile.
func TestRelay_FailedMarkIsRetried(t *testing.T) {
	ctx := context.Background()
	db := testdbSQLite(t)
	ob := outbox.Outbox{}
	require.NoError(t, ob.Migrate(ctx, db))
	_, err := db.ExecContext(ctx, `CREATE TRIGGER mark_retry_refuse BEFORE DELETE ON dtx_outbox BEGIN SELECT RAISE(FAIL, 'delete refused'); END`)
	require.NoError(t, err)
	pub := &recorder{}
	r, stop := runRelay(t, db, ob, pub, fast(outbox.RelayConfig{}))
	add(t, db, ob, true, msg("a", 1), msg("b", 1))
	require.Eventually(t, func() bool { return r.Stats().DBErrors >= 3 }, waitLong, 5*time.Millisecond,
		"the relay keeps failing to delete the published rows")
	require.Equal(t, 2, countRows(t, db, "1=1"))
	require.Len(t, pub.messages(), 2, "rows whose mark failed are not published again")

	_, err = db.ExecContext(ctx, `DROP TRIGGER mark_retry_refuse`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return countRows(t, db, "1=1") == 0 }, waitLong, 5*time.Millisecond)
	stop()
	require.Len(t, pub.messages(), 2)
	require.Equal(t, uint64(2), r.Stats().Published)
}
