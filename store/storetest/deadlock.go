package storetest

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/store/sqlstore"
)

// Deadlock checks d.IsDeadlock against a real deadlock on db: two
// transactions each lock a row, then wait for the other's; the database
// rolls one back, and IsDeadlock must recognise that error (and not a
// unique violation).
func Deadlock(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
	ctx := context.Background()
	_, err := db.ExecContext(ctx, `CREATE TABLE dtx_deadlock_probe (id INT PRIMARY KEY, v INT NOT NULL)`)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `INSERT INTO dtx_deadlock_probe (id, v) VALUES (1, 0), (2, 0)`)
	require.NoError(t, err)
	_, dup := db.ExecContext(ctx, `INSERT INTO dtx_deadlock_probe (id, v) VALUES (1, 0)`)
	require.Error(t, dup)
	require.False(t, d.IsDeadlock(dup), "a unique violation is not a deadlock: %v", dup)

	lock := func(tx *sql.Tx, id string) error {
		_, err := tx.ExecContext(ctx, `UPDATE dtx_deadlock_probe SET v = v + 1 WHERE id = `+id)
		return err
	}
	a, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer a.Rollback()
	b, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer b.Rollback()
	require.NoError(t, lock(a, "1"))
	require.NoError(t, lock(b, "2"))
	// Each now waits for the other's row: the database breaks the cycle by
	// failing one of them, and the other goes on once its rows are free.
	errs := make(chan error, 2)
	go func() {
		err := lock(a, "2")
		if err != nil {
			a.Rollback()
		}
		errs <- err
	}()
	go func() {
		err := lock(b, "1")
		if err != nil {
			b.Rollback()
		}
		errs <- err
	}()
	victim := errors.Join(<-errs, <-errs)
	require.Error(t, victim, "one of the two was rolled back")
	require.True(t, d.IsDeadlock(victim), "IsDeadlock recognises %v", victim)
}
