package appdb

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Dialect selects the SQL flavour of the application's database.
type Dialect int

// Supported dialects.
const (
	SQLite Dialect = iota
	Postgres
	// MySQL covers MySQL and MariaDB with InnoDB tables.
	MySQL
)

func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	case MySQL:
		return "mysql"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// Rebind rewrites the ? parameters of q as $1, $2, … for PostgreSQL and
// returns q unchanged for the other dialects. q must not contain a literal
// question mark.
func (d Dialect) Rebind(q string) string {
	if d != Postgres || !strings.Contains(q, "?") {
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
// clock only, so processes on different hosts need not agree on the time.
func (d Dialect) NowMillis() string {
	switch d {
	case Postgres:
		// clock_timestamp, not now(): now() is frozen at the start of the
		// transaction.
		return `(extract(epoch from clock_timestamp()) * 1000)::bigint`
	case MySQL:
		// Independent of the session time zone (UNIX_TIMESTAMP(NOW()) is
		// ambiguous in the hour a DST change repeats).
		return `(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000)`
	default:
		// julianday works on every SQLite version (unixepoch needs 3.38).
		return `CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)`
	}
}

// Expand fills the placeholders of q: {table} (t.Full), {name} (t.Name),
// {schema.} (t.Schema and a dot, or nothing) and {now} (NowMillis). The ?
// parameters are left for Rebind.
func (d Dialect) Expand(t Table, q string) string {
	schema := ""
	if t.Schema != "" {
		schema = t.Schema + "."
	}
	return strings.NewReplacer(
		"{table}", t.Full,
		"{name}", t.Name,
		"{schema.}", schema,
		"{now}", d.NowMillis(),
	).Replace(q)
}

// maxIdent is the longest identifier PostgreSQL keeps (MySQL allows 64).
const maxIdent = 63

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

// ParseTable validates name, an identifier (ASCII letters, digits and _, not
// starting with a digit) optionally qualified by a schema ("schema.table"),
// leaving room for suffix more characters on the table part (for derived
// tables and indexes such as "<table>_lease") within the 63-character
// identifier limit of PostgreSQL. A valid name needs no quoting in SQL.
func ParseTable(name string, suffix int) (Table, error) {
	m := tableRE.FindStringSubmatch(name)
	if m == nil || len(m[2])+suffix > maxIdent {
		return Table{}, fmt.Errorf("invalid table name %q (letters, digits and _; at most %d characters)", name, maxIdent-suffix)
	}
	return Table{Full: name, Schema: m[1], Name: m[2]}, nil
}

// Placeholders returns the groups of a multi-row VALUES list: rows groups of
// cols ? parameters, each group ending with the expression tail when tail is
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

// List returns n comma-separated ? parameters for an IN list: "?, ?, ?".
func List(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
