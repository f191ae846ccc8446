package coordinator_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// hangingParticipant answers paths in hang only when release is closed or
// the caller gives up; every other path answers 200 at once. It tracks how
// many calls are open at once.
type hangingParticipant struct {
	*participant
	release chan struct{}
	mu      sync.Mutex
	open    int
	maxOpen int
	// gaveUp counts hanging calls the caller cancelled.
	gaveUp int
}

func newHangingParticipant(t *testing.T, hang ...string) *hangingParticipant {
	h := &hangingParticipant{release: make(chan struct{})}
	h.participant = newParticipant(t, nil)
	h.behaveCtx = func(ctx context.Context, path string, n int) int {
		hangs := false
		for _, p := range hang {
			hangs = hangs || strings.HasPrefix(path, p)
		}
		if !hangs {
			return http.StatusOK
		}
		h.mu.Lock()
		h.open++
		h.maxOpen = max(h.maxOpen, h.open)
		h.mu.Unlock()
		defer func() { h.mu.Lock(); h.open--; h.mu.Unlock() }()
		select {
		case <-h.release:
			return http.StatusOK
		case <-ctx.Done():
			h.mu.Lock()
			h.gaveUp++
			h.mu.Unlock()
			return http.StatusServiceUnavailable
		}
	}
	t.Cleanup(h.unblock)
	return h
}

func (h *hangingParticipant) unblock() {
	select {
	case <-h.release:
	default:
		close(h.release)
	}
}

func (h *hangingParticipant) stats() (open, maxOpen, gaveUp int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.open, h.maxOpen, h.gaveUp
}

func oneHangingStep(p *hangingParticipant, gid string) saga.Spec {
	return saga.Spec{GID: gid, Timeout: dtx.Duration(48 * time.Hour), BranchTimeout: dtx.Duration(time.Hour), Steps: []saga.Step{
		{Name: "hang", Action: p.url("/hang"), Compensate: p.url("/undo")},
	}}
}

// TestCalls_PoolBoundsCallsInFlight: with MaxCalls 3, ten sagas whose
// participant hangs have three calls open at a time; the others wait for a
// slot (none fails for lack of one) and all succeed once it answers.
func TestCalls_PoolBoundsCallsInFlight(t *testing.T) {
	p := newHangingParticipant(t, "/hang")
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	t.Cleanup(func() { st.Close() })
	c := newCoordinator(t, st, coordinator.Config{MaxTimeout: longTimeouts, MaxBranchTimeout: longTimeouts, MaxCalls: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 10
	for i := range n {
		_, _, err := c.Submit(ctx, oneHangingStep(p, fmt.Sprintf("pool-%d", i)))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { open, _, _ := p.stats(); return open == 3 }, 10*time.Second, time.Millisecond)
	require.Equal(t, 3, c.CallsInFlight())
	require.Equal(t, n, c.Active(), "every saga is driven; seven wait for a slot")
	// A hanging call is one attempt; a call waiting for a slot is none.
	for i := range n {
		tx, br, err := st.Get(ctx, fmt.Sprintf("pool-%d", i))
		require.NoError(t, err)
		require.Equal(t, dtx.StatusRunning, tx.Status)
		require.Zero(t, br[0].ActionAttempts)
	}

	p.unblock()
	for i := range n {
		d, err := c.Wait(ctx, fmt.Sprintf("pool-%d", i))
		require.NoError(t, err)
		require.Equal(t, dtx.StatusSucceeded, d.Status)
		require.Equal(t, 1, d.Branches[0].ActionAttempts)
	}
	_, maxOpen, _ := p.stats()
	require.Equal(t, 3, maxOpen, "never more calls open than slots")
	require.Equal(t, n, p.count("/hang"), "each action called once: waiting for a slot is not a failure")
	require.Zero(t, c.CallsInFlight())
}

// claimPasses is an Observer that keeps the size of every recovery pass.
type claimPasses struct {
	*recorder
	mu     sync.Mutex
	passes []int
}

func (c *claimPasses) Claimed(n int) {
	c.mu.Lock()
	c.passes = append(c.passes, n)
	c.mu.Unlock()
	c.recorder.Claimed(n)
}

func (c *claimPasses) get() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.passes...)
}

