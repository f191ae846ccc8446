package appdb_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/internal/sqlitedb"
)

func TestDialectString(t *testing.T) {
	for d, want := range map[appdb.Dialect]string{
		appdb.SQLite:     "sqlite",
		appdb.Postgres:   "postgres",
		appdb.MySQL:      "mysql",
		appdb.Dialect(7): "Dialect(7)",
	} {
		require.Equal(t, want, d.String())
	}
}

func TestRebind(t *testing.T) {
	const q = "SELECT a FROM t WHERE b = ? AND c IN (?, ?)"
	for _, tc := range []struct {
		d    appdb.Dialect
		q    string
		want string
	}{
		{appdb.Postgres, q, "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"},
		{appdb.Postgres, "SELECT 1", "SELECT 1"},
		{appdb.Postgres, "", ""},
		{appdb.SQLite, q, q},
		{appdb.MySQL, q, q},
	} {
		require.Equal(t, tc.want, tc.d.Rebind(tc.q), "%v %q", tc.d, tc.q)
	}
}

func TestNowMillis(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range []appdb.Dialect{appdb.SQLite, appdb.Postgres, appdb.MySQL} {
		now := d.NowMillis()
		require.NotEmpty(t, now)
		require.NotContains(t, now, "?", "a clock expression must survive Rebind")
		seen[now] = true
	}
	require.Len(t, seen, 3)
}

func TestParseTable(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, tc := range []struct {
		name   string
		suffix int
		want   appdb.Table
		ok     bool
	}{
		{"dtx_outbox", 0, appdb.Table{Full: "dtx_outbox", Name: "dtx_outbox"}, true},
		{"shop.barrier", 0, appdb.Table{Full: "shop.barrier", Schema: "shop", Name: "barrier"}, true},
		{"_T9", 0, appdb.Table{Full: "_T9", Name: "_T9"}, true},
		{long, 0, appdb.Table{Full: long, Name: long}, true},
		{long + "." + long, 0, appdb.Table{Full: long + "." + long, Schema: long, Name: long}, true},
		{long, 1, appdb.Table{}, false},
		{long[:53] + "", 10, appdb.Table{Full: long[:53], Name: long[:53]}, true},
		{long[:54], 10, appdb.Table{}, false},
		{long + "a", 0, appdb.Table{}, false},
		{"", 0, appdb.Table{}, false},
		{"9t", 0, appdb.Table{}, false},
		{"a.b.c", 0, appdb.Table{}, false},
		{".t", 0, appdb.Table{}, false},
		{"t.", 0, appdb.Table{}, false},
		{"t-1", 0, appdb.Table{}, false},
		{"t; DROP TABLE x", 0, appdb.Table{}, false},
		{`"t"`, 0, appdb.Table{}, false},
		{"tä", 0, appdb.Table{}, false},
	} {
		got, err := appdb.ParseTable(tc.name, tc.suffix)
		if !tc.ok {
			require.Error(t, err, "%q suffix %d", tc.name, tc.suffix)
			continue
		}
		require.NoError(t, err, "%q suffix %d", tc.name, tc.suffix)
		require.Equal(t, tc.want, got)
	}
}

func TestExpand(t *testing.T) {
	const q = "CREATE INDEX {schema.}{name}_x ON {table} (at) WHERE at < {now} - ?"
	for _, tc := range []struct {
		d     appdb.Dialect
		table string
		want  string
	}{
		{appdb.SQLite, "ob", "CREATE INDEX ob_x ON ob (at) WHERE at < " + appdb.SQLite.NowMillis() + " - ?"},
		{appdb.Postgres, "s.ob", "CREATE INDEX s.ob_x ON s.ob (at) WHERE at < " + appdb.Postgres.NowMillis() + " - ?"},
		{appdb.MySQL, "ob", "CREATE INDEX ob_x ON ob (at) WHERE at < " + appdb.MySQL.NowMillis() + " - ?"},
	} {
		tb, err := appdb.ParseTable(tc.table, 0)
		require.NoError(t, err)
		require.Equal(t, tc.want, tc.d.Expand(tb, q))
	}
	require.Equal(t, "no placeholders", appdb.SQLite.Expand(appdb.Table{}, "no placeholders"))
}

func TestPlaceholders(t *testing.T) {
	for _, tc := range []struct {
		rows, cols int
		tail, want string
	}{
		{0, 3, "", ""},
		{1, 1, "", "(?)"},
		{1, 3, "", "(?, ?, ?)"},
		{2, 2, "{now}", "(?, ?, {now}), (?, ?, {now})"},
		{2, 0, "x", "(, x), (, x)"},
	} {
		require.Equal(t, tc.want, appdb.Placeholders(tc.rows, tc.cols, tc.tail), "%d×%d %q", tc.rows, tc.cols, tc.tail)
	}
}

func TestList(t *testing.T) {
	for n, want := range []string{"", "?", "?, ?", "?, ?, ?"} {
		require.Equal(t, want, appdb.List(n))
	}
}

// fakeDB records what Migrate does.
type fakeDB struct {
	log               []string
	beginErr, execErr error
	failOn            string
}

func (f *fakeDB) Begin(context.Context) (appdb.Tx, error) {
	f.log = append(f.log, "begin")
	if f.beginErr != nil {
		return nil, f.beginErr
	}
	return fakeTx{f}, nil
}

type fakeTx struct{ f *fakeDB }

func (t fakeTx) Exec(_ context.Context, s string) error {
	t.f.log = append(t.f.log, s)
	if s == t.f.failOn {
		return t.f.execErr
	}
	return nil
}

func (t fakeTx) Commit(context.Context) error {
	t.f.log = append(t.f.log, "commit")
	return nil
}

func (t fakeTx) Rollback(context.Context) error {
	t.f.log = append(t.f.log, "rollback")
	return nil
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		db      fakeDB
		wantErr error
		wantLog []string
	}{
		{"ok", fakeDB{}, nil, []string{"begin", "a", "b", "commit", "rollback"}},
		{"exec fails", fakeDB{execErr: boom, failOn: "a"}, boom, []string{"begin", "a", "rollback"}},
		{"begin fails", fakeDB{beginErr: boom}, boom, []string{"begin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := appdb.Migrate(ctx, &tc.db, []string{"a", "b"})
			require.ErrorIs(t, err, tc.wantErr)
			if tc.wantErr == nil {
				require.NoError(t, err)
			}
			require.Equal(t, tc.wantLog, tc.db.log)
		})
	}
}

func TestMigrateSQL(t *testing.T) {
	ctx := context.Background()
	db, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "m.db"), 0)
	require.NoError(t, err)
	defer db.Close()
	tb, err := appdb.ParseTable("things", 0)
	require.NoError(t, err)
	stmts := []string{
		appdb.SQLite.Expand(tb, `CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, at INTEGER NOT NULL)`),
		appdb.SQLite.Expand(tb, `INSERT INTO {table} (id, at) VALUES (1, {now}) ON CONFLICT DO NOTHING`),
	}
	for range 2 { // safe to run again
		require.NoError(t, appdb.Migrate(ctx, appdb.FromSQL(db), stmts))
	}
	var n int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM things WHERE at > 0`).Scan(&n))
	require.Equal(t, 1, n)

	// A failing statement rolls the earlier ones back.
	err = appdb.Migrate(ctx, appdb.FromSQL(db), []string{`CREATE TABLE other (id INTEGER)`, `NOT SQL`})
	require.Error(t, err)
	err = db.QueryRowContext(ctx, `SELECT count(*) FROM other`).Scan(&n)
	require.ErrorContains(t, err, "no such table")
}
