package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dtxhq/dtx/internal/pgha"
	"github.com/dtxhq/dtx/internal/pgserver"
)

// Topologies: where the run's store, databases (and, later, broker) live.
const (
	// TopologySingle: one store (SQLite, or one PostgreSQL server) and the
	// embedded NATS; no infrastructure faults beyond a broker restart.
	TopologySingle = "single"
	// TopologyHA: the coordinators' store and the services' databases on a
	// pg_auto_failover cluster (package pgha: monitor, primary, synchronous
	// standby), reached through multi-host DSNs; the plan adds PGFailover
	// and StorePartition.
	TopologyHA = "ha"
)

// Topologies lists the accepted topologies.
var Topologies = []string{TopologySingle, TopologyHA}

// Infrastructure faults of the ha topology.
const (
	// PGFailover: SIGKILL the PostgreSQL primary and its keeper, wait
	// until pg_auto_failover has promoted the standby, then start the old
	// primary again (in the background) so that it rejoins as standby.
	PGFailover Kind = "pg_failover"
	// StorePartition: cut one coordinator's link to the store (every
	// connection closed, new ones refused) for a few seconds; its leases
	// lapse and the other coordinators take its transactions over.
	StorePartition Kind = "store_partition"
)

func init() {
	kindNotes[string(PGFailover)] = "SIGKILL the PG primary, promote, rejoin"
	kindNotes[string(StorePartition)] = "cut a coordinator's store link for seconds"
}

// errNotNow is matched by the error of a fault that cannot be injected at
// the moment (the slot is skipped, not counted).
var errNotNow = errors.New("not now")

// faultDomain is a piece of infrastructure the topology runs and can
// fault: the database cluster, the coordinators' links to the store, and
// (to come) a broker cluster.
type faultDomain interface {
	// kinds are the faults it plans.
	kinds() []Kind
	// inject performs fault k; it returns once the fault is over or, for
	// a long repair, once the service is back (the rest may go on in the
	// background until settle).
	inject(ctx context.Context, rng *rand.Rand, k Kind, logf func(string, ...any)) error
	// settle waits for repairs still going on in the background.
	settle(ctx context.Context) error
	close()
}

// topology is the run's infrastructure beyond the dtx processes.
type topology struct {
	name    string
	db      *pgha.Cluster // TopologyHA: the PostgreSQL cluster
	links   *storeLinks   // TopologyHA: each coordinator's way to the store
	domains []faultDomain
	// broker is TopologyHA's broker when the pattern uses one: three NATS
	// nodes (internal/natscluster) whose kills are its faults; its client
	// URLs replace the embedded NATS in the shop's --broker.
	broker *brokerFaults
}

