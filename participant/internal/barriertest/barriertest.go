// Package barriertest is the driver-independent test suite of the
// participant barrier: each driver binding (database/sql on SQLite and
// PostgreSQL, native pgx) runs the same scenarios through a Harness.
package barriertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/participant"
	"github.com/stretchr/testify/require"
)

// CounterTable is the table the harness increments inside the barrier's
// transaction; create it with CounterSchema.
const CounterTable = "barrier_test_counter"

// CounterSchema creates CounterTable (same text for SQLite and PostgreSQL;
// see CounterSchemaFor).
const CounterSchema = `CREATE TABLE IF NOT EXISTS ` + CounterTable + ` (k TEXT PRIMARY KEY, n INTEGER NOT NULL)`

// CounterSchemaFor returns the statement creating CounterTable in d.
func CounterSchemaFor(d appdb.Dialect) string {
	if d == appdb.MySQL {
		return `CREATE TABLE IF NOT EXISTS ` + CounterTable + ` (k VARBINARY(400) PRIMARY KEY, n INTEGER NOT NULL) ENGINE=InnoDB`
	}
	return CounterSchema
}

// Increment returns the statement adding one to counter $1 / ?1 / ?.
func Increment(d appdb.Dialect) string {
	switch d {
	case appdb.Postgres:
		return `INSERT INTO ` + CounterTable + ` (k, n) VALUES ($1, 1)
ON CONFLICT (k) DO UPDATE SET n = ` + CounterTable + `.n + 1`
	case appdb.MySQL:
		return `INSERT INTO ` + CounterTable + ` (k, n) VALUES (?, 1) ON DUPLICATE KEY UPDATE n = n + 1`
	}
	return `INSERT INTO ` + CounterTable + ` (k, n) VALUES (?, 1)
ON CONFLICT (k) DO UPDATE SET n = ` + CounterTable + `.n + 1`
}

// Select returns the query reading counter $1 / ?1 / ?.
func Select(d appdb.Dialect) string {
	p := "?"
	if d == appdb.Postgres {
		p = "$1"
	}
	return `SELECT n FROM ` + CounterTable + ` WHERE k = ` + p
}

// Key is the counter key of one branch operation.
func Key(br participant.Branch) string { return fmt.Sprintf("%s/%d/%s", br.GID, br.Index, br.Op) }

// Harness binds the scenarios to one driver.
type Harness struct {
	// Deliver performs the operation br through the barrier. Its fn
	// increments counter Key(br) inside the barrier's transaction and then
	// returns fail.
	Deliver func(ctx context.Context, br participant.Branch, fail error) error
	// Count returns counter Key(br) (0 if absent).
	Count func(ctx context.Context, br participant.Branch) int
}

func newGID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "g-" + hex.EncodeToString(b[:])
}

