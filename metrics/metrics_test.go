package metrics_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/metrics"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/tcc"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// scrape fetches url and returns its samples by series ("name{labels}").
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		require.Positive(t, i, "sample line %q", line)
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, "sample line %q", line)
		out[line[:i]] = v
	}
	require.NoError(t, sc.Err())
	return out
}

type env struct {
	st      dtx.Store
	c       *coordinator.Coordinator
	api     *httptest.Server
	part    *httptest.Server
	release chan struct{}
}

// newEnv runs a coordinator with metrics and its API. The participant
// answers 409 on /fail, 502 on the first call of /flaky-undo, blocks /hang
// until release is closed, and answers 200 otherwise.
func newEnv(t *testing.T) *env {
	e := &env{release: make(chan struct{})}
	flaky := 0
	e.part = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/fail":
			w.WriteHeader(http.StatusConflict)
		case "/flaky-undo":
			if flaky++; flaky == 1 {
				w.WriteHeader(http.StatusBadGateway)
			}
		case "/hang":
			<-e.release
		}
	}))
	t.Cleanup(e.part.Close)
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "dtx.db"), sqlstore.Config{})
	require.NoError(t, err)
	e.st = st
	t.Cleanup(func() { st.Close() })
	m := metrics.New()
	c, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{
		// No recovery passes after the first: the backlog stays put.
		RecoverInterval: time.Hour, AlertAfter: 1,
		RetryBase: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond, Observer: m,
	})
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() {
		select {
		case <-e.release:
		default:
			close(e.release)
		}
		c.Close(context.Background())
	})
	m.Watch(c)
	e.c = c
	e.api = httptest.NewServer(server.New(c, server.WithMetrics(m.Handler())))
	t.Cleanup(e.api.Close)
	return e
}

func (e *env) run(t *testing.T, spec saga.Spec, pattern dtx.Pattern) dtx.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, _, err := e.c.SubmitPattern(ctx, pattern, spec)
	require.NoError(t, err)
	final, err := e.c.Wait(ctx, d.GID)
	require.NoError(t, err)
	return final.Status
}

