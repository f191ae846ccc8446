// Package open opens what the dtx binary's flags name: a coordinator store
// by DSN (sqlite://, postgres://, mysql:// or a file path) and a message
// broker by spec (embedded, nats://, kafka://).
package open

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

// SpecError is a DSN or broker spec that names nothing this package can
// open: a mistake on the command line.
type SpecError struct{ Msg string }

func (e *SpecError) Error() string { return e.Msg }

func specf(format string, args ...any) error { return &SpecError{fmt.Sprintf(format, args...)} }

// Store selects the adapter by DSN scheme:
//
//	sqlite:///abs/path.db, sqlite://rel/path.db, or a bare file path
//	postgres://user@host:port/db (also postgresql://)
//	mysql://user:pass@tcp(host:3306)/db (MySQL 8.0.1+ or MariaDB 10.6+)
func Store(ctx context.Context, dsn string) (dtx.Store, error) {
	return StoreWith(ctx, dsn, sqlstore.Config{})
}

// StoreWith is Store with store tuning.
func StoreWith(ctx context.Context, dsn string, cfg sqlstore.Config) (dtx.Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return postgres.Open(ctx, dsn, cfg)
	case strings.HasPrefix(dsn, "mysql://"):
		// mysql://user:pass@tcp(host:3306)/db — the go-sql-driver DSN after the scheme.
		return mysql.Open(ctx, strings.TrimPrefix(dsn, "mysql://"), cfg)
	case strings.HasPrefix(dsn, "sqlite://"):
		return sqlite.Open(ctx, strings.TrimPrefix(dsn, "sqlite://"), cfg)
	case strings.Contains(dsn, "://"):
		return nil, specf("store %q: unsupported scheme (want sqlite://, postgres:// or mysql://)", RedactDSN(dsn))
	case dsn == "":
		return nil, specf("store: empty DSN")
	default:
		return sqlite.Open(ctx, dsn, cfg)
	}
}

// DescribeStore is dsn without its secrets, to show (see RedactDSN).
func DescribeStore(dsn string) string { return RedactDSN(dsn) }
