package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
)

// testPurgeFinished checks retention: PurgeFinished deletes, in batches of
// at most limit, only finished transactions older than the cutoff, with
// their branches and events, and never a running or compensating one
// however old.
func testPurgeFinished(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	p, ok := s.(dtx.Purger)
	require.True(t, ok, "every store implements dtx.Purger")
	finish := func(gid string, at time.Time, st dtx.Status) {
		t.Helper()
		require.NoError(t, s.Apply(ctx, dtx.Update{GID: gid, Owner: "c1", At: at, Status: st, Release: true,
			Events: []dtx.Event{{GID: gid, At: at, Branch: -1, Op: "tx", Outcome: string(st)}}}))
	}
	for i := range 5 {
		gid := fmt.Sprintf("old%d", i)
		mustCreate(t, s, gid, "c1", base.Add(time.Duration(i)*time.Second))
		st := dtx.StatusSucceeded
		if i%2 == 1 {
			st = dtx.StatusFailed
		}
		finish(gid, base.Add(time.Minute), st)
	}
	// Finished, but after the cutoff (created before it).
	mustCreate(t, s, "recent", "c1", base)
	finish("recent", base.Add(2*time.Hour), dtx.StatusSucceeded)
	// Unfinished and old: never purged.
	mustCreate(t, s, "running", "c1", base.Add(-time.Hour))
	mustCreate(t, s, "compensating", "c1", base.Add(-time.Hour))
	require.NoError(t, s.Apply(ctx, dtx.Update{GID: "compensating", Owner: "c1", At: base, Status: dtx.StatusCompensating,
		Events: []dtx.Event{{GID: "compensating", At: base, Branch: -1, Op: "tx", Outcome: "compensating"}}}))

	cutoff := base.Add(time.Hour)
	var batches []int
	for {
		n, err := p.PurgeFinished(ctx, cutoff, 2)
		require.NoError(t, err)
		batches = append(batches, n)
		if n < 2 {
			break
		}
		require.Less(t, len(batches), 10, "purge does not converge")
	}
	require.Equal(t, []int{2, 2, 1}, batches, "batches of at most the limit")

	for i := range 5 {
		gid := fmt.Sprintf("old%d", i)
		_, _, err := s.Get(ctx, gid)
		require.ErrorIs(t, err, dtx.ErrNotFound, gid)
		ev, err := s.Events(ctx, gid)
		require.NoError(t, err)
		require.Empty(t, ev, "events of %s purged", gid)
	}
	for _, gid := range []string{"recent", "running", "compensating"} {
		_, br, err := s.Get(ctx, gid)
		require.NoError(t, err, gid)
		require.Len(t, br, 2, "branches of %s kept", gid)
	}
	ev, err := s.Events(ctx, "compensating")
	require.NoError(t, err)
	require.NotEmpty(t, ev)
	counts, err := s.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, map[dtx.Status]int{dtx.StatusRunning: 1, dtx.StatusCompensating: 1, dtx.StatusSucceeded: 1}, counts)

	// A cutoff past everything still leaves the unfinished ones.
	n, err := p.PurgeFinished(ctx, base.Add(24*time.Hour), 100)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = p.PurgeFinished(ctx, base.Add(24*time.Hour), 0)
	require.NoError(t, err)
	require.Zero(t, n, "limit 0 deletes nothing")
	counts, err = s.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, map[dtx.Status]int{dtx.StatusRunning: 1, dtx.StatusCompensating: 1}, counts)
}
