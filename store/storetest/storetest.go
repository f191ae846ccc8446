// Package storetest is the conformance suite every dtx.Store must pass.
// Adapters call Run from their own tests with a factory that returns a fresh,
// empty store.
package storetest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
)

// Factory returns a new empty store. The suite closes it.
type Factory func(t *testing.T) dtx.Store

// Run runs the conformance suite. Its tests run in parallel, each on its
// own store: newStore must give a fresh database each time.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s dtx.Store)
	}{
		{"CreateGet", testCreateGet},
		{"CreateDuplicate", testCreateDuplicate},
		{"GetNotFound", testGetNotFound},
		{"ApplyFenced", testApplyFenced},
		{"ApplyProgress", testApplyProgress},
		{"ClaimExpiredOnly", testClaimExpiredOnly},
		{"ClaimConcurrentDisjoint", testClaimConcurrentDisjoint},
		{"RenewRelease", testRenewRelease},
		{"ClaimOne", testClaimOne},
		{"ListCounts", testListCounts},
		{"Attention", testAttention},
		{"Backlog", testBacklog},
		{"ListFilters", testListFilters},
		{"ConcurrentApply", testConcurrentApply},
		{"EventsInOrder", testEventsInOrder},
		{"DuplicateCreateBesideUpdate", testDuplicateCreateBesideUpdate},
		{"PurgeFinished", testPurgeFinished},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newTx(gid, owner string, at time.Time) (*dtx.Tx, []dtx.Branch) {
	tx := &dtx.Tx{
		GID: gid, Pattern: dtx.PatternSaga, Status: dtx.StatusRunning,
		Spec: []byte(`{"steps":[{"action":"http://x/a"},{"action":"http://x/b"}]}`), Digest: "d-" + gid,
		CreatedAt: at, UpdatedAt: at, Deadline: at.Add(time.Minute),
		LeaseOwner: owner, LeaseUntil: at.Add(10 * time.Second),
	}
	br := []dtx.Branch{
		{GID: gid, Index: 0, Name: "a", Action: dtx.BranchPending, Compensate: dtx.BranchPending},
		{GID: gid, Index: 1, Name: "b", Action: dtx.BranchPending, Compensate: dtx.BranchSkipped},
	}
	return tx, br
}

func mustCreate(t *testing.T, s dtx.Store, gid, owner string, at time.Time) {
	t.Helper()
	tx, br := newTx(gid, owner, at)
	require.NoError(t, s.Create(context.Background(), tx, br))
}

func testCreateGet(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	tx, br := newTx("g1", "c1", base)
	require.NoError(t, s.Create(ctx, tx, br))
	got, gotBr, err := s.Get(ctx, "g1")
	require.NoError(t, err)
	require.Equal(t, tx.GID, got.GID)
	require.Equal(t, dtx.PatternSaga, got.Pattern)
	require.Equal(t, dtx.StatusRunning, got.Status)
	require.JSONEq(t, string(tx.Spec), string(got.Spec))
	require.Equal(t, tx.Digest, got.Digest)
	require.True(t, got.CreatedAt.Equal(base))
	require.True(t, got.Deadline.Equal(base.Add(time.Minute)))
	require.Equal(t, "c1", got.LeaseOwner)
	require.Len(t, gotBr, 2)
	require.Equal(t, "a", gotBr[0].Name)
	require.Equal(t, dtx.BranchPending, gotBr[0].Action)
	require.Equal(t, dtx.BranchSkipped, gotBr[1].Compensate)
	evs, err := s.Events(ctx, "g1")
	require.NoError(t, err)
	require.Len(t, evs, 1, "creation is recorded in the history")
	require.Equal(t, -1, evs[0].Branch)
	require.Equal(t, "c1", evs[0].Owner, "the creation event records its writer")
}

func testCreateDuplicate(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	mustCreate(t, s, "dup", "c1", base)
	tx, br := newTx("dup", "c2", base.Add(time.Second))
	tx.Digest = "other"
	require.ErrorIs(t, s.Create(ctx, tx, br), dtx.ErrExists)
	got, _, err := s.Get(ctx, "dup")
	require.NoError(t, err)
	require.Equal(t, "d-dup", got.Digest, "the first record is untouched")
	require.Equal(t, "c1", got.LeaseOwner)
}

func testGetNotFound(t *testing.T, s dtx.Store) {
	_, _, err := s.Get(context.Background(), "nope")
	require.ErrorIs(t, err, dtx.ErrNotFound)
}

func testApplyFenced(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	mustCreate(t, s, "f1", "c1", base)
	err := s.Apply(ctx, dtx.Update{
		GID: "f1", Owner: "intruder", At: base.Add(time.Second), Status: dtx.StatusFailed,
		Branches: []dtx.Branch{{Index: 0, Name: "a", Action: dtx.BranchFailed, Compensate: dtx.BranchPending}},
		Events:   []dtx.Event{{At: base, Branch: 0, Op: dtx.OpAction, Outcome: "failure"}},
	})
	require.ErrorIs(t, err, dtx.ErrLeaseLost)
	tx, br, err := s.Get(ctx, "f1")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusRunning, tx.Status, "a fenced-out write changes nothing")
	require.Equal(t, dtx.BranchPending, br[0].Action)
	evs, err := s.Events(ctx, "f1")
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.ErrorIs(t, s.Apply(ctx, dtx.Update{GID: "missing", Owner: "c1", At: base}), dtx.ErrLeaseLost)
}

