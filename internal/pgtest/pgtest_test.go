package pgtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestDSNGivesFreshDatabase(t *testing.T) {
	ctx := context.Background()
	var first string
	t.Run("first", func(t *testing.T) {
		dsn := DSN(t)
		conn := connect(t, dsn)
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&first))
		_, err := conn.Exec(ctx, "CREATE TABLE x (id int primary key)")
		require.NoError(t, err)

		var fsync string
		require.NoError(t, conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync))
		require.Equal(t, "on", fsync)
		var maxConns int
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('max_connections')::int").Scan(&maxConns))
		require.Equal(t, 200, maxConns)
	})

	dsn := DSN(t)
	conn := connect(t, dsn)
	var second string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&second))
	require.NotEqual(t, first, second)

	// The first test's database was dropped by its cleanup, even though its
	// connection was still open at that point.
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", first).Scan(&n))
	require.Equal(t, 0, n)

	// Empty: no user tables.
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n))
	require.Equal(t, 0, n)
}

func TestMissingPolicy(t *testing.T) {
	notInstalled := fmt.Errorf("%w (test)", ErrNotInstalled)

	skip, msg := missing(notInstalled, "")
	require.True(t, skip)
	require.Contains(t, msg, EnvRequire)

	skip, msg = missing(notInstalled, "1")
	require.False(t, skip)
	require.Contains(t, msg, EnvRequire)

	skip, _ = missing(errors.New("initdb: boom"), "")
	require.False(t, skip, "start-up failures other than a missing installation must fail, not skip")
}
