package sqlite_test

import (
	"context"
	"path/filepath"
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
