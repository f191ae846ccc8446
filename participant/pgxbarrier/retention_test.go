package pgxbarrier_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/participant/pgxbarrier"
)

func TestPurge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t)
	b := participant.Barrier{Table: "purge_barrier"}
	require.NoError(t, pgxbarrier.Migrate(ctx, pool, b))
	noop := func(pgx.Tx) error { return nil }
	for i := range 5 {
		gid := fmt.Sprintf("old-%d", i)
		require.NoError(t, pgxbarrier.Do(ctx, pool, b, participant.Branch{GID: gid, Op: dtx.OpAction}, noop))
		_, err := pool.Exec(ctx, `UPDATE purge_barrier SET created_at = now() - interval '3 days' WHERE gid = $1`, gid)
		require.NoError(t, err)
	}
	require.NoError(t, pgxbarrier.Do(ctx, pool, b, participant.Branch{GID: "new", Op: dtx.OpAction}, noop))

	_, err := pgxbarrier.Purge(ctx, pool, b, time.Minute, 0)
	require.ErrorIs(t, err, participant.ErrRetentionTooShort)
	n, err := pgxbarrier.Purge(ctx, pool, b, 2*24*time.Hour, 2)
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
	var left int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM purge_barrier`).Scan(&left))
	require.Equal(t, 1, left)
}
