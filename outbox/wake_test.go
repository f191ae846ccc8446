package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/testdb"
	"github.com/dtxhq/dtx/outbox"
)

// idle is a relay configuration under which neither polling nor renewing
// the lease wakes the relay during a test: only a wake-up can.
func idle() outbox.RelayConfig {
	return fast(outbox.RelayConfig{PollInterval: time.Hour, LeaseTTL: time.Hour})
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
	r, _ := runRelay(t, db, ob, pub, idle())
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
