// Package open opens what the dtx binary's flags name: a coordinator store
// by DSN (sqlite://, postgres://, mysql:// or a file path) and a message
// broker by spec (embedded, nats://, kafka://).
package open

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/store/mysql"
	"github.com/dtxhq/dtx/store/postgres"
	"github.com/dtxhq/dtx/store/sharded"
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

// ShardsPrefix starts a sharded store's DSN: "shards:" then one
// name=DSN per shard, separated by spaces, oldest first (add a shard at
// the end; never remove or rename one). See package store/sharded.
//
//	shards: a=postgres://db1/dtx b=postgres://db2/dtx
const ShardsPrefix = "shards:"

// StoreWith is Store with store tuning.
func StoreWith(ctx context.Context, dsn string, cfg sqlstore.Config) (dtx.Store, error) {
	switch {
	case strings.HasPrefix(dsn, ShardsPrefix):
		return openShards(ctx, strings.TrimPrefix(dsn, ShardsPrefix), cfg)
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
func DescribeStore(dsn string) string {
	if rest, ok := strings.CutPrefix(dsn, ShardsPrefix); ok {
		parts := strings.Fields(rest)
		for i, p := range parts {
			if name, d, ok := strings.Cut(p, "="); ok {
				parts[i] = name + "=" + RedactDSN(d)
			} else {
				parts[i] = RedactDSN(p)
			}
		}
		return ShardsPrefix + " " + strings.Join(parts, " ")
	}
	return RedactDSN(dsn)
}

var shardName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// openShards opens "name=DSN name=DSN …" as a sharded store.
func openShards(ctx context.Context, list string, cfg sqlstore.Config) (_ dtx.Store, err error) {
	parts := strings.Fields(list)
	if len(parts) == 0 {
		return nil, specf("store %s: no shards (want %s name=DSN name=DSN …)", ShardsPrefix, ShardsPrefix)
	}
	type part struct{ name, dsn string }
	var named []part
	seen := map[string]bool{}
	for _, p := range parts { // every part is checked before any is opened
		name, d, ok := strings.Cut(p, "=")
		if !ok || !shardName.MatchString(name) || d == "" {
			return nil, specf("store %s: %q is not name=DSN (a name of letters, digits, _ and -)", ShardsPrefix, RedactDSN(p))
		}
		if strings.HasPrefix(d, ShardsPrefix) {
			return nil, specf("store %s: shard %s is itself sharded", ShardsPrefix, name)
		}
		if seen[name] {
			return nil, specf("store %s: shard name %q is used twice", ShardsPrefix, name)
		}
		seen[name] = true
		named = append(named, part{name, d})
	}
	var shards []sharded.Shard
	defer func() {
		if err != nil {
			for _, sh := range shards {
				sh.Store.Close()
			}
		}
	}()
	for _, p := range named {
		st, err := StoreWith(ctx, p.dsn, cfg)
		if err != nil {
			return nil, fmt.Errorf("shard %s: %w", p.name, err)
		}
		shards = append(shards, sharded.Shard{Name: p.name, Store: st})
	}
	s, err := sharded.New(shards...)
	if err != nil {
		return nil, specf("store %s", err)
	}
	return s, nil
}
