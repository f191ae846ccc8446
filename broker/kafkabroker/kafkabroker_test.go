package kafkabroker_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/brokertest"
	"github.com/dtxhq/dtx/broker/kafkabroker"
)

// testConfig retries fast, and heartbeats often so that rebalances (a
// second member joining) finish quickly.
var testConfig = kafkabroker.Config{
	RetryDelay:     20 * time.Millisecond,
	MaxRetryDelay:  500 * time.Millisecond,
	CommitInterval: 200 * time.Millisecond,
	ClientOptions:  []kgo.Opt{kgo.HeartbeatInterval(200 * time.Millisecond)},
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), brokertest.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// MustCluster starts franz-go's in-process Kafka on a random loopback port.
func MustCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func MustConnect(t *testing.T, addrs []string) *kafkabroker.Broker {
	t.Helper()
	b, err := kafkabroker.Connect(ctxT(t), addrs, testConfig)
	require.NoError(t, err)
	return b
}

func TestKfake_Conformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) func(t *testing.T) broker.Broker {
		addrs := MustCluster(t).ListenAddrs()
		return func(t *testing.T) broker.Broker { return MustConnect(t, addrs) }
	})
}

// TestKfake_ClusterRestart stops the whole cluster (it persists to a
// directory) between publishing and consuming.
func TestKfake_ClusterRestart(t *testing.T) {
	dir := t.TempDir()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir), kfake.SyncWrites())
	require.NoError(t, err)
	b := MustConnect(t, c.ListenAddrs())
	msgs := []broker.Message{
		{ID: "1", Topic: "restart", Key: "k", Payload: []byte("a")},
		{ID: "2", Topic: "restart", Key: "k", Payload: []byte("b")},
	}
	require.NoError(t, b.Publish(ctxT(t), msgs...))
	require.NoError(t, b.Close())
	c.Close()

	c2 := MustCluster(t, kfake.DataDir(dir))
	b2 := MustConnect(t, c2.ListenAddrs())
	defer b2.Close()
	got := make(chan broker.Delivery, 4)
	s, err := b2.Subscribe(ctxT(t), "restart", "g", func(_ context.Context, d broker.Delivery) error {
		got <- d
		return nil
	})
	require.NoError(t, err)
	defer s.Close()
	for _, m := range msgs {
		select {
		case d := <-got:
			require.Equal(t, m.ID, d.ID)
			require.Equal(t, m.Payload, d.Payload)
		case <-time.After(brokertest.Timeout):
			t.Fatalf("message %s missing after the restart", m.ID)
		}
	}
}

func TestBroker_PublishRejects(t *testing.T) {
	b := MustConnect(t, MustCluster(t).ListenAddrs())
	defer b.Close()
	for name, m := range map[string]broker.Message{
		"bad topic":       {ID: "1", Topic: "a b"},
		"reserved header": {ID: "1", Topic: "a", Headers: map[string]string{"Dtx-Message-Id": "x"}},
	} {
		require.Error(t, b.Publish(ctxT(t), m), name)
	}
}

// requireKcat returns the path of kcat; without it the test is skipped,
// or fails when DTX_REQUIRE_KCAT=1 (CI).
func requireKcat(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("DTX_REQUIRE_KCAT") == "1" {
			t.Fatalf("kcat not found (DTX_REQUIRE_KCAT=1): %v; install it with apt-get install kcat", err)
		}
		t.Skip("kcat not found; install it with apt-get install kcat (set DTX_REQUIRE_KCAT=1 to fail instead)")
	}
	return path
}

func kcat(t *testing.T, path, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctxT(t), path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "kcat %v: %s", args, stderr.String())
	return string(out)
}

// TestKcat_Interop exchanges messages with kcat (librdkafka), a client
// independent of franz-go, in both directions.
func TestKcat_Interop(t *testing.T) {
	path := requireKcat(t)
	addr := MustCluster(t).ListenAddrs()[0]
	b := MustConnect(t, []string{addr})
	defer b.Close()

	t.Run("KcatToBroker", func(t *testing.T) {
		got := make(chan broker.Delivery, 4)
		s, err := b.Subscribe(ctxT(t), "from-kcat", "g", func(_ context.Context, d broker.Delivery) error {
			got <- d
			return nil
		})
		require.NoError(t, err) // also creates the topic
		defer s.Close()

		kcat(t, path, "hello from kcat\n", "-b", addr, "-t", "from-kcat", "-P", "-k", "order-7",
			"-H", "Dtx-Message-Id=kcat-1", "-H", broker.HeaderType+"=OrderCreated")
		kcat(t, path, "no id\n", "-b", addr, "-t", "from-kcat", "-P", "-k", "order-7")
		select {
		case d := <-got:
			require.Equal(t, "kcat-1", d.ID)
			require.Equal(t, "from-kcat", d.Topic)
			require.Equal(t, "order-7", d.Key)
			require.Equal(t, map[string]string{broker.HeaderType: "OrderCreated"}, d.Headers)
			require.Equal(t, "hello from kcat", string(d.Payload))
			require.Equal(t, 1, d.Attempt)
		case <-time.After(brokertest.Timeout):
			t.Fatal("no delivery of the kcat message")
		}
		select {
		case d := <-got:
			require.Regexp(t, regexp.MustCompile(`^from-kcat/\d+/1$`), d.ID, "ID of a record without one")
			require.Equal(t, "no id", string(d.Payload))
		case <-time.After(brokertest.Timeout):
			t.Fatal("no delivery of the second kcat message")
		}
	})

	t.Run("BrokerToKcat", func(t *testing.T) {
		require.NoError(t, b.Publish(ctxT(t), broker.Message{
			ID: "b-1", Topic: "to-kcat", Key: "k-9",
			Headers: map[string]string{broker.HeaderCorrelationID: "c-1"},
			Payload: []byte("from dtx"),
		}))
		out := kcat(t, path, "", "-b", addr, "-t", "to-kcat", "-C", "-e", "-q", "-o", "beginning",
			"-f", `%k|%s|%h\n`)
		require.Equal(t, "k-9|from dtx|Dtx-Message-Id=b-1,"+broker.HeaderCorrelationID+"=c-1\n", out)
	})
}

func BenchmarkKfake(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(b, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), brokertest.Timeout)
	defer cancel()
	br, err := kafkabroker.Connect(ctx, c.ListenAddrs(), kafkabroker.Config{})
	require.NoError(b, err)
	defer br.Close()
	brokertest.Benchmark(b, br)
}

// TestConfig_SessionTimeout: a short session timeout (for a killed
// member's partitions to move on soon) is accepted by the cluster, and one
// below a second is refused before connecting.
func TestConfig_SessionTimeout(t *testing.T) {
	addrs := MustCluster(t).ListenAddrs()
	_, err := kafkabroker.Connect(ctxT(t), addrs, kafkabroker.Config{SessionTimeout: 500 * time.Millisecond})
	require.ErrorContains(t, err, "session timeout")

	cfg := testConfig
	cfg.SessionTimeout = 6 * time.Second
	b, err := kafkabroker.Connect(ctxT(t), addrs, cfg)
	require.NoError(t, err)
	defer b.Close()
	got := make(chan broker.Delivery, 1)
	s, err := b.Subscribe(ctxT(t), "session", "g", func(_ context.Context, d broker.Delivery) error {
		got <- d
		return nil
	})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, b.Publish(ctxT(t), broker.Message{ID: "1", Topic: "session", Key: "k"}))
	select {
	case d := <-got:
		require.Equal(t, "1", d.ID)
	case <-time.After(brokertest.Timeout):
		t.Fatal("no delivery with a 6s session timeout")
	}
}
