package postgres_test

import (
	"context"
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/store/postgres"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) dtx.Store {
		s, err := postgres.Open(context.Background(), pgtest.DSN(t), sqlstore.Config{})
		require.NoError(t, err)
		return s
	})
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := postgres.Open(context.Background(), dsn, sqlstore.Config{})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		require.NoError(t, <-errs)
	}
}

// TestMigrationsKeepData: a database written before migration 003 keeps
// its rows, and the store goes on writing them (events found through
// their transaction's creation time).
func TestMigrationsKeepData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()
	storetest.MigrationsKeepData(t, db, postgres.Dialect, "003", true, func() *sqlstore.Store {
		s, err := postgres.Open(ctx, dsn, sqlstore.Config{})
		require.NoError(t, err)
		return s
	})
}

func TestIsDeadlock(t *testing.T) {
	t.Parallel()
	s, err := postgres.Open(context.Background(), pgtest.DSN(t), sqlstore.Config{})
	require.NoError(t, err)
	defer s.Close()
	storetest.Deadlock(t, s.DB(), postgres.Dialect)
}
