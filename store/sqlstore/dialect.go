package sqlstore

import "io/fs"

// Dialect describes what differs between SQL databases.
type Dialect struct {
	// Name is used in errors and logs ("sqlite", "postgres").
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
	// of a few multi-row statements.
	OneStatement bool
	// IsUniqueViolation reports whether err is a primary-key or unique
	// constraint violation.
	IsUniqueViolation func(err error) bool
}
