// Package bench measures dtx on this machine: the coordinator's cost per
// saga, TCC or XA transaction against no-op (or real XA) participants
// (Run), the choreographed event path outbox -> broker -> inbox
// (RunEvents), and, as the physical limit, the store's raw single-row
// commit rate in the same run. It is the engine of `dtx bench`.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/internal/loopback"
	"github.com/dtxhq/dtx/internal/open"
	"github.com/dtxhq/dtx/internal/pgserver"
	"github.com/dtxhq/dtx/metrics"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/tcc"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// Config configures a run of Run or RunEvents.
type Config struct {
	// Pattern is saga (2 steps), tcc (2 participants), xa (2 real XA
	// branches on a throwaway PostgreSQL) or events (RunEvents).
	Pattern string
	// Store is sqlite (a fresh file in a temp dir), sqlite://path,
	// postgres://…, mysql://… or postgres-temp (a throwaway local server);
	// RunEvents takes sqlite or postgres-temp.
	Store string
	// Clients is the number of closed-loop clients.
	Clients int
	// Duration is measured, after an unmeasured Warmup.
	Duration, Warmup time.Duration
	// Writers are the store's group-commit writers (0: its default).
	Writers int
	// CPUProfile, if set, is a file for a CPU profile of the measured period.
	CPUProfile string
	// Broker is RunEvents' broker: embedded, nats://… or kafka://….
	Broker string
	// Metrics records Prometheus metrics as dtx server does.
	Metrics bool
	// Log, if not nil, receives a line about what is measured.
	Log io.Writer
	// Idle, for RunEvents, is how long the pipeline stays running without
	// events after the measurement, while the process's CPU is measured
	// (0: not measured): the cost of polling and waiting.
	Idle time.Duration
	// EventsPerTx, for RunEvents, is how many events each producer
	// transaction writes (0 or 1: one), each under its own key: a business
	// transaction that emits several events, which shows the pipeline's
	// own throughput where the producer's commit rate is the limit.
	EventsPerTx int
	// Partitions, for RunEvents, is the partition count of the stream or
	// topic the broker creates (0: the adapter's default, NATS 16, Kafka 8):
	// each partition delivers one message at a time, in order.
	Partitions int
}

// Result is the JSON form of one benchmark run; its fields are a contract
// for scripts.
type Result struct {
	Pattern string  `json:"pattern"`
	Store   string  `json:"store"`
	Clients int     `json:"clients"`
	Seconds float64 `json:"elapsed_s"`
	Sagas   int64   `json:"sagas"`
	Errors  int64   `json:"errors"`
	PerSec  float64 `json:"sagas_per_s"`
	P50ms   float64 `json:"p50_ms"`
	P90ms   float64 `json:"p90_ms"`
	P99ms   float64 `json:"p99_ms"`
	P999ms  float64 `json:"p999_ms"`
	MaxMs   float64 `json:"max_ms"`
	// RawCommits is the store's single-row commit rate with as many
	// clients, measured in the same run on the same database or disk;
	// OfRaw is PerSec / RawCommits (group commit can push it above 1).
	RawCommits float64 `json:"raw_commits_per_s,omitempty"`
	OfRaw      float64 `json:"ratio_to_raw_commits,omitempty"`
	Steps      int     `json:"steps"`
	Warmup_s   float64 `json:"warmup_s"`
	// InProcessCPUPerTx is the CPU milliseconds per transaction of the
	// whole bench process over the measured period: coordinator, store
	// client, participants and load clients all run in it, so it is an
	// upper bound of the coordinator's own cost. InProcessCPUCores is that
	// CPU time over the wall time.
	InProcessCPUPerTx float64 `json:"inprocess_cpu_ms_per_tx"`
	InProcessCPUCores float64 `json:"inprocess_cpu_cores"`
	// HostCPUBusy is the busy share (0..1) of the whole host's CPU over the
	// measured period (/proc/stat, every process counted), -1 if unknown.
	HostCPUBusy float64 `json:"host_cpu_busy_share"`
	// RawXA, for xa, is the participants' two-branch XA rate with as many
	// clients, measured in the same run on the same two databases without
	// the coordinator: each client prepares a branch on each (BEGIN,
	// UPDATE its row, PREPARE TRANSACTION), then commits both (COMMIT
	// PREPARED). OfRawXA is PerSec / RawXA.
	RawXA   float64 `json:"raw_xa_per_s,omitempty"`
	OfRawXA float64 `json:"ratio_to_raw_xa,omitempty"`
	// RawXALib, for xa, is the same loop through the participants' own
	// library (participant/xa: Try with its barrier row and checks, then
	// Confirm) called directly, with no HTTP and no coordinator: what the
	// participants themselves allow. OfRawXALib is PerSec / RawXALib.
	RawXALib   float64 `json:"raw_xa_library_per_s,omitempty"`
	OfRawXALib float64 `json:"ratio_to_raw_xa_library,omitempty"`
}

