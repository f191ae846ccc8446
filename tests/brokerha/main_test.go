package brokerha_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/internal/natscluster"
)

func TestMain(m *testing.M) {
	natscluster.Main() // the cluster's nodes are this binary, re-executed
	os.Exit(m.Run())
}

// testTimeout bounds each test; the slowest takes about a minute on a busy
// two-core machine.
const testTimeout = 4 * time.Minute

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// startCluster starts a 3-node cluster and waits until it is healthy.
func startCluster(t *testing.T) *natscluster.Cluster {
	t.Helper()
	c, err := natscluster.Start(ctxT(t), natscluster.Config{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.WaitHealthy(ctxT(t)), "logs in %s", c.Dir())
	return c
}

// clusterConfig is the broker's configuration on the cluster: R3 streams,
// fast retries, and short request timeouts so that a request lost with a
// node is sent again soon.
var clusterConfig = natsbroker.Config{
	Replicas:       3,
	Partitions:     4,
	AckWait:        2 * time.Second,
	RetryDelay:     20 * time.Millisecond,
	MaxRetryDelay:  200 * time.Millisecond,
	PollWait:       300 * time.Millisecond,
	RequestTimeout: time.Second,
}

// connect is a broker on the cluster, through all of its client URLs.
func connect(t *testing.T, c *natscluster.Cluster) *natsbroker.Broker {
	t.Helper()
	b, err := natsbroker.Connect(ctxT(t), strings.Join(c.URLs(), ","), clusterConfig)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}
