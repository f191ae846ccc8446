package natscluster_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/natscluster"
)

func TestMain(m *testing.M) {
	natscluster.Main() // a node started by a test runs here and exits
	os.Exit(m.Run())
}

// TestCluster starts three nodes, keeps an R3 stream through the kill and
// restart of each node in turn, and checks that every acknowledged message
// is on the stream at the end, with every replica current.
func TestCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := natscluster.Start(ctx, natscluster.Config{Dir: t.TempDir()})
	require.NoError(t, err)
	defer c.Close()
	require.Len(t, c.URLs(), 3)
	for _, u := range c.URLs() {
		require.True(t, strings.HasPrefix(u, "nats://127.0.0.1:"), u)
	}
	require.NoError(t, c.WaitHealthy(ctx))

	nc, err := nats.Connect(strings.Join(c.URLs(), ","), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3, Storage: jetstream.FileStorage})
	require.NoError(t, err)

	acked := 0
	publish := func(n int) {
		t.Helper()
		for range n {
			// A publish may fail or go unanswered while a stream leader
			// is elected; the ID makes a retry harmless.
			id := fmt.Sprint(acked)
			for {
				actx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := js.Publish(actx, "t.x", []byte(id), jetstream.WithMsgID(id))
				cancel()
				if err == nil {
					break
				}
				require.NoError(t, ctx.Err(), "publish %s: %v", id, err)
			}
			acked++
		}
	}
	publish(10)
	for i := range c.Size() {
		require.NoError(t, c.Kill(i))
		require.False(t, c.Alive(i))
		publish(10) // two of three nodes still form a quorum
		require.NoError(t, c.Restart(ctx, i))
		require.True(t, c.Alive(i))
		require.NoError(t, c.WaitHealthy(ctx))
	}
	s, err := js.Stream(ctx, "T")
	require.NoError(t, err)
	// The stream info's view of the replicas lags /healthz a little.
	for {
		info, err := s.Info(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(acked), info.State.Msgs)
		require.Len(t, info.Cluster.Replicas, 2)
		current := 0
		for _, r := range info.Cluster.Replicas {
			if r.Current {
				current++
			}
		}
		if current == 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("replicas not current: %+v", info.Cluster.Replicas)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestStart_BadConfig(t *testing.T) {
	_, err := natscluster.Start(context.Background(), natscluster.Config{Nodes: 9})
	require.ErrorContains(t, err, "9 nodes")
	c, err := natscluster.Start(context.Background(), natscluster.Config{Nodes: 1, Dir: t.TempDir()})
	require.NoError(t, err)
	defer c.Close()
	require.ErrorContains(t, c.Kill(5), "no node 5")
	require.ErrorContains(t, c.Restart(context.Background(), 0), "running")
}

// TestRestart_PortTaken: a node whose client port was taken while it was
// down comes back on new ports, and URL names the new one.
func TestRestart_PortTaken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := natscluster.Start(ctx, natscluster.Config{Nodes: 1, Dir: t.TempDir()})
	require.NoError(t, err)
	defer c.Close()
	old := c.URL(0)
	require.NoError(t, c.Kill(0))
	ln, err := net.Listen("tcp", strings.TrimPrefix(old, "nats://"))
	require.NoError(t, err)
	defer ln.Close()
	require.NoError(t, c.Restart(ctx, 0))
	require.NotEqual(t, old, c.URL(0))
	require.NoError(t, c.WaitHealthy(ctx))
	nc, err := nats.Connect(c.URL(0))
	require.NoError(t, err)
	nc.Close()
}
