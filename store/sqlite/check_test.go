package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
)

func TestEmptyFileRefusedUnlessAsked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dtx.db")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	_, err := sqlite.Open(ctx, path, sqlstore.Config{})
	require.ErrorIs(t, err, sqlite.ErrEmptyFile)
	require.Contains(t, err.Error(), "?init_empty=1")
	fi, statErr := os.Stat(path)
	require.NoError(t, statErr)
	require.Zero(t, fi.Size(), "the refused file is left as it was")

	_, err = sqlite.Open(ctx, path+"?nonsense=1", sqlstore.Config{})
	require.ErrorContains(t, err, "unknown parameter")

	s, err := sqlite.Open(ctx, path+"?init_empty=1", sqlstore.Config{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	// Now a store: it opens without the parameter.
	s, err = sqlite.Open(ctx, path, sqlstore.Config{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

func TestNewPathCreatedFresh(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sub", "dtx.db"), sqlstore.Config{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

func TestNotADatabaseRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "dtx.db")
	require.NoError(t, os.WriteFile(path, []byte(strings.Repeat("not a database\n", 500)), 0o600))
	_, err := sqlite.Open(context.Background(), path, sqlstore.Config{})
	require.ErrorIs(t, err, sqlite.ErrCorrupt)
	require.NotContains(t, err.Error(), "\n")
}

// TestDamagedPagesRefused damages the pages of a real store behind its
// intact header: quick_check finds it.
func TestDamagedPagesRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "dtx.db")
	fillAndDamage(t, path)
	_, err := sqlite.Open(context.Background(), path, sqlstore.Config{})
	require.ErrorIs(t, err, sqlite.ErrCorrupt)
	require.NotContains(t, err.Error(), "\n")
}

// fillAndDamage writes a store with some transactions at path, closes it
// and overwrites pages past the first with garbage.
func fillAndDamage(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path, sqlstore.Config{})
	require.NoError(t, err)
	at := time.Now()
	for i := range 200 {
		gid := fmt.Sprintf("g%03d", i)
		require.NoError(t, s.Create(ctx, &dtx.Tx{GID: gid, Pattern: dtx.PatternSaga, Status: dtx.StatusRunning,
			Spec: []byte(`{"steps":[]}`), CreatedAt: at, UpdatedAt: at}, nil))
	}
	require.NoError(t, s.Close())
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	fi, err := f.Stat()
	require.NoError(t, err)
	require.Greater(t, fi.Size(), int64(3*4096))
	_, err = f.WriteAt([]byte(strings.Repeat("\xa5", int(fi.Size())-4096)), 4096)
	require.NoError(t, err)
}
