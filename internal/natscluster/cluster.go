// Package natscluster runs a NATS JetStream cluster on loopback, each node
// in a process of its own, so that tests and `dtx chaos` can kill a broker
// node (SIGKILL), restart it on the same store and ports, and wait until
// the cluster is whole again.
//
// A node is the nats-server of dtx's go.mod run by a re-executed binary:
// Config.Exe (by default the running executable) is started with the
// environment variable DTX_NATSCLUSTER_NODE naming the node's spec file,
// and its main (or a test's TestMain) calls Main first, which runs the node
// instead of the program. The dtx binary does.
//
// # Ports
//
// Client and monitoring ports are picked by the kernel (port -1) when a
// node first starts; the node reports them in its ready file, and a
// restart asks for them again. Route ports are different: every node's
// configuration names the route ports of all nodes, so they must be known
// before any node runs. Start picks each by listening on port 0 and
// closing, which leaves a short window in which another process may take
// the port; a node whose port was taken exits with "address already in
// use", and Start then kills the nodes, picks new ports and starts over
// (up to five times). A restarted node whose old port was taken meanwhile
// gets new ports in the same way; it routes to the others itself, so the
// cluster forms again, and URLs reports its new client port.
package natscluster

import (
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dtxhq/dtx/internal/dbproc"
)

// Defaults of Config.
const (
	DefaultNodes        = 3
	DefaultName         = "dtx"
	DefaultStartTimeout = time.Minute
	// startAttempts bounds Start's retries after a route port was taken.
	startAttempts = 5
)

// Config configures a cluster. Zero fields take the defaults named.
type Config struct {
	// Dir holds each node's store (node-<i>/), spec, ready and log files
	// (node-<i>.log). Start begins with empty stores: it removes the
	// node-<i>/ directories it finds. Empty: a temporary directory that
	// Close removes.
	Dir string
	// Nodes is the cluster's size; default DefaultNodes (3), at most 7.
	// One node runs as a single JetStream server, not clustered.
	Nodes int
	// Name is the NATS cluster name; default DefaultName.
	Name string
	// Exe is the binary that runs a node; it must call Main first thing.
	// Default: the running executable (os.Executable).
	Exe string
	// SyncAlways makes the nodes fsync every write.
	SyncAlways bool
	// StartTimeout bounds one node's start until it listens; default
	// DefaultStartTimeout.
	StartTimeout time.Duration
}

// Cluster is a running cluster. Its methods are safe for concurrent use,
// but Kill, Stop and Restart of the same node must not overlap.
type Cluster struct {
	cfg     Config
	tempDir bool

	mu    sync.Mutex
	nodes []*node
}

// node is one node process and what it listens on.
type node struct {
	i    int
	spec nodeSpec
	cmd  *exec.Cmd
	done chan struct{}
	info readyInfo
}

// Start starts cfg.Nodes nodes and waits until each listens (not until the
// cluster is healthy: see WaitHealthy). On error nothing is left running.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = DefaultNodes
	}
	if cfg.Nodes < 1 || cfg.Nodes > 7 {
		return nil, fmt.Errorf("natscluster: %d nodes out of 1..7", cfg.Nodes)
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("natscluster: find the executable to run nodes: %w", err)
		}
		cfg.Exe = exe
	}
	c := &Cluster{cfg: cfg}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "dtx-natscluster-")
		if err != nil {
			return nil, fmt.Errorf("natscluster: %w", err)
		}
		c.cfg.Dir, c.tempDir = dir, true
	} else if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("natscluster: %w", err)
	}
	var err error
	for range startAttempts {
		if err = c.startAll(ctx); err == nil {
			return c, nil
		}
		c.killAll()
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	if c.tempDir {
		os.RemoveAll(c.cfg.Dir)
	}
	return nil, err
}

// errPortTaken marks a node that could not bind a port.
var errPortTaken = errors.New("port taken")