// WriteText writes r as the table `dtx bench` prints.
func (r *Result) WriteText(w io.Writer) {
	noun := dtx.Pattern(r.Pattern).Plural()
	fmt.Fprintf(w, "pattern      %s\nstore        %s\nclients      %d\ncompleted    %d %s in %.1fs (%d errors)\nthroughput   %.0f %s/s\nlatency ms   p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
		r.Pattern, r.Store, r.Clients, r.Sagas, noun, r.Seconds, r.Errors, r.PerSec, noun, r.P50ms, r.P90ms, r.P99ms, r.P999ms, r.MaxMs)
	if r.RawCommits > 0 {
		fmt.Fprintf(w, "raw commits  %.0f single-row commits/s with %d clients on the same store (the physical limit)\nratio        %.2f transactions per raw commit\n", r.RawCommits, r.Clients, r.OfRaw)
	}
	if r.RawXA > 0 {
		fmt.Fprintf(w, "raw two-branch XA: %.0f/s with %d clients on the participants' databases, no coordinator (prepare A, prepare B, commit both)\nratio dtx/raw  %.2f\n", r.RawXA, r.Clients, r.OfRawXA)
	}
	if r.RawXALib > 0 {
		fmt.Fprintf(w, "raw XA through participant/xa: %.0f/s (Try A, Try B, Confirm both; barrier rows and checks, no HTTP), ratio dtx/raw %.2f\n", r.RawXALib, r.OfRawXALib)
	}
	writeCPU(w, noun, r.InProcessCPUPerTx, r.InProcessCPUCores, r.HostCPUBusy)
}

// writeCPU writes the CPU line of the text output.
func writeCPU(w io.Writer, noun string, perTx, cores, hostBusy float64) {
	host := "unknown"
	if hostBusy >= 0 {
		host = fmt.Sprintf("%.0f%% busy", hostBusy*100)
	}
	fmt.Fprintf(w, "cpu          %.3f ms per %s in process (%.2f cores; coordinator, participants and clients together), host %s\n", perTx, singular(noun), cores, host)
}

// singular turns "sagas", "events" into "saga", "event".
func singular(noun string) string {
	if len(noun) > 1 && noun[len(noun)-1] == 's' {
		return noun[:len(noun)-1]
	}
	return noun
}

