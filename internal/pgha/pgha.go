// Package pgha runs a throwaway highly available PostgreSQL on loopback
// with pg_auto_failover: a monitor and two data nodes, a primary and a
// synchronous standby, each managed by its pg_autoctl keeper, in a
// temporary directory. When the primary dies the monitor has the standby
// promoted; clients reach whichever node is primary through a multi-host
// DSN with target_session_attrs=read-write (pgx and libpq try the hosts in
// turn and keep the writable one).
//
// It is used by the dtx binary (dtx chaos --topology ha) and by tests, and
// does not import testing.
//
// # Ports
//
// pg_autoctl registers each node with the monitor by host and port, so a
// node cannot listen on port 0: Start picks each port by listening on
// 127.0.0.1:0 and closing the listener, then hands it to pg_autoctl. Another
// process could take the port in between; the node then fails to start and
// Start returns an error saying so (the window is a few milliseconds, and
// the kernel does not hand a just-closed ephemeral port out again at once).
//
// # Failover timing
//
// pg_auto_failover's defaults take about 30-50 seconds to fail over. Start
// sets, on the monitor: health_check_period 1s, health_check_timeout 2s,
// health_check_max_retries 1, health_check_retry_delay 500ms,
// node_considered_unhealthy_timeout 5s, startup_grace_period 2s and
// primary_demote_timeout 5s (how long the monitor waits for a lost primary
// to demote itself before it lets the standby take writes); on each
// keeper: network_partition_timeout 3s (a primary cut off from the monitor
// and the standby demotes itself after that, before the monitor's 5s), and
// prepare_promotion_walreceiver 1s. Measured on loopback, a SIGKILLed
// primary's standby takes writes after about 10-15 seconds. (With a 1s
// health check timeout and 3s unhealthy timeout, a starved machine saw
// the monitor fail a live primary over.)
//
// # Processes
//
// Each node is one `pg_autoctl run` (its keeper, or the monitor's
// listener, and its postgres) in a process group of its own: KillPrimary
// and Close signal the whole group. pg_autoctl is killed if the calling
// process dies, but a postgres it started may then outlive it (it is not
// its direct child); Close stops everything.
//
// # Running as root
//
// PostgreSQL refuses to run as root; as internal/pgserver does, pgha then
// runs pg_autoctl (and so postgres) as the "postgres" user, or "nobody",
// in a directory owned by that user.
package pgha

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dtxhq/dtx/internal/dbproc"
	"github.com/dtxhq/dtx/internal/pgserver"
)

// ErrNotInstalled is returned (wrapped) by Start when pg_auto_failover
// (pg_autoctl and the PostgreSQL binaries) is not installed.
var ErrNotInstalled = errors.New("pgha: pg_auto_failover not found (apt-get install postgresql-15-auto-failover pg-auto-failover-cli)")

// EnvRequire is the environment variable that, set to "1", makes tests
// that need pg_auto_failover fail instead of skip when it is missing (CI
// sets it).
const EnvRequire = "DTX_REQUIRE_PGHA"

// superuser is the superuser of every node (the user pg_autoctl runs as
// creates the clusters; pgha names it with --username).
const superuser = "postgres"

// Config configures Start.
type Config struct {
	// Dir is the directory to create the cluster in; empty for a new
	// temporary directory, removed by Close. A given Dir is left in place.
	Dir string
}

// Cluster is a running pg_auto_failover formation: a monitor and two data
// nodes. Its methods are safe for concurrent use.
type Cluster struct {
	dir     string
	ownsDir bool
	bin     string // PostgreSQL's bin directory
	autoctl string // pg_autoctl
	cred    *syscall.Credential

	monitor *node
	nodes   [2]*node

	mu     sync.Mutex
	killed *node     // the node KillPrimary killed, until Rejoin
	killAt time.Time // when it was killed
	closed bool
}

