package sharded_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/store/sharded"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/store/storetest"
)

func openShard(t *testing.T, dir, name string) sharded.Shard {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, name+".db"), sqlstore.Config{})
	require.NoError(t, err)
	return sharded.Shard{Name: name, Store: st}
}

func newSharded(t *testing.T, dir string, names ...string) *sharded.Store {
	t.Helper()
	var shards []sharded.Shard
	for _, n := range names {
		shards = append(shards, openShard(t, dir, n))
	}
	s, err := sharded.New(shards...)
	require.NoError(t, err)
	return s
}

// TestConformance runs the store suite on three SQLite shards.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) dtx.Store {
		return newSharded(t, t.TempDir(), "a", "b", "c")
	})
}

func tx(gid string, at time.Time) (*dtx.Tx, []dtx.Branch) {
	return &dtx.Tx{GID: gid, Pattern: dtx.PatternSaga, Status: dtx.StatusRunning, Spec: []byte(`{}`), Digest: "d-" + gid,
			CreatedAt: at, UpdatedAt: at, Deadline: at.Add(time.Minute), LeaseOwner: "c1", LeaseUntil: at.Add(10 * time.Second)},
		[]dtx.Branch{{GID: gid, Index: 0, Name: "a", Action: dtx.BranchPending, Compensate: dtx.BranchPending}}
}

// TestAddingAShardMovesNothing: transactions created on two shards are all
// found, unchanged, after a third shard is added (the store reopened on
// three); the new shard takes a share of new gids; and a gid that now
// hashes to the new shard but lives in an old one cannot be created again.
func TestAddingAShardMovesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	two := newSharded(t, dir, "a", "b")
	const n = 300
	perShard := map[int]int{}
	for i := range n {
		gid := fmt.Sprintf("g-%d", i)
		perShard[two.Place(gid)]++
		x, br := tx(gid, at.Add(time.Duration(i)*time.Millisecond))
		require.NoError(t, two.Create(ctx, x, br))
	}
	require.InDelta(t, n/2, perShard[0], n/5, "placement spreads: %v", perShard)
	require.NoError(t, two.Close())

	three := newSharded(t, dir, "a", "b", "c")
	t.Cleanup(func() { three.Close() })
	moved := 0
	for i := range n {
		gid := fmt.Sprintf("g-%d", i)
		got, _, err := three.Get(ctx, gid)
		require.NoError(t, err, gid)
		require.Equal(t, gid, got.GID)
		if three.Place(gid) == 2 {
			moved++
			x, br := tx(gid, at)
			require.ErrorIs(t, three.Create(ctx, x, br), dtx.ErrExists, "%s lives in an old shard", gid)
		}
		require.NoError(t, three.Apply(ctx, dtx.Update{GID: gid, Owner: "c1", At: at, Status: dtx.StatusSucceeded, Release: true}))
	}
	require.InDelta(t, n/3, moved, n/5, "the new shard wins about a third of the gids")
	counts, err := three.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, n, counts[dtx.StatusSucceeded])

	// The new shard is used for new gids.
	used := 0
	for i := range 60 {
		gid := fmt.Sprintf("new-%d", i)
		x, br := tx(gid, at)
		require.NoError(t, three.Create(ctx, x, br))
		if three.Place(gid) == 2 {
			used++
		}
	}
	require.Positive(t, used)
	c, _, err := three.Shards()[2].Store.Get(ctx, fmt.Sprintf("new-%d", firstOn(three, 2)))
	require.NoError(t, err)
	require.Equal(t, dtx.StatusRunning, c.Status)
}

func firstOn(s *sharded.Store, shard int) int {
	for i := 0; ; i++ {
		if s.Place(fmt.Sprintf("new-%d", i)) == shard {
			return i
		}
	}
}

// TestNewRefusesBadShards: no shards, a nameless or duplicate name, a nil
// store.
func TestNewRefusesBadShards(t *testing.T) {
	_, err := sharded.New()
	require.ErrorContains(t, err, "no shards")
	a := openShard(t, t.TempDir(), "a")
	t.Cleanup(func() { a.Store.Close() })
	_, err = sharded.New(a, sharded.Shard{Name: "a", Store: a.Store})
	require.ErrorContains(t, err, `"a" is used twice`)
	_, err = sharded.New(sharded.Shard{Store: a.Store})
	require.ErrorContains(t, err, "no name")
	_, err = sharded.New(sharded.Shard{Name: "x"})
	require.ErrorContains(t, err, "no store")
}
