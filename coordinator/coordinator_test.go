package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/tcc"
	"github.com/dtxhq/dtx/transport"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// participant is a fake branch endpoint: behave decides the status code for
// each call; every call is recorded in order.
type participant struct {
	srv    *httptest.Server
	mu     sync.Mutex
	calls  []string // "path:op"
	behave func(path string, n int) int
	// behaveCtx, if set, replaces behave and sees the request's context
	// (done when the caller gives up). Set it before the first call.
	behaveCtx func(ctx context.Context, path string, n int) int
	counts    map[string]int
}

func newParticipant(t testing.TB, behave func(path string, n int) int) *participant {
	p := &participant{behave: behave, counts: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		p.mu.Lock()
		p.counts[r.URL.Path]++
		n := p.counts[r.URL.Path]
		p.calls = append(p.calls, r.URL.Path+":"+r.Header.Get(dtx.HeaderOp))
		p.mu.Unlock()
		code := http.StatusOK
		switch {
		case p.behaveCtx != nil:
			code = p.behaveCtx(r.Context(), r.URL.Path, n)
		case p.behave != nil:
			code = p.behave(r.URL.Path, n)
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"detail":"%s says %d"}`, r.URL.Path, code)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *participant) url(path string) string { return p.srv.URL + path }

func (p *participant) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

func (p *participant) count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[path]
}

func openStore(t *testing.T, path string) dtx.Store {
	s, err := sqlite.Open(context.Background(), path, sqlstore.Config{})
	require.NoError(t, err)
	return s
}

func newCoordinator(t *testing.T, st dtx.Store, cfg coordinator.Config) *coordinator.Coordinator {
	if cfg.RetryBase == 0 {
		cfg.RetryBase, cfg.RetryMax = 5*time.Millisecond, 20*time.Millisecond
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 2 * time.Second
	}
	if cfg.RecoverInterval == 0 {
		cfg.RecoverInterval = 50 * time.Millisecond
	}
	c, err := coordinator.New(st, httptransport.New(nil), cfg)
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func twoSteps(p *participant, gid string) saga.Spec {
	return saga.Spec{GID: gid, Steps: []saga.Step{
		{Name: "a", Action: p.url("/a"), Compensate: p.url("/a-undo"), Payload: json.RawMessage(`{"n":1}`)},
		{Name: "b", Action: p.url("/b"), Compensate: p.url("/b-undo")},
	}}
}

func submitWait(t *testing.T, c *coordinator.Coordinator, spec saga.Spec) *dtx.TxDetail {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, created, err := c.Submit(ctx, spec)
	require.NoError(t, err)
	require.True(t, created)
	final, err := c.Wait(ctx, d.GID)
	require.NoError(t, err)
	return final
}

func TestCoordinator_Succeeds(t *testing.T) {
	p := newParticipant(t, nil)
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	c := newCoordinator(t, st, coordinator.Config{})
	d := submitWait(t, c, twoSteps(p, "ok-1"))
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	require.Equal(t, []string{"/a:action", "/b:action"}, p.log())
	tx, br, err := st.Get(context.Background(), "ok-1")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, tx.Status)
	require.Empty(t, tx.LeaseOwner)
	require.Equal(t, dtx.BranchSucceeded, br[1].Action)
}

func TestCoordinator_Compensate(t *testing.T) {
	t.Run("DefiniteFailureCompensatesInReverse", func(t *testing.T) {
		p := newParticipant(t, func(path string, n int) int {
			if path == "/b" {
				return http.StatusConflict
			}
			return http.StatusOK
		})
		st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
		defer st.Close()
		c := newCoordinator(t, st, coordinator.Config{})
		d := submitWait(t, c, twoSteps(p, "fail-1"))
		require.Equal(t, dtx.StatusFailed, d.Status)
		require.Contains(t, d.Reason, "step 1 (b) failed")
		require.Contains(t, d.Reason, "/b says 409")
		// The failed step is compensated too (a null compensation for the
		// participant), then the first step: reverse order.
		require.Equal(t, []string{"/a:action", "/b:action", "/b-undo:compensate", "/a-undo:compensate"}, p.log())
	})
	t.Run("FirstStepFailureSkipsLaterSteps", func(t *testing.T) {
		p := newParticipant(t, func(path string, n int) int {
			if path == "/a" {
				return http.StatusUnprocessableEntity
			}
			return http.StatusOK
		})
		st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
		defer st.Close()
		c := newCoordinator(t, st, coordinator.Config{})
		d := submitWait(t, c, twoSteps(p, "fail-2"))
		require.Equal(t, dtx.StatusFailed, d.Status)
		require.Equal(t, []string{"/a:action", "/a-undo:compensate"}, p.log(), "step b never ran, so it is not compensated")
	})
	t.Run("CompensationRetriedUntilItSucceeds", func(t *testing.T) {
		p := newParticipant(t, func(path string, n int) int {
			switch {
			case path == "/b":
				return http.StatusConflict
			case path == "/a-undo" && n <= 7:
				// Even a 4xx from a compensation is retried: it must succeed.
				if n%2 == 0 {
					return http.StatusConflict
				}
				return http.StatusInternalServerError
			}
			return http.StatusOK
		})
		st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
		defer st.Close()
		var alerts atomic.Int32
		c := newCoordinator(t, st, coordinator.Config{AlertAfter: 3, OnAlert: func(a coordinator.Alert) {
			alerts.Add(1)
		}})
		d := submitWait(t, c, twoSteps(p, "fail-3"))
		require.Equal(t, dtx.StatusFailed, d.Status)
		require.Equal(t, 8, p.count("/a-undo"))
		require.Equal(t, int32(2), alerts.Load(), "alerts after 3 and 6 failed attempts")
		_, br, err := st.Get(context.Background(), "fail-3")
		require.NoError(t, err)
		require.Equal(t, 8, br[0].CompensateAttempts)
		require.Equal(t, dtx.BranchSucceeded, br[0].Compensate)
	})
}

func TestCoordinator_UnknownOutcomeRetriesSameOp(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		if path == "/a" && n <= 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	c := newCoordinator(t, st, coordinator.Config{})
	d := submitWait(t, c, twoSteps(p, "retry-1"))
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	require.Equal(t, 4, p.count("/a"))
	require.Equal(t, 0, p.count("/a-undo"))
	evs, err := st.Events(context.Background(), "retry-1")
	require.NoError(t, err)
	var unknown int
	for _, e := range evs {
		if e.Outcome == "unknown" {
			unknown++
		}
	}
	require.Equal(t, 3, unknown, "every retry is in the history")
}

func TestCoordinator_BranchTimeoutIsUnknown(t *testing.T) {
	gaveUp := make(chan struct{})
	p := newParticipant(t, nil)
	// The first call to /a hangs until the coordinator has given up on it
	// (its connection closes at the branch timeout).
	p.behaveCtx = func(ctx context.Context, path string, n int) int {
		if path == "/a" && n == 1 {
			select {
			case <-ctx.Done():
				close(gaveUp)
			case <-time.After(20 * time.Second):
			}
		}
		return http.StatusOK
	}
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	c := newCoordinator(t, st, coordinator.Config{})
	spec := twoSteps(p, "slow-1")
	spec.BranchTimeout = dtx.Duration(100 * time.Millisecond)
	d := submitWait(t, c, spec)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	<-gaveUp // the handler returns first: the saga did not wait for it
	// Usually 2; more if a retry, on a loaded machine, also took longer
	// than the 100ms timeout.
	require.GreaterOrEqual(t, p.count("/a"), 2, "the timed-out call is retried")
	require.Zero(t, p.count("/a-undo"), "not compensated")
}

func TestCoordinator_SagaTimeoutCompensates(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		if path == "/b" {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	c := newCoordinator(t, st, coordinator.Config{})
	spec := twoSteps(p, "timeout-1")
	spec.Timeout = dtx.Duration(300 * time.Millisecond)
	d := submitWait(t, c, spec)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Contains(t, d.Reason, "timed out")
	// On the real clock, how far the saga got in 300ms depends on the
	// machine (TestClock_SagaDeadline pins it down): b was called, or not.
	if p.count("/b") > 0 {
		require.Contains(t, d.Reason, "502")
		require.Equal(t, 1, p.count("/b-undo"), "b may have run: it is compensated")
	}
	require.Equal(t, 1, p.count("/a-undo"))
}

func TestCoordinator_PivotStepsOnlyMoveForward(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		if path == "/final" && n <= 2 {
			return http.StatusConflict
		}
		return http.StatusOK
	})
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	c := newCoordinator(t, st, coordinator.Config{})
	spec := saga.Spec{GID: "pivot-1", Timeout: dtx.Duration(time.Minute), Steps: []saga.Step{
		{Name: "mark", Compensate: p.url("/cancel")},
		{Name: "a", Action: p.url("/a"), Compensate: p.url("/a-undo")},
		{Name: "final", Action: p.url("/final")},
	}}
	d := submitWait(t, c, spec)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	require.Equal(t, 3, p.count("/final"))
	require.Equal(t, 0, p.count("/a-undo"))
	require.Equal(t, 0, p.count("/cancel"))
	require.ErrorIs(t, c.Abort(context.Background(), "pivot-1", ""), dtx.ErrFinished)
}

func TestCoordinator_ParallelSteps(t *testing.T) {
	// a and b each wait, in their handler, for the other to arrive: they
	// can only both return if they run at the same time.
	arrived := map[string]chan struct{}{"/a": make(chan struct{}), "/b": make(chan struct{})}
	var overlap atomic.Bool
	p := newParticipant(t, func(path string, n int) int {
		switch path {
		case "/a", "/b":
			other := "/b"
			if path == "/b" {
				other = "/a"
			}
			if n == 1 {
				close(arrived[path])
			}
			select {
			case <-arrived[other]:
				overlap.Store(true)
			case <-time.After(10 * time.Second):
			}
		case "/c":
			return http.StatusConflict
		}
		return http.StatusOK
	})
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	c := newCoordinator(t, st, coordinator.Config{})
	spec := saga.Spec{GID: "dag-1", Parallel: true, Steps: []saga.Step{
		{Name: "a", Action: p.url("/a"), Compensate: p.url("/a-undo")},
		{Name: "b", Action: p.url("/b"), Compensate: p.url("/b-undo")},
		{Name: "c", Action: p.url("/c"), Compensate: p.url("/c-undo"), After: []int{0, 1}},
	}}
	d := submitWait(t, c, spec)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.True(t, overlap.Load(), "independent steps run concurrently")
	log := p.log()
	pos := map[string]int{}
	for i, e := range log {
		pos[e] = i
	}
	require.Less(t, pos["/c:action"], pos["/c-undo:compensate"])
	require.Less(t, pos["/c-undo:compensate"], pos["/a-undo:compensate"], "dependants are compensated first")
	require.Less(t, pos["/c-undo:compensate"], pos["/b-undo:compensate"])
}

func TestCoordinator_DuplicateGID(t *testing.T) {
	p := newParticipant(t, nil)
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	c := newCoordinator(t, st, coordinator.Config{})
	submitWait(t, c, twoSteps(p, "dup-1"))
	d, created, err := c.Submit(context.Background(), twoSteps(p, "dup-1"))
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	other := twoSteps(p, "dup-1")
	other.Steps[0].Payload = json.RawMessage(`{"n":2}`)
	_, _, err = c.Submit(context.Background(), other)
	require.ErrorIs(t, err, dtx.ErrConflict)
	require.Equal(t, 1, p.count("/a"), "no step ran twice")
}

func TestCoordinator_Abort(t *testing.T) {
	release := make(chan struct{})
	p := newParticipant(t, func(path string, n int) int {
		if path == "/b" {
			<-release
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	c := newCoordinator(t, st, coordinator.Config{})
	ctx := context.Background()
	_, _, err := c.Submit(ctx, twoSteps(p, "abort-1"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.count("/b") == 1 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, c.Abort(ctx, "abort-1", "operator says no"))
	close(release)
	d, err := c.Wait(ctx, "abort-1")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Equal(t, "operator says no", d.Reason)
	require.Equal(t, 1, p.count("/b-undo"))
	require.Equal(t, 1, p.count("/a-undo"))
	require.ErrorIs(t, c.Abort(ctx, "nope", ""), dtx.ErrNotFound)
}

func TestCoordinator_RecoversAfterRestart(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		if path == "/b" && n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	path := filepath.Join(t.TempDir(), "c.db")
	st := openStore(t, path)
	// A coordinator that dies: its retry of /b is far away and it stops
	// without releasing (simulated by a huge backoff and an abandoned lease).
	dead, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{
		Owner: "dead", LeaseTTL: 300 * time.Millisecond, RetryBase: time.Hour, RetryMax: time.Hour,
	})
	require.NoError(t, err)
	ctx := context.Background()
	_, _, err = dead.Submit(ctx, twoSteps(p, "rec-1"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.count("/b") == 1 }, 5*time.Second, 5*time.Millisecond)
	// The dead coordinator never renews (not started): its lease expires.
	// A new coordinator on the same store takes over and finishes the saga.
	c := newCoordinator(t, st, coordinator.Config{Owner: "heir"})
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, err := c.Wait(wctx, "rec-1")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	require.Equal(t, 2, p.count("/b"))
	require.Equal(t, 1, p.count("/a"), "a finished step is not repeated")
	dead.Close(ctx) // its driver is fenced out: nothing changes
	tx, _, err := st.Get(ctx, "rec-1")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, tx.Status)
	st.Close()
}

// TestCoordinator_RecoveredSagaCompensatesConservatively: successes are
// written lazily, so a saga resumed from the store may have run steps the
// store still shows pending. Resumed past its deadline, it must compensate
// every step that may have run, not only those recorded.
func TestCoordinator_RecoveredSagaCompensatesConservatively(t *testing.T) {
	block := make(chan struct{})
	p := newParticipant(t, func(path string, n int) int {
		if path == "/c" {
			<-block // the dying coordinator never learns c's outcome
		}
		return http.StatusOK
	})
	t.Cleanup(func() { close(block) }) // before the participant server closes
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	// The dying coordinator runs normally (fresh leases, so it keeps
	// successes in memory) until it is cut off from the store's renewals.
	// Its clock stands still: it neither renews (an hour's lease) nor
	// reaches the deadline, however slow the machine.
	cut := &partitioned{Store: st}
	deadClock := newFakeClock()
	dead, err := coordinator.New(cut, httptransport.New(nil), deadClock.config(coordinator.Config{
		Owner: "dead", LeaseTTL: time.Hour, RecoverInterval: time.Hour, ShutdownTimeout: 50 * time.Millisecond,
	}))
	require.NoError(t, err)
	require.NoError(t, dead.Start(context.Background()))
	t.Cleanup(func() { dead.Close(context.Background()) })
	ctx := context.Background()
	spec := saga.Spec{GID: "lazy-1", Timeout: dtx.Duration(time.Minute), BranchTimeout: dtx.Duration(time.Minute), Steps: []saga.Step{
		{Name: "a", Action: p.url("/a"), Compensate: p.url("/a-undo")},
		{Name: "b", Action: p.url("/b"), Compensate: p.url("/b-undo")},
		{Name: "c", Action: p.url("/c"), Compensate: p.url("/c-undo")},
	}}
	_, _, err = dead.Submit(ctx, spec)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.count("/c") == 1 }, 5*time.Second, 5*time.Millisecond)
	cut.renewals.Store(true)
	_, br, err := st.Get(ctx, "lazy-1")
	require.NoError(t, err)
	require.Equal(t, dtx.BranchPending, br[1].Action, "b's success is not written yet")

	// Two hours later (on the heir's clock) the dead coordinator's lease
	// has expired, after its saga's deadline.
	heirClock := newFakeClock()
	heirClock.Advance(2 * time.Hour)
	c := newCoordinator(t, st, heirClock.config(coordinator.Config{Owner: "heir"}))
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, err := c.Wait(wctx, "lazy-1")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, d.Status)
	require.Contains(t, d.Reason, "timed out")
	require.Equal(t, 1, p.count("/a"), "the heir does not run anything forward past the deadline")
	require.Equal(t, 1, p.count("/b"))
	for _, undo := range []string{"/c-undo", "/b-undo", "/a-undo"} {
		require.Equal(t, 1, p.count(undo), "%s: every step that may have run is compensated", undo)
	}
	log := p.log()
	require.Equal(t, []string{"/c-undo:compensate", "/b-undo:compensate", "/a-undo:compensate"}, log[len(log)-3:], "in reverse order")
}

// partitioned is a store whose lease renewals fail once cut: the owner's
// leases expire while it still believes it drives its sagas.
type partitioned struct {
	dtx.Store
	renewals atomic.Bool
}

func (p *partitioned) Renew(ctx context.Context, owner string, until time.Time) (int, error) {
	if p.renewals.Load() {
		return 0, fmt.Errorf("partitioned")
	}
	return p.Store.Renew(ctx, owner, until)
}

// TestCoordinator_PivotIsDurableBeforeRetriableSteps: a saga whose
// retriable step (no compensation) has started can only move forward, even
// when another coordinator resumes it past its deadline.
func TestCoordinator_PivotIsDurableBeforeRetriableSteps(t *testing.T) {
	block := make(chan struct{})
	p := newParticipant(t, func(path string, n int) int {
		if path == "/ship" && n == 1 {
			<-block
		}
		return http.StatusOK
	})
	t.Cleanup(func() { close(block) })
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	cut := &partitioned{Store: st}
	deadClock := newFakeClock() // stands still, as in the test above
	dead, err := coordinator.New(cut, httptransport.New(nil), deadClock.config(coordinator.Config{
		Owner: "dead", LeaseTTL: time.Hour, RecoverInterval: time.Hour, ShutdownTimeout: 50 * time.Millisecond,
	}))
	require.NoError(t, err)
	require.NoError(t, dead.Start(context.Background()))
	t.Cleanup(func() { dead.Close(context.Background()) })
	ctx := context.Background()
	spec := saga.Spec{GID: "pivot-2", Timeout: dtx.Duration(time.Minute), BranchTimeout: dtx.Duration(time.Minute), Steps: []saga.Step{
		{Name: "reserve", Action: p.url("/reserve"), Compensate: p.url("/reserve-undo")},
		{Name: "ship", Action: p.url("/ship")},
	}}
	_, _, err = dead.Submit(ctx, spec)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.count("/ship") == 1 }, 5*time.Second, 5*time.Millisecond)
	cut.renewals.Store(true)
	_, br, err := st.Get(ctx, "pivot-2")
	require.NoError(t, err)
	require.Equal(t, dtx.BranchSucceeded, br[0].Action, "crossing the pivot is written before the retriable step starts")

	heirClock := newFakeClock()
	heirClock.Advance(2 * time.Hour) // past the lease and the deadline
	c := newCoordinator(t, st, heirClock.config(coordinator.Config{Owner: "heir"}))
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, err := c.Wait(wctx, "pivot-2")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, d.Status, "past the pivot the deadline no longer compensates")
	require.Equal(t, 0, p.count("/reserve-undo"))
	require.Equal(t, 2, p.count("/ship"))
}

// TestSubmit_LegacyTCCDigest resubmits a TCC transaction recorded before
// confirms carried their try's branch index: same content, no conflict.
func TestSubmit_LegacyTCCDigest(t *testing.T) {
	p := newParticipant(t, nil)
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	spec := tcc.Spec{GID: "legacy-1", Participants: []tcc.Participant{
		{Name: "a", Try: p.url("/a"), Confirm: p.url("/a-confirm"), Cancel: p.url("/a-cancel")},
	}}
	sg, err := spec.Saga()
	require.NoError(t, err)
	require.NoError(t, sg.Normalize())
	old := sg
	old.Steps = append([]saga.Step(nil), sg.Steps...)
	for i := range old.Steps {
		old.Steps[i].Branch = nil
	}
	raw, err := json.Marshal(&old)
	require.NoError(t, err)
	now := time.Now().UTC().Truncate(time.Millisecond)
	require.NoError(t, st.Create(context.Background(), &dtx.Tx{
		GID: old.GID, Pattern: dtx.PatternTCC, Status: dtx.StatusSucceeded, Spec: raw,
		Digest: string(dtx.PatternTCC) + ":" + old.Digest(), CreatedAt: now, UpdatedAt: now, Deadline: now.Add(time.Minute),
	}, saga.InitialBranches(old.GID, &old)))

	c := newCoordinator(t, st, coordinator.Config{})
	d, created, err := c.SubmitPattern(context.Background(), dtx.PatternTCC, sg)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, dtx.StatusSucceeded, d.Status)

	changed := sg
	changed.Steps = append([]saga.Step(nil), sg.Steps...)
	changed.Steps[0].Payload = json.RawMessage(`{"other":true}`)
	_, _, err = c.SubmitPattern(context.Background(), dtx.PatternTCC, changed)
	require.ErrorIs(t, err, dtx.ErrConflict)
}

// topicOnly is a transport for the "queue" scheme whose URLs must name the
// topic "ok".
type topicOnly struct{}

func (topicOnly) Call(context.Context, dtx.Call) dtx.Outcome { return dtx.Succeeded(nil) }

func (topicOnly) CheckURL(raw string) error {
	if raw != "queue://ok" {
		return fmt.Errorf("URL %q is not queue://ok", raw)
	}
	return nil
}

// TestCoordinator_ChecksURLsWithTheTransport: a step URL of a scheme the
// transport does not serve, or against its scheme's rule, is refused at
// submission (dtx.ErrInvalid, every problem named) and nothing is stored.
func TestCoordinator_ChecksURLsWithTheTransport(t *testing.T) {
	p := newParticipant(t, nil)
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	h := httptransport.New(nil)
	c, err := coordinator.New(st, transport.Schemes{"http": h, "queue": topicOnly{}}, coordinator.Config{
		RetryBase: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() { c.Close(context.Background()) })

	spec := saga.Spec{GID: "urls-1", Steps: []saga.Step{
		{Name: "a", Action: p.url("/a"), Compensate: "queue://nope"},
		{Name: "b", Action: "ftp://svc.local/b", Compensate: "queue://ok"},
	}}
	_, _, err = c.Submit(context.Background(), spec)
	require.ErrorIs(t, err, dtx.ErrInvalid)
	for _, want := range []string{
		`step 0 (a) compensate: URL "queue://nope" is not queue://ok`,
		`step 1 (b) action: no transport for the scheme "ftp"`,
	} {
		require.ErrorContains(t, err, want)
	}
	_, _, err = st.Get(context.Background(), "urls-1")
	require.ErrorIs(t, err, dtx.ErrNotFound, "nothing stored")

	d := submitWait(t, c, saga.Spec{GID: "urls-2", Steps: []saga.Step{
		{Name: "a", Action: p.url("/a"), Compensate: "queue://ok"},
	}})
	require.Equal(t, dtx.StatusSucceeded, d.Status)
}