// node is one pg_autoctl keeper (or the monitor) and its postgres.
type node struct {
	name string
	dir  string // XDG directories, socket, log
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start creates and starts the monitor and the two data nodes and returns
// once node 1 is primary and node 2 its synchronous standby. ctx bounds the
// start-up only.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	bin, err := pgserver.BinDir()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	autoctl, err := findAutoctl(bin)
	if err != nil {
		return nil, err
	}
	cred, err := pgserver.RunAs()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, autoctl: autoctl, cred: cred, dir: cfg.Dir}
	if c.dir == "" {
		// Short: unix socket paths are limited to ~107 bytes.
		if c.dir, err = os.MkdirTemp(pgserver.TempBase(), "dtx-pgha-"); err != nil {
			return nil, fmt.Errorf("pgha: %w", err)
		}
		c.ownsDir = true
	} else if c.dir, err = filepath.Abs(c.dir); err != nil {
		return nil, fmt.Errorf("pgha: %w", err)
	}
	if err := c.start(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func findAutoctl(bin string) (string, error) {
	for _, p := range []string{filepath.Join(bin, "pg_autoctl"), "/usr/bin/pg_autoctl"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("pg_autoctl"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w (pg_autoctl is neither in %s nor on PATH)", ErrNotInstalled, bin)
}

func (c *Cluster) start(ctx context.Context) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return fmt.Errorf("pgha: %w", err)
	}
	if c.cred != nil {
		if err := pgserver.CheckTraversable(c.dir, c.cred); err != nil {
			return err
		}
	}
	c.monitor = &node{name: "monitor", dir: filepath.Join(c.dir, "monitor")}
	for i := range c.nodes {
		c.nodes[i] = &node{name: fmt.Sprintf("node%d", i+1), dir: filepath.Join(c.dir, fmt.Sprintf("node%d", i+1))}
	}
	for _, n := range c.all() {
		for _, d := range []string{"config", "data", "run"} {
			if err := os.MkdirAll(filepath.Join(n.dir, d), 0o700); err != nil {
				return fmt.Errorf("pgha: %w", err)
			}
		}
		port, err := dbproc.FreePort()
		if err != nil {
			return fmt.Errorf("pgha: free port: %w", err)
		}
		n.port = port
	}
	if err := c.chown(); err != nil {
		return err
	}

	// The monitor: created (initdb, extension), then run; the health
	// check settings take effect on reload.
	m := c.monitor
	if err := c.autoctlOnce(ctx, m, "create", "monitor", "--pgdata", m.pgdata(), "--pgport", strconv.Itoa(m.port),
		"--hostname", "127.0.0.1", "--listen", "127.0.0.1", "--auth", "trust", "--no-ssl"); err != nil {
		return err
	}
	if err := c.run(m); err != nil {
		return err
	}
	if err := c.waitMonitor(ctx); err != nil {
		return err
	}
	if err := c.tuneMonitor(ctx); err != nil {
		return err
	}
	// The data nodes one after the other: the first becomes primary, the
	// second is cloned from it (pg_basebackup) as its standby.
	for i, n := range c.nodes {
		if err := c.autoctlOnce(ctx, n, "create", "postgres", "--pgdata", n.pgdata(), "--pgport", strconv.Itoa(n.port),
			"--hostname", "127.0.0.1", "--listen", "127.0.0.1", "--name", n.name, "--username", superuser,
			"--auth", "trust", "--no-ssl", "--monitor", c.monitorURL()); err != nil {
			return err
		}
		for _, kv := range [][2]string{
			{"timeout.network_partition_timeout", "3"},
			{"timeout.prepare_promotion_walreceiver", "1"},
		} {
			if err := c.autoctlOnce(ctx, n, "config", "set", "--pgdata", n.pgdata(), kv[0], kv[1]); err != nil {
				return err
			}
		}
		if err := c.run(n); err != nil {
			return err
		}
		want := "single"
		if i == 1 {
			want = "secondary"
		}
		if err := c.waitState(ctx, n, want); err != nil {
			return err
		}
	}
	return c.waitStable(ctx)
}

func (c *Cluster) all() []*node { return []*node{c.monitor, c.nodes[0], c.nodes[1]} }

func (n *node) pgdata() string { return filepath.Join(n.dir, "pgdata") }
func (n *node) logPath() string {
	return filepath.Join(filepath.Dir(n.dir), n.name+".log")
}

// chown gives the cluster's directory to the user PostgreSQL runs as.
func (c *Cluster) chown() error {
	if c.cred == nil {
		return nil
	}
	return filepath.WalkDir(c.dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(c.cred.Uid), int(c.cred.Gid))
	})
}

