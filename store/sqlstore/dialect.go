package sqlstore

import (
	"io/fs"
	"strconv"
	"strings"
)

// Dialect describes what differs between SQL databases.
type Dialect struct {
	// Name is used in errors and logs ("sqlite", "postgres", "mysql").
	Name string
	// Migrations holds NNN_name.sql files applied in name order.
	Migrations fs.FS
	// SkipLocked is appended to the claim subquery where the database has
	// row locks ("FOR UPDATE SKIP LOCKED"); empty for SQLite, whose single
	// writer makes the claim statement atomic anyway.
	SkipLocked string
	// Writers is the number of concurrent group-commit writers (SQLite: 1).
	Writers int
	// OneStatement writes each batch as one statement of data-modifying
	// CTEs in autocommit (PostgreSQL); otherwise a batch is a transaction
	// of prepared single-row statements.
	OneStatement bool
	// IsUniqueViolation reports whether err is a primary-key or unique
	// constraint violation.
	IsUniqueViolation func(err error) bool
	// IsDeadlock reports whether err says the database rolled the whole
	// transaction back to break a deadlock (or a serialization failure),
	// so that nothing of it was written and it may be run again.
	IsDeadlock func(err error) bool

	// BindVars is how the driver writes bind parameters. The store's SQL is
	// written with $1, $2, …; with Question it is rewritten for the driver.
	BindVars BindVars
	// Override replaces the statements whose shared text (PostgreSQL and
	// SQLite syntax) the database cannot run. Empty fields keep the shared
	// text.
	Override Statements
}

// BindVars is a placeholder style.
type BindVars int

// Placeholder styles.
const (
	// Dollar: $1, $2, … by ordinal (PostgreSQL, SQLite).
	Dollar BindVars = iota
	// Question: ? bound in order of appearance (MySQL, MariaDB). Each $N
	// is rewritten to ? and the arguments are reordered and repeated to
	// match, so a statement may use $N out of order or more than once.
	// (The rewrite does not look inside string literals: statements must
	// not contain a '$' other than in placeholders.)
	Question
)

// Statements are dialect-specific replacements of the store's SQL, written
// with $N placeholders (rewritten per BindVars).
type Statements struct {
	// MigrationsTable creates dtx_schema_migrations (name, applied_at) if
	// it does not exist.
	MigrationsTable string
	// InsertTx inserts one transaction; its arguments are the columns of
	// dtx_tx in schema order (gid, pattern, status, reason, spec, digest,
	// created_at, updated_at, deadline, lease_owner, lease_until). For a
	// gid that is taken it must write nothing and either affect no row or
	// fail with an error that IsUniqueViolation recognises and that rolls
	// back only the statement, not the transaction (as MySQL does). The
	// shared text uses ON CONFLICT (gid) DO NOTHING.
	InsertTx string
	// ClaimDue, when set, makes Claim a transaction of two statements
	// instead of the shared UPDATE … FROM (locking CTE) … RETURNING:
	// ClaimDue (arguments: $1 now in Unix milliseconds, $2 limit) returns
	// the gids of at most limit unfinished transactions whose lease expired
	// before now, locking them and skipping rows locked by others (FOR
	// UPDATE SKIP LOCKED); an UPDATE then leases exactly those gids.
	ClaimDue string
	// Renew, when set, replaces the shared renewal statement (arguments:
	// $1 until, $2 owner). PostgreSQL uses it to lock the owner's rows in
	// gid order, skipping rows a batch writer holds, so a renewal never
	// deadlocks with a batch (a skipped row is renewed on the next tick).
	Renew string
}

func (d Dialect) stmt(override, shared string) string {
	if override != "" {
		return override
	}
	return shared
}

// Bind rewrites q, written with $1, $2, …, for the dialect's placeholder
// style, and returns the arguments to pass with it.
func (d Dialect) Bind(q string, args []any) (string, []any) {
	if d.BindVars != Question {
		return q, args
	}
	q, order := rebindQuestion(q)
	return q, reorder(order, args)
}

// rebindQuestion rewrites $N placeholders to ? and returns, for each ? in
// order, the (0-based) index of the argument it takes.
func rebindQuestion(q string) (string, []int) {
	if !strings.Contains(q, "$") {
		return q, nil
	}
	var b strings.Builder
	b.Grow(len(q))
	var order []int
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		j := i + 1
		for j < len(q) && q[j] >= '0' && q[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(q[i+1 : j])
		if j == i+1 || err != nil || n < 1 {
			b.WriteByte(c) // not a placeholder
			continue
		}
		b.WriteByte('?')
		order = append(order, n-1)
		i = j - 1
	}
	return b.String(), order
}

// reorder returns the arguments for placeholders taking args[order[i]]:
// args itself when order is the identity, or when order refers past the
// end of args (the driver then reports the mismatch).
func reorder(order []int, args []any) []any {
	identity := len(order) == len(args)
	for i, o := range order {
		if o >= len(args) {
			return args
		}
		if o != i {
			identity = false
		}
	}
	if identity {
		return args
	}
	out := make([]any, len(order))
	for i, o := range order {
		out[i] = args[o]
	}
	return out
}
