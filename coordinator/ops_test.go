package coordinator_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/saga"
)

const submitterTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// traceRecorder is a participant that answers 200 and records the
// traceparent header of every call ("" when absent).
type traceRecorder struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []string
}

func newTraceRecorder(t *testing.T) *traceRecorder {
	tr := &traceRecorder{}
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		tr.mu.Lock()
		tr.got = append(tr.got, r.Header.Get("traceparent"))
		tr.mu.Unlock()
	}))
	t.Cleanup(tr.srv.Close)
	return tr
}

func (tr *traceRecorder) headers() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.got...)
}

// requireOneTrace checks that every header carries the submitter's trace
// id and sampling flag. With tracing on (spans), each call also has a span
// id of its own: its branch span's; with tracing off (the default no-op
// tracer provider) the submitter's context passes through unchanged.
func requireOneTrace(t *testing.T, headers []string, spans bool) {
	t.Helper()
	parent := parseTP(t, submitterTP)
	seen := map[trace.SpanID]bool{parent.SpanID(): true}
	for _, h := range headers {
		sc := parseTP(t, h)
		require.Equal(t, parent.TraceID(), sc.TraceID(), "same trace")
		require.Equal(t, parent.IsSampled(), sc.IsSampled(), "sampling decision kept")
		if !spans {
			require.Equal(t, parent.SpanID(), sc.SpanID(), "no spans: the submitter's context passes through")
			continue
		}
		require.False(t, seen[sc.SpanID()], "each call has a span id of its own")
		seen[sc.SpanID()] = true
	}
}

// parseTP reads a traceparent with OpenTelemetry's W3C propagator.
func parseTP(t *testing.T, h string) trace.SpanContext {
	t.Helper()
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": h})
	sc := trace.SpanContextFromContext(ctx)
	require.True(t, sc.IsValid(), "traceparent %q", h)
	return sc
}

func TestTraceParent_PropagatedToEveryCall(t *testing.T) {
	for _, traced := range []bool{false, true} {
		t.Run(map[bool]string{false: "tracing off", true: "tracing on"}[traced], func(t *testing.T) {
			tr := newTraceRecorder(t)
			st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
			defer st.Close()
			cfg := coordinator.Config{}
			exp := tracetest.NewInMemoryExporter()
			if traced {
				tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
				t.Cleanup(func() { tp.Shutdown(context.Background()) })
				cfg.TracerProvider = tp
			}
			c := newCoordinator(t, st, cfg)

			spec := saga.Spec{GID: "traced", TraceParent: submitterTP, Steps: []saga.Step{
				{Name: "a", Action: tr.srv.URL + "/a", Compensate: tr.srv.URL + "/a-undo"},
				{Name: "b", Action: tr.srv.URL + "/b", Compensate: tr.srv.URL + "/b-undo"},
			}}
			d := submitWait(t, c, spec)
			require.Equal(t, dtx.StatusSucceeded, d.Status)
			hs := tr.headers()
			require.Len(t, hs, 2)
			requireOneTrace(t, hs, traced)

			// Without a trace context, calls carry none when tracing is
			// off, and a trace of the transaction's own when it is on.
			spec.GID, spec.TraceParent = "untraced", ""
			require.Equal(t, dtx.StatusSucceeded, submitWait(t, c, spec).Status)
			hs = tr.headers()[2:]
			if !traced {
				require.Equal(t, []string{"", ""}, hs)
				return
			}
			require.Len(t, hs, 2)
			a, b := parseTP(t, hs[0]), parseTP(t, hs[1])
			require.Equal(t, a.TraceID(), b.TraceID(), "one new trace for the transaction")
			require.NotEqual(t, parseTP(t, submitterTP).TraceID(), a.TraceID())
		})
	}
}

func TestTraceParent_KeptAcrossRecovery(t *testing.T) {
	tr := newTraceRecorder(t)
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	// A transaction recorded by a coordinator that died: its lease has
	// expired.
	spec := saga.Spec{GID: "orphan", TraceParent: submitterTP, Steps: []saga.Step{
		{Name: "a", Action: tr.srv.URL + "/a", Compensate: tr.srv.URL + "/a-undo"},
		{Name: "b", Action: tr.srv.URL + "/b", Compensate: tr.srv.URL + "/b-undo"},
	}}
	require.NoError(t, spec.Normalize())
	raw, err := json.Marshal(&spec)
	require.NoError(t, err)
	past := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	require.NoError(t, st.Create(context.Background(), &dtx.Tx{
		GID: spec.GID, Pattern: dtx.PatternSaga, Status: dtx.StatusRunning, Spec: raw, Digest: spec.Digest(),
		CreatedAt: past, UpdatedAt: past, Deadline: past.Add(time.Hour), LeaseOwner: "dead", LeaseUntil: past.Add(time.Second),
	}, saga.InitialBranches(spec.GID, &spec)))

	obs := &recorder{}
	c := newCoordinator(t, st, coordinator.Config{Observer: obs})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := c.Wait(ctx, "orphan")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	hs := tr.headers()
	require.Len(t, hs, 2)
	requireOneTrace(t, hs, false)
	require.GreaterOrEqual(t, obs.claimedTotal(), 1, "recovery reports its claims")
}

// recorder is an Observer that keeps every event.
type recorder struct {
	mu       sync.Mutex
	started  []dtx.Pattern
	finished []string
	calls    []string
	retries  []string
	alerts   []coordinator.Alert
	claimed  int
	renewErr int
}

