package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dtxhq/dtx/internal/loopback"
	"github.com/dtxhq/dtx/internal/open"
	"github.com/dtxhq/dtx/internal/pgserver"
)

// CompareConfig configures Compare.
type CompareConfig struct {
	// Exes are the dtx binaries run as `dtx server`, each in a process of
	// its own on a database of its own: with more than one (an older build
	// and this one), each measurement runs them in turn, side by side, so
	// that they share the machine's moments of load.
	Exes []string
	// Stores are the coordinator's stores, each measured in turn: sqlite
	// (a fresh file), postgres-temp (a throwaway local server) or a DSN.
	Stores []string
	// Pattern is saga (2 steps) or tcc (2 participants).
	Pattern string
	// Clients are the closed-loop client counts measured in each round.
	Clients []int
	// Rounds is how many times each client count is measured; the rounds
	// alternate the order of the client counts, and the figures printed are
	// medians over rounds.
	Rounds int
	// Duration is each measurement, after an unmeasured Warmup.
	Duration, Warmup time.Duration
	// ServerCPUProfile, if set, is where each server writes a CPU profile
	// of its whole run (dtx server --cpuprofile), the store's name appended
	// ("cpu.prof.sqlite").
	ServerCPUProfile string
	// FloorExe, if set, is a dtx binary run as a floor server
	// (FloorCommand, see FloorHandler) next to the servers of each store:
	// it is measured in the same rounds, in turn with them, by the same
	// clients against the same participants, and gets rows of its own
	// (Floor set).
	FloorExe string
	// Log, if not nil, receives a line per measurement.
	Log io.Writer
}

