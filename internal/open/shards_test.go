package open

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/store/sharded"
)

// TestStoreShards: "shards: name=DSN …" opens a sharded store over the
// named stores, in order; malformed lists are spec errors naming the part.
func TestStoreShards(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dsn := "shards: a=sqlite://" + filepath.Join(dir, "a.db") + "  b=" + filepath.Join(dir, "b.db")
	st, err := Store(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	s, ok := st.(*sharded.Store)
	require.True(t, ok)
	var names []string
	for _, sh := range s.Shards() {
		names = append(names, sh.Name)
	}
	require.Equal(t, []string{"a", "b"}, names)

	for dsn, want := range map[string]string{
		"shards:":                            "no shards",
		"shards: sqlite://x.db":              `"sqlite://x.db" is not name=DSN`,
		"shards: a b=x.db":                   `"a" is not name=DSN`,
		"shards: a/b=x.db":                   `"a/b=x.db" is not name=DSN`,
		"shards: a=x.db a=y.db":              `"a" is used twice`,
		"shards: a=shards:":                  "shard a is itself sharded",
		"shards: a=postgres://u:pw@h/d?x b=": `"b=" is not name=DSN`,
	} {
		_, err := Store(ctx, dsn)
		var se *SpecError
		require.True(t, errors.As(err, &se), "%s: %v", dsn, err)
		require.ErrorContains(t, err, want, dsn)
	}
	require.Equal(t, "shards: a=postgres://u:xxxxx@h/d b=sqlite://x.db", DescribeStore("shards: a=postgres://u:pw@h/d  b=sqlite://x.db"))
}
