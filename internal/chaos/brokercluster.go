package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"time"

	"github.com/dtxhq/dtx/internal/natscluster"
)

// BrokerNodeKill: SIGKILL one node of the ha topology's three-node NATS
// JetStream cluster (streams replicated on all three), start it again on
// the same store 1–3 s later, and wait until every stream and consumer
// replica is current before the next fault.
const BrokerNodeKill Kind = "broker_node_kill"

// BrokerReplicas is the replication of the streams the shop creates on the
// ha topology's broker cluster.
const BrokerReplicas = 3

func init() {
	kindNotes[string(BrokerNodeKill)] = "SIGKILL a NATS cluster node, restart it"
}

// startBrokerCluster starts the three NATS nodes of the ha topology, each a
// process of the dtx binary exe.
func startBrokerCluster(ctx context.Context, exe, dir string) (*brokerFaults, error) {
	c, err := natscluster.Start(ctx, natscluster.Config{Dir: filepath.Join(dir, "natscluster"), Exe: exe})
	if err != nil {
		return nil, fmt.Errorf("start the NATS cluster: %w", err)
	}
	return &brokerFaults{c: c}, nil
}

// brokerFaults kills the nodes of the broker cluster, one at a time.
type brokerFaults struct {
	c *natscluster.Cluster
}

// url is the shop's --broker: every node's client URL.
func (b *brokerFaults) url() string { return strings.Join(b.c.URLs(), ",") }

func (b *brokerFaults) kinds() []Kind { return []Kind{BrokerNodeKill} }

func (b *brokerFaults) inject(ctx context.Context, rng *rand.Rand, k Kind, logf func(string, ...any)) error {
	i := rng.IntN(b.c.Size())
	if err := b.c.Kill(i); err != nil {
		return err
	}
	down := time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
	logf("%s: SIGKILL NATS node %d; the other two keep the streams (R%d)", k, i+1, BrokerReplicas)
	select {
	case <-time.After(down):
	case <-ctx.Done():
		return ctx.Err()
	}
	t := time.Now()
	if err := b.c.Restart(ctx, i); err != nil {
		return fmt.Errorf("restart NATS node %d: %w", i+1, err)
	}
	// The next kill must not take a majority away from a stream whose
	// restarted replica is still catching up.
	hctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := b.c.WaitHealthy(hctx); err != nil {
		return fmt.Errorf("NATS cluster not healthy after node %d restarted: %w", i+1, err)
	}
	logf("%s: node %d down %v, restarted and every replica current %v later", k, i+1, down.Round(time.Millisecond), time.Since(t).Round(time.Millisecond))
	return nil
}

func (b *brokerFaults) settle(ctx context.Context) error { return nil }

func (b *brokerFaults) close() { b.c.Close() }
