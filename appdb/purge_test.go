package appdb_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/appdb"
)

func TestPurgeInBatches(t *testing.T) {
	left := 7
	var batches []any
	exec := func(_ context.Context, stmt string, args ...any) (int64, error) {
		require.Equal(t, "DELETE", stmt)
		require.Equal(t, "age", args[0])
		batches = append(batches, args[1])
		n := min(left, args[1].(int))
		left -= n
		return int64(n), nil
	}
	n, err := appdb.PurgeInBatches(context.Background(), exec, "DELETE", 3, "age")
	require.NoError(t, err)
	require.EqualValues(t, 7, n)
	require.Equal(t, []any{3, 3, 3}, batches, "until a batch comes back short")

	require.Equal(t, appdb.DefaultPurgeBatch, appdb.PurgeBatch(0))
	require.Equal(t, appdb.MaxPurgeBatch, appdb.PurgeBatch(1<<30))
}

func TestPeriodically(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	boom := errors.New("boom")
	calls := 0
	var reported []error
	err := appdb.Periodically(ctx, 1, func(context.Context) error {
		calls++
		if calls == 3 {
			cancel()
		}
		return boom
	}, func(err error) { reported = append(reported, err) })
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 3, calls, "at once, then on each tick until cancelled")
	require.Len(t, reported, 2, "errors after cancellation are not reported")
	require.Error(t, appdb.Periodically(ctx, 0, nil, nil))
}