// startTopology starts the infrastructure of cfg.Topology and points cfg's
// store and services' databases at it.
func startTopology(ctx context.Context, cfg *Config, log io.Writer) (*topology, error) {
	t := &topology{name: cfg.Topology}
	switch cfg.Topology {
	case "", TopologySingle:
		t.name = TopologySingle
		return t, nil
	case TopologyHA:
	default:
		return nil, fmt.Errorf("chaos: topology %q: want one of %s", cfg.Topology, strings.Join(Topologies, ", "))
	}
	// The cluster's files (and each node's log) go in the work directory,
	// kept after a failing run, if PostgreSQL can reach it: it runs as
	// another user when we are root. Else in a temporary directory of its
	// own (removed with the cluster).
	dir := filepath.Join(cfg.Dir, "pgha")
	if err := os.Chmod(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	if cred, err := pgserver.RunAs(); err == nil && cred != nil && pgserver.CheckTraversable(dir, cred) != nil {
		dir = ""
	}
	c, err := pgha.Start(ctx, pgha.Config{Dir: dir})
	if err != nil {
		if errors.Is(err, pgha.ErrNotInstalled) {
			return nil, fmt.Errorf("--topology ha needs pg_auto_failover: %w", err)
		}
		return nil, fmt.Errorf("start the PostgreSQL cluster: %w", err)
	}
	t.db = c
	var dsns []string
	for _, name := range []string{"coordinator", "orders", "inventory", "payment"} {
		dsn, err := c.CreateDatabase(ctx, name)
		if err != nil {
			t.close()
			return nil, err
		}
		dsns = append(dsns, dsn)
	}
	cfg.TempPostgres = false
	cfg.StoreDSN = dsns[0]
	cfg.ServiceDSNs = [3]string{dsns[1], dsns[2], dsns[3]}
	t.domains = append(t.domains, &dbFaults{c: c})
	if cfg.Pattern == PatternChoreography || cfg.Pattern == PatternMixed {
		b, err := startBrokerCluster(ctx, cfg.Exe, cfg.Dir)
		if err != nil {
			t.close()
			return nil, err
		}
		t.broker = b
		t.domains = append(t.domains, b)
		fmt.Fprintf(log, "broker: a NATS JetStream cluster of %d nodes (streams R%d): %s\n", b.c.Size(), BrokerReplicas, b.url())
	}
	if cfg.Pattern != PatternChoreography {
		t.links = &storeLinks{ports: c.Ports()}
		t.domains = append(t.domains, t.links)
	}
	fmt.Fprintf(log, "store and services' databases on a pg_auto_failover cluster: monitor 127.0.0.1:%d, nodes 127.0.0.1:%d and 127.0.0.1:%d (files in %s)\n",
		c.MonitorPort(), c.Ports()[0], c.Ports()[1], c.Dir())
	return t, nil
}

// kinds are the infrastructure faults the topology plans.
func (t *topology) kinds() []Kind {
	var out []Kind
	for _, d := range t.domains {
		out = append(out, d.kinds()...)
	}
	return out
}

// owns reports whether one of the topology's domains injects k.
func (t *topology) domainOf(k Kind) faultDomain {
	for _, d := range t.domains {
		if slices.Contains(d.kinds(), k) {
			return d
		}
	}
	return nil
}

// coordinatorStore is the store DSN coordinator i is given: in the ha
// topology, through its own link proxies (so that a partition can cut it
// alone).
func (t *topology) coordinatorStore(i int, dsn string) (string, error) {
	if t.links == nil {
		return dsn, nil
	}
	return t.links.dsn(i, dsn)
}

// settle waits for background repairs (a rejoining node).
func (t *topology) settle(ctx context.Context) error {
	for _, d := range t.domains {
		if err := d.settle(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (t *topology) close() {
	for _, d := range t.domains {
		d.close()
	}
	if t.db != nil {
		t.db.Close()
	}
}

// failovers returns the measured failover times, in seconds.
func (t *topology) failovers() []float64 {
	for _, d := range t.domains {
		if f, ok := d.(*dbFaults); ok {
			f.mu.Lock()
			defer f.mu.Unlock()
			return slices.Clone(f.took)
		}
	}
	return nil
}

// dbFaults fails the PostgreSQL cluster over.
type dbFaults struct {
	c      *pgha.Cluster
	repair chan error // the last failover's promotion and rejoin, while they run
	cancel context.CancelFunc

	mu   sync.Mutex
	took []float64 // seconds from each kill until the standby took writes
}

func (d *dbFaults) kinds() []Kind { return []Kind{PGFailover} }

func (d *dbFaults) inject(ctx context.Context, _ *rand.Rand, k Kind, logf func(string, ...any)) error {
	if d.repair != nil { // one node down at a time
		select {
		case err := <-d.repair:
			d.repair = nil
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: the last failover's node is still rejoining", errNotNow)
		}
	}
	node, err := d.c.KillPrimary(ctx)
	if errors.Is(err, pgha.ErrNotStable) {
		// pg_auto_failover is failing over or rejoining on its own (a
		// starved primary missed its health checks): no standby to promote.
		return fmt.Errorf("%w: %v", errNotNow, err)
	} else if err != nil {
		return err
	}
	logf("%s: SIGKILL PostgreSQL node %d (the primary's postgres and keeper); the monitor promotes the standby", k, node+1)
	// The promotion and the rejoin go on while other faults are injected
	// (a process restarted meanwhile retries until the database is back).
	done := make(chan error, 1)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
	d.repair, d.cancel = done, cancel
	go func() {
		defer cancel()
		took, err := d.c.WaitFailover(rctx)
		if err != nil {
			done <- err
			return
		}
		d.mu.Lock()
		d.took = append(d.took, took.Seconds())
		d.mu.Unlock()
		logf("%s: the standby took writes %v after the kill; node %d rejoins as standby", k, took.Round(time.Millisecond), node+1)
		t := time.Now()
		if err := d.c.Rejoin(rctx); err != nil {
			done <- fmt.Errorf("the old primary did not rejoin: %w", err)
			return
		}
		logf("%s: node %d is the new primary's synchronous standby (rejoined in %v)", k, node+1, time.Since(t).Round(time.Millisecond))
		done <- nil
	}()
	return nil
}

// settle waits until the last failover's promotion and rejoin are done.
func (d *dbFaults) settle(ctx context.Context) error {
	if d.repair == nil {
		return nil
	}
	select {
	case err := <-d.repair:
		d.repair = nil
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close abandons a repair still running.
func (d *dbFaults) close() {
	if d.repair != nil {
		d.cancel()
		<-d.repair
		d.repair = nil
	}
}

// storeLinks are the coordinators' links to the store: for each
// coordinator, a TCP proxy in front of each database node.
type storeLinks struct {
	ports []int // the database nodes

	mu      sync.Mutex
	proxies map[int][]*tcpProxy // by coordinator
}

func (s *storeLinks) kinds() []Kind { return []Kind{StorePartition} }

// dsn rewrites dsn's hosts to coordinator i's proxies, creating them on
// first use.
func (s *storeLinks) dsn(i int, dsn string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proxies == nil {
		s.proxies = map[int][]*tcpProxy{}
	}
	if s.proxies[i] == nil {
		for _, port := range s.ports {
			p, err := newTCPProxy(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				return "", err
			}
			s.proxies[i] = append(s.proxies[i], p)
		}
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	hosts := make([]string, len(s.proxies[i]))
	for j, p := range s.proxies[i] {
		hosts[j] = p.addr()
	}
	u.Host = strings.Join(hosts, ",")
	return u.String(), nil
}

func (s *storeLinks) inject(ctx context.Context, rng *rand.Rand, k Kind, logf func(string, ...any)) error {
	s.mu.Lock()
	var ids []int
	for i := range s.proxies {
		ids = append(ids, i)
	}
	s.mu.Unlock()
	if len(ids) == 0 {
		return errors.New("chaos: no coordinator link to cut")
	}
	slices.Sort(ids)
	i := ids[rng.IntN(len(ids))]
	down := 3*time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
	s.mu.Lock()
	ps := s.proxies[i]
	s.mu.Unlock()
	for _, p := range ps {
		p.cut(true)
	}
	select {
	case <-time.After(down):
	case <-ctx.Done():
	}
	for _, p := range ps {
		p.cut(false)
	}
	logf("%s: coordinator-%d cut off from the store for %v", k, i+1, down.Round(time.Millisecond))
	return ctx.Err()
}

func (s *storeLinks) settle(context.Context) error { return nil }

func (s *storeLinks) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ps := range s.proxies {
		for _, p := range ps {
			p.close()
		}
	}
}

// tcpProxy forwards loopback TCP connections to target; cut closes every
// connection and refuses new ones until it is lifted.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	isCut  bool
	closed bool
	conns  map[net.Conn]struct{}
}

func newTCPProxy(target string) (*tcpProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	return p, nil
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *tcpProxy) handle(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, up) {
		c.Close()
		up.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	c.Close()
	up.Close()
	<-done
	p.untrack(c, up)
}

// track registers a connection pair unless the link is cut or closed.
func (p *tcpProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isCut || p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *tcpProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

// cut closes every connection and refuses new ones (on) or lets them
// through again (off).
func (p *tcpProxy) cut(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isCut = on
	if on {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *tcpProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
}

// restartRetry is how long a coordinator or shop that exits during
// start-up is started again: in the ha topology the database may be
// failing over (dtx server and dtx shop exit when they cannot reach their
// databases at start, as a supervisor would then restart them).
func (t *topology) restartRetry() time.Duration {
	if t.db != nil {
		return 2 * time.Minute
	}
	return 0
}

// branchTimeout is the shop's branch timeout; the delay faults last up to
// 1.2 times as long, so a sixth of them outlast it. On the ha topology every
// commit waits for the synchronous standby, which on a shared 2-core machine
// running both database nodes, the monitor and three NATS nodes takes
// hundreds of milliseconds at times: with 500 ms, calls that would have
// succeeded timed out and were retried into the same queue, and the backlog
// after a failover did not drain.
func (t *topology) branchTimeout() time.Duration {
	if t.db != nil {
		return 2 * time.Second
	}
	return 500 * time.Millisecond
}

// plannedKinds are the kinds the run must inject: the pattern's and the
// topology's.
func (r *runner) plannedKinds() []Kind {
	return append(r.dropClusterBrokerRestart(PlannedKinds(r.cfg.Pattern)), r.topo.kinds()...)
}

// processKinds are the process faults the run schedules: the pattern's and
// the topology's.
func (r *runner) processKinds() []Kind {
	return append(r.dropClusterBrokerRestart(ProcessKinds(r.cfg.Pattern)), r.topo.kinds()...)
}

// dropClusterBrokerRestart takes BrokerRestart out of kinds when the broker
// is the ha topology's cluster, whose faults are node kills.
func (r *runner) dropClusterBrokerRestart(kinds []Kind) []Kind {
	if r.topo.broker == nil {
		return kinds
	}
	return slices.DeleteFunc(kinds, func(k Kind) bool { return k == BrokerRestart })
}

// printFailovers writes the PostgreSQL failover times of an ha run.
func printFailovers(w io.Writer, secs []float64) {
	parts := make([]string, len(secs))
	for i, s := range secs {
		parts[i] = fmt.Sprintf("%.1fs", s)
	}
	fmt.Fprintf(w, "PostgreSQL failovers: the standby took writes %s after the primary was killed\n", strings.Join(parts, ", "))
}
