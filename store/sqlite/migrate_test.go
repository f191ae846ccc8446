package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
)

// TestMigrationHotPathKeepsData builds a database with the schema before
// migration 003 (dtx_tx with four indexes), writes a running transaction
// and a finished one with their branches and events, then opens it with
// Open: the rows are intact, dtx_tx keeps only the status and created
// indexes, and the lease queries that used the dropped ones still work.
func TestMigrationHotPathKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old := fstest.MapFS{}
	for _, name := range []string{"001_init.sql", "002_event_owner.sql"} {
		body, err := os.ReadFile(filepath.Join("migrations", name))
		require.NoError(t, err)
		old[name] = &fstest.MapFile{Data: body}
	}
	db, err := sqlitedb.Open(ctx, path, 1)
	require.NoError(t, err)
	d := sqlite.Dialect
	d.Migrations, d.Override = old, sqlstore.Statements{}
	require.NoError(t, sqlstore.Migrate(ctx, db, d))
	st, err := sqlstore.Open(ctx, db, d, sqlstore.Config{})
	require.NoError(t, err)
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	for _, gid := range []string{"done", "running"} {
		tx := &dtx.Tx{GID: gid, Pattern: dtx.PatternSaga, Status: dtx.StatusRunning, Spec: []byte(`{"gid":"` + gid + `"}`), Digest: "d",
			CreatedAt: now, UpdatedAt: now, Deadline: now.Add(time.Hour), LeaseOwner: "a", LeaseUntil: now.Add(time.Minute)}
		require.NoError(t, st.Create(ctx, tx, []dtx.Branch{{Index: 0, Name: "x"}, {Index: 1, Name: "y"}}))
	}
	require.NoError(t, st.Apply(ctx, dtx.Update{GID: "done", Owner: "a", At: now, Status: dtx.StatusSucceeded, Release: true,
		Branches: []dtx.Branch{{Index: 0, Name: "x", Action: dtx.BranchSucceeded, ActionAttempts: 1}},
		Events:   []dtx.Event{{At: now, Branch: 0, Op: dtx.OpAction, Outcome: "success"}}}))
	require.NoError(t, st.Close())

	s, err := sqlite.Open(ctx, path, sqlstore.Config{})
	require.NoError(t, err)
	defer s.Close()
	tx, br, err := s.Get(ctx, "done")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, tx.Status)
	require.Equal(t, `{"gid":"done"}`, string(tx.Spec))
	require.Empty(t, tx.LeaseOwner)
	require.Len(t, br, 2)
	require.Equal(t, dtx.BranchSucceeded, br[0].Action)
	evs, err := s.Events(ctx, "done")
	require.NoError(t, err)
	require.Len(t, evs, 2) // submitted, the action

	rows, err := s.DB().QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'dtx_tx' AND sql IS NOT NULL ORDER BY name`)
	require.NoError(t, err)
	var idx []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		idx = append(idx, n)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"dtx_tx_created", "dtx_tx_status"}, idx)

	// The running transaction's lease: renewed by its owner, then, once
	// expired, claimed by another.
	n, err := s.Renew(ctx, "a", now.Add(2*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	backlog, err := s.Backlog(ctx, now.Add(3*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, backlog)
	got, err := s.Claim(ctx, "b", now.Add(3*time.Minute), now.Add(4*time.Minute), 10)
	require.NoError(t, err)
	require.Equal(t, []string{"running"}, got)
}