// Run measures cfg.Pattern (saga, tcc or xa) transactions through an
// in-process coordinator and its HTTP API: each client submits one and
// waits for its outcome, then the next.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	dsn, label, cleanup, err := resolveStore(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	st, err := open.StoreWith(ctx, dsn, sqlstore.Config{Writers: cfg.Writers})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	partURL, participants, xb, stopPart, err := startParticipants(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer stopPart()
	apiURL, stopAPI, err := startCoordinator(ctx, st, cfg.Metrics)
	if err != nil {
		return nil, err
	}
	defer stopAPI()
	fmt.Fprintf(cfg.Log, "bench: %s, %s, store %s, %d clients: warm-up %v, measuring %v…\n", cfg.Pattern, participants, label, cfg.Clients, cfg.Warmup, cfg.Duration)
	m, err := measure(ctx, cfg, func(ctx context.Context, hc *http.Client, w, i int) bool {
		path, body := spec(cfg.Pattern, partURL, w, i)
		return submitAndWait(ctx, hc, apiURL+path, body)
	})
	if err != nil {
		return nil, err
	}
	// The physical limit, in the same run: single-row commits on the same
	// database (PostgreSQL) or disk (SQLite).
	raw, err := rawCommitRate(ctx, dsn, cfg.Clients, min(cfg.Duration, 3*time.Second))
	if err != nil {
		return nil, err
	}
	// For xa, the participants' own limit too: the same branch work on the
	// same two databases, without the coordinator.
	var rawXA, rawXALib float64
	if xb != nil {
		if rawXA, err = rawXARate(ctx, xb.dsns[0], xb.dsns[1], cfg.Clients, min(cfg.Duration, 3*time.Second)); err != nil {
			return nil, fmt.Errorf("raw XA rate: %w", err)
		}
		if rawXALib, err = rawXALibRate(ctx, xb, cfg.Clients, min(cfg.Duration, 3*time.Second)); err != nil {
			return nil, fmt.Errorf("raw XA rate through participant/xa: %w", err)
		}
	}
	pct := func(p float64) float64 { return percentileMs(m.lat, p) }
	res := &Result{
		Pattern: cfg.Pattern, Store: label, Clients: cfg.Clients, Seconds: m.elapsed.Seconds(), Sagas: m.count, Errors: m.errs,
		PerSec: float64(m.count) / m.elapsed.Seconds(),
		P50ms:  pct(0.50), P90ms: pct(0.90), P99ms: pct(0.99), P999ms: pct(0.999), MaxMs: pct(1),
		Steps: 2, Warmup_s: cfg.Warmup.Seconds(), RawCommits: raw,
		InProcessCPUPerTx: m.cpu.processMsPerTx, InProcessCPUCores: m.cpu.processCores, HostCPUBusy: m.cpu.hostBusy,
	}
	if raw > 0 {
		res.OfRaw = res.PerSec / raw
	}
	if rawXA > 0 {
		res.RawXA, res.OfRawXA = rawXA, res.PerSec/rawXA
	}
	if rawXALib > 0 {
		res.RawXALib, res.OfRawXALib = rawXALib, res.PerSec/rawXALib
	}
	return res, nil
}

// startParticipants serves the transactions' participants: no-op
// handlers, or for xa two real XA branches on a throwaway PostgreSQL (whose
// two databases and branches it returns).
func startParticipants(ctx context.Context, cfg Config) (url, label string, xb *xaBench, stop func(), err error) {
	if cfg.Pattern == "xa" {
		if xb, err = xaBenchParticipants(ctx, cfg.Clients); err != nil {
			return "", "", nil, nil, err
		}
		return xb.url, "2 XA branches on a throwaway PostgreSQL", xb, xb.stop, nil
	}
	// No-op participants: the measurement is the coordinator's own cost.
	noop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	})
	url, stop, err = loopback.Serve(noop)
	return url, "no-op participants", nil, stop, err
}

// startCoordinator runs a coordinator on st and serves its API (with
// metrics, as dtx server does, if withMetrics).
func startCoordinator(ctx context.Context, st dtx.Store, withMetrics bool) (string, func(), error) {
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := coordinator.Config{Logger: quiet}
	var mx *metrics.Metrics
	if withMetrics {
		mx = metrics.New()
		cfg.Observer = mx
	}
	c, err := coordinator.New(st, httptransport.New(nil), cfg)
	if err != nil {
		return "", nil, err
	}
	if err := c.Start(ctx); err != nil {
		return "", nil, err
	}
	var opts []server.Option
	if mx != nil {
		mx.Watch(c)
		opts = append(opts, server.WithMetrics(mx.Handler()))
	}
	apiURL, stopAPI, err := loopback.Serve(server.New(c, opts...))
	if err != nil {
		c.Close(context.Background())
		return "", nil, err
	}
	return apiURL, func() { stopAPI(); c.Close(context.Background()) }, nil
}

