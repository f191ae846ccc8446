package serve

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
)

func TestPurgeFinishedLoopsOverBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "dtx.db"), sqlstore.Config{})
	require.NoError(t, err)
	defer st.Close()
	old := time.Now().Add(-48 * time.Hour)
	for i := range 12 {
		gid := fmt.Sprintf("g%02d", i)
		require.NoError(t, st.Create(ctx, &dtx.Tx{GID: gid, Pattern: dtx.PatternSaga, Status: dtx.StatusRunning,
			Spec: []byte(`{}`), CreatedAt: old, UpdatedAt: old, LeaseOwner: "c"}, nil))
		if i < 11 {
			require.NoError(t, st.Apply(ctx, dtx.Update{GID: gid, Owner: "c", At: old, Status: dtx.StatusSucceeded, Release: true}))
		}
	}
	n, err := PurgeFinished(ctx, st, time.Now().Add(-24*time.Hour), 5)
	require.NoError(t, err)
	require.Equal(t, 11, n, "every old finished transaction, over three batches")
	counts, err := st.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, map[dtx.Status]int{dtx.StatusRunning: 1}, counts, "the unfinished one stays")
}

func TestRetentionBelowMinimumRefused(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{-time.Second, time.Minute, MinRetention - 1} {
		err := Run(context.Background(), Config{Listen: "127.0.0.1:0", Store: filepath.Join(t.TempDir(), "x.db"), Retention: d})
		var ce *ConfigError
		require.True(t, errors.As(err, &ce), "retention %v: %v", d, err)
		require.Contains(t, ce.Msg, "retention")
	}
	require.NoError(t, checkRetention(0))
	require.NoError(t, checkRetention(MinRetention))
	require.Equal(t, time.Hour, purgeEvery(DefaultRetention))
	require.Equal(t, 6*time.Minute, purgeEvery(MinRetention))
}
