package participant_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/participant"
)

// backdateSQL moves the barrier rows of one gid 30 days into the past
// (test only: the barrier always writes the database's now).
var backdateSQL = map[appdb.Dialect]string{
	appdb.SQLite:   `UPDATE dtx_barrier SET created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-30 days') WHERE gid = ?`,
	appdb.Postgres: `UPDATE dtx_barrier SET created_at = now() - interval '30 days' WHERE gid = $1`,
	appdb.MySQL:    `UPDATE dtx_barrier SET created_at = CURRENT_TIMESTAMP(6) - INTERVAL 30 DAY WHERE gid = ?`,
}

func testBarrierPurge(t *testing.T, db *sql.DB, d appdb.Dialect) {
	ctx := context.Background()
	b := participant.Barrier{Dialect: d}
	require.NoError(t, b.Migrate(ctx, db))
	noop := func(*sql.Tx) error { return nil }
	for i := range 7 {
		gid := fmt.Sprintf("old-%d", i)
		require.NoError(t, b.Do(ctx, db, participant.Branch{GID: gid, Index: 0, Op: dtx.OpAction}, noop))
		_, err := db.ExecContext(ctx, backdateSQL[d], gid)
		require.NoError(t, err)
	}
	// A recent action and a recent null compensation (two rows).
	require.NoError(t, b.Do(ctx, db, participant.Branch{GID: "new", Index: 0, Op: dtx.OpAction}, noop))
	require.NoError(t, b.Do(ctx, db, participant.Branch{GID: "new", Index: 1, Op: dtx.OpCompensate}, noop))

	_, err := b.Purge(ctx, db, time.Hour, 0)
	require.ErrorIs(t, err, participant.ErrRetentionTooShort)

	n, err := b.Purge(ctx, db, participant.SafeRetention(24*time.Hour, time.Minute, 0), 3)
	require.NoError(t, err)
	require.EqualValues(t, 7, n, "the old rows, in batches of 3")
	var left int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM dtx_barrier`).Scan(&left))
	require.Equal(t, 3, left, "recent rows stay")

	// The recent null compensation still bars its action.
	err = b.Do(ctx, db, participant.Branch{GID: "new", Index: 1, Op: dtx.OpAction}, noop)
	require.ErrorIs(t, err, participant.ErrHanging)
}

func TestBarrierPurgeSQLite(t *testing.T) {
	t.Parallel()
	testBarrierPurge(t, openSQLite(t), appdb.SQLite)
}

func TestBarrierPurgePostgres(t *testing.T) {
	t.Parallel()
	testBarrierPurge(t, openPostgres(t), appdb.Postgres)
}

func TestBarrierPurgeMySQL(t *testing.T) {
	t.Parallel()
	db := openMySQL(t)
	testBarrierPurge(t, db, appdb.MySQL)
}

func TestSafeRetention(t *testing.T) {
	require.Equal(t, participant.MinPurgeAge, participant.SafeRetention(time.Minute, time.Second, 0))
	require.Equal(t, 7*24*time.Hour+time.Minute+participant.CompensationMargin+time.Hour,
		participant.SafeRetention(7*24*time.Hour, time.Minute, time.Hour))
}