// command returns pg_autoctl with args for node n: its configuration and
// state under n.dir (XDG directories), its socket there too.
func (c *Cluster) command(ctx context.Context, n *node, args ...string) *exec.Cmd {
	cmd := dbproc.Command(ctx, c.autoctl, n.dir, c.cred, args...)
	sock := filepath.Join(n.dir, "run")
	cmd.Env = append(cmd.Env,
		// pg_autoctl looks for pg_ctl on PATH; keep directories the
		// PostgreSQL user cannot read (root's) out of it.
		"PATH="+c.bin+":/usr/bin:/bin",
		"XDG_CONFIG_HOME="+filepath.Join(n.dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(n.dir, "data"),
		"XDG_RUNTIME_DIR="+sock,
		"PG_REGRESS_SOCK_DIR="+sock, // postgres -k
		"PGHOST="+sock,              // pg_autoctl's own local connections
		"HOME="+n.dir,
	)
	return cmd
}

// autoctlOnce runs a pg_autoctl command to completion, its output appended
// to the node's log.
func (c *Cluster) autoctlOnce(ctx context.Context, n *node, args ...string) error {
	lf, err := openLog(n)
	if err != nil {
		return err
	}
	defer lf.Close()
	fmt.Fprintf(lf, "---- pg_autoctl %s\n", strings.Join(args, " "))
	cmd := c.command(ctx, n, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgha: pg_autoctl %s %s: %w\n%s", args[0], args[1], err, logTail(n))
	}
	return nil
}

func openLog(n *node) (*os.File, error) {
	f, err := os.OpenFile(n.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pgha: %w", err)
	}
	return f, nil
}

// logTail is the end of a node's log, for errors.
func logTail(n *node) string { return dbproc.TailFile(n.logPath(), 40) }

// run starts `pg_autoctl run` for n in the background: the keeper (or
// the monitor's listener) and its postgres, in a process group of their
// own.
func (c *Cluster) run(n *node) error {
	lf, err := openLog(n)
	if err != nil {
		return err
	}
	defer lf.Close() // the child has its own copy
	fmt.Fprintf(lf, "---- pg_autoctl run, %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := c.command(nil, n, "run", "--pgdata", n.pgdata())
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgha: start pg_autoctl for %s: %w", n.name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	return nil
}

// running reports whether n's pg_autoctl runs.
func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// kill SIGKILLs n's whole process group (pg_autoctl, postgres and its
// backends) and waits until pg_autoctl is gone and the port is closed.
func (n *node) kill() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	// The postmaster first, by the pid it recorded, in case it runs in a
	// process group of its own; then the group.
	if pid := n.postmasterPID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
	// The postgres children are in the group too; wait until no one
	// listens on the port any more.
	for range 200 {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)), 100*time.Millisecond)
		if err != nil {
			return
		}
		conn.Close()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		time.Sleep(10 * time.Millisecond)
	}
}

// postmasterPID is the pid in n's postmaster.pid, or 0.
func (n *node) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(n.pgdata(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 1 {
		return 0
	}
	// A stale file's pid may belong to another process by now.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), n.pgdata()) {
		return 0
	}
	return pid
}

// stop asks n's pg_autoctl to stop (SIGTERM: it stops postgres with a
// fast shutdown) and kills the group if it has not within grace.
func (n *node) stop(grace time.Duration) {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
	default:
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(grace):
		}
	}
	n.kill()
}

func dsn(user string, ports []int, db string, attrs string) string {
	hosts := make([]string, len(ports))
	for i, p := range ports {
		hosts[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	// connect_timeout bounds each host's attempt: a node that accepts
	// connections but does not answer (starting, being killed) must not
	// hold up the next one.
	q := url.Values{"sslmode": {"disable"}, "connect_timeout": {"5"}}
	if attrs != "" {
		q.Set("target_session_attrs", attrs)
	}
	u := url.URL{Scheme: "postgres", User: url.User(user), Host: strings.Join(hosts, ","), Path: "/" + db, RawQuery: q.Encode()}
	return u.String()
}

// monitorURL is the monitor's database as the keepers reach it.
func (c *Cluster) monitorURL() string {
	return dsn("autoctl_node", []int{c.monitor.port}, "pg_auto_failover", "")
}

// monitorQuery runs fn on a connection to the monitor's database as the
// superuser.
func (c *Cluster) monitorQuery(ctx context.Context, fn func(*pgx.Conn) error) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn(superuser, []int{c.monitor.port}, "pg_auto_failover", ""))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return fn(conn)
}

func (c *Cluster) waitMonitor(ctx context.Context) error {
	return c.poll(ctx, "the monitor to accept connections", func() error {
		return c.monitorQuery(ctx, func(conn *pgx.Conn) error {
			var n int
			return conn.QueryRow(ctx, `SELECT count(*) FROM pgautofailover.node`).Scan(&n)
		})
	})
}

