package sqlstore

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRebindQuestion(t *testing.T) {
	q, order := rebindQuestion(`UPDATE t SET a = $3, b = CASE WHEN $4 = '' THEN b ELSE $4 END WHERE id = $1 AND o = $2 AND $2 <> '' LIMIT $10`)
	require.Equal(t, `UPDATE t SET a = ?, b = CASE WHEN ? = '' THEN b ELSE ? END WHERE id = ? AND o = ? AND ? <> '' LIMIT ?`, q)
	require.Equal(t, []int{2, 3, 3, 0, 1, 1, 9}, order)

	q, order = rebindQuestion(`SELECT 1`)
	require.Equal(t, `SELECT 1`, q)
	require.Empty(t, order)

	q, _ = rebindQuestion(`SELECT '$' || $1 || '$x' || $0`)
	require.Equal(t, `SELECT '$' || ? || '$x' || $0`, q, "a $ not followed by a positive number is left alone")
}

func TestBind(t *testing.T) {
	args := []any{"a", "b", 3}
	q, got := Dialect{}.Bind(`$1 $3 $2`, args)
	require.Equal(t, `$1 $3 $2`, q)
	require.Equal(t, args, got)

	d := Dialect{BindVars: Question}
	q, got = d.Bind(`$1 $2 $3`, args)
	require.Equal(t, `? ? ?`, q)
	require.Equal(t, args, got)

	_, got = d.Bind(`$3 $1 $1`, args)
	require.Equal(t, []any{3, "a", "a"}, got)

	_, got = d.Bind(`$1 $4`, args)
	require.Equal(t, args, got, "a reference past the arguments leaves them for the driver to refuse")
}

func TestTruncate(t *testing.T) {
	require.Equal(t, "abc", truncate("abc", 10))
	require.Equal(t, "ab", truncate("abc", 2))
	require.Equal(t, "a", truncate("aé", 2), "never cuts inside a character")
	require.Equal(t, "a\uFFFDb", truncate("a\xffb", 10))
}
