package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// InitEmptyParam is the path parameter that lets Open make a fresh store
// in an existing empty (0-byte) file: "path/to/dtx.db?init_empty=1". Without
// it such a file is refused: an empty file where a store should be is more
// often a truncated copy or a failed restore than a new store, and starting
// over on it would silently forget every transaction. A path that does not
// exist yet is always created fresh.
const InitEmptyParam = "init_empty"

// QuickCheckMaxBytes bounds the files Open runs `PRAGMA quick_check` on
// at start: larger files get only the header check, so that a big store
// still starts quickly (run `sqlite3 file 'PRAGMA integrity_check'` on them
// offline).
const QuickCheckMaxBytes = 256 << 20

// ErrCorrupt is returned (wrapped) by Open for a file that is not an intact
// SQLite database.
var ErrCorrupt = errors.New("not an intact SQLite database")

// ErrEmptyFile is returned (wrapped) by Open for an existing 0-byte file
// opened without InitEmptyParam.
var ErrEmptyFile = errors.New("existing empty file")

// splitPath separates the store's path from its parameters.
func splitPath(p string) (path string, initEmpty bool, err error) {
	path, rawQuery, ok := strings.Cut(p, "?")
	if !ok {
		return p, false, nil
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", false, fmt.Errorf("sqlite store %s: parameters: %w", path, err)
	}
	for k, v := range q {
		if k != InitEmptyParam {
			return "", false, fmt.Errorf("sqlite store %s: unknown parameter %q (known: %s)", path, k, InitEmptyParam)
		}
		switch v[len(v)-1] {
		case "1", "true":
			initEmpty = true
		case "0", "false":
		default:
			return "", false, fmt.Errorf("sqlite store %s: %s=%q: want 1 or 0", path, k, v[len(v)-1])
		}
	}
	return path, initEmpty, nil
}

// sqliteMagic starts every SQLite database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// checkFile looks at an existing file before SQLite opens it: an empty one
// is refused unless initEmpty, a non-empty one must start with the SQLite
// header. It returns the file's size (0 if it does not exist).
func checkFile(path string, initEmpty bool) (int64, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	if fi.IsDir() {
		return 0, fmt.Errorf("sqlite store %s: is a directory", path)
	}
	if fi.Size() == 0 {
		if wal, err := os.Stat(path + "-wal"); err == nil && wal.Size() > 0 {
			return 0, nil // the data is in the WAL: let SQLite and quick_check judge
		}
		if initEmpty {
			return 0, nil
		}
		return 0, fmt.Errorf("sqlite store %s: %w: refusing to start a fresh store in it (add ?%s=1 to the path if that is what you want, or restore the file from a backup)", path, ErrEmptyFile, InitEmptyParam)
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, len(sqliteMagic))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, sqliteMagic) {
		return 0, corrupt(path, "no SQLite header")
	}
	return fi.Size(), nil
}

// quickCheck runs `PRAGMA quick_check` (bounded by QuickCheckMaxBytes).
func quickCheck(ctx context.Context, db *sql.DB, path string, size int64) error {
	if size > QuickCheckMaxBytes {
		return nil
	}
	rows, err := db.QueryContext(ctx, `PRAGMA quick_check(5)`)
	if err != nil {
		return corrupt(path, err.Error())
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return corrupt(path, err.Error())
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return corrupt(path, err.Error())
	}
	if len(problems) > 0 {
		return corrupt(path, strings.Join(problems, "; "))
	}
	return nil
}

// isCorruption reports whether err is SQLite finding a damaged file or one
// that is not a database.
func isCorruption(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	code := e.Code() & 0xff
	return code == sqlite3.SQLITE_CORRUPT || code == sqlite3.SQLITE_NOTADB
}

func corrupt(path, detail string) error {
	detail = strings.Join(strings.Fields(detail), " ") // one line
	return fmt.Errorf("sqlite store %s: %w (%s): restore it from a backup, or move it away to start a fresh store", path, ErrCorrupt, detail)
}