// Run runs every scenario against h.
func Run(t *testing.T, h Harness) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	ops := func(pairs ...dtx.Op) (a, c participant.Branch) {
		gid := newGID()
		return participant.Branch{GID: gid, Index: 1, Op: pairs[0]}, participant.Branch{GID: gid, Index: 1, Op: pairs[1]}
	}
	saga := func() (participant.Branch, participant.Branch) { return ops(dtx.OpAction, dtx.OpCompensate) }

	t.Run("ActionIdempotent", func(t *testing.T) {
		act, _ := saga()
		require.NoError(t, h.Deliver(ctx, act, nil))
		require.NoError(t, h.Deliver(ctx, act, nil))
		require.Equal(t, 1, h.Count(ctx, act))
	})

	t.Run("BranchesAreIndependent", func(t *testing.T) {
		act, _ := saga()
		other := act
		other.Index = 2
		require.NoError(t, h.Deliver(ctx, act, nil))
		require.NoError(t, h.Deliver(ctx, other, nil))
		require.Equal(t, 1, h.Count(ctx, act))
		require.Equal(t, 1, h.Count(ctx, other))
	})

	t.Run("CompensateAfterAction", func(t *testing.T) {
		act, comp := saga()
		require.NoError(t, h.Deliver(ctx, act, nil))
		require.NoError(t, h.Deliver(ctx, comp, nil))
		require.NoError(t, h.Deliver(ctx, comp, nil))
		require.NoError(t, h.Deliver(ctx, act, nil), "a late duplicate of an action that ran is a plain duplicate")
		require.Equal(t, 1, h.Count(ctx, act))
		require.Equal(t, 1, h.Count(ctx, comp))
	})

	t.Run("NullCompensationThenHanging", func(t *testing.T) {
		act, comp := saga()
		require.NoError(t, h.Deliver(ctx, comp, nil))
		require.Equal(t, 0, h.Count(ctx, comp), "null compensation must not run fn")
		require.NoError(t, h.Deliver(ctx, comp, nil))
		require.Equal(t, 0, h.Count(ctx, comp))

		err := h.Deliver(ctx, act, nil)
		require.ErrorIs(t, err, participant.ErrHanging)
		require.True(t, dtx.IsPermanent(err))
		require.Equal(t, 0, h.Count(ctx, act), "hanging action must not run fn")
		require.ErrorIs(t, h.Deliver(ctx, act, nil), participant.ErrHanging, "and stays refused")
	})

	t.Run("ActionErrorRollsBack", func(t *testing.T) {
		act, comp := saga()
		boom := errors.New("boom")
		err := h.Deliver(ctx, act, boom)
		require.Same(t, boom, err, "fn's error is returned unchanged")
		require.Equal(t, 0, h.Count(ctx, act))

		refused := dtx.Permanentf("insufficient funds")
		err = h.Deliver(ctx, act, refused)
		require.Same(t, refused, err)
		require.True(t, dtx.IsPermanent(err))
		require.Equal(t, 0, h.Count(ctx, act))

		// Nothing of the failed attempts remains: the compensation of an
		// action that failed is a null compensation...
		require.NoError(t, h.Deliver(ctx, comp, nil))
		require.Equal(t, 0, h.Count(ctx, comp))
		require.ErrorIs(t, h.Deliver(ctx, act, nil), participant.ErrHanging)
	})

	t.Run("RetryAfterError", func(t *testing.T) {
		act, comp := saga()
		require.Error(t, h.Deliver(ctx, act, errors.New("transient")))
		require.NoError(t, h.Deliver(ctx, act, nil), "a retry runs fn again")
		require.Equal(t, 1, h.Count(ctx, act))

		require.Error(t, h.Deliver(ctx, comp, errors.New("transient")))
		require.Equal(t, 0, h.Count(ctx, comp))
		require.NoError(t, h.Deliver(ctx, comp, nil), "compensation retried after an error is not a null compensation")
		require.Equal(t, 1, h.Count(ctx, comp))
	})

	t.Run("TCC", func(t *testing.T) {
		try, cancel := ops("try", "cancel")
		confirm := participant.Branch{GID: try.GID, Index: try.Index, Op: "confirm"}
		require.NoError(t, h.Deliver(ctx, try, nil))
		require.NoError(t, h.Deliver(ctx, try, nil))
		require.NoError(t, h.Deliver(ctx, confirm, nil))
		require.NoError(t, h.Deliver(ctx, confirm, nil))
		require.Equal(t, 1, h.Count(ctx, try))
		require.Equal(t, 1, h.Count(ctx, confirm))

		try2, cancel2 := ops("try", "cancel")
		require.NoError(t, h.Deliver(ctx, cancel2, nil))
		require.Equal(t, 0, h.Count(ctx, cancel2), "null cancel")
		require.ErrorIs(t, h.Deliver(ctx, try2, nil), participant.ErrHanging)
		require.Equal(t, 0, h.Count(ctx, try2))

		require.NoError(t, h.Deliver(ctx, cancel, nil))
		require.Equal(t, 1, h.Count(ctx, cancel), "cancel after try runs")
	})

	t.Run("InvalidBranch", func(t *testing.T) {
		for _, br := range []participant.Branch{
			{GID: "", Index: 0, Op: dtx.OpAction},
			{GID: "g", Index: -1, Op: dtx.OpAction},
			{GID: "g", Index: 0, Op: ""},
			{GID: "g", Index: 0, Op: "Action"},
		} {
			require.Error(t, h.Deliver(ctx, br, nil), "%+v", br)
			require.Equal(t, 0, h.Count(ctx, br))
		}
	})

	const n = 16
	concurrently := func(t *testing.T, brs ...participant.Branch) []error {
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, n*len(brs))
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = h.Deliver(ctx, brs[i%len(brs)], nil)
			}()
		}
		close(start)
		wg.Wait()
		return errs
	}

	t.Run("ConcurrentAction", func(t *testing.T) {
		act, _ := saga()
		for _, err := range concurrently(t, act) {
			require.NoError(t, err)
		}
		require.Equal(t, 1, h.Count(ctx, act))
	})

	t.Run("ConcurrentCompensate", func(t *testing.T) {
		act, comp := saga()
		require.NoError(t, h.Deliver(ctx, act, nil))
		for _, err := range concurrently(t, comp) {
			require.NoError(t, err)
		}
		require.Equal(t, 1, h.Count(ctx, comp))
	})

	t.Run("ConcurrentNullCompensate", func(t *testing.T) {
		act, comp := saga()
		for _, err := range concurrently(t, comp) {
			require.NoError(t, err)
		}
		require.Equal(t, 0, h.Count(ctx, comp))
		require.ErrorIs(t, h.Deliver(ctx, act, nil), participant.ErrHanging)
	})

	t.Run("ConcurrentActionAndCompensate", func(t *testing.T) {
		for round := 0; round < 4; round++ {
			act, comp := saga()
			for _, err := range concurrently(t, act, comp) {
				if err != nil {
					require.ErrorIs(t, err, participant.ErrHanging)
				}
			}
			a, c := h.Count(ctx, act), h.Count(ctx, comp)
			require.LessOrEqual(t, a, 1)
			// Every compensation returned success, so the action is either
			// undone (ran once, compensated once) or barred (never ran).
			require.Equal(t, a, c, "action ran %d times, compensation %d times", a, c)
		}
	})
}