// spec is the API path and body of client w's i-th transaction.
func spec(pattern, partURL string, w, i int) (string, []byte) {
	gid := fmt.Sprintf("bench-%d-%d-%d", time.Now().UnixNano(), w, i)
	if pattern == "tcc" || pattern == "xa" {
		payload := json.RawMessage(fmt.Sprintf(`{"row":%d}`, w))
		body, _ := json.Marshal(tcc.Spec{GID: gid, Participants: []tcc.Participant{
			{Name: "a", Try: partURL + "/a", Confirm: partURL + "/a-confirm", Cancel: partURL + "/a-cancel", Payload: payload},
			{Name: "b", Try: partURL + "/b", Confirm: partURL + "/b-confirm", Cancel: partURL + "/b-cancel", Payload: payload},
		}})
		return "/v1/" + pattern, body
	}
	body, _ := json.Marshal(saga.Spec{GID: gid, Steps: []saga.Step{
		{Name: "a", Action: partURL + "/a", Compensate: partURL + "/a-undo", Payload: json.RawMessage(`{"amount":1}`)},
		{Name: "b", Action: partURL + "/b", Compensate: partURL + "/b-undo", Payload: json.RawMessage(`{"amount":1}`)},
	}})
	return "/v1/sagas", body
}

// measured is what the clients did in the measured period.
type measured struct {
	count, errs int64
	lat         []time.Duration // sorted
	elapsed     time.Duration
	cpu         cpuUse
}

// measure runs cfg.Clients closed-loop clients calling one until the end,
// and counts the calls that end within the measured period (after the
// warm-up), with a CPU profile of that period if asked.
func measure(ctx context.Context, cfg Config, one func(ctx context.Context, hc *http.Client, w, i int) bool) (*measured, error) {
	hc := &http.Client{Transport: httptransport.NewRoundTripper()}
	loop := startClosedLoop(ctx, cfg.Clients, func(ctx context.Context, w, i int) bool { return one(ctx, hc, w, i) })
	defer loop.stop()
	sleepCtx(ctx, cfg.Warmup)
	loop.measuring.Store(true)
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
	}
	start, cpu0 := time.Now(), sampleCPU()
	sleepCtx(ctx, cfg.Duration)
	loop.measuring.Store(false)
	cpu1, elapsed := sampleCPU(), time.Since(start)
	if cfg.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	lat := loop.stop()
	count := loop.count.Load()
	return &measured{count: count, errs: loop.errs.Load(), lat: lat, elapsed: elapsed, cpu: cpuBetween(cpu0, cpu1, elapsed, count)}, nil
}

func submitAndWait(ctx context.Context, hc *http.Client, apiURL string, body []byte) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"?wait=true", bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var d dtx.TxDetail
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&d) != nil {
		return false
	}
	return d.Status == dtx.StatusSucceeded
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// resolveStore resolves Config.Store to a DSN.
func resolveStore(ctx context.Context, v string) (dsn, label string, cleanup func(), err error) {
	switch v {
	case "sqlite":
		dir, err := os.MkdirTemp("", "dtx-bench-")
		if err != nil {
			return "", "", nil, err
		}
		return filepath.Join(dir, "coordinator.db"), "sqlite (" + dir + ")", func() { os.RemoveAll(dir) }, nil
	case "postgres-temp":
		t, err := pgserver.StartTemp(ctx, "dtx")
		if err != nil {
			return "", "", nil, err
		}
		return t.DSNs[0], t.Label, t.Close, nil
	}
	return v, open.DescribeStore(v), func() {}, nil
}

// percentileMs is the p-quantile (0..1) of sorted latencies, in
// milliseconds; 0 for none.
func percentileMs(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(p*float64(len(sorted)-1))].Microseconds()) / 1000
}