// startAll writes fresh specs with newly picked route ports and starts
// every node at once (a JetStream node waits for its peers).
func (c *Cluster) startAll(ctx context.Context) error {
	ports, err := freePorts(c.cfg.Nodes)
	if err != nil {
		return fmt.Errorf("natscluster: pick route ports: %w", err)
	}
	var routes []string // a single node runs unclustered
	if c.cfg.Nodes > 1 {
		for _, p := range ports {
			routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(p))
		}
	}
	c.mu.Lock()
	c.nodes = make([]*node, c.cfg.Nodes)
	for i := range c.nodes {
		store := filepath.Join(c.cfg.Dir, fmt.Sprintf("node-%d", i))
		os.RemoveAll(store) // a failed attempt's leftovers
		c.nodes[i] = &node{i: i, spec: nodeSpec{
			Name:        c.nodeName(i),
			Cluster:     c.cfg.Name,
			StoreDir:    store,
			ClientPort:  -1,
			HTTPPort:    -1,
			ClusterPort: ports[i],
			Routes:      routes,
			Ready:       filepath.Join(c.cfg.Dir, fmt.Sprintf("node-%d.ready", i)),
			SyncAlways:  c.cfg.SyncAlways,
		}}
	}
	nodes := c.nodes
	c.mu.Unlock()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = c.run(ctx, n) })
	}
	wg.Wait()
	for _, err := range errs {
		if errors.Is(err, errPortTaken) {
			return err
		}
	}
	return errors.Join(errs...)
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// run starts n's process with its spec and waits for its ready file.
func (c *Cluster) run(ctx context.Context, n *node) error {
	specPath := filepath.Join(c.cfg.Dir, fmt.Sprintf("node-%d.json", n.i))
	b, err := json.Marshal(n.spec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(specPath, b, 0o644); err != nil {
		return fmt.Errorf("natscluster: %w", err)
	}
	os.Remove(n.spec.Ready)
	logPath := c.LogPath(n.i)
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("natscluster: %w", err)
	}
	fmt.Fprintf(lf, "---- %s start, %s\n", n.spec.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.cfg.Exe)
	cmd.Env = append(os.Environ(), envNode+"="+specPath)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("natscluster: start %s: %w", n.spec.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); lf.Close(); close(done) }()
	c.mu.Lock()
	n.cmd, n.done = cmd, done
	c.mu.Unlock()

	deadline := time.NewTimer(c.cfg.StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(n.spec.Ready); err == nil {
			var info readyInfo
			if err := json.Unmarshal(b, &info); err != nil {
				return fmt.Errorf("natscluster: %s ready file: %w", n.spec.Name, err)
			}
			c.mu.Lock()
			n.info = info
			c.mu.Unlock()
			return nil
		}
		select {
		case <-done:
			log := dbproc.TailFile(logPath, 10)
			if strings.Contains(log, "address already in use") {
				return fmt.Errorf("natscluster: %s: %w:\n%s", n.spec.Name, errPortTaken, log)
			}
			return fmt.Errorf("natscluster: %s exited before it was ready:\n%s", n.spec.Name, log)
		case <-deadline.C:
			kill(cmd, done)
			return fmt.Errorf("natscluster: %s not ready after %v:\n%s", n.spec.Name, c.cfg.StartTimeout, dbproc.TailFile(logPath, 10))
		case <-ctx.Done():
			kill(cmd, done)
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func kill(cmd *exec.Cmd, done chan struct{}) {
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Size is the number of nodes.
func (c *Cluster) Size() int { return c.cfg.Nodes }

// Dir is the cluster's directory (stores and logs).
func (c *Cluster) Dir() string { return c.cfg.Dir }

// LogPath is the log file of node i (all its incarnations).
func (c *Cluster) LogPath(i int) string {
	return filepath.Join(c.cfg.Dir, fmt.Sprintf("node-%d.log", i))
}

// URL is node i's client URL (nats://127.0.0.1:port).
func (c *Cluster) URL(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return "nats://127.0.0.1:" + strconv.Itoa(c.nodes[i].info.ClientPort)
}

// URLs are the client URLs of all nodes, running or not, for
// nats.Connect (joined with commas) or natsbroker.Connect.
func (c *Cluster) URLs() []string {
	urls := make([]string, c.cfg.Nodes)
	for i := range urls {
		urls[i] = c.URL(i)
	}
	return urls
}

// Alive reports whether node i's process runs.
func (c *Cluster) Alive(i int) bool {
	n, err := c.node(i)
	return err == nil && c.alive(n)
}

// alive reports whether n's current process runs.
func (c *Cluster) alive(n *node) bool {
	_, done := c.proc(n)
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// proc returns n's current process and the channel closed when it ends.
func (c *Cluster) proc(n *node) (*exec.Cmd, chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return n.cmd, n.done
}

func (c *Cluster) node(i int) (*node, error) {
	if i < 0 || i >= c.cfg.Nodes {
		return nil, fmt.Errorf("natscluster: no node %d (nodes 0..%d)", i, c.cfg.Nodes-1)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i], nil
}

// Kill kills node i with SIGKILL (the node loses what it had not written
// to its store) and waits until the process is gone. Killing a node that
// is not running does nothing.
func (c *Cluster) Kill(i int) error {
	n, err := c.node(i)
	if err != nil {
		return err
	}
	if c.alive(n) {
		kill(c.proc(n))
	}
	return nil
}

// Stop shuts node i down cleanly (SIGTERM: the node hands over its
// leaderships) and kills it if it has not exited within grace.
func (c *Cluster) Stop(i int, grace time.Duration) error {
	n, err := c.node(i)
	if err != nil {
		return err
	}
	if !c.alive(n) {
		return nil
	}
	cmd, done := c.proc(n)
	cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		kill(cmd, done)
	}
	return nil
}

// Restart starts node i again, after Kill or Stop, on the same store and
// ports, and waits until it listens. If one of its ports was taken
// meanwhile, it starts on new ones (URLs then shows the new client port).
func (c *Cluster) Restart(ctx context.Context, i int) error {
	n, err := c.node(i)
	if err != nil {
		return err
	}
	if c.alive(n) {
		return fmt.Errorf("natscluster: node %d is running", i)
	}
	c.mu.Lock()
	n.spec.ClientPort, n.spec.HTTPPort = n.info.ClientPort, n.info.HTTPPort
	c.mu.Unlock()
	err = c.run(ctx, n)
	if !errors.Is(err, errPortTaken) {
		return err
	}
	ports, perr := freePorts(1)
	if perr != nil {
		return errors.Join(err, perr)
	}
	c.mu.Lock()
	n.spec.ClientPort, n.spec.HTTPPort, n.spec.ClusterPort = -1, -1, ports[0]
	c.mu.Unlock()
	return c.run(ctx, n)
}

// WaitHealthy waits until every running node answers its /healthz with
// 200 (JetStream is on, the node follows a meta leader, and each stream
// and consumer it knows of is current) and, as the JetStream API reports
// it, every stream and consumer has a leader and a current replica on
// each running node that holds one. (A restarted node passes /healthz
// before it has even recreated its replicas; killing another node then
// would leave the stream without a quorum.) It returns the last unhealthy
// answer when ctx ends first.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		why := c.unhealthy(ctx, client)
		if why == "" {
			why = c.replicasBehind(ctx)
		}
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("natscluster: not healthy: %s: %w", why, ctx.Err())
		case <-tick.C:
		}
	}
}