// CompareRow is one store and client count: medians over the rounds.
type CompareRow struct {
	// Server names the binary (its file name; Exes with one entry: "dtx").
	Server  string `json:"server"`
	Store   string `json:"store"`
	Clients int    `json:"clients"`
	Rounds  int    `json:"rounds"`
	// Completed and Errors are summed over the rounds.
	Completed int64   `json:"completed"`
	Errors    int64   `json:"errors"`
	PerSec    float64 `json:"per_s"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	// CoordCPUPerTx is the CPU milliseconds the `dtx server` process used
	// per completed transaction (its /proc/<pid>/stat user + system time).
	CoordCPUPerTx float64 `json:"coordinator_cpu_ms_per_tx"`
	// HostCPUBusy is the busy share (0..1) of the whole host's CPU.
	HostCPUBusy float64 `json:"host_cpu_busy_share"`
	// CoordCPUSeconds is the server's CPU time summed over the rounds.
	CoordCPUSeconds float64 `json:"coordinator_cpu_s"`
	// Floor marks the row of the floor server (Server is FloorName): the
	// least a coordinator on net/http does per transaction, no store.
	Floor bool `json:"floor"`
	// CPUOverFloor, on a server's row when the floor was measured, is its
	// CoordCPUPerTx over the floor's at the same store and client count.
	CPUOverFloor float64 `json:"cpu_ratio_to_floor,omitempty"`
}

// CompareResult is the JSON form of a Compare run; its fields are a
// contract for scripts.
type CompareResult struct {
	Pattern   string       `json:"pattern"`
	Rounds    int          `json:"rounds"`
	DurationS float64      `json:"duration_s"`
	WarmupS   float64      `json:"warmup_s"`
	Rows      []CompareRow `json:"rows"`
}

// WriteText writes r as the table `dtx bench --compare` prints.
func (r *CompareResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%s against a separate dtx server process, no-op HTTP participants, wait=true; medians of %d rounds of %.0fs\n",
		r.Pattern, r.Rounds, r.DurationS)
	floor := false
	for _, row := range r.Rows {
		floor = floor || row.Floor
	}
	fmt.Fprintf(w, "%-17s %-16s %7s %10s %8s %8s %14s %9s %7s", "server", "store", "clients", "per_s", "p50_ms", "p99_ms", "coord_cpu_ms/tx", "host_busy", "errors")
	if floor {
		fmt.Fprintf(w, " %8s", "x_floor")
	}
	fmt.Fprintln(w)
	for _, row := range r.Rows {
		fmt.Fprintf(w, "%-17s %-16s %7d %10.0f %8.2f %8.2f %14.3f %8.0f%% %7d", row.Server, row.Store, row.Clients, row.PerSec, row.P50ms, row.P99ms,
			row.CoordCPUPerTx, row.HostCPUBusy*100, row.Errors)
		switch {
		case floor && row.CPUOverFloor > 0:
			fmt.Fprintf(w, " %7.1fx", row.CPUOverFloor)
		case floor:
			fmt.Fprintf(w, " %8s", "-")
		}
		fmt.Fprintln(w)
	}
	if floor {
		fmt.Fprintf(w, "%s: the same submissions parsed and the participants called over the coordinator's HTTP transport, no store (x_floor: CPU per tx over the floor's)\n", FloorName)
	}
}

// Compare measures the loadgen workload (a 2-step saga or a 2-participant
// TCC transaction with no-op HTTP participants, submitted with wait=true
// by closed-loop clients) against a coordinator running as a separate
// `dtx server` process, whose CPU time is read from /proc. Each store gets
// a server of each binary of cfg.Exes, on a database of its own; each
// client count is measured cfg.Rounds times, the servers in turn, in
// alternating order.
func Compare(ctx context.Context, cfg CompareConfig) (*CompareResult, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	switch {
	case len(cfg.Exes) == 0:
		return nil, errors.New("compare: no dtx binary to run as the server")
	case cfg.Pattern != "saga" && cfg.Pattern != "tcc":
		return nil, fmt.Errorf("compare: pattern %q: want saga or tcc", cfg.Pattern)
	case len(cfg.Stores) == 0 || len(cfg.Clients) == 0 || cfg.Rounds < 1 || cfg.Duration <= 0:
		return nil, errors.New("compare: need stores, client counts, rounds >= 1 and a duration")
	}
	maxClients := 0
	for _, c := range cfg.Clients {
		if c < 1 {
			return nil, fmt.Errorf("compare: client count %d: want at least 1", c)
		}
		maxClients = max(maxClients, c)
	}
	partURL, stopPart, err := loopback.Serve(loadgenParticipants())
	if err != nil {
		return nil, err
	}
	defer stopPart()
	res := &CompareResult{Pattern: cfg.Pattern, Rounds: cfg.Rounds, DurationS: cfg.Duration.Seconds(), WarmupS: cfg.Warmup.Seconds()}
	for _, store := range cfg.Stores {
		rows, err := compareStore(ctx, cfg, store, partURL+"/bench", maxClients)
		if err != nil {
			return nil, err
		}
		res.Rows = append(res.Rows, rows...)
	}
	return res, nil
}

// compareStore runs a server of each binary on store and measures every
// client count cfg.Rounds times, the servers in turn.
func compareStore(ctx context.Context, cfg CompareConfig, store, partBase string, maxClients int) ([]CompareRow, error) {
	dsns, label, cleanup, err := resolveStores(ctx, store, len(cfg.Exes))
	if err != nil {
		return nil, err
	}
	defer cleanup()
	names := serverNames(cfg.Exes)
	servers := make([]*serverProcess, len(cfg.Exes))
	defer func() {
		for _, srv := range servers {
			if srv != nil {
				srv.stop()
			}
		}
	}()
	for i, exe := range cfg.Exes {
		var extra []string
		if cfg.ServerCPUProfile != "" {
			suffix := profileSuffix(label)
			if len(cfg.Exes) > 1 {
				suffix += "." + profileSuffix(names[i])
			}
			extra = append(extra, "--cpuprofile", cfg.ServerCPUProfile+"."+suffix)
		}
		if servers[i], err = startServerProcess(ctx, exe, dsns[i], extra...); err != nil {
			return nil, err
		}
	}
	floorAt := -1
	if cfg.FloorExe != "" {
		fp, err := startChildProcess(ctx, cfg.FloorExe, func(_, ready string) []string {
			return []string{FloorCommand, "--listen", "127.0.0.1:0", "--ready-file", ready}
		})
		if err != nil {
			return nil, err
		}
		floorAt = len(servers)
		servers = append(servers, fp)
		names = append(names, FloorName)
	}
	hc := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 2 * maxClients * len(servers), MaxIdleConnsPerHost: 2 * maxClients, IdleConnTimeout: 90 * time.Second,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	type key struct{ server, clients int }
	figures := make(map[key][]roundFigures)
	for r := range cfg.Rounds {
		order := append([]int(nil), cfg.Clients...)
		srvOrder := make([]int, len(servers))
		for i := range srvOrder {
			srvOrder[i] = i
		}
		if r%2 == 1 {
			slices.Reverse(order)
			slices.Reverse(srvOrder)
		}
		for _, c := range order {
			for _, si := range srvOrder {
				f, err := measureRound(ctx, cfg, hc, servers[si], partBase, c, r)
				if err != nil {
					return nil, err
				}
				fmt.Fprintf(cfg.Log, "compare: %s on %s, round %d, %d clients: %.0f/s p50 %.2f ms p99 %.2f ms, server %.3f ms CPU per tx, %d errors\n",
					names[si], label, r+1, c, f.perSec, f.p50, f.p99, f.cpuPerTx, f.errs)
				figures[key{si, c}] = append(figures[key{si, c}], f)
			}
		}
		for _, srv := range servers {
			if err := srv.exited(); err != nil {
				return nil, err
			}
		}
	}
	var rows []CompareRow
	for _, c := range cfg.Clients {
		var floorCPU float64
		if floorAt >= 0 {
			floorCPU = summarize(FloorName, label, c, figures[key{floorAt, c}]).CoordCPUPerTx
		}
		for si := range servers {
			row := summarize(names[si], label, c, figures[key{si, c}])
			row.Floor = si == floorAt
			if !row.Floor && floorCPU > 0 {
				row.CPUOverFloor = row.CoordCPUPerTx / floorCPU
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// summarize makes the row of one server, store and client count: sums
// and medians over its rounds.
func summarize(server, store string, clients int, fs []roundFigures) CompareRow {
	row := CompareRow{Server: server, Store: store, Clients: clients, Rounds: len(fs)}
	pick := func(get func(roundFigures) float64) float64 {
		v := make([]float64, len(fs))
		for i, f := range fs {
			v[i] = get(f)
		}
		return median(v)
	}
	for _, f := range fs {
		row.Completed += f.count
		row.Errors += f.errs
		row.CoordCPUSeconds += f.cpu.Seconds()
	}
	row.PerSec = pick(func(f roundFigures) float64 { return f.perSec })
	row.P50ms = pick(func(f roundFigures) float64 { return f.p50 })
	row.P99ms = pick(func(f roundFigures) float64 { return f.p99 })
	row.CoordCPUPerTx = pick(func(f roundFigures) float64 { return f.cpuPerTx })
	row.HostCPUBusy = pick(func(f roundFigures) float64 { return f.hostBusy })
	return row
}

// serverNames names each binary by its file name ("dtx" for one), with
// its position added where two share a name.
func serverNames(exes []string) []string {
	if len(exes) == 1 {
		return []string{"dtx"}
	}
	names := make([]string, len(exes))
	seen := map[string]int{}
	for _, e := range exes {
		seen[filepath.Base(e)]++
	}
	for i, e := range exes {
		names[i] = filepath.Base(e)
		if seen[names[i]] > 1 {
			names[i] = fmt.Sprintf("%s#%d", names[i], i+1)
		}
	}
	return names
}

// resolveStores resolves a compare store to n databases of one kind: n
// files in one temp dir (sqlite), n databases of one throwaway server
// (postgres-temp), or the DSN given (n must be 1).
func resolveStores(ctx context.Context, store string, n int) (dsns []string, label string, cleanup func(), err error) {
	switch store {
	case "sqlite":
		dir, err := os.MkdirTemp("", "dtx-compare-")
		if err != nil {
			return nil, "", nil, err
		}
		for i := range n {
			dsns = append(dsns, "sqlite://"+filepath.Join(dir, fmt.Sprintf("coordinator-%d.db", i)))
		}
		return dsns, "sqlite", func() { os.RemoveAll(dir) }, nil
	case "postgres-temp":
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("dtx_%d", i)
		}
		t, err := pgserver.StartTemp(ctx, names...)
		if err != nil {
			return nil, "", nil, err
		}
		return t.DSNs, "postgres-temp", t.Close, nil
	}
	if n != 1 {
		return nil, "", nil, fmt.Errorf("compare: store %s: several servers need a store each; use sqlite or postgres-temp", open.DescribeStore(store))
	}
	return []string{store}, open.DescribeStore(store), func() {}, nil
}

// roundFigures is one measurement of one client count.
type roundFigures struct {
	count, errs                          int64
	cpu                                  time.Duration
	perSec, p50, p99, cpuPerTx, hostBusy float64
}

// measureRound runs clients closed-loop clients against the server for
// the warm-up and the measured duration.
func measureRound(ctx context.Context, cfg CompareConfig, hc *http.Client, srv *serverProcess, partBase string, clients, round int) (roundFigures, error) {
	prefix := fmt.Sprintf("cmp%d-r%d-c%d", time.Now().UnixNano(), round, clients)
	loop := startClosedLoop(ctx, clients, func(ctx context.Context, w, i int) bool {
		return submitLoadgen(ctx, hc, srv.url, cfg.Pattern, fmt.Sprintf("%s-%d-%d", prefix, w, i), partBase)
	})
	defer loop.stop()
	sleepCtx(ctx, cfg.Warmup)
	cpu0, err := procCPU(srv.pid)
	if err != nil {
		return roundFigures{}, err
	}
	host0 := sampleCPU()
	loop.measuring.Store(true)
	start := time.Now()
	sleepCtx(ctx, cfg.Duration)
	loop.measuring.Store(false)
	elapsed := time.Since(start)
	cpu1, err := procCPU(srv.pid)
	if err != nil {
		return roundFigures{}, err
	}
	host := cpuBetween(host0, sampleCPU(), elapsed, 0)
	lat := loop.stop()
	if ctx.Err() != nil {
		return roundFigures{}, ctx.Err()
	}
	f := roundFigures{count: loop.count.Load(), errs: loop.errs.Load(), hostBusy: host.hostBusy,
		p50: percentileMs(lat, 0.50), p99: percentileMs(lat, 0.99)}
	f.perSec = float64(f.count) / elapsed.Seconds()
	f.cpu = cpu1 - cpu0
	if f.count > 0 {
		f.cpuPerTx = float64((cpu1 - cpu0).Microseconds()) / 1000 / float64(f.count)
	}
	return f, nil
}

// loadgenOK is what the loadgen's participants answer.
var loadgenOK = []byte(`{"dtm_result":"SUCCESS"}`)

// loadgenParticipants answers every branch call of the loadgen workload
// as the loadgen's participants do: the body read, {"dtm_result":"SUCCESS"}.
func loadgenParticipants() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/bench/", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(loadgenOK)
	})
	return mux
}

// submitLoadgen submits the loadgen's transaction gid with wait=true and
// reports whether it succeeded.
func submitLoadgen(ctx context.Context, hc *http.Client, apiURL, pattern, gid, base string) bool {
	var path, body string
	if pattern == "tcc" {
		part := func(n string) string {
			return fmt.Sprintf(`{"name":%q,"try":"%s/%sTry","confirm":"%s/%sConfirm","cancel":"%s/%sCancel","payload":{"amount":30}}`,
				n, base, n, base, n, base, n)
		}
		path = "/v1/tcc?wait=true"
		body = fmt.Sprintf(`{"gid":%q,"participants":[%s,%s]}`, gid, part("TransOut"), part("TransIn"))
	} else {
		path = "/v1/sagas?wait=true"
		body = fmt.Sprintf(`{"gid":%q,"steps":[`+
			`{"name":"out","action":"%s/TransOut","compensate":"%s/TransOutCompensate","payload":{"amount":30}},`+
			`{"name":"in","action":"%s/TransIn","compensate":"%s/TransInCompensate","payload":{"amount":30}}]}`,
			gid, base, base, base, base)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+path, strings.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode/100 != 2 {
		return false
	}
	var v struct {
		Status string `json:"status"`
	}
	return json.Unmarshal(b, &v) == nil && v.Status == "succeeded"
}

// serverProcess is a `dtx server` (or floor server) child process.
type serverProcess struct {
	what string // "dtx server"
	cmd  *exec.Cmd
	pid  int
	url  string
	dir  string
	done chan struct{}
	err  error // the exit, once done is closed
	log  *bytes.Buffer
}

// startServerProcess runs `exe server` on dsn, listening on a loopback
// port the kernel picks, and waits until it has written its ready file.
func startServerProcess(ctx context.Context, exe, dsn string, extra ...string) (*serverProcess, error) {
	return startChildProcess(ctx, exe, func(dir, ready string) []string {
		args := []string{"server", "--listen", "127.0.0.1:0", "--ready-file", ready, "--store", dsn,
			"--log-level", "warn", "--flows-db", filepath.Join(dir, "flows.db")}
		return append(args, extra...)
	})
}

// startChildProcess runs exe with the arguments args returns for the
// process's temp dir and the ready file it is to write, and waits until
// it has written its address there.
func startChildProcess(ctx context.Context, exe string, args func(dir, ready string) []string) (*serverProcess, error) {
	dir, err := os.MkdirTemp("", "dtx-compare-")
	if err != nil {
		return nil, err
	}
	ready := filepath.Join(dir, "ready")
	p := &serverProcess{dir: dir, done: make(chan struct{}), log: &bytes.Buffer{}}
	argv := args(dir, ready)
	p.what = "dtx " + argv[0]
	p.cmd = exec.Command(exe, argv...)
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, &lockedWriter{w: p.log}
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", p.what, err)
	}
	p.pid = p.cmd.Process.Pid
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if addr, err := os.ReadFile(ready); err == nil && len(addr) > 0 {
			p.url = "http://" + strings.TrimSpace(string(addr))
			return p, nil
		}
		select {
		case <-p.done:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("%s exited before it was ready (%v): %s", p.what, p.err, p.logTail())
		case <-deadline.C:
			p.stop()
			return nil, fmt.Errorf("%s not ready after 60s: %s", p.what, p.logTail())
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// exited returns an error if the server has exited.
func (p *serverProcess) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited during the run (%v): %s", p.what, p.err, p.logTail())
	default:
		return nil
	}
}

// stop asks the server to shut down (SIGTERM), kills it after 10s, and
// removes its directory.
func (p *serverProcess) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	os.RemoveAll(p.dir)
}

func (p *serverProcess) logTail() string {
	s := strings.TrimSpace(p.log.String())
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

// lockedWriter serializes writes (exec copies stderr from a goroutine).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// procCPU is the user + system CPU time of process pid, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("coordinator CPU: %w", err)
	}
	return parsePidStat(b)
}

// parsePidStat reads utime and stime from the text of /proc/<pid>/stat;
// the command name in parentheses may hold spaces, so fields are counted
// after its closing parenthesis.
func parsePidStat(b []byte) (time.Duration, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("/proc/<pid>/stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/<pid>/stat: %d fields after the name, want at least 13", len(f))
	}
	var ticks uint64
	for _, v := range f[11:13] { // utime, stime (fields 14 and 15 of proc(5))
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/<pid>/stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// median of v (which it sorts); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// profileSuffix turns a store's label into a file name suffix.
func profileSuffix(label string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, label)
}
