package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/metrics"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/tcc"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// benchResult is the JSON form of one benchmark run.
type benchResult struct {
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
}

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dtx bench", flag.ContinueOnError)
	pattern := fs.String("pattern", "saga", "saga (2 steps), tcc (2 participants: 2 tries, then 2 confirms) xa (2 real XA branches on a throwaway PostgreSQL: 2 prepares in order, then 2 commits) or events (outbox -> broker -> inbox)")
	storeDSN := fs.String("store", "sqlite", "sqlite (a fresh file in a temp dir), sqlite://path, postgres://…, or postgres-temp (a throwaway local server)")
	clients := fs.Int("clients", 8, "closed-loop clients, each submitting a saga and waiting for its outcome")
	duration := fs.Duration("duration", 10*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured warm-up")
	asJSON := fs.Bool("json", false, "print one JSON object")
	writers := fs.Int("store-writers", 0, "group-commit writers of the store (0: the store's default)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measured period to this file")
	brokerSpec := fs.String("broker", "embedded", "events pattern: embedded (NATS in process), nats://host:port or kafka://host:port")
	withMetrics := fs.Bool("metrics", true, "record Prometheus metrics as dtx server does (false: measure without them)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *pattern != "saga" && *pattern != "tcc" && *pattern != "xa" && *pattern != "events" {
		return usagef("pattern %q: want saga, tcc, xa or events", *pattern)
	}
	if *clients < 1 || *duration <= 0 || *warmup < 0 {
		return usagef("need clients >= 1, duration > 0, warmup >= 0")
	}
	if *pattern == "events" {
		return benchEvents(ctx, *storeDSN, *brokerSpec, *clients, *duration, *warmup, *asJSON)
	}
	dsn, label, cleanup, err := benchStore(ctx, *storeDSN)
	if err != nil {
		return err
	}
	defer cleanup()
	st, err := openStoreWith(ctx, dsn, sqlstore.Config{Writers: *writers})
	if err != nil {
		return err
	}
	defer st.Close()

	// No-op participants: the measurement is the coordinator's own cost.
	noop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	})
	// XA: real branches, prepared and committed in PostgreSQL.
	partURL, stopPart, err := "", func() {}, error(nil)
	participants := "no-op participants"
	if *pattern == "xa" {
		partURL, stopPart, err = xaBenchParticipants(ctx, *clients)
		participants = "2 XA branches on a throwaway PostgreSQL"
	} else {
		partURL, stopPart, err = serveLoopback(noop)
	}
	if err != nil {
		return err
	}
	defer stopPart()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := coordinator.Config{Logger: quiet}
	var mx *metrics.Metrics
	if *withMetrics {
		mx = metrics.New()
		cfg.Observer = mx
	}
	c, err := coordinator.New(st, httptransport.New(nil), cfg)
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	defer c.Close(context.Background())
	var opts []server.Option
	if mx != nil {
		mx.Watch(c)
		opts = append(opts, server.WithMetrics(mx.Handler()))
	}
	apiURL, stopAPI, err := serveLoopback(server.New(c, opts...))
	if err != nil {
		return err
	}
	defer stopAPI()

	hc := &http.Client{Transport: httptransport.NewRoundTripper()}
	var measuring atomic.Bool
	var count, errs atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for w := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			defer func() { mu.Lock(); lat = append(lat, local...); mu.Unlock() }()
			for i := 0; runCtx.Err() == nil; i++ {
				gid := fmt.Sprintf("bench-%d-%d-%d", time.Now().UnixNano(), w, i)
				var body []byte
				path := "/v1/sagas"
				if *pattern == "tcc" || *pattern == "xa" {
					path = "/v1/" + *pattern
					payload := json.RawMessage(fmt.Sprintf(`{"row":%d}`, w))
					body, _ = json.Marshal(tcc.Spec{GID: gid, Participants: []tcc.Participant{
						{Name: "a", Try: partURL + "/a", Confirm: partURL + "/a-confirm", Cancel: partURL + "/a-cancel", Payload: payload},
						{Name: "b", Try: partURL + "/b", Confirm: partURL + "/b-confirm", Cancel: partURL + "/b-cancel", Payload: payload},
					}})
				} else {
					body, _ = json.Marshal(saga.Spec{GID: gid, Steps: []saga.Step{
						{Name: "a", Action: partURL + "/a", Compensate: partURL + "/a-undo", Payload: json.RawMessage(`{"amount":1}`)},
						{Name: "b", Action: partURL + "/b", Compensate: partURL + "/b-undo", Payload: json.RawMessage(`{"amount":1}`)},
					}})
				}
				t0 := time.Now()
				ok := submitAndWait(runCtx, hc, apiURL+path, body)
				took := time.Since(t0)
				if !measuring.Load() || runCtx.Err() != nil {
					continue
				}
				if ok {
					count.Add(1)
					local = append(local, took)
				} else {
					errs.Add(1)
				}
			}
		}()
	}
	if !*asJSON {
		fmt.Fprintf(os.Stderr, "bench: %s, %s, store %s, %d clients: warm-up %v, measuring %v…\n", *pattern, participants, label, *clients, *warmup, *duration)
	}
	sleepCtx(ctx, *warmup)
	measuring.Store(true)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
	}
	start := time.Now()
	sleepCtx(ctx, *duration)
	measuring.Store(false)
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	// The physical limit, in the same run: single-row commits on the same
	// database (PostgreSQL) or disk (SQLite).
	raw, err := rawCommitRate(ctx, dsn, *clients, min(*duration, 3*time.Second))
	if err != nil {
		return err
	}

	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return percentileMs(lat, p) }
	res := benchResult{
		Pattern: *pattern, Store: label, Clients: *clients, Seconds: elapsed.Seconds(), Sagas: count.Load(), Errors: errs.Load(),
		PerSec: float64(count.Load()) / elapsed.Seconds(),
		P50ms:  pct(0.50), P90ms: pct(0.90), P99ms: pct(0.99), P999ms: pct(0.999), MaxMs: pct(1),
		Steps: 2, Warmup_s: warmup.Seconds(), RawCommits: raw,
	}
	if raw > 0 {
		res.OfRaw = res.PerSec / raw
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("pattern      %s\nstore        %s\nclients      %d\nsagas        %d in %.1fs (%d errors)\nthroughput   %.0f sagas/s\nlatency ms   p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
		res.Pattern, res.Store, res.Clients, res.Sagas, res.Seconds, res.Errors, res.PerSec, res.P50ms, res.P90ms, res.P99ms, res.P999ms, res.MaxMs)
	if raw > 0 {
		fmt.Printf("raw commits  %.0f single-row commits/s with %d clients on the same store (the physical limit)\nratio        %.2f transactions per raw commit\n", raw, res.Clients, res.OfRaw)
	}
	return nil
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

// serveLoopback serves h on a free loopback port.
func serveLoopback(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// benchStore resolves the bench's --store value to a DSN.
func benchStore(ctx context.Context, v string) (dsn, label string, cleanup func(), err error) {
	switch v {
	case "sqlite":
		dir, err := os.MkdirTemp("", "dtx-bench-")
		if err != nil {
			return "", "", nil, err
		}
		return filepath.Join(dir, "coordinator.db"), "sqlite (" + dir + ")", func() { os.RemoveAll(dir) }, nil
	case "postgres-temp":
		dsns, label, cleanup, err := startTempPostgres(ctx, "dtx")
		if err != nil {
			return "", "", nil, err
		}
		return dsns[0], label, cleanup, nil
	}
	return v, describeStore(v), func() {}, nil
}

// percentileMs is the p-quantile (0..1) of sorted latencies, in
// milliseconds; 0 for none.
func percentileMs(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(p*float64(len(sorted)-1))].Microseconds()) / 1000
}
