package sqlitedb_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/participant/sqlitedb"
)

// The database comes with WAL, a busy timeout and BEGIN IMMEDIATE: many
// concurrent barrier transactions on one file all commit, none fails on
// "database is locked".
func TestOpen_SettingsLetConcurrentWritersQueue(t *testing.T) {
	ctx := context.Background()
	db, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "sub", "p.db"))
	require.NoError(t, err, "the directory is created")
	defer db.Close()
	var mode string
	require.NoError(t, db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode))
	require.Equal(t, "wal", mode)
	var busy int
	require.NoError(t, db.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy))
	require.Equal(t, 30000, busy)

	var b participant.Barrier
	require.NoError(t, b.Migrate(ctx, db))
	_, err = db.ExecContext(ctx, `CREATE TABLE n (v INTEGER)`)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `INSERT INTO n VALUES (0)`)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			br := participant.Branch{GID: "g", Index: i, Op: "action"}
			errs <- b.Do(ctx, db, br, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `UPDATE n SET v = v + 1`)
				return err
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var v int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT v FROM n`).Scan(&v))
	require.Equal(t, 40, v)
}
