package integration_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/examples/shop/order"
	"github.com/dtxhq/dtx/examples/shop/verify"
	"github.com/dtxhq/dtx/internal/sqlitedb"
)

// startShopProc runs `dtx shop` with the choreography pattern against the
// NATS server at natsURL and waits until it serves. Empty addrs are ports
// the kernel picks; it returns the order, inventory and payment addresses
// the shop listens on (read from its ready file), for a restart to reuse.
func startShopProc(t *testing.T, dir, natsURL string, addrs [3]string, logPath string) (*proc, [3]string) {
	t.Helper()
	for i := range addrs {
		if addrs[i] == "" {
			addrs[i] = "127.0.0.1:0"
		}
	}
	ready := filepath.Join(t.TempDir(), "ready")
	args := []string{"shop", "--pattern", "choreography", "--broker", natsURL, "--dir", dir,
		"--order-addr", addrs[0], "--inventory-addr", addrs[1], "--payment-addr", addrs[2],
		"--faults", "0.3", "--fault-kinds", "delay,lose", "--fault-delay", "100ms",
		"--ready-file", ready, "--log-level", "warn"}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	cmd := exec.Command(dtxBinary(t), args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, log: lf, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill(); lf.Close() })
	waitFor(t, 30*time.Second, "dtx shop to serve", func() (bool, string) {
		select {
		case <-p.done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("dtx shop exited early:\n%s", b)
		default:
		}
		_, err := os.Stat(ready)
		return err == nil, "no ready file yet"
	})
	b, err := os.ReadFile(ready)
	require.NoError(t, err)
	urls := strings.Fields(string(b))
	require.Len(t, urls, 3, "ready file: %q", b)
	var got [3]string
	for i, u := range urls {
		got[i] = strings.TrimPrefix(u, "http://")
	}
	return p, got
}

// TestChoreography_SIGKILLService kills the process running the three
// choreographed services in the middle of a batch of orders and restarts
// it. Events committed to the outboxes are published after the restart,
// deliveries not acknowledged are redelivered, and the inboxes turn
// redeliveries into no-ops: no effect is lost or applied twice.
func TestChoreography_SIGKILLService(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the dtx binary")
	}
	ctx := context.Background()
	nb, err := natsbroker.OpenEmbedded(ctx, t.TempDir(), natsbroker.Config{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	defer nb.Close()

	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "shop.log")
	shopProc, addrs := startShopProc(t, dir, nb.ClientURL(), [3]string{}, logPath)
	c := &order.Client{URL: "http://" + addrs[0]}

	const n, conc = 160, 16
	var next, placed atomic.Int64
	var once sync.Once
	killed := make(chan struct{})
	restarted := make(chan struct{})
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				req := order.PlaceRequest{
					UserID: []int64{1, 1, 2, 3, 4}[rng.IntN(5)],
					Items:  []order.Item{{ProductID: 1 + rng.Int64N(4), Quantity: 1 + rng.Int64N(2)}},
				}
				key := fmt.Sprintf("ch-%d", i)
				for {
					// The order service is down for a while: retry with the
					// same idempotency key, as a client should.
					if _, err := c.Place(ctx, req, key, false); err == nil {
						break
					}
					select {
					case <-restarted:
					case <-time.After(50 * time.Millisecond):
					}
				}
				if placed.Add(1) == n/2 {
					once.Do(func() {
						shopProc.kill()
						close(killed)
					})
				}
			}
		}()
	}
	<-killed

	// The kill interrupted flows: orders are still PENDING.
	pendingAtKill := countPending(t, filepath.Join(dir, "order.db"))
	require.Positive(t, pendingAtKill, "the kill must interrupt flows in progress")
	t.Logf("killed the shop with %d orders in flight", pendingAtKill)
	startShopProc(t, dir, nb.ClientURL(), addrs, logPath)
	close(restarted)
	wg.Wait()

	waitFor(t, 2*time.Minute, "every order to finish", func() (bool, string) {
		k := countPending(t, filepath.Join(dir, "order.db"))
		return k == 0, fmt.Sprintf("%d orders pending", k)
	})
	dbs := map[string]*sql.DB{}
	for _, name := range []string{"order", "inventory", "payment"} {
		db, err := sqlitedb.Open(ctx, filepath.Join(dir, name+".db"), 1)
		require.NoError(t, err)
		defer db.Close()
		dbs[name] = db
	}
	rep, err := verify.Check(ctx, dbs["order"], dbs["inventory"], dbs["payment"])
	require.NoError(t, err)
	require.Empty(t, rep.Violations, "invariant violations")
	require.Equal(t, n, rep.Orders, "one order per idempotency key")
	require.Equal(t, n, rep.Completed+rep.Cancelled)
	require.Positive(t, rep.Completed)
	require.Positive(t, rep.Cancelled)
	t.Logf("%d orders: %d completed, %d cancelled", rep.Orders, rep.Completed, rep.Cancelled)
}

func countPending(t *testing.T, path string) int {
	t.Helper()
	db, err := sqlitedb.Open(context.Background(), path, 1)
	require.NoError(t, err)
	defer db.Close()
	var k int
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM orders WHERE status = 'PENDING'`).Scan(&k))
	return k
}

// TestServer_RecordsFlows runs `dtx server` recording a topic from an
// external NATS server and reads the flow back over its API.
func TestServer_RecordsFlows(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the dtx binary")
	}
	ctx := context.Background()
	nb, err := natsbroker.OpenEmbedded(ctx, t.TempDir(), natsbroker.Config{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	defer nb.Close()
	dir := t.TempDir()
	addr := startServer(t, "", "sqlite://"+filepath.Join(dir, "c.db"), filepath.Join(dir, "server.log"),
		"--broker", nb.ClientURL(), "--record-flows", "order-placed,stock-deducted", "--flows-db", filepath.Join(dir, "flows.db")).addr
	for _, m := range []broker.Message{
		{ID: "order-1/stock-deducted", Topic: "stock-deducted", Key: "order-1", Payload: []byte(`{}`),
			Headers: map[string]string{broker.HeaderCorrelationID: "order-1", broker.HeaderCausationID: "order-1/order-placed", broker.HeaderType: "stock-deducted"}},
		{ID: "order-1/order-placed", Topic: "order-placed", Key: "order-1", Payload: []byte(`{}`),
			Headers: map[string]string{broker.HeaderCorrelationID: "order-1", broker.HeaderType: "order-placed"}},
	} {
		require.NoError(t, nb.Publish(ctx, m))
	}
	var got struct {
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
	}
	waitFor(t, 20*time.Second, "the flow to be recorded", func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/v1/flows/order-1")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, resp.Status
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		return len(got.Events) == 2, fmt.Sprintf("%d events", len(got.Events))
	})
	require.Equal(t, "order-placed", got.Events[0].Type)
	require.Equal(t, "stock-deducted", got.Events[1].Type)
}