// monitorSettings are the monitor's health check and failover settings
// (see the package documentation).
var monitorSettings = [][2]string{
	{"pgautofailover.health_check_period", "1000"},
	{"pgautofailover.health_check_timeout", "2000"},
	{"pgautofailover.health_check_max_retries", "1"},
	{"pgautofailover.health_check_retry_delay", "500"},
	{"pgautofailover.node_considered_unhealthy_timeout", "5000"},
	{"pgautofailover.startup_grace_period", "2000"},
	{"pgautofailover.primary_demote_timeout", "5000"},
}

func (c *Cluster) tuneMonitor(ctx context.Context) error {
	return c.monitorQuery(ctx, func(conn *pgx.Conn) error {
		for _, kv := range monitorSettings {
			if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER SYSTEM SET %s = %s", kv[0], kv[1])); err != nil {
				return fmt.Errorf("pgha: monitor setting %s: %w", kv[0], err)
			}
		}
		_, err := conn.Exec(ctx, `SELECT pg_reload_conf()`)
		return err
	})
}

// nodeState is a data node's state as the monitor sees it.
type nodeState struct {
	port               int
	reported, assigned string
}

func (c *Cluster) states(ctx context.Context) ([]nodeState, error) {
	var out []nodeState
	err := c.monitorQuery(ctx, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT nodeport, reportedstate::text, goalstate::text FROM pgautofailover.node ORDER BY nodeid`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var s nodeState
			if err := rows.Scan(&s.port, &s.reported, &s.assigned); err != nil {
				return err
			}
			out = append(out, s)
		}
		return rows.Err()
	})
	return out, err
}

// waitState waits until the monitor has n in state (reported and assigned).
func (c *Cluster) waitState(ctx context.Context, n *node, state string) error {
	return c.poll(ctx, n.name+" to reach state "+state, func() error {
		sts, err := c.states(ctx)
		if err != nil {
			return err
		}
		for _, s := range sts {
			if s.port == n.port {
				if s.reported == state && s.assigned == state {
					return nil
				}
				return fmt.Errorf("%s is %s (assigned %s)", n.name, s.reported, s.assigned)
			}
		}
		return fmt.Errorf("%s not registered", n.name)
	})
}

// stable reports one node primary and the other secondary, as reported
// and assigned.
func stable(sts []nodeState) bool {
	var primary, secondary int
	for _, s := range sts {
		if s.reported != s.assigned {
			return false
		}
		switch s.reported {
		case "primary":
			primary++
		case "secondary":
			secondary++
		}
	}
	return primary == 1 && secondary == 1
}

// waitStable waits until one node is primary and the other secondary,
// both as reported and assigned: synchronous replication is on.
func (c *Cluster) waitStable(ctx context.Context) error {
	return c.poll(ctx, "a primary and a secondary", func() error {
		sts, err := c.states(ctx)
		if err != nil {
			return err
		}
		if !stable(sts) {
			return fmt.Errorf("states %v", sts)
		}
		return nil
	})
}

// poll calls check every 100ms until it passes, a pg_autoctl exits on its
// own, or ctx ends.
func (c *Cluster) poll(ctx context.Context, what string, check func() error) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		for _, n := range c.all() {
			n.mu.Lock()
			cmd, exited := n.cmd, n.exited
			n.mu.Unlock()
			if cmd == nil || n == c.killedNode() {
				continue
			}
			select {
			case <-exited:
				return fmt.Errorf("pgha: waiting for %s: pg_autoctl of %s exited:\n%s", what, n.name, logTail(n))
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgha: waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func (c *Cluster) killedNode() *node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.killed
}

// Ports are the data nodes' ports, node 1 first.
func (c *Cluster) Ports() []int { return []int{c.nodes[0].port, c.nodes[1].port} }

// MonitorPort is the monitor's port.
func (c *Cluster) MonitorPort() int { return c.monitor.port }

// Dir is the cluster's directory: each node's files and its log
// (monitor.log, node1.log, node2.log).
func (c *Cluster) Dir() string { return c.dir }

// DSN returns the multi-host connection URL of database db as the
// superuser "postgres" (trust authentication, no TLS): both data nodes,
// target_session_attrs=read-write, so a client connects to whichever is
// the writable primary, and connect_timeout=5 (seconds per host).
func (c *Cluster) DSN(db string) string {
	return dsn(superuser, c.Ports(), db, "read-write")
}

// NodeDSN returns the connection URL of database db on one data node
// (i is 0 or 1), whatever its role.
func (c *Cluster) NodeDSN(i int, db string) string {
	return dsn(superuser, []int{c.nodes[i].port}, db, "")
}

var dbNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CreateDatabase creates an empty database (name: lower-case letters,
// digits and underscores) on the primary (the standby gets it through
// replication) and returns its DSN.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	if !dbNameRE.MatchString(name) {
		return "", fmt.Errorf("pgha: invalid database name %q", name)
	}
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgha: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgha: CREATE DATABASE %s: %w", name, err)
	}
	return c.DSN(name), nil
}

// Primary returns the index (0 or 1) of the node the monitor has as
// primary (assigned primary, wait_primary or single).
func (c *Cluster) Primary(ctx context.Context) (int, error) {
	sts, err := c.states(ctx)
	if err != nil {
		return -1, fmt.Errorf("pgha: monitor: %w", err)
	}
	for _, s := range sts {
		switch s.assigned {
		case "primary", "wait_primary", "single":
			for i, n := range c.nodes {
				if n.port == s.port {
					return i, nil
				}
			}
		}
	}
	return -1, fmt.Errorf("pgha: no primary (states %v)", sts)
}

// ErrNotStable is returned by KillPrimary when the formation is not a
// primary with a healthy secondary (a failover or rejoin is going on):
// killing the primary then would leave no node to promote.
var ErrNotStable = errors.New("pgha: no primary with a healthy secondary")

// KillPrimary SIGKILLs the primary's postgres and its pg_autoctl keeper
// (the node's whole process group), as a crash of its machine would, and
// returns the node's index. The monitor then has the standby promoted.
// Only one node may be down at a time: call Rejoin before killing again.
func (c *Cluster) KillPrimary(ctx context.Context) (int, error) {
	c.mu.Lock()
	if c.killed != nil {
		c.mu.Unlock()
		return -1, errors.New("pgha: a node is down already; Rejoin it first")
	}
	c.mu.Unlock()
	sts, err := c.states(ctx)
	if err != nil {
		return -1, fmt.Errorf("pgha: monitor: %w", err)
	}
	if !stable(sts) {
		return -1, fmt.Errorf("%w (states %v)", ErrNotStable, sts)
	}
	i, err := c.Primary(ctx)
	if err != nil {
		return -1, err
	}
	n := c.nodes[i]
	c.mu.Lock()
	c.killed, c.killAt = n, time.Now()
	c.mu.Unlock()
	n.kill()
	return i, nil
}

// WaitFailover waits until the surviving node accepts writes (it is
// primary and no longer read-only) and returns the time since
// KillPrimary.
func (c *Cluster) WaitFailover(ctx context.Context) (time.Duration, error) {
	c.mu.Lock()
	killed, at := c.killed, c.killAt
	c.mu.Unlock()
	if killed == nil {
		return 0, errors.New("pgha: no node was killed")
	}
	other := c.nodes[0]
	if other == killed {
		other = c.nodes[1]
	}
	err := c.poll(ctx, "the standby's promotion", func() error {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, dsn(superuser, []int{other.port}, "postgres", ""))
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		var writable bool
		if err := conn.QueryRow(cctx, `SELECT NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = 'off'`).Scan(&writable); err != nil {
			return err
		}
		if !writable {
			sts, _ := c.states(ctx)
			return fmt.Errorf("not writable yet (monitor: %v)", sts)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return time.Since(at), nil
}

// Rejoin starts the node KillPrimary killed again; its keeper has it
// rewound (pg_rewind) and follow the new primary. Rejoin returns once it is
// the new primary's secondary and synchronous replication is back on.
func (c *Cluster) Rejoin(ctx context.Context) error {
	c.mu.Lock()
	n := c.killed
	c.mu.Unlock()
	if n == nil {
		return errors.New("pgha: no node was killed")
	}
	if err := c.run(n); err != nil {
		return err
	}
	c.mu.Lock()
	c.killed = nil
	c.mu.Unlock()
	return c.waitStable(ctx)
}

// Close stops the nodes (the standby, then the primary, then the monitor)
// and removes the directory if Start created it. It is safe to call more
// than once.
func (c *Cluster) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		if n != nil {
			wg.Add(1)
			go func() { defer wg.Done(); n.stop(15 * time.Second) }()
		}
	}
	wg.Wait()
	if c.monitor != nil {
		c.monitor.stop(15 * time.Second)
	}
	if c.ownsDir {
		os.RemoveAll(c.dir)
	}
}
