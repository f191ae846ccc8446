// Package testdb gives a test a fresh database of every dialect dtx
// supports, on the throwaway servers of internal/pgtest and
// internal/mariadbtest (skipped when PostgreSQL or MariaDB is not
// installed, unless DTX_REQUIRE_POSTGRES / DTX_REQUIRE_MARIADB is "1") and
// on SQLite files. A package using it must run pgtest.Main from TestMain.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/internal/mariadbtest"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/internal/sqlitedb"
	_ "github.com/go-sql-driver/mysql" // registers the "mysql" driver
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// DB is one fresh, empty database.
type DB struct {
	// Dialect is the database's SQL flavour.
	Dialect appdb.Dialect
	// Open returns a new connection pool on the database, closed when tb
	// ends (several pools stand for several processes).
	Open func(tb testing.TB) *sql.DB
}

// SQLite returns a fresh SQLite database in tb's temporary directory.
func SQLite(tb testing.TB) DB {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "test.db")
	return DB{Dialect: appdb.SQLite, Open: func(tb testing.TB) *sql.DB {
		tb.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		db, err := sqlitedb.Open(ctx, path, 0)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		return db
	}}
}

// Postgres returns a fresh database on the test binary's shared PostgreSQL
// server (see pgtest.DSN).
func Postgres(tb testing.TB) DB {
	tb.Helper()
	dsn := pgtest.DSN(tb)
	return DB{Dialect: appdb.Postgres, Open: func(tb testing.TB) *sql.DB {
		tb.Helper()
		return open(tb, "pgx", dsn)
	}}
}

// MySQL returns a fresh database on srv.
func MySQL(tb testing.TB, srv *mariadbtest.Server) DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	dsn, err := srv.CreateDB(ctx, name)
	if err != nil {
		tb.Fatal(err)
	}
	return DB{Dialect: appdb.MySQL, Open: func(tb testing.TB) *sql.DB {
		tb.Helper()
		return open(tb, "mysql", dsn)
	}}
}

// Each runs f in the parallel subtests SQLite, Postgres and MySQL; newDB
// creates a fresh database of that dialect per call. The MySQL subtest
// starts one MariaDB server of its own (about two seconds), stopped when it
// ends.
func Each(t *testing.T, f func(t *testing.T, newDB func(tb testing.TB) DB)) {
	t.Run("SQLite", func(t *testing.T) { t.Parallel(); f(t, SQLite) })
	t.Run("Postgres", func(t *testing.T) { t.Parallel(); f(t, Postgres) })
	t.Run("MySQL", func(t *testing.T) {
		t.Parallel()
		srv := mariadbtest.Start(t)
		f(t, func(tb testing.TB) DB { tb.Helper(); return MySQL(tb, srv) })
	})
}

func open(tb testing.TB, driver, dsn string) *sql.DB {
	tb.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(32)
	tb.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		tb.Fatal(err)
	}
	return db
}