func TestMetrics_EndToEnd(t *testing.T) {
	e := newEnv(t)
	u := e.part.URL
	before := scrape(t, e.api.URL+"/metrics")
	// Series exist from the start, at zero, so rate() works at once.
	for _, s := range []string{
		`dtx_transactions_started_total{pattern="saga"}`,
		`dtx_transactions_started_total{pattern="xa"}`,
		`dtx_transactions_finished_total{pattern="tcc",status="failed"}`,
		`dtx_branch_retries_total{op="cancel"}`,
		`dtx_alerts_total{op="compensate"}`,
		`dtx_branch_call_duration_seconds_count{op="confirm",outcome="unknown"}`,
		`dtx_recovery_claimed_total`,
		`dtx_lease_renew_failures_total`,
		`dtx_recovery_backlog`,
		`dtx_transactions_driven`,
		`dtx_transactions_inflight{status="running"}`,
	} {
		v, ok := before[s]
		require.True(t, ok, "series %s missing", s)
		require.Zero(t, v, s)
	}
	require.Contains(t, before, "go_goroutines", "runtime collector")

	require.Equal(t, dtx.StatusSucceeded, e.run(t, saga.Spec{GID: "ok", Steps: []saga.Step{
		{Action: u + "/a", Compensate: u + "/a-undo"}, {Action: u + "/b", Compensate: u + "/b-undo"},
	}}, dtx.PatternSaga))
	// b fails definitely; a's compensation fails once (a retry and, with
	// AlertAfter 1, an alert), then succeeds.
	require.Equal(t, dtx.StatusFailed, e.run(t, saga.Spec{GID: "ko", Steps: []saga.Step{
		{Action: u + "/a", Compensate: u + "/flaky-undo"}, {Action: u + "/fail", Compensate: u + "/b-undo"},
	}}, dtx.PatternSaga))
	tspec := tcc.Spec{GID: "t", Participants: []tcc.Participant{
		{Name: "x", Try: u + "/x", Confirm: u + "/x-ok", Cancel: u + "/x-no"},
		{Name: "y", Try: u + "/y", Confirm: u + "/y-ok", Cancel: u + "/y-no"},
	}}
	sg, err := tspec.Saga()
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, e.run(t, sg, dtx.PatternTCC))
	// A step naming its own operation counts under its role.
	require.Equal(t, dtx.StatusSucceeded, e.run(t, saga.Spec{GID: "named", Steps: []saga.Step{
		{Action: u + "/a", Compensate: u + "/a-undo", ActionOp: "reserve"},
	}}, dtx.PatternSaga))

	// One in flight, and one orphan waiting for recovery.
	_, _, err = e.c.Submit(context.Background(), saga.Spec{GID: "hanging", Steps: []saga.Step{{Action: u + "/hang", Compensate: u + "/a-undo"}}})
	require.NoError(t, err)
	orphan := saga.Spec{GID: "orphan", Steps: []saga.Step{{Action: u + "/a", Compensate: u + "/a-undo"}}}
	require.NoError(t, orphan.Normalize())
	raw, _ := json.Marshal(&orphan)
	past := time.Now().Add(-time.Minute)
	require.NoError(t, e.st.Create(context.Background(), &dtx.Tx{GID: "orphan", Pattern: dtx.PatternSaga, Status: dtx.StatusRunning,
		Spec: raw, Digest: orphan.Digest(), CreatedAt: past, UpdatedAt: past, LeaseOwner: "dead", LeaseUntil: past},
		saga.InitialBranches("orphan", &orphan)))

	after := scrape(t, e.api.URL+"/metrics")
	for series, want := range map[string]float64{
		`dtx_transactions_started_total{pattern="saga"}`:                            4,
		`dtx_transactions_started_total{pattern="tcc"}`:                             1,
		`dtx_transactions_finished_total{pattern="saga",status="succeeded"}`:        2,
		`dtx_transactions_finished_total{pattern="saga",status="failed"}`:           1,
		`dtx_transactions_finished_total{pattern="tcc",status="succeeded"}`:         1,
		`dtx_branch_call_duration_seconds_count{op="action",outcome="success"}`:     4, // ok: 2, ko: 1, named: 1
		`dtx_branch_call_duration_seconds_count{op="action",outcome="failure"}`:     1,
		`dtx_branch_call_duration_seconds_count{op="compensate",outcome="unknown"}`: 1,
		`dtx_branch_call_duration_seconds_count{op="compensate",outcome="success"}`: 2,
		`dtx_branch_call_duration_seconds_count{op="try",outcome="success"}`:        2,
		`dtx_branch_call_duration_seconds_count{op="confirm",outcome="success"}`:    2,
		`dtx_branch_retries_total{op="compensate"}`:                                 1,
		`dtx_alerts_total{op="compensate"}`:                                         1,
		`dtx_transactions_inflight{status="running"}`:                               2,
		`dtx_transactions_inflight{status="compensating"}`:                          0,
		`dtx_transactions_driven`:                                                   1,
		`dtx_recovery_backlog`:                                                      1,
	} {
		require.Equal(t, want, after[series], series)
	}
	require.Positive(t, after[`dtx_branch_call_duration_seconds_sum{op="action",outcome="success"}`])
	require.Equal(t, after[`dtx_branch_call_duration_seconds_count{op="action",outcome="success"}`],
		after[`dtx_branch_call_duration_seconds_bucket{op="action",outcome="success",le="+Inf"}`])

	// A store that fails drops the store gauges, not the scrape.
	e.st.Close()
	broken := scrape(t, e.api.URL+"/metrics")
	require.Equal(t, 4.0, broken[`dtx_transactions_started_total{pattern="saga"}`])
	require.NotContains(t, broken, `dtx_recovery_backlog`)
	require.Contains(t, broken, `dtx_transactions_driven`)
}

func TestMetrics_NotServedWithoutOption(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "dtx.db"), sqlstore.Config{})
	require.NoError(t, err)
	defer st.Close()
	c, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{})
	require.NoError(t, err)
	api := httptest.NewServer(server.New(c))
	defer api.Close()
	resp, err := http.Get(api.URL + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

// BenchmarkObserve measures the cost the coordinator pays per event.
func BenchmarkObserve(b *testing.B) {
	m := metrics.New()
	b.ReportAllocs()
	for b.Loop() {
		m.BranchCall(dtx.OpAction, dtx.OpTry, dtx.Success, 3*time.Millisecond)
		m.TxStarted(dtx.PatternSaga)
		m.TxFinished(dtx.PatternSaga, dtx.StatusSucceeded)
	}
}