func (r *recorder) TxStarted(p dtx.Pattern) {
	r.mu.Lock()
	r.started = append(r.started, p)
	r.mu.Unlock()
}
func (r *recorder) TxFinished(p dtx.Pattern, s dtx.Status) {
	r.mu.Lock()
	r.finished = append(r.finished, string(p)+":"+string(s))
	r.mu.Unlock()
}
func (r *recorder) BranchCall(role, wire dtx.Op, class dtx.Class, took time.Duration) {
	r.mu.Lock()
	r.calls = append(r.calls, string(role)+"/"+string(wire)+":"+class.String())
	r.mu.Unlock()
}
func (r *recorder) BranchRetry(role, wire dtx.Op) {
	r.mu.Lock()
	r.retries = append(r.retries, string(role)+"/"+string(wire))
	r.mu.Unlock()
}
func (r *recorder) Alert(a coordinator.Alert) {
	r.mu.Lock()
	r.alerts = append(r.alerts, a)
	r.mu.Unlock()
}
func (r *recorder) Claimed(n int)      { r.mu.Lock(); r.claimed += n; r.mu.Unlock() }
func (r *recorder) RenewFailed()       { r.mu.Lock(); r.renewErr++; r.mu.Unlock() }
func (r *recorder) claimedTotal() int  { r.mu.Lock(); defer r.mu.Unlock(); return r.claimed }
func (r *recorder) renewFailures() int { r.mu.Lock(); defer r.mu.Unlock(); return r.renewErr }

func TestObserver_SeesEveryEvent(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		switch {
		case path == "/b":
			return http.StatusConflict
		case path == "/a-undo" && n <= 2:
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	obs := &recorder{}
	c := newCoordinator(t, st, coordinator.Config{Observer: obs, AlertAfter: 2})
	d := submitWait(t, c, twoSteps(p, "observed"))
	require.Equal(t, dtx.StatusFailed, d.Status)
	// Resubmitting is not a new transaction.
	_, created, err := c.Submit(context.Background(), twoSteps(p, "observed"))
	require.NoError(t, err)
	require.False(t, created)

	obs.mu.Lock()
	defer obs.mu.Unlock()
	require.Equal(t, []dtx.Pattern{dtx.PatternSaga}, obs.started)
	require.Equal(t, []string{"saga:failed"}, obs.finished)
	require.Equal(t, []string{
		"action/action:success", "action/action:failure",
		"compensate/compensate:success", // b-undo: a null compensation
		"compensate/compensate:unknown", "compensate/compensate:unknown", "compensate/compensate:success",
	}, obs.calls)
	require.Equal(t, []string{"compensate/compensate", "compensate/compensate"}, obs.retries)
	require.Len(t, obs.alerts, 1)
	require.Equal(t, "a", obs.alerts[0].Name)
	require.Equal(t, 2, obs.alerts[0].Attempts)
}

func TestObserver_RenewFailures(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	obs := &recorder{}
	newCoordinator(t, st, coordinator.Config{Observer: obs, LeaseTTL: 150 * time.Millisecond})
	require.Zero(t, obs.renewFailures())
	st.Close() // every renewal fails from now on
	require.Eventually(t, func() bool { return obs.renewFailures() >= 2 }, 5*time.Second, 10*time.Millisecond)
}

func TestRetryNow(t *testing.T) {
	p := newParticipant(t, func(path string, n int) int {
		if path == "/b" && n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	// A backoff of an hour: only "retry now" finishes the saga in time.
	c := newCoordinator(t, st, coordinator.Config{RetryBase: time.Hour, RetryMax: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := c.Submit(ctx, twoSteps(p, "slow"))
	require.NoError(t, err)

	// Nothing waits until the first call of b has failed.
	require.Eventually(t, func() bool {
		n, err := c.RetryNow(ctx, "slow")
		require.NoError(t, err)
		return n == 1
	}, 5*time.Second, 5*time.Millisecond)
	d, err := c.Wait(ctx, "slow")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	require.Equal(t, 2, p.count("/b"))

	_, err = c.RetryNow(ctx, "slow")
	require.ErrorIs(t, err, dtx.ErrFinished)
	_, err = c.RetryNow(ctx, "nope")
	require.ErrorIs(t, err, dtx.ErrNotFound)
}

func TestRetryNow_NotDrivenHere(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	spec := saga.Spec{GID: "elsewhere", Steps: []saga.Step{{Action: "http://127.0.0.1:1/a", Compensate: "http://127.0.0.1:1/b"}}}
	require.NoError(t, spec.Normalize())
	raw, _ := json.Marshal(&spec)
	now := time.Now().Truncate(time.Millisecond)
	// Leased by another coordinator for an hour.
	require.NoError(t, st.Create(context.Background(), &dtx.Tx{
		GID: spec.GID, Pattern: dtx.PatternSaga, Status: dtx.StatusRunning, Spec: raw, Digest: spec.Digest(),
		CreatedAt: now, UpdatedAt: now, Deadline: now.Add(time.Hour), LeaseOwner: "other", LeaseUntil: now.Add(time.Hour),
	}, saga.InitialBranches(spec.GID, &spec)))
	c := newCoordinator(t, st, coordinator.Config{})
	_, err := c.RetryNow(context.Background(), "elsewhere")
	require.ErrorIs(t, err, coordinator.ErrNotDrivenHere)
}