func testApplyProgress(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	mustCreate(t, s, "p1", "c1", base)
	require.NoError(t, s.Apply(ctx, dtx.Update{
		GID: "p1", Owner: "c1", At: base.Add(time.Second),
		Branches: []dtx.Branch{{Index: 0, Name: "a", Action: dtx.BranchSucceeded, Compensate: dtx.BranchPending, ActionAttempts: 2, LastError: "timeout"}},
		Events:   []dtx.Event{{At: base.Add(time.Second), Branch: 0, Op: dtx.OpAction, Outcome: "success", Duration: 1500 * time.Microsecond}},
	}))
	require.NoError(t, s.Apply(ctx, dtx.Update{
		GID: "p1", Owner: "c1", At: base.Add(2 * time.Second), Status: dtx.StatusSucceeded, Reason: "done", Release: true,
		Branches: []dtx.Branch{{Index: 1, Name: "b", Action: dtx.BranchSucceeded, Compensate: dtx.BranchSkipped}},
		Events:   []dtx.Event{{At: base.Add(2 * time.Second), Branch: 1, Op: dtx.OpAction, Outcome: "success"}},
	}))
	tx, br, err := s.Get(ctx, "p1")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, tx.Status)
	require.Equal(t, "done", tx.Reason)
	require.Empty(t, tx.LeaseOwner, "release clears the lease")
	require.True(t, tx.UpdatedAt.Equal(base.Add(2*time.Second)))
	require.Equal(t, dtx.BranchSucceeded, br[0].Action)
	require.Equal(t, 2, br[0].ActionAttempts)
	require.Equal(t, "timeout", br[0].LastError)
	require.Equal(t, dtx.BranchSucceeded, br[1].Action)
	evs, err := s.Events(ctx, "p1")
	require.NoError(t, err)
	require.Len(t, evs, 3)
	for i := 1; i < len(evs); i++ {
		require.Greater(t, evs[i].Seq, evs[i-1].Seq, "events are ordered")
	}
	require.Equal(t, dtx.OpAction, evs[1].Op)
	require.Equal(t, 1500*time.Microsecond, evs[1].Duration)
	// A finished transaction is never claimed again.
	gids, err := s.Claim(ctx, "c2", base.Add(time.Hour), base.Add(2*time.Hour), 10)
	require.NoError(t, err)
	require.Empty(t, gids)
}

func testClaimExpiredOnly(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	mustCreate(t, s, "live", "c1", base)                   // lease until base+10s
	mustCreate(t, s, "dead", "c0", base.Add(-time.Minute)) // lease until base-50s
	gids, err := s.Claim(ctx, "c2", base, base.Add(10*time.Second), 10)
	require.NoError(t, err)
	require.Equal(t, []string{"dead"}, gids)
	tx, _, err := s.Get(ctx, "dead")
	require.NoError(t, err)
	require.Equal(t, "c2", tx.LeaseOwner)
	// The old owner is fenced out, the new one may write.
	require.ErrorIs(t, s.Apply(ctx, dtx.Update{GID: "dead", Owner: "c0", At: base}), dtx.ErrLeaseLost)
	require.NoError(t, s.Apply(ctx, dtx.Update{GID: "dead", Owner: "c2", At: base}))
	// Nothing more is due.
	gids, err = s.Claim(ctx, "c3", base, base.Add(10*time.Second), 10)
	require.NoError(t, err)
	require.Empty(t, gids)
	// Limit is honoured.
	for i := range 5 {
		mustCreate(t, s, fmt.Sprintf("old%d", i), "gone", base.Add(-time.Hour))
	}
	gids, err = s.Claim(ctx, "c3", base, base.Add(10*time.Second), 3)
	require.NoError(t, err)
	require.Len(t, gids, 3)
}

