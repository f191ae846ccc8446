package storetest

import (
	"context"
	"database/sql"
	"io/fs"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/store/sqlstore"
)

// MigrationsKeepData checks that the migrations from first on keep what a
// database written before them holds. It migrates db (empty) with d's
// migrations named before first, writes three transactions in that
// schema with plain SQL (finished "done" with two branches and two events,
// unfinished "running" leased to "a" with one event, and old "purged",
// finished long ago), then opens the store with open, which migrates the
// rest. Every row reads back through the store; the store writes and
// reads new events beside the old ones; the lease queries work; a purge
// removes a transaction's branches and events with it (counted in db).
//
// With oldWritesRefused, a branch or event inserted the way an earlier
// version did (without tx_created) must fail, not be stored where this
// version would not find it: databases that coordinators of several
// versions may share refuse it.
func MigrationsKeepData(t *testing.T, db *sql.DB, d sqlstore.Dialect, first string, oldWritesRefused bool, open func() *sqlstore.Store) {
	t.Helper()
	ctx := context.Background()
	old := fstest.MapFS{}
	names, err := fs.Glob(d.Migrations, "*.sql")
	require.NoError(t, err)
	for _, name := range names {
		if name >= first {
			continue
		}
		body, err := fs.ReadFile(d.Migrations, name)
		require.NoError(t, err)
		old[name] = &fstest.MapFile{Data: body}
	}
	require.NotEmpty(t, old, "no migration before %s", first)
	oldD := d
	oldD.Migrations = old
	require.NoError(t, sqlstore.Migrate(ctx, db, oldD))

	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	long := now.Add(-48 * time.Hour)
	exec := func(q string, args ...any) {
		t.Helper()
		q, args = d.Bind(q, args)
		_, err := db.ExecContext(ctx, q, args...)
		require.NoError(t, err, q)
	}
	for _, tx := range []struct {
		gid, status, owner string
		at                 time.Time
		until              int64
	}{
		{"done", "succeeded", "", now, 0},
		{"running", "running", "a", now.Add(time.Millisecond), now.Add(time.Minute).UnixMilli()},
		{"purged", "failed", "", long, 0},
	} {
		exec(`INSERT INTO dtx_tx (gid, pattern, status, reason, spec, digest, created_at, updated_at, deadline, lease_owner, lease_until)
			VALUES ($1, 'saga', $2, '', $3, 'd', $4, $5, $6, $7, $8)`,
			tx.gid, tx.status, `{"gid":"`+tx.gid+`"}`, tx.at.UnixMilli(), tx.at.UnixMilli(), tx.at.Add(time.Hour).UnixMilli(), tx.owner, tx.until)
		for i, name := range []string{"x", "y"} {
			action := "pending"
			if tx.status == "succeeded" {
				action = "succeeded"
			}
			exec(`INSERT INTO dtx_branch (gid, idx, name, action, compensate, action_attempts, compensate_attempts, last_error, updated_at)
				VALUES ($1, $2, $3, $4, 'pending', 1, 0, '', $5)`, tx.gid, i, name, action, tx.at.UnixMilli())
		}
		exec(`INSERT INTO dtx_event (gid, at, branch, op, outcome, detail, duration_us, owner) VALUES ($1, $2, -1, '', $3, 'submitted', 0, 'a')`,
			tx.gid, tx.at.UnixMilli(), "running")
	}
	exec(`INSERT INTO dtx_event (gid, at, branch, op, outcome, detail, duration_us, owner) VALUES ('done', $1, 0, 'action', 'success', '', 1500, 'a')`,
		now.UnixMilli())

	s := open()
	defer s.Close()
	tx, br, err := s.Get(ctx, "done")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, tx.Status)
	require.Equal(t, `{"gid":"done"}`, string(tx.Spec))
	require.Len(t, br, 2)
	require.Equal(t, []string{"x", "y"}, []string{br[0].Name, br[1].Name})
	require.Equal(t, dtx.BranchSucceeded, br[0].Action)
	evs, err := s.Events(ctx, "done")
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, "submitted", evs[0].Detail)
	require.Equal(t, dtx.OpAction, evs[1].Op)
	require.Equal(t, 1500*time.Microsecond, evs[1].Duration)

	// The running transaction goes on in the new schema: its old event
	// and its new ones are one history, in order.
	require.NoError(t, s.Apply(ctx, dtx.Update{GID: "running", Owner: "a", At: now.Add(time.Second),
		Branches: []dtx.Branch{{Index: 0, Name: "x", Action: dtx.BranchSucceeded, Compensate: dtx.BranchPending, ActionAttempts: 2}},
		Events:   []dtx.Event{{At: now.Add(time.Second), Branch: 0, Op: dtx.OpAction, Outcome: "success"}}}))
	evs, err = s.Events(ctx, "running")
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, "submitted", evs[0].Detail)
	require.Equal(t, "success", evs[1].Outcome)
	_, br, err = s.Get(ctx, "running")
	require.NoError(t, err)
	require.Equal(t, dtx.BranchSucceeded, br[0].Action)
	require.Equal(t, dtx.BranchPending, br[1].Action)

	if oldWritesRefused {
		for _, q := range []string{
			`INSERT INTO dtx_branch (gid, idx, name, action, compensate, action_attempts, compensate_attempts, last_error, updated_at)
				VALUES ('running', 2, 'z', 'pending', 'pending', 0, 0, '', 1)`,
			`INSERT INTO dtx_event (gid, at, branch, op, outcome, detail, duration_us, owner) VALUES ('running', 1, 0, 'action', 'success', '', 0, 'old')`,
		} {
			_, err := db.ExecContext(ctx, q)
			require.Error(t, err, "an insert without tx_created: %s", q)
		}
	}

	// Its lease: renewed by its owner, then, once expired, claimed by
	// another.
	n, err := s.Renew(ctx, "a", now.Add(2*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	backlog, err := s.Backlog(ctx, now.Add(3*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, backlog)
	got, err := s.Claim(ctx, "b", now.Add(3*time.Minute), now.Add(4*time.Minute), 10)
	require.NoError(t, err)
	require.Equal(t, []string{"running"}, got)

	// A purge takes the old transaction's rows with it.
	purged, err := s.PurgeFinished(ctx, now.Add(-time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, 1, purged)
	for _, table := range []string{"dtx_branch", "dtx_event"} {
		var left int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE gid = 'purged'`).Scan(&left))
		require.Zero(t, left, "%s rows of the purged transaction", table)
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE gid = 'done'`).Scan(&left))
		require.Equal(t, 2, left, "%s rows of a kept transaction", table)
	}
}
