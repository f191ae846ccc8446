package natsbroker_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/brokertest"
	"github.com/dtxhq/dtx/broker/natsbroker"
)

// testConfig retries fast so that the suite's failing handlers cost little.
var testConfig = natsbroker.Config{RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 500 * time.Millisecond, PollWait: 200 * time.Millisecond}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), brokertest.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func MustOpenEmbedded(t *testing.T, dir string) *natsbroker.Broker {
	t.Helper()
	b, err := natsbroker.OpenEmbedded(ctxT(t), dir, testConfig)
	require.NoError(t, err)
	return b
}

func TestEmbedded_Conformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) func(t *testing.T) broker.Broker {
		dir := t.TempDir()
		return func(t *testing.T) broker.Broker { return MustOpenEmbedded(t, dir) }
	})
}

// MustStartServer runs a stand-alone JetStream server on a random loopback
// port, as a separate server the broker reaches by URL only.
func MustStartServer(t *testing.T) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true,
	})
	require.NoError(t, err)
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	require.True(t, srv.ReadyForConnections(10*time.Second), "server ready")
	return srv
}

func TestExternal_Conformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) func(t *testing.T) broker.Broker {
		url := MustStartServer(t).ClientURL()
		require.True(t, strings.HasPrefix(url, "nats://127.0.0.1:"), url)
		return func(t *testing.T) broker.Broker {
			b, err := natsbroker.Connect(ctxT(t), url, testConfig)
			require.NoError(t, err)
			return b
		}
	})
}

func TestEmbedded_Listen(t *testing.T) {
	b, err := natsbroker.OpenEmbedded(ctxT(t), t.TempDir(), natsbroker.Config{Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	defer b.Close()
	url := b.ClientURL()
	require.True(t, strings.HasPrefix(url, "nats://127.0.0.1:"), url)

	// A second broker reaches the embedded server over TCP.
	c, err := natsbroker.Connect(ctxT(t), url, natsbroker.Config{})
	require.NoError(t, err)
	defer c.Close()
	got := make(chan broker.Delivery, 1)
	s, err := b.Subscribe(ctxT(t), "listen", "g", func(_ context.Context, d broker.Delivery) error {
		got <- d
		return nil
	})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, c.Publish(ctxT(t), broker.Message{ID: "1", Topic: "listen", Key: "k", Payload: []byte("x")}))
	select {
	case d := <-got:
		require.Equal(t, "1", d.ID)
	case <-time.After(brokertest.Timeout):
		t.Fatal("no delivery")
	}
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name string
		cfg  natsbroker.Config
		ok   bool
	}{
		{"zero", natsbroker.Config{}, true},
		{"stream with dot", natsbroker.Config{Stream: "a.b"}, false},
		{"prefix wildcard", natsbroker.Config{SubjectPrefix: "dtx.*"}, false},
		{"prefix empty token", natsbroker.Config{SubjectPrefix: "dtx..x"}, false},
		{"negative partitions", natsbroker.Config{Partitions: -1}, false},
		{"short ack wait", natsbroker.Config{AckWait: time.Millisecond}, false},
		{"negative poll wait", natsbroker.Config{PollWait: -time.Second}, false},
		{"negative request timeout", natsbroker.Config{RequestTimeout: -time.Second}, false},
		{"replicas 0 means 1", natsbroker.Config{Replicas: 0}, true},
		{"negative replicas", natsbroker.Config{Replicas: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := natsbroker.OpenEmbedded(ctxT(t), t.TempDir(), tc.cfg)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
		})
	}
}

func TestBroker_PublishRejects(t *testing.T) {
	b := MustOpenEmbedded(t, t.TempDir())
	defer b.Close()
	ctx := ctxT(t)
	for name, m := range map[string]broker.Message{
		"wildcard topic":   {ID: "1", Topic: "a.*"},
		"empty token":      {ID: "1", Topic: "a..b"},
		"reserved header":  {ID: "1", Topic: "a", Headers: map[string]string{"Nats-Msg-Id": "x"}},
		"key header":       {ID: "1", Topic: "a", Headers: map[string]string{"dtx-key": "x"}},
		"line break value": {ID: "1", Topic: "a", Headers: map[string]string{"X": "a\nb"}},
		"line break key":   {ID: "1", Topic: "a", Key: "a\r\nb"},
		"colon in name":    {ID: "1", Topic: "a", Headers: map[string]string{"a:b": "x"}},
	} {
		require.Error(t, b.Publish(ctx, m), name)
	}
}

