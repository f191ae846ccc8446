package xa_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/participant/xa"
)

// env is one test database.
type env struct {
	t       *testing.T
	dialect appdb.Dialect
	driver  string
	dsn     string
	db      *sql.DB
	b       xa.Branches
	calls   atomic.Int64 // calls of work
}

func newEnv(t *testing.T, dialect appdb.Dialect, dsn string) *env {
	driver := "pgx"
	if dialect == appdb.MySQL {
		driver = "mysql"
	}
	return newEnvDriver(t, dialect, driver, dsn)
}

// newEnvDriver is newEnv with the database/sql driver of the library's calls.
func newEnvDriver(t *testing.T, dialect appdb.Dialect, driver, dsn string) *env {
	e := &env{t: t, dialect: dialect, dsn: dsn, driver: driver,
		b: xa.Branches{Dialect: dialect}}
	e.db = e.open()
	ctx := context.Background()
	require.NoError(t, e.b.Migrate(ctx, e.db))
	_, err := e.db.ExecContext(ctx, "CREATE TABLE accounts (id INT PRIMARY KEY, balance INT NOT NULL)")
	require.NoError(t, err)
	_, err = e.db.ExecContext(ctx, "CREATE TABLE ledger (gid VARCHAR(300) NOT NULL, branch INT NOT NULL)")
	require.NoError(t, err)
	_, err = e.db.ExecContext(ctx, "INSERT INTO accounts VALUES (0, 100), (1, 100), (2, 100), (3, 100)")
	require.NoError(t, err)
	return e
}

func (e *env) open() *sql.DB {
	db, err := sql.Open(e.driver, e.dsn)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { db.Close() })
	return db
}

// ph is the i-th placeholder.
func (e *env) ph(i int) string {
	if e.dialect == appdb.Postgres {
		return fmt.Sprintf("$%d", i)
	}
	return "?"
}

// work debits account br.Index by 10 and writes a ledger row.
func (e *env) work(br participant.Branch) func(ctx context.Context, conn *sql.Conn) error {
	return func(ctx context.Context, conn *sql.Conn) error {
		e.calls.Add(1)
		if _, err := conn.ExecContext(ctx, "UPDATE accounts SET balance = balance - 10 WHERE id = "+e.ph(1), br.Index); err != nil {
			return err
		}
		_, err := conn.ExecContext(ctx, "INSERT INTO ledger (gid, branch) VALUES ("+e.ph(1)+", "+e.ph(2)+")", br.GID, br.Index)
		return err
	}
}

func (e *env) balance(id int) int {
	var n int
	require.NoError(e.t, e.db.QueryRow("SELECT balance FROM accounts WHERE id = "+e.ph(1), id).Scan(&n))
	return n
}

func (e *env) ledger() int {
	var n int
	require.NoError(e.t, e.db.QueryRow("SELECT count(*) FROM ledger").Scan(&n))
	return n
}

func (e *env) inDoubt() []participant.Branch {
	brs, err := e.b.InDoubt(context.Background(), e.db)
	require.NoError(e.t, err)
	return brs
}

// locked reports whether account id's row is locked (an UPDATE of it times
// out).
func (e *env) locked(id int) bool {
	ctx := context.Background()
	conn, err := e.db.Conn(ctx)
	require.NoError(e.t, err)
	defer conn.Close()
	if e.dialect == appdb.Postgres {
		_, err = conn.ExecContext(ctx, "SET lock_timeout = '100ms'")
	} else {
		_, err = conn.ExecContext(ctx, "SET SESSION innodb_lock_wait_timeout = 1")
	}
	require.NoError(e.t, err)
	_, err = conn.ExecContext(ctx, "UPDATE accounts SET balance = balance WHERE id = "+e.ph(1), id)
	if err == nil {
		return false
	}
	require.Contains(e.t, strings.ToLower(err.Error()), "lock", "unexpected error: %v", err)
	if e.dialect == appdb.Postgres {
		_, err = conn.ExecContext(ctx, "RESET lock_timeout")
	} else {
		_, err = conn.ExecContext(ctx, "SET SESSION innodb_lock_wait_timeout = DEFAULT")
	}
	require.NoError(e.t, err)
	return true
}

