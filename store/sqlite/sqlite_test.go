package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) dtx.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "dtx.db"), sqlstore.Config{})
		require.NoError(t, err)
		return s
	})
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dtx.db")
	s, err := sqlite.Open(ctx, path, sqlstore.Config{})
	require.NoError(t, err)
	require.NoError(t, s.Create(ctx, &dtx.Tx{GID: "g", Pattern: dtx.PatternSaga, Status: dtx.StatusRunning, Spec: []byte(`{}`)}, nil))
	require.NoError(t, s.Close())
	s, err = sqlite.Open(ctx, path, sqlstore.Config{})
	require.NoError(t, err)
	defer s.Close()
	tx, _, err := s.Get(ctx, "g")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusRunning, tx.Status)
}

// TestCloseDuringWrites closes the store while many writers submit, each
// until its write is refused: each write either fails with ErrClosed (and
// is not in the database) or succeeds (and is), so Close loses none it
// accepted.
func TestCloseDuringWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dtx.db")
	s, err := sqlite.Open(ctx, path, sqlstore.Config{})
	require.NoError(t, err)
	const writers = 32
	results := make([][]error, writers)
	done := make(chan struct{}, 1024)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				err := s.Create(ctx, &dtx.Tx{GID: fmt.Sprintf("g%d-%d", w, i), Pattern: dtx.PatternSaga, Status: dtx.StatusRunning, Spec: []byte(`{}`)}, nil)
				results[w] = append(results[w], err)
				if err != nil {
					return
				}
				select {
				case done <- struct{}{}:
				default:
				}
			}
		}()
	}
	for range 300 { // close under load
		<-done
	}
	require.NoError(t, s.Close())
	wg.Wait()
	s, err = sqlite.Open(ctx, path, sqlstore.Config{})
	require.NoError(t, err)
	defer s.Close()
	ok := 0
	for w := range writers {
		for i, err := range results[w] {
			gid := fmt.Sprintf("g%d-%d", w, i)
			_, _, getErr := s.Get(ctx, gid)
			if err == nil {
				ok++
				require.NoError(t, getErr, "%s was acknowledged but is missing", gid)
				continue
			}
			require.ErrorIs(t, err, dtx.ErrClosed, gid)
			require.ErrorIs(t, getErr, dtx.ErrNotFound, "%s failed with ErrClosed but was written", gid)
		}
	}
	require.GreaterOrEqual(t, ok, 300)
}
