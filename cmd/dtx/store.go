package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/store/mysql"
	"github.com/dtxhq/dtx/store/postgres"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
)

// openStore selects the adapter by DSN scheme:
//
//	sqlite:///abs/path.db, sqlite://rel/path.db, or a bare file path
//	postgres://user@host:port/db (also postgresql://)
//	mysql://user:pass@tcp(host:3306)/db (MySQL 8.0.1+ or MariaDB 10.6+)
func openStore(ctx context.Context, dsn string) (dtx.Store, error) {
	return openStoreWith(ctx, dsn, sqlstore.Config{})
}

// openStoreWith is openStore with store tuning.
func openStoreWith(ctx context.Context, dsn string, cfg sqlstore.Config) (dtx.Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return postgres.Open(ctx, dsn, cfg)
	case strings.HasPrefix(dsn, "mysql://"):
		// mysql://user:pass@tcp(host:3306)/db — the go-sql-driver DSN after the scheme.
		return mysql.Open(ctx, strings.TrimPrefix(dsn, "mysql://"), cfg)
	case strings.HasPrefix(dsn, "sqlite://"):
		return sqlite.Open(ctx, strings.TrimPrefix(dsn, "sqlite://"), cfg)
	case strings.Contains(dsn, "://"):
		return nil, usagef("store %q: unsupported scheme (want sqlite://, postgres:// or mysql://)", dsn)
	case dsn == "":
		return nil, usagef("store: empty DSN")
	default:
		return sqlite.Open(ctx, dsn, cfg)
	}
}

func describeStore(dsn string) string {
	if i := strings.Index(dsn, "@"); i > 0 && strings.Contains(dsn[:i], "://") {
		// Hide credentials.
		return dsn[:strings.Index(dsn, "://")+3] + "…" + dsn[i:]
	}
	return fmt.Sprint(dsn)
}