// TestEmbedded_SurvivesKill publishes from a child process that is then
// killed with SIGKILL, and checks that a broker reopened on the same
// directory delivers every acknowledged message.
func TestEmbedded_SurvivesKill(t *testing.T) {
	if dir := os.Getenv("DTX_NATSBROKER_CHILD_DIR"); dir != "" {
		child(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestEmbedded_SurvivesKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DTX_NATSBROKER_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case line := <-lines:
		require.Equal(t, "published", line)
	case <-time.After(brokertest.Timeout):
		t.Fatal("child did not publish in time")
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	killed = true
	require.Error(t, cmd.Wait(), "child killed")

	b := MustOpenEmbedded(t, dir)
	defer b.Close()
	got := make(chan string, 200)
	s, err := b.Subscribe(ctxT(t), "kill", "g", func(_ context.Context, d broker.Delivery) error {
		got <- d.ID
		return nil
	})
	require.NoError(t, err)
	defer s.Close()
	for i := range childMessages {
		select {
		case id := <-got:
			require.Equal(t, fmt.Sprint(i), id)
		case <-time.After(brokertest.Timeout):
			t.Fatalf("message %d missing after the kill", i)
		}
	}
}

const childMessages = 100

// child publishes, reports, and waits to be killed.
func child(dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), brokertest.Timeout)
	defer cancel()
	b, err := natsbroker.OpenEmbedded(ctx, dir, testConfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := range childMessages {
		if err := b.Publish(ctx, broker.Message{ID: fmt.Sprint(i), Topic: "kill", Key: "k", Payload: []byte("x")}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	fmt.Println("published")
	<-ctx.Done() // killed long before
	os.Exit(3)
}

func BenchmarkEmbedded(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), brokertest.Timeout)
	defer cancel()
	br, err := natsbroker.OpenEmbedded(ctx, b.TempDir(), natsbroker.Config{})
	require.NoError(b, err)
	defer br.Close()
	brokertest.Benchmark(b, br)
}

// TestClose_StrandsNothing closes members again and again while messages
// flow. With an AckWait of an hour, a message left delivered to a closed
// member would hold back its partition past the test's timeout, so all
// messages arriving at the last member proves that Close hands back
// whatever reached a member it did not handle.
func TestClose_StrandsNothing(t *testing.T) {
	cfg := testConfig
	cfg.AckWait = time.Hour
	cfg.Partitions = 4
	b, err := natsbroker.OpenEmbedded(ctxT(t), t.TempDir(), cfg)
	require.NoError(t, err)
	defer b.Close()
	const n = 200
	msgs := make([]broker.Message, n)
	for i := range msgs {
		msgs[i] = broker.Message{ID: fmt.Sprint(i), Topic: "churn", Payload: []byte("x")}
	}
	require.NoError(t, b.Publish(ctxT(t), msgs...))

	seen := make(chan string, 10*n)
	handler := func(_ context.Context, d broker.Delivery) error {
		seen <- d.ID
		return nil
	}
	got := map[string]bool{}
	next := func() {
		t.Helper()
		select {
		case id := <-seen:
			got[id] = true
		case <-time.After(brokertest.Timeout):
			t.Fatalf("%d of %d messages handled; the rest are stranded", len(got), n)
		}
	}
	// Members come and go, each closed right after it handled a message,
	// while its other partitions' requests may be delivering.
	for range 10 {
		s, err := b.Subscribe(ctxT(t), "churn", "g", handler)
		require.NoError(t, err)
		next()
		require.NoError(t, s.Close())
	}
	s, err := b.Subscribe(ctxT(t), "churn", "g", handler)
	require.NoError(t, err)
	defer s.Close()
	for len(got) < n {
		next()
	}
}
