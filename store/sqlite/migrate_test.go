package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/store/storetest"
)

// TestMigrationsKeepData writes a database in the schema before migration
// 003 (dtx_tx with four indexes, events indexed by gid, branches keyed by
// gid) and opens it with Open: every row reads back, the store goes on
// writing it (storetest.MigrationsKeepData), and the b-trees are the ones
// migrations 003 and 004 leave: dtx_tx keeps only the status and created
// indexes, the events' index and the branches' key lead with tx_created.
func TestMigrationsKeepData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sqlitedb.Open(ctx, path, 1)
	require.NoError(t, err)
	defer db.Close()
	storetest.MigrationsKeepData(t, db, sqlite.Dialect, "003", false, func() *sqlstore.Store {
		s, err := sqlite.Open(ctx, path, sqlstore.Config{})
		require.NoError(t, err)
		return s
	})

	rows, err := db.QueryContext(ctx, `SELECT tbl_name || '.' || name || ':' || sql FROM sqlite_schema
		WHERE type = 'index' AND tbl_name LIKE 'dtx\_%' ESCAPE '\' AND tbl_name <> 'dtx_schema_migrations' AND sql IS NOT NULL ORDER BY 1`)
	require.NoError(t, err)
	var idx []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		idx = append(idx, n)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{
		"dtx_event.dtx_event_tx:CREATE INDEX dtx_event_tx ON dtx_event (tx_created, gid, id)",
		"dtx_tx.dtx_tx_created:CREATE INDEX dtx_tx_created ON dtx_tx (created_at)",
		"dtx_tx.dtx_tx_status:CREATE INDEX dtx_tx_status ON dtx_tx (status, created_at)",
	}, idx)
	var key []string
	rows, err = db.QueryContext(ctx, `SELECT name FROM pragma_table_info('dtx_branch') WHERE pk > 0 ORDER BY pk`)
	require.NoError(t, err)
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		key = append(key, n)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"tx_created", "gid", "idx"}, key, "dtx_branch's primary key")
	var clustered bool
	require.NoError(t, db.QueryRowContext(ctx, `SELECT wr FROM pragma_table_list WHERE name = 'dtx_branch'`).Scan(&clustered))
	require.True(t, clustered, "dtx_branch is a WITHOUT ROWID table: its rows are in its key's order")
}