// unhealthy returns why a running node is not healthy, or "".
func (c *Cluster) unhealthy(ctx context.Context, client *http.Client) string {
	running := 0
	for i := range c.cfg.Nodes {
		n, _ := c.node(i)
		if !c.alive(n) {
			continue
		}
		running++
		c.mu.Lock()
		url := "http://127.0.0.1:" + strconv.Itoa(n.info.HTTPPort) + "/healthz"
		c.mu.Unlock()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err.Error()
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Sprintf("node %d: %v", i, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("node %d: %s %s", i, resp.Status, strings.TrimSpace(string(body)))
		}
	}
	if running == 0 {
		return "no node is running"
	}
	return ""
}

// replicasBehind returns a stream or consumer whose replicas on running
// nodes are not all current, or "".
func (c *Cluster) replicasBehind(ctx context.Context) string {
	var urls []string
	running := map[string]bool{}
	for i := range c.cfg.Nodes {
		if c.Alive(i) {
			urls = append(urls, c.URL(i))
			running[c.nodeName(i)] = true
		}
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Timeout(2*time.Second))
	if err != nil {
		return err.Error()
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	check := func(what string, replicas int, ci *jetstream.ClusterInfo) string {
		if ci == nil || replicas <= 1 {
			return ""
		}
		if ci.Leader == "" {
			return what + " has no leader"
		}
		if len(ci.Replicas)+1 < replicas {
			return fmt.Sprintf("%s lists %d of its %d replicas", what, len(ci.Replicas)+1, replicas)
		}
		for _, r := range ci.Replicas {
			if running[r.Name] && (!r.Current || r.Offline) {
				return fmt.Sprintf("%s: replica on %s not current (lag %d)", what, r.Name, r.Lag)
			}
		}
		return ""
	}
	streams := js.ListStreams(ctx)
	for si := range streams.Info() {
		what := "stream " + si.Config.Name
		if why := check(what, si.Config.Replicas, si.Cluster); why != "" {
			return why
		}
		s, err := js.Stream(ctx, si.Config.Name)
		if err != nil {
			return what + ": " + err.Error()
		}
		cons := s.ListConsumers(ctx)
		for ci := range cons.Info() {
			r := ci.Config.Replicas
			if r == 0 {
				r = si.Config.Replicas
			}
			if why := check(what+" consumer "+ci.Name, r, ci.Cluster); why != "" {
				return why
			}
		}
		if err := cons.Err(); err != nil {
			return what + " consumers: " + err.Error()
		}
	}
	if err := streams.Err(); err != nil {
		return "streams: " + err.Error()
	}
	return ""
}

func (c *Cluster) nodeName(i int) string { return fmt.Sprintf("%s-%d", c.cfg.Name, i) }

// Close stops every node (SIGTERM, then SIGKILL after 10s) and removes the
// directory if Start made a temporary one.
func (c *Cluster) Close() error {
	var wg sync.WaitGroup
	for i := range c.cfg.Nodes {
		wg.Go(func() { c.Stop(i, 10*time.Second) })
	}
	wg.Wait()
	if c.tempDir {
		return os.RemoveAll(c.cfg.Dir)
	}
	return nil
}

// killAll kills whatever startAll left running.
func (c *Cluster) killAll() {
	c.mu.Lock()
	nodes := c.nodes
	c.mu.Unlock()
	for _, n := range nodes {
		if n != nil && c.alive(n) {
			kill(c.proc(n))
		}
	}
}
