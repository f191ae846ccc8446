package mysql_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/internal/mariadbtest"
	"github.com/dtxhq/dtx/store/mysql"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/store/storetest"
)

func TestMain(m *testing.M) { mariadbtest.Main(m) }

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) dtx.Store {
		s, err := mysql.Open(context.Background(), mariadbtest.DSN(t), sqlstore.Config{})
		require.NoError(t, err)
		return s
	})
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	dsn := mariadbtest.DSN(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := mysql.Open(context.Background(), dsn, sqlstore.Config{})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		require.NoError(t, <-errs)
	}
	db, err := sql.Open("mysql", dsn)
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM dtx_schema_migrations`).Scan(&n))
	require.Equal(t, 3, n, "each migration recorded once (001_init, 002_event_owner, 003_rows_by_tx)")
}

// TestMigrationsKeepData: a database written before migration 003 keeps
// its rows, and the store goes on writing them (events found through
// their transaction's creation time).
func TestMigrationsKeepData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := mariadbtest.DSN(t)
	c, err := gomysql.ParseDSN(dsn)
	require.NoError(t, err)
	c.MultiStatements = true // the migrations' bodies
	db, err := sql.Open("mysql", c.FormatDSN())
	require.NoError(t, err)
	defer db.Close()
	storetest.MigrationsKeepData(t, db, mysql.Dialect, "003", true, func() *sqlstore.Store {
		s, err := mysql.Open(ctx, dsn, sqlstore.Config{})
		require.NoError(t, err)
		return s
	})
}

// Keys match byte for byte, as in the other stores: no case folding, no
// trailing-space padding, and a gid too long for the column is refused
// rather than stored truncated.
func TestExactKeys(t *testing.T) {
	ctx := context.Background()
	s, err := mysql.Open(ctx, mariadbtest.DSN(t), sqlstore.Config{})
	require.NoError(t, err)
	defer s.Close()
	create := func(gid, owner string) error {
		return s.Create(ctx, &dtx.Tx{GID: gid, Pattern: dtx.PatternSaga, Status: dtx.StatusRunning, Spec: []byte(`{}`), LeaseOwner: owner}, nil)
	}
	require.NoError(t, create("g", "Owner"))
	require.NoError(t, create("G", "owner"))
	require.NoError(t, create("g ", "owner"))
	require.ErrorIs(t, create("g", "x"), dtx.ErrExists)
	require.Error(t, create(strings.Repeat("x", 300), "x"))
	_, _, err = s.Get(ctx, strings.Repeat("x", 255))
	require.ErrorIs(t, err, dtx.ErrNotFound)

	require.ErrorIs(t, s.Apply(ctx, dtx.Update{GID: "g", Owner: "owner"}), dtx.ErrLeaseLost, "owners compare case-sensitively")
	require.NoError(t, s.Apply(ctx, dtx.Update{GID: "g", Owner: "Owner"}))
	n, err := s.Renew(ctx, "owner", dtx.Tx{}.CreatedAt)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	// Non-UTF-8 error text is stored (sanitised), not rejected.
	require.NoError(t, s.Apply(ctx, dtx.Update{GID: "g", Owner: "Owner",
		Branches: []dtx.Branch{{Index: 0, LastError: "bad \xff byte" + strings.Repeat("é", 600)}},
		Events:   []dtx.Event{{Branch: 0, Op: dtx.OpAction, Outcome: "failure", Detail: "\xfe"}}}))
}

func TestIsDeadlock(t *testing.T) {
	t.Parallel()
	s, err := mysql.Open(context.Background(), mariadbtest.DSN(t), sqlstore.Config{})
	require.NoError(t, err)
	defer s.Close()
	storetest.Deadlock(t, s.DB(), mysql.Dialect)
}