// TestRecovery_BoundedBatch: after a coordinator dies with twelve
// transactions in flight, its heir resumes them at most RecoverBatch per
// pass once their leases have expired on the coordinators' (fake) clock,
// and none before.
func TestRecovery_BoundedBatch(t *testing.T) {
	p := newHangingParticipant(t, "/hang")
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	t.Cleanup(func() { st.Close() })
	clk := newFakeClock()
	const ttl = time.Hour
	dead, err := coordinator.New(st, transportForTests(), clk.config(coordinator.Config{MaxTimeout: longTimeouts, MaxBranchTimeout: longTimeouts,
		Owner: "dead", LeaseTTL: ttl, ShutdownTimeout: time.Millisecond,
	}))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n, batch = 12, 5
	for i := range n {
		_, _, err := dead.Submit(ctx, oneHangingStep(p, fmt.Sprintf("rec-%d", i)))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { open, _, _ := p.stats(); return open == n }, 10*time.Second, time.Millisecond)

	obs := &claimPasses{recorder: &recorder{}}
	heir := newCoordinator(t, st, clk.config(coordinator.Config{MaxTimeout: longTimeouts, MaxBranchTimeout: longTimeouts, Owner: "heir", LeaseTTL: ttl, RecoverBatch: batch, Observer: obs}))
	require.Zero(t, heir.Active(), "the leases have not expired on the clock")

	clk.Advance(ttl + time.Millisecond)
	require.Eventually(t, func() bool { return heir.Active() == n }, 20*time.Second, time.Millisecond)
	passes := obs.get()
	total := 0
	for _, k := range passes {
		require.LessOrEqual(t, k, batch, "passes %v", passes)
		total += k
	}
	require.Equal(t, n, total)
	require.GreaterOrEqual(t, len(passes), (n+batch-1)/batch, "passes %v", passes)

	p.unblock()
	for i := range n {
		d, err := heir.Wait(ctx, fmt.Sprintf("rec-%d", i))
		require.NoError(t, err)
		require.Equal(t, dtx.StatusSucceeded, d.Status)
	}
	dead.Close(ctx)
}

// TestForceAbort_PastPivot: a saga past its pivot whose last step hangs
// cannot be compensated; an operator's forced abort cancels the hanging
// call, marks the saga failed with the reason and who did it, and lists
// both branches as needing a human, in the answer and in the history.
func TestForceAbort_PastPivot(t *testing.T) {
	p := newHangingParticipant(t, "/ship")
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	t.Cleanup(func() { st.Close() })
	c := newCoordinator(t, st, coordinator.Config{MaxTimeout: longTimeouts, MaxBranchTimeout: longTimeouts})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spec := saga.Spec{GID: "force-1", Timeout: dtx.Duration(time.Hour), BranchTimeout: dtx.Duration(time.Hour), Steps: []saga.Step{
		{Name: "charge", Action: p.url("/charge"), Compensate: p.url("/refund")},
		{Name: "ship", Action: p.url("/ship")}, // no compensation: past the pivot
	}}
	_, _, err := c.Submit(ctx, spec)
	require.NoError(t, err)
	require.Eventually(t, func() bool { open, _, _ := p.stats(); return open == 1 }, 10*time.Second, time.Millisecond)

	require.ErrorIs(t, c.Abort(ctx, "force-1", "stop"), coordinator.ErrPastPivot)
	unresolved, err := c.AbortWith(ctx, "force-1", coordinator.AbortOptions{
		Force: true, Reason: "the carrier is gone", Operator: "alice", From: "10.0.0.7:5555",
	})
	require.NoError(t, err)
	require.Len(t, unresolved, 2)
	require.Equal(t, 0, unresolved[0].Branch)
	require.Equal(t, "charge", unresolved[0].Name)
	require.Contains(t, unresolved[0].Why, "action succeeded; not compensated")
	require.Equal(t, 1, unresolved[1].Branch)
	require.Contains(t, unresolved[1].Why, "outcome unknown after 1 call(s)")
	require.Contains(t, unresolved[1].Why, "no compensation")

	// The hanging call was cancelled; nothing was compensated.
	require.Eventually(t, func() bool { _, _, gaveUp := p.stats(); return gaveUp == 1 }, 10*time.Second, time.Millisecond)
	require.Zero(t, p.count("/refund"))
	d, err := c.Wait(ctx, "force-1")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, d.Status)
	for _, want := range []string{coordinator.ForcedReason, `"alice"`, "10.0.0.7:5555", "the carrier is gone", "2 branches need a human"} {
		require.Contains(t, d.Reason, want)
	}
	tx, _, err := st.Get(ctx, "force-1")
	require.NoError(t, err)
	require.Empty(t, tx.LeaseOwner, "a finished transaction holds no lease")

	evs, err := st.Events(ctx, "force-1")
	require.NoError(t, err)
	var needs []int
	var final dtx.Event
	for _, e := range evs {
		if e.Outcome == coordinator.OutcomeNeedsHuman {
			needs = append(needs, e.Branch)
		}
		final = e
	}
	require.Equal(t, []int{0, 1}, needs)
	require.Equal(t, -1, final.Branch)
	require.Equal(t, string(dtx.StatusFailed), final.Outcome)
	require.Equal(t, d.Reason, final.Detail)
	require.Equal(t, c.Owner(), final.Owner)

	_, err = c.AbortWith(ctx, "force-1", coordinator.AbortOptions{Force: true, Operator: "alice"})
	require.ErrorIs(t, err, dtx.ErrFinished, "a finished transaction cannot be forced")
	_, err = c.AbortWith(ctx, "nope", coordinator.AbortOptions{Force: true, Operator: "alice"})
	require.ErrorIs(t, err, dtx.ErrNotFound)
	require.Zero(t, c.CallsInFlight())
}