func testClaimConcurrentDisjoint(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	const n = 60
	for i := range n {
		mustCreate(t, s, fmt.Sprintf("c%02d", i), "gone", base.Add(-time.Hour))
	}
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("w%d", w)
			for {
				gids, err := s.Claim(ctx, owner, base, base.Add(time.Minute), 4)
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				if len(gids) == 0 {
					return
				}
				mu.Lock()
				for _, g := range gids {
					if prev, ok := seen[g]; ok {
						t.Errorf("%s claimed by %s and %s", g, prev, owner)
					}
					seen[g] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Len(t, seen, n, "every due transaction is claimed exactly once")
	for g, owner := range seen {
		tx, _, err := s.Get(ctx, g)
		require.NoError(t, err)
		require.Equal(t, owner, tx.LeaseOwner)
	}
}

func testRenewRelease(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1", "c1", base)
	mustCreate(t, s, "r2", "c1", base)
	mustCreate(t, s, "r3", "c2", base)
	n, err := s.Renew(ctx, "c1", base.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 2, n)
	gids, err := s.Claim(ctx, "c3", base.Add(30*time.Minute), base.Add(2*time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []string{"r3"}, gids, "renewed leases are not claimable")
	require.NoError(t, s.Release(ctx, "other", "r1"), "releasing a lease one does not hold is a no-op")
	require.NoError(t, s.Release(ctx, "c1", "r1"))
	gids, err = s.Claim(ctx, "c3", base, base.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []string{"r1"}, gids, "a released transaction is claimable at once")
	n, err = s.Renew(ctx, "c1", base.Add(3*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n, "c1 lost r1")
}

func testClaimOne(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	mustCreate(t, s, "o1", "c1", base) // leased until base+10s
	mustCreate(t, s, "o2", "c1", base)
	ok, err := s.ClaimOne(ctx, "c2", "o1", base.Add(5*time.Second), base.Add(time.Hour))
	require.NoError(t, err)
	require.False(t, ok, "a live lease is not taken")
	ok, err = s.ClaimOne(ctx, "c2", "o1", base.Add(11*time.Second), base.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, ok, "an expired lease is taken")
	tx, _, err := s.Get(ctx, "o1")
	require.NoError(t, err)
	require.Equal(t, "c2", tx.LeaseOwner)
	require.True(t, base.Add(time.Hour).Equal(tx.LeaseUntil), "lease until %v", tx.LeaseUntil)
	ok, err = s.ClaimOne(ctx, "c3", "o1", base.Add(11*time.Second), base.Add(2*time.Hour))
	require.NoError(t, err)
	require.False(t, ok, "now c2 holds it")
	gids, err := s.Claim(ctx, "c3", base.Add(11*time.Second), base.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []string{"o2"}, gids, "only o2 was left to claim")

	require.NoError(t, s.Release(ctx, "c3", "o2"))
	ok, err = s.ClaimOne(ctx, "c1", "o2", base, base.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, ok, "a released lease is taken at once")
	require.NoError(t, s.Apply(ctx, dtx.Update{GID: "o2", Owner: "c1", At: base, Status: dtx.StatusFailed, Release: true}))
	ok, err = s.ClaimOne(ctx, "c2", "o2", base.Add(time.Hour), base.Add(2*time.Hour))
	require.NoError(t, err)
	require.False(t, ok, "a finished transaction is not claimed")
	ok, err = s.ClaimOne(ctx, "c2", "missing", base, base.Add(time.Hour))
	require.NoError(t, err)
	require.False(t, ok)
}

func testListCounts(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	for i := range 5 {
		mustCreate(t, s, fmt.Sprintf("l%d", i), "c1", base.Add(time.Duration(i)*time.Second))
	}
	require.NoError(t, s.Apply(ctx, dtx.Update{GID: "l1", Owner: "c1", At: base, Status: dtx.StatusFailed, Reason: "no stock", Release: true}))
	require.NoError(t, s.Apply(ctx, dtx.Update{GID: "l3", Owner: "c1", At: base, Status: dtx.StatusSucceeded, Release: true}))
	all, err := s.List(ctx, dtx.ListFilter{})
	require.NoError(t, err)
	var gids []string
	for _, tx := range all {
		gids = append(gids, tx.GID)
	}
	require.Equal(t, []string{"l4", "l3", "l2", "l1", "l0"}, gids, "newest first")
	for _, tx := range all {
		require.Nil(t, tx.Spec, "%s: a list carries no spec", tx.GID)
		require.NotEmpty(t, tx.Digest)
	}
	failed, err := s.List(ctx, dtx.ListFilter{Status: dtx.StatusFailed})
	require.NoError(t, err)
	require.Len(t, failed, 1)
	require.Equal(t, "no stock", failed[0].Reason)
	page, err := s.List(ctx, dtx.ListFilter{Limit: 2, Before: base.Add(3 * time.Second)})
	require.NoError(t, err)
	require.Len(t, page, 2)
	require.Equal(t, "l2", page[0].GID)
	counts, err := s.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, map[dtx.Status]int{dtx.StatusRunning: 3, dtx.StatusFailed: 1, dtx.StatusSucceeded: 1}, counts)
}

// testListFilters checks the pattern, since and gid-substring filters, alone
// and combined with status and paging.
func testListFilters(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	gids := []string{"order-1", "order-12", "Order-3", "pay-12", "order-120"}
	for i, g := range gids {
		tx, br := newTx(g, "c1", base.Add(time.Duration(i)*time.Second))
		if i%2 == 1 {
			tx.Pattern = dtx.PatternTCC
		}
		require.NoError(t, s.Create(ctx, tx, br))
	}
	require.NoError(t, s.Apply(ctx, dtx.Update{GID: "order-120", Owner: "c1", At: base, Status: dtx.StatusFailed, Release: true}))
	list := func(f dtx.ListFilter) []string {
		t.Helper()
		txs, err := s.List(ctx, f)
		require.NoError(t, err)
		out := []string{}
		for _, tx := range txs {
			out = append(out, tx.GID)
		}
		return out
	}
	require.Equal(t, []string{"pay-12", "order-12"}, list(dtx.ListFilter{Pattern: dtx.PatternTCC}))
	require.Equal(t, []string{"order-120", "pay-12", "order-12"}, list(dtx.ListFilter{GIDContains: "-12"}))
	require.Equal(t, []string{"Order-3"}, list(dtx.ListFilter{GIDContains: "Order"}), "case-sensitive")
	require.Equal(t, []string{}, list(dtx.ListFilter{GIDContains: "%"}), "no wildcards")
	require.Equal(t, []string{"order-120", "pay-12", "Order-3"}, list(dtx.ListFilter{Since: base.Add(2 * time.Second)}), "since is inclusive")
	require.Equal(t, []string{"pay-12"}, list(dtx.ListFilter{Since: base.Add(2 * time.Second), Before: base.Add(4 * time.Second), GIDContains: "12"}))
	require.Equal(t, []string{"order-120"}, list(dtx.ListFilter{Status: dtx.StatusFailed, Pattern: dtx.PatternSaga, GIDContains: "order"}))
	require.Equal(t, []string{"order-120"}, list(dtx.ListFilter{GIDContains: "order", Limit: 1}))
}

// testConcurrentApply drives many transactions at once so that group commit
// batches writes of different transactions, some of them fenced out.
func testConcurrentApply(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n*4)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gid := fmt.Sprintf("ca%02d", i)
			tx, br := newTx(gid, "c1", base)
			if err := s.Create(ctx, tx, br); err != nil {
				errs <- err
				return
			}
			owner := "c1"
			if i%5 == 0 {
				owner = "intruder"
			}
			for step := range 2 {
				u := dtx.Update{GID: gid, Owner: owner, At: base.Add(time.Duration(step+1) * time.Second),
					Branches: []dtx.Branch{{Index: step, Name: br[step].Name, Action: dtx.BranchSucceeded, Compensate: br[step].Compensate}},
					Events:   []dtx.Event{{At: base, Branch: step, Op: dtx.OpAction, Outcome: "success"}},
				}
				if step == 1 {
					u.Status, u.Release = dtx.StatusSucceeded, true
				}
				err := s.Apply(ctx, u)
				if owner == "intruder" {
					if err != dtx.ErrLeaseLost {
						errs <- fmt.Errorf("%s: fenced write returned %v", gid, err)
					}
				} else if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	counts, err := s.Counts(ctx)
	require.NoError(t, err)
	require.Equal(t, n*4/5, counts[dtx.StatusSucceeded])
	require.Equal(t, n/5, counts[dtx.StatusRunning])
	for i := range n {
		gid := fmt.Sprintf("ca%02d", i)
		evs, err := s.Events(ctx, gid)
		require.NoError(t, err)
		want := 3
		if i%5 == 0 {
			want = 1
		}
		require.Len(t, evs, want, gid)
		seqs := make([]int, len(evs))
		for j, e := range evs {
			seqs[j] = int(e.Seq)
		}
		require.True(t, sort.IntsAreSorted(seqs))
	}
}

func testEventsInOrder(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	mustCreate(t, s, "ord", "c1", base)
	var evs []dtx.Event
	for i := range 7 {
		evs = append(evs, dtx.Event{At: base, Branch: i % 2, Op: dtx.OpAction, Outcome: fmt.Sprintf("e%d", i)})
	}
	require.NoError(t, s.Apply(ctx, dtx.Update{GID: "ord", Owner: "c1", At: base, Events: evs}))
	got, err := s.Events(ctx, "ord")
	require.NoError(t, err)
	require.Len(t, got, 8)
	for i := range 7 {
		require.Equal(t, fmt.Sprintf("e%d", i), got[i+1].Outcome, "events of one write keep their order")
		require.Equal(t, "c1", got[i+1].Owner, "each event records the lease owner that wrote it")
	}
}

// testDuplicateCreateBesideUpdate resubmits a gid while its owner writes
// progress, so that both may share a batch: the history must hold exactly
// the owner's events.
func testDuplicateCreateBesideUpdate(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	mustCreate(t, s, "busy", "c1", base)
	const n = 30
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			tx, br := newTx("busy", "c2", base)
			if err := s.Create(ctx, tx, br); err != dtx.ErrExists {
				t.Errorf("duplicate create: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			if err := s.Apply(ctx, dtx.Update{GID: "busy", Owner: "c1", At: base,
				Events: []dtx.Event{{At: base, Branch: 0, Op: dtx.OpAction, Outcome: fmt.Sprintf("u%d", i)}}}); err != nil {
				t.Errorf("apply: %v", err)
			}
		}()
	}
	wg.Wait()
	evs, err := s.Events(ctx, "busy")
	require.NoError(t, err)
	require.Len(t, evs, 1+n, "one creation event plus one per update, none from the duplicates")
}

func gidsOf(txs []dtx.Tx) []string {
	out := []string{}
	for _, tx := range txs {
		out = append(out, tx.GID)
	}
	return out
}

func testAttention(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }
	apply := func(gid string, sec int, status dtx.Status, b dtx.Branch) {
		t.Helper()
		require.NoError(t, s.Apply(ctx, dtx.Update{GID: gid, Owner: "c1", At: at(sec), Status: status,
			Release: status.Terminal(), Branches: []dtx.Branch{b}}))
	}
	// Old, no trouble: selected by age.
	mustCreate(t, s, "old", "c1", at(0))
	// Finished long ago with many attempts: never selected.
	mustCreate(t, s, "done", "c1", at(0))
	apply("done", 0, dtx.StatusFailed, dtx.Branch{Index: 0, Name: "a", Action: dtx.BranchPending, Compensate: dtx.BranchPending, ActionAttempts: 9, CompensateAttempts: 9})
	// An action still pending after 5 calls.
	mustCreate(t, s, "retrying", "c1", at(2))
	apply("retrying", 2, "", dtx.Branch{Index: 1, Name: "b", Action: dtx.BranchPending, Compensate: dtx.BranchSkipped, ActionAttempts: 5})
	// An action that took 7 calls but succeeded: fine.
	mustCreate(t, s, "recovered", "c1", at(3))
	apply("recovered", 3, "", dtx.Branch{Index: 0, Name: "a", Action: dtx.BranchSucceeded, Compensate: dtx.BranchPending, ActionAttempts: 7})
	// A compensation that keeps failing.
	mustCreate(t, s, "stuck-comp", "c1", at(4))
	apply("stuck-comp", 4, dtx.StatusCompensating, dtx.Branch{Index: 0, Name: "a", Action: dtx.BranchSucceeded, Compensate: dtx.BranchPending, ActionAttempts: 1, CompensateAttempts: 6})
	// An action left pending by a compensating transaction is not retried:
	// its compensation runs instead.
	mustCreate(t, s, "comp-ok", "c1", at(4))
	apply("comp-ok", 4, dtx.StatusCompensating, dtx.Branch{Index: 0, Name: "a", Action: dtx.BranchPending, Compensate: dtx.BranchPending, ActionAttempts: 8, CompensateAttempts: 1})
	// Below the threshold.
	mustCreate(t, s, "young", "c1", at(5))
	apply("young", 5, "", dtx.Branch{Index: 0, Name: "a", Action: dtx.BranchPending, Compensate: dtx.BranchPending, ActionAttempts: 4})

	// attention also checks that every transaction comes with its
	// branches, as Get returns them: the reasons it is listed are read
	// from them.
	attention := func(f dtx.AttentionFilter) []string {
		t.Helper()
		got, err := s.Attention(ctx, f)
		require.NoError(t, err)
		gids := []string{}
		for _, d := range got {
			tx, br, err := s.Get(ctx, d.GID)
			require.NoError(t, err)
			require.Equal(t, tx.Status, d.Status, d.GID)
			require.Equal(t, br, d.Branches, "%s: Attention returns the branches", d.GID)
			require.Empty(t, d.Events, d.GID)
			gids = append(gids, d.GID)
		}
		return gids
	}
	require.Equal(t, []string{"old", "retrying", "stuck-comp"}, attention(dtx.AttentionFilter{MinAttempts: 5, CreatedBefore: at(1)}), "oldest first")
	require.Equal(t, []string{"old", "retrying"}, attention(dtx.AttentionFilter{MinAttempts: 5, CreatedBefore: at(1), Limit: 2}))
	require.Equal(t, []string{"retrying", "stuck-comp", "young"}, attention(dtx.AttentionFilter{MinAttempts: 4}), "age off")
	require.Equal(t, []string{"old", "retrying"}, attention(dtx.AttentionFilter{CreatedBefore: at(3)}), "attempts off")
	require.Empty(t, attention(dtx.AttentionFilter{}), "both criteria off")

	// What the reasons need: the stuck compensation's status and branch.
	stuck, err := s.Attention(ctx, dtx.AttentionFilter{MinAttempts: 6})
	require.NoError(t, err)
	require.Len(t, stuck, 1)
	require.Equal(t, dtx.StatusCompensating, stuck[0].Status)
	require.Len(t, stuck[0].Branches, 2)
	require.Equal(t, dtx.Branch{GID: "stuck-comp", Index: 0, Name: "a", Action: dtx.BranchSucceeded, Compensate: dtx.BranchPending,
		ActionAttempts: 1, CompensateAttempts: 6, UpdatedAt: at(4)}, stuck[0].Branches[0])
}

func testBacklog(t *testing.T, s dtx.Store) {
	ctx := context.Background()
	n, err := s.Backlog(ctx, base)
	require.NoError(t, err)
	require.Zero(t, n)
	mustCreate(t, s, "b1", "c1", base) // leased until base+10s
	mustCreate(t, s, "b2", "c1", base)
	mustCreate(t, s, "b3", "c1", base)
	require.NoError(t, s.Apply(ctx, dtx.Update{GID: "b3", Owner: "c1", At: base, Status: dtx.StatusSucceeded, Release: true}))
	n, err = s.Backlog(ctx, base.Add(time.Second))
	require.NoError(t, err)
	require.Zero(t, n, "leased transactions are driven")
	require.NoError(t, s.Release(ctx, "c1", "b1"))
	n, err = s.Backlog(ctx, base.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, 1, n, "a released transaction waits for recovery")
	n, err = s.Backlog(ctx, base.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, 2, n, "expired leases too; finished transactions never")
	_, err = s.Claim(ctx, "c2", base.Add(time.Minute), base.Add(time.Hour), 10)
	require.NoError(t, err)
	n, err = s.Backlog(ctx, base.Add(time.Minute))
	require.NoError(t, err)
	require.Zero(t, n, "claimed")
}
