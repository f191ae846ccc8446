package projection_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	"github.com/dtxhq/dtx/projection"
)

// Environment of the runner child process (see TestMain).
const (
	envChildPG     = "DTX_PROJECTION_CHILD_PG"
	envChildSQLite = "DTX_PROJECTION_CHILD_SQLITE"
)

// runChild is the child process of TestRunnerSurvivesSIGKILL: a runner of
// the cart model, commands on PostgreSQL and queries on SQLite, that
// applies events in small batches until caught up, then exits 0.
func runChild() int {
	ctx := context.Background()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child:", err); return 1 }
	pg, err := sql.Open("pgx", os.Getenv(envChildPG))
	if err != nil {
		return fail(err)
	}
	store, err := eventstore.New(pg, eventstore.Config{Dialect: appdb.Postgres})
	if err != nil {
		return fail(err)
	}
	db, err := sqlitedb.Open(ctx, os.Getenv(envChildSQLite), 0)
	if err != nil {
		return fail(err)
	}
	model := cartModel{db: db, d: appdb.SQLite}
	r, err := projection.New(projection.Config{Name: "p", Source: store, DB: db, Dialect: appdb.SQLite, Apply: model.apply, BatchSize: 3})
	if err != nil {
		return fail(err)
	}
	for {
		n, err := r.Step(ctx)
		if err != nil {
			return fail(err)
		}
		if n == 0 {
			return 0
		}
	}
}

// A runner process is killed with SIGKILL twice in the middle of the
// stream and started again: at the end every event was applied exactly
// once and the model equals the fold of the events.
func TestRunnerSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	dsn := pgtest.DSN(t)
	pg, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { pg.Close() })
	store, err := eventstore.New(pg, eventstore.Config{Dialect: appdb.Postgres})
	require.NoError(t, err)
	require.NoError(t, store.Migrate(ctx))
	appendCarts(t, store, "c", 120) // 600 events

	path := filepath.Join(t.TempDir(), "queries.db")
	db, err := sqlitedb.Open(ctx, path, 0)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	model := cartModel{db: db, d: appdb.SQLite}
	model.migrate(t)
	r, err := projection.New(projection.Config{Name: "p", Source: store, DB: db, Dialect: appdb.SQLite, Apply: model.apply})
	require.NoError(t, err)
	require.NoError(t, r.Migrate(ctx))

	start := func() (*exec.Cmd, chan error) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envChildPG+"="+dsn, envChildSQLite+"="+path)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		return cmd, exited
	}
	for _, killAt := range []int64{100, 250} {
		cmd, exited := start()
		require.Eventually(t, func() bool {
			cp, err := r.Checkpoint(ctx)
			return err == nil && cp >= killAt
		}, time.Minute, time.Millisecond)
		require.NoError(t, cmd.Process.Kill()) // SIGKILL
		err := <-exited
		require.Error(t, err, "the child was still running when killed")
		cp, err := r.Checkpoint(ctx)
		require.NoError(t, err)
		require.Less(t, cp, int64(600))
		model.requireExactlyOnce(t, cp)
	}
	_, exited := start()
	require.NoError(t, <-exited)
	model.requireExactlyOnce(t, 600)
	require.Equal(t, fold(t, store), model.items(t))
}