// TestForceAbort_QueuedCallIsNotMade: a forced abort of a saga whose call
// waits for a slot of the pool drops that call: the participant never sees
// it, and no branch needs a human.
func TestForceAbort_QueuedCallIsNotMade(t *testing.T) {
	p := newHangingParticipant(t, "/hang")
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	t.Cleanup(func() { st.Close() })
	c := newCoordinator(t, st, coordinator.Config{MaxTimeout: longTimeouts, MaxBranchTimeout: longTimeouts, MaxCalls: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err := c.Submit(ctx, oneHangingStep(p, "holder"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { open, _, _ := p.stats(); return open == 1 }, 10*time.Second, time.Millisecond)
	queued := oneHangingStep(p, "queued")
	queued.Steps[0].Action = p.url("/hang-queued")
	_, _, err = c.Submit(ctx, queued)
	require.NoError(t, err)
	require.Equal(t, 2, c.Active())

	unresolved, err := c.AbortWith(ctx, "queued", coordinator.AbortOptions{Force: true, Operator: "bob"})
	require.NoError(t, err)
	require.Empty(t, unresolved)
	d, err := c.Wait(ctx, "queued")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Contains(t, d.Reason, "nothing left to compensate")
	require.Zero(t, d.Branches[0].ActionAttempts)

	p.unblock()
	d, err = c.Wait(ctx, "holder")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	require.Zero(t, p.count("/hang-queued"), "the queued call was never made")
}

// TestForceAbort_StuckCompensation: a compensation that keeps failing
// cannot finish; a forced abort stops it and names the branch.
func TestForceAbort_StuckCompensation(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		switch path {
		case "/b":
			return http.StatusConflict // a definite failure: compensate
		case "/a-undo":
			return http.StatusInternalServerError // forever
		}
		return http.StatusOK
	})
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	t.Cleanup(func() { st.Close() })
	c := newCoordinator(t, st, coordinator.Config{MaxTimeout: longTimeouts, MaxBranchTimeout: longTimeouts})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err := c.Submit(ctx, twoSteps(p, "stuck-undo"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.count("/a-undo") >= 3 }, 10*time.Second, time.Millisecond)

	unresolved, err := c.AbortWith(ctx, "stuck-undo", coordinator.AbortOptions{Force: true, Operator: "carol"})
	require.NoError(t, err)
	require.Len(t, unresolved, 1)
	require.Equal(t, "a", unresolved[0].Name)
	require.Contains(t, unresolved[0].Why, "compensation outcome unknown")
	d, err := c.Wait(ctx, "stuck-undo")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Contains(t, d.Reason, `"carol"`)
	calls := p.count("/a-undo")
	// No driver is left to call it again.
	require.Zero(t, c.Active())
	require.Equal(t, calls, p.count("/a-undo"))
}

func transportForTests() dtx.Transport { return httptransport.New(nil) }

// TestForceAbort_Undriven: a transaction nobody drives (its coordinator
// died; the lease expired on the clock, recovery has not reached it) is
// forced by another coordinator: refused while the lease lasts, then
// leased, failed and released in one write, its in-flight step reported as
// needing a human.
func TestForceAbort_Undriven(t *testing.T) {
	p := newHangingParticipant(t, "/hang")
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	t.Cleanup(func() { st.Close() })
	clk := newFakeClock()
	const ttl = time.Hour
	dead, err := coordinator.New(st, transportForTests(), clk.config(coordinator.Config{MaxTimeout: longTimeouts, MaxBranchTimeout: longTimeouts,
		Owner: "dead", LeaseTTL: ttl, ShutdownTimeout: time.Millisecond,
	}))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err = dead.Submit(ctx, oneHangingStep(p, "orphan"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { open, _, _ := p.stats(); return open == 1 }, 10*time.Second, time.Millisecond)

	// The heir's recovery never runs after Start (an hour of real time).
	heir := newCoordinator(t, st, clk.config(coordinator.Config{MaxTimeout: longTimeouts, MaxBranchTimeout: longTimeouts, Owner: "heir", LeaseTTL: ttl, RecoverInterval: time.Hour}))
	force := coordinator.AbortOptions{Force: true, Operator: "dave", Reason: "orphaned"}
	_, err = heir.AbortWith(ctx, "orphan", force)
	require.ErrorIs(t, err, coordinator.ErrNotDrivenHere, "the dead coordinator's lease still lasts")

	clk.Advance(ttl + time.Millisecond)
	unresolved, err := heir.AbortWith(ctx, "orphan", force)
	require.NoError(t, err)
	require.Len(t, unresolved, 1)
	require.Contains(t, unresolved[0].Why, "may have run")
	require.Zero(t, heir.Active(), "nothing was driven for it")
	tx, _, err := st.Get(ctx, "orphan")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, tx.Status)
	require.Contains(t, tx.Reason, `aborted by operator "dave": orphaned (1 branch needs a human)`)
	require.Empty(t, tx.LeaseOwner)
	evs, err := st.Events(ctx, "orphan")
	require.NoError(t, err)
	last := evs[len(evs)-1]
	require.Equal(t, "heir", last.Owner)
	require.Equal(t, tx.Reason, last.Detail)
	require.Equal(t, coordinator.OutcomeNeedsHuman, evs[len(evs)-2].Outcome)
	dead.Close(ctx)
}

// TestCalls_CloseDropsQueuedCalls: on Close, a call waiting for a slot is
// not made; the hanging one is cut short after ShutdownTimeout, and both
// transactions are handed back unfinished.
func TestCalls_CloseDropsQueuedCalls(t *testing.T) {
	p := newHangingParticipant(t, "/hang")
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	t.Cleanup(func() { st.Close() })
	c := newCoordinator(t, st, coordinator.Config{MaxTimeout: longTimeouts, MaxBranchTimeout: longTimeouts, MaxCalls: 1, ShutdownTimeout: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err := c.Submit(ctx, oneHangingStep(p, "first"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { open, _, _ := p.stats(); return open == 1 }, 10*time.Second, time.Millisecond)
	second := oneHangingStep(p, "second")
	second.Steps[0].Action = p.url("/hang-second")
	_, _, err = c.Submit(ctx, second)
	require.NoError(t, err)

	require.NoError(t, c.Close(ctx))
	require.Zero(t, c.Active())
	require.Zero(t, c.CallsInFlight())
	require.Zero(t, p.count("/hang-second"), "the queued call was never made")
	for _, gid := range []string{"first", "second"} {
		tx, _, err := st.Get(ctx, gid)
		require.NoError(t, err)
		require.Equal(t, dtx.StatusRunning, tx.Status)
		require.Empty(t, tx.LeaseOwner, "%s is handed back", gid)
	}
}

// longTimeouts lifts the server-wide timeout maxima for these tests, whose
// calls must hang for as long as the test needs them to.
const longTimeouts = 72 * time.Hour