// holdTry starts try and returns once its work has run, while the try
// still holds its transaction open; closing release lets it prepare, and
// done gets its result.
func (e *env) holdTry(try participant.Branch) (release chan struct{}, done chan error) {
	inside := make(chan struct{})
	release, done = make(chan struct{}), make(chan error, 1)
	go func() {
		done <- e.b.Try(context.Background(), e.db, try, func(ctx context.Context, conn *sql.Conn) error {
			if err := e.work(try)(ctx, conn); err != nil {
				return err
			}
			close(inside)
			<-release
			return nil
		})
	}()
	select {
	case <-inside:
	case err := <-done:
		e.t.Fatalf("the try ended before its work was held: %v", err)
	}
	return release, done
}

// foreign prepares a transaction with an id XID does not produce.
func (e *env) foreign(xid string) {
	ctx := context.Background()
	conn, err := e.db.Conn(ctx)
	require.NoError(e.t, err)
	if e.dialect == appdb.Postgres {
		for _, s := range []string{"BEGIN", "INSERT INTO ledger VALUES ('foreign', 99)", "PREPARE TRANSACTION '" + xid + "'"} {
			_, err := conn.ExecContext(ctx, s)
			require.NoError(e.t, err)
		}
		require.NoError(e.t, conn.Close())
		return
	}
	for _, s := range []string{"XA START '" + xid + "'", "INSERT INTO ledger VALUES ('foreign', 99)", "XA END '" + xid + "'", "XA PREPARE '" + xid + "'"} {
		_, err := conn.ExecContext(ctx, s)
		require.NoError(e.t, err)
	}
	// The session cannot be reused after XA PREPARE: close it.
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

func (e *env) dropForeign(xid string) {
	stmt := "ROLLBACK PREPARED '" + xid + "'"
	if e.dialect == appdb.MySQL {
		stmt = "XA ROLLBACK '" + xid + "'"
	}
	require.Eventually(e.t, func() bool {
		_, err := e.db.Exec(stmt)
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)
}

func br(gid string, i int, op dtx.Op) participant.Branch {
	return participant.Branch{GID: gid, Index: i, Op: op}
}

func TestPostgres(t *testing.T) {
	srv := startPostgres(t)
	runAll(t, appdb.Postgres, func(t *testing.T) *env { return newEnv(t, appdb.Postgres, srv.createDB(t)) })
}

// TestPostgresOtherDriver runs the same scenarios through a PostgreSQL
// driver that is not pgx (pgx with its Conn method hidden): the library
// sends its statements one at a time instead of in one pipeline.
func TestPostgresOtherDriver(t *testing.T) {
	srv := startPostgres(t)
	runAll(t, appdb.Postgres, func(t *testing.T) *env {
		return newEnvDriver(t, appdb.Postgres, "pgx-plain", srv.createDB(t))
	})
}

func TestMariaDB(t *testing.T) {
	srv := startMariaDB(t)
	runAll(t, appdb.MySQL, func(t *testing.T) *env { return newEnv(t, appdb.MySQL, srv.createDB(t)) })
}

func runAll(t *testing.T, dialect appdb.Dialect, newEnv func(t *testing.T) *env) {
	ctx := context.Background()
	// Each scenario has a database of its own. PostgreSQL lists prepared
	// transactions per database, so its scenarios run in parallel; XA
	// RECOVER lists the whole server's, so MariaDB's cannot.
	parallel := func(t *testing.T) {
		if dialect == appdb.Postgres {
			t.Parallel()
		}
	}

	t.Run("TryConfirm", func(t *testing.T) {
		parallel(t)
		e := newEnv(t)
		try := br("g-confirm", 1, dtx.OpTry)
		require.NoError(t, e.b.Try(ctx, e.db, try, e.work(try)))
		require.EqualValues(t, 1, e.calls.Load())
		// Prepared: invisible and locked.
		require.Equal(t, 100, e.balance(1))
		require.True(t, e.locked(1))
		require.Equal(t, []participant.Branch{br("g-confirm", 1, dtx.OpTry)}, e.inDoubt())
		// Duplicate try while prepared.
		require.NoError(t, e.b.Try(ctx, e.db, try, e.work(try)))
		require.EqualValues(t, 1, e.calls.Load())

		confirm := br("g-confirm", 1, dtx.OpConfirm)
		require.NoError(t, e.b.Confirm(ctx, e.db, confirm))
		require.Equal(t, 90, e.balance(1))
		require.Equal(t, 1, e.ledger())
		require.Empty(t, e.inDoubt())
		// Duplicate confirm, and a duplicate try after the commit.
		require.NoError(t, e.b.Confirm(ctx, e.db, confirm))
		require.NoError(t, e.b.Try(ctx, e.db, try, e.work(try)))
		require.EqualValues(t, 1, e.calls.Load())
		require.Equal(t, 90, e.balance(1))
		require.Equal(t, 1, e.ledger())
		require.False(t, e.locked(1))

		// A confirm without a try is a permanent error.
		err := e.b.Confirm(ctx, e.db, br("g-never", 2, dtx.OpConfirm))
		require.Error(t, err)
		require.True(t, dtx.IsPermanent(err), "%v", err)
	})

	t.Run("TryCancel", func(t *testing.T) {
		parallel(t)
		e := newEnv(t)
		try := br("g-cancel", 2, dtx.OpTry)
		require.NoError(t, e.b.Try(ctx, e.db, try, e.work(try)))
		cancel := br("g-cancel", 2, dtx.OpCancel)
		require.NoError(t, e.b.Cancel(ctx, e.db, cancel))
		require.Equal(t, 100, e.balance(2))
		require.Equal(t, 0, e.ledger())
		require.Empty(t, e.inDoubt())
		require.False(t, e.locked(2))
		require.NoError(t, e.b.Cancel(ctx, e.db, cancel)) // duplicate
		// A late duplicate of the try does nothing.
		err := e.b.Try(ctx, e.db, try, e.work(try))
		require.ErrorIs(t, err, participant.ErrHanging)
		require.EqualValues(t, 1, e.calls.Load())
		require.Equal(t, 100, e.balance(2))
		// Confirm after cancel: permanent (the coordinator never does it).
		err = e.b.Confirm(ctx, e.db, br("g-cancel", 2, dtx.OpConfirm))
		require.True(t, dtx.IsPermanent(err), "%v", err)
	})

	t.Run("CancelBeforeTry", func(t *testing.T) {
		parallel(t)
		e := newEnv(t)
		require.NoError(t, e.b.Cancel(ctx, e.db, br("g-null", 3, dtx.OpCancel)))
		try := br("g-null", 3, dtx.OpTry)
		err := e.b.Try(ctx, e.db, try, e.work(try))
		require.ErrorIs(t, err, participant.ErrHanging)
		require.True(t, dtx.IsPermanent(err))
		require.EqualValues(t, 0, e.calls.Load())
		require.Equal(t, 100, e.balance(3))
		require.Equal(t, 0, e.ledger())
		require.Empty(t, e.inDoubt())
		require.NoError(t, e.b.Cancel(ctx, e.db, br("g-null", 3, dtx.OpCancel)))
	})

	t.Run("CancelDuringTry", func(t *testing.T) {
		parallel(t)
		e := newEnv(t)
		try := br("g-race", 1, dtx.OpTry)
		release, done := e.holdTry(try)
		// The try holds on until the cancel has returned: a cancel that
		// waited for the try would never return (the guard below fails
		// the test instead of hanging it).
		cancelled := make(chan error, 1)
		go func() { cancelled <- e.b.Cancel(ctx, e.db, br("g-race", 1, dtx.OpCancel)) }()
		var err error
		select {
		case err = <-cancelled:
		case <-time.After(time.Minute):
			close(release)
			t.Fatal("the cancel waits for the try")
		}
		t.Logf("cancel during try: %v", err)
		require.ErrorIs(t, err, xa.ErrBusy)
		require.False(t, dtx.IsPermanent(err))
		close(release)
		require.NoError(t, <-done) // the try prepared

		require.NoError(t, e.b.Cancel(ctx, e.db, br("g-race", 1, dtx.OpCancel)))
		require.Equal(t, 100, e.balance(1))
		require.Equal(t, 0, e.ledger())
		require.Empty(t, e.inDoubt())
		require.ErrorIs(t, e.b.Try(ctx, e.db, try, e.work(try)), participant.ErrHanging)
		require.EqualValues(t, 1, e.calls.Load())
	})

	t.Run("TryDuringTry", func(t *testing.T) {
		parallel(t)
		e := newEnv(t)
		try := br("g-twice", 1, dtx.OpTry)
		release, done := e.holdTry(try)
		// A second delivery of the same try while the first holds the
		// barrier row: busy after a short wait, and its work never runs.
		err := e.b.Try(ctx, e.db, try, e.work(try))
		close(release)
		require.ErrorIs(t, err, xa.ErrBusy)
		require.NoError(t, <-done)
		require.EqualValues(t, 1, e.calls.Load())
		require.NoError(t, e.b.Try(ctx, e.db, try, e.work(try))) // prepared now: a duplicate
		require.EqualValues(t, 1, e.calls.Load())
		require.NoError(t, e.b.Confirm(ctx, e.db, br("g-twice", 1, dtx.OpConfirm)))
		require.Equal(t, 90, e.balance(1))
	})

	t.Run("TryError", func(t *testing.T) {
		parallel(t)
		e := newEnv(t)
		try := br("g-fail", 1, dtx.OpTry)
		boom := dtx.Permanent(errors.New("insufficient funds"))
		err := e.b.Try(ctx, e.db, try, func(ctx context.Context, conn *sql.Conn) error {
			require.NoError(t, e.work(try)(ctx, conn))
			return boom
		})
		require.ErrorIs(t, err, boom)
		require.Empty(t, e.inDoubt())
		require.Equal(t, 100, e.balance(1))
		// Nothing recorded: a retry runs the work.
		require.NoError(t, e.b.Try(ctx, e.db, try, e.work(try)))
		require.NoError(t, e.b.Confirm(ctx, e.db, br("g-fail", 1, dtx.OpConfirm)))
		require.Equal(t, 90, e.balance(1))
	})

	// Only PostgreSQL aborts a transaction on a failed statement, which
	// PREPARE TRANSACTION then silently rolls back.
	if dialect == appdb.Postgres {
		t.Run("SwallowedError", func(t *testing.T) { parallel(t); swallowedError(newEnv)(t) })
		// The short wait for the barrier row bounds only the barrier: the
		// work runs with the session's own lock_timeout.
		t.Run("WorkKeepsLockTimeout", func(t *testing.T) {
			parallel(t)
			e := newEnv(t)
			try := br("g-timeout", 1, dtx.OpTry)
			var inWork string
			require.NoError(t, e.b.Try(ctx, e.db, try, func(ctx context.Context, conn *sql.Conn) error {
				return conn.QueryRowContext(ctx, `SELECT current_setting('lock_timeout')`).Scan(&inWork)
			}))
			require.Equal(t, "0", inWork)
			require.NoError(t, e.b.Confirm(ctx, e.db, br("g-timeout", 1, dtx.OpConfirm)))
		})
	}

	t.Run("InDoubtAfterCrash", func(t *testing.T) {
		parallel(t)
		e := newEnv(t)
		long := "g-commit-" + strings.Repeat("x", 100) // hashed XID
		commit, rollback, unknown := br(long, 1, dtx.OpTry), br("g-rollback", 2, dtx.OpTry), br("g-unknown", 3, dtx.OpTry)
		require.True(t, strings.HasPrefix(xa.XID(commit), "dtx#"))
		for _, b := range []participant.Branch{commit, rollback, unknown} {
			require.NoError(t, e.b.Try(ctx, e.db, b, e.work(b)))
		}
		// A branch of another database of the same server.
		other := newEnv(t)
		elsewhere := br("g-elsewhere", 0, dtx.OpTry)
		require.NoError(t, other.b.Try(ctx, other.db, elsewhere, other.work(elsewhere)))
		defer func() {
			require.Equal(t, []participant.Branch{elsewhere}, other.inDoubt())
			require.NoError(t, other.b.Cancel(ctx, other.db, elsewhere))
			require.Empty(t, other.inDoubt())
		}()
		e.foreign("other-app-xid")
		e.foreign("dtx:g-x:007") // not canonical: not ours
		defer e.dropForeign("other-app-xid")
		defer e.dropForeign("dtx:g-x:007")

		// "Crash": every connection goes away.
		require.NoError(t, e.db.Close())
		e.db = e.open()

		require.ElementsMatch(t, []participant.Branch{commit, rollback, unknown}, e.inDoubt())
		for _, id := range []int{1, 2, 3} {
			require.Equal(t, 100, e.balance(id))
			require.True(t, e.locked(id), "account %d", id)
		}
		require.Equal(t, 0, e.ledger())

		n, err := e.b.Recover(ctx, e.db, func(ctx context.Context, b participant.Branch) (xa.Decision, error) {
			switch b.GID {
			case long:
				return xa.Commit, nil
			case "g-rollback":
				return xa.Rollback, nil
			}
			return xa.Unknown, nil
		})
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.Equal(t, 90, e.balance(1))
		require.Equal(t, 100, e.balance(2))
		require.False(t, e.locked(1))
		require.False(t, e.locked(2))
		require.True(t, e.locked(3))
		require.Equal(t, []participant.Branch{unknown}, e.inDoubt())
		// The rolled-back branch's late try does nothing.
		require.ErrorIs(t, e.b.Try(ctx, e.db, rollback, e.work(rollback)), participant.ErrHanging)

		// Finish the undecided one.
		n, err = e.b.Recover(ctx, e.db, func(context.Context, participant.Branch) (xa.Decision, error) { return xa.Commit, nil })
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Equal(t, 90, e.balance(3))
		require.Equal(t, 2, e.ledger())
		require.Empty(t, e.inDoubt())
	})
}

func TestXID(t *testing.T) {
	require.Equal(t, "dtx:order-42:3", xa.XID(br("order-42", 3, dtx.OpTry)))
	require.Equal(t, xa.XID(br("a", 1, dtx.OpTry)), xa.XID(br("a", 1, dtx.OpCancel)))
	for _, gid := range []string{"it's", `a"b`, `back\slash`, "space here", "ünï", strings.Repeat("g", 61), strings.Repeat("g", 256)} {
		x := xa.XID(br(gid, 7, dtx.OpTry))
		require.LessOrEqual(t, len(x), 64, gid)
		require.True(t, strings.HasPrefix(x, "dtx#"), gid)
		require.NotContains(t, x, "'")
		require.Equal(t, x, xa.XID(br(gid, 7, dtx.OpTry)))
		require.NotEqual(t, x, xa.XID(br(gid, 8, dtx.OpTry)))
	}
	require.Len(t, xa.XID(br(strings.Repeat("g", 58), 1, dtx.OpTry)), 64)
}

func swallowedError(newEnv func(t *testing.T) *env) func(t *testing.T) {
	return func(t *testing.T) {
		ctx := context.Background()
		e := newEnv(t)
		try := br("g-aborted", 1, dtx.OpTry)
		err := e.b.Try(ctx, e.db, try, func(ctx context.Context, conn *sql.Conn) error {
			require.NoError(t, e.work(try)(ctx, conn))
			_, err := conn.ExecContext(ctx, "SELECT * FROM no_such_table")
			require.Error(t, err)
			return nil // swallowed: the transaction is aborted
		})
		require.Error(t, err)
		require.False(t, dtx.IsPermanent(err))
		require.Empty(t, e.inDoubt())
		require.Equal(t, 100, e.balance(1))
		require.NoError(t, e.b.Try(ctx, e.db, try, e.work(try)))
		require.NoError(t, e.b.Confirm(ctx, e.db, br("g-aborted", 1, dtx.OpConfirm)))
		require.Equal(t, 90, e.balance(1))
	}
}
