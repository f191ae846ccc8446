// Package sqlq holds the small SQL helpers shared by the packages that keep
// their state in the application's own database (outbox, inbox): placeholder
// rewriting, the database clock in Unix milliseconds, and table-name checks,
// for the dialects of participant.Dialect.
package sqlq

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/dtxhq/dtx/participant"
)

// Rebind rewrites the ? placeholders of q as $1, $2, … for PostgreSQL and
// returns q unchanged for the other dialects. q must not contain a literal
// question mark.
func Rebind(d participant.Dialect, q string) string {
	if d != participant.Postgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// NowMillis returns an SQL expression for the database server's clock as
// Unix milliseconds (a 64-bit integer). Leases compare times from this one
// clock only, so relays on different hosts need not agree on the time.
func NowMillis(d participant.Dialect) string {
	switch d {
	case participant.Postgres:
		// clock_timestamp, not now(): now() is frozen at the start of the
		// transaction.
		return `(extract(epoch from clock_timestamp()) * 1000)::bigint`
	case participant.MySQL:
		// Independent of the session time zone (UNIX_TIMESTAMP(NOW()) is
		// ambiguous in the hour a DST change repeats).
		return `(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000)`
	default:
		// julianday works on every SQLite version (unixepoch needs 3.38).
		return `CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)`
	}
}

var tableRE = regexp.MustCompile(`^(?:([A-Za-z_][A-Za-z0-9_]{0,62})\.)?([A-Za-z_][A-Za-z0-9_]{0,62})$`)

// Table is a validated, optionally schema-qualified table name.
type Table struct {
	// Full is the name as given ("schema.table" or "table").
	Full string
	// Schema is the schema part ("" if unqualified).
	Schema string
	// Name is the unqualified table name.
	Name string
}

// ParseTable validates name, an identifier optionally qualified by a schema
// ("schema.table"), leaving room for suffix more characters on the table
// part (for derived tables and indexes such as "<table>_lease") within the
// 63-character identifier limit of PostgreSQL.
func ParseTable(name string, suffix int) (Table, error) {
	m := tableRE.FindStringSubmatch(name)
	if m == nil || len(m[2])+suffix > 63 {
		return Table{}, fmt.Errorf("invalid table name %q (letters, digits and _; at most %d characters)", name, 63-suffix)
	}
	return Table{Full: name, Schema: m[1], Name: m[2]}, nil
}

// Expand fills the placeholders {table} (the full name), {name} (the
// unqualified name), {schema.} (the schema and a dot, or nothing) and {now}
// (NowMillis) in q.
func Expand(d participant.Dialect, t Table, q string) string {
	schema := ""
	if t.Schema != "" {
		schema = t.Schema + "."
	}
	return strings.NewReplacer(
		"{table}", t.Full,
		"{name}", t.Name,
		"{schema.}", schema,
		"{now}", NowMillis(d),
	).Replace(q)
}

// Placeholders returns the groups of a multi-row VALUES list: rows groups of
// cols placeholders, each group ending with the expression tail when tail is
// not empty: Placeholders(2, 2, "{now}") is "(?, ?, {now}), (?, ?, {now})".
func Placeholders(rows, cols int, tail string) string {
	var b strings.Builder
	for r := 0; r < rows; r++ {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := 0; c < cols; c++ {
			if c > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('?')
		}
		if tail != "" {
			b.WriteString(", ")
			b.WriteString(tail)
		}
		b.WriteByte(')')
	}
	return b.String()
}

// List returns n comma-separated placeholders for an IN list: "?, ?, ?".
func List(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
