package brokertransport_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/transport/brokertransport"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// callTimeout is generous for calls that are answered, so a slow machine
// does not turn them into timeouts.
const callTimeout = 10 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openBroker starts an embedded NATS JetStream in a temporary directory.
func openBroker(t *testing.T) *natsbroker.Broker {
	t.Helper()
	b, err := natsbroker.OpenEmbedded(ctxT(t), t.TempDir(), natsbroker.Config{
		RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

func newTransport(t *testing.T, b broker.Broker, cfg brokertransport.Config) *brokertransport.Transport {
	t.Helper()
	if cfg.Owner == "" {
		cfg.Owner = "coord-test"
	}
	tr, err := brokertransport.New(ctxT(t), b, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	return tr
}

func serve(t *testing.T, b broker.Broker, topic string, fn participant.BranchFunc) {
	t.Helper()
	sub, err := brokertransport.Serve(ctxT(t), b, topic, "svc", fn)
	require.NoError(t, err)
	t.Cleanup(func() { sub.Close() })
}

// published reports each command of the given attempt that reaches topic,
// seen by a group of its own that never replies: the signal that a call
// has published its command and waits for the reply.
func published(t *testing.T, b broker.Broker, topic string, attempt int) <-chan struct{} {
	t.Helper()
	seen := make(chan struct{}, 16)
	sub, err := b.Subscribe(ctxT(t), topic, "watch", func(_ context.Context, d broker.Delivery) error {
		if d.Headers[dtx.HeaderAttempt] == strconv.Itoa(attempt) {
			select {
			case seen <- struct{}{}:
			default:
			}
		}
		return nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { sub.Close() })
	return seen
}

func waitSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(callTimeout):
		t.Fatalf("no signal: %s", what)
	}
}

func call(gid, topic string, attempt int, timeout time.Duration) dtx.Call {
	return dtx.Call{GID: gid, Branch: 2, Op: dtx.OpAction, URL: brokertransport.URL(topic), Payload: []byte(`{"n":7}`), Attempt: attempt, Timeout: timeout}
}

func TestCall_Success(t *testing.T) {
	t.Parallel()
	b := openBroker(t)
	tr := newTransport(t, b, brokertransport.Config{})
	type seen struct {
		br   participant.Branch
		body string
	}
	got := make(chan seen, 1)
	serve(t, b, "inventory-deduct", func(_ context.Context, br participant.Branch, body []byte) (any, error) {
		got <- seen{br, string(body)}
		return map[string]any{"deducted": 3}, nil
	})

	out := tr.Call(ctxT(t), call("order-1", "inventory-deduct", 1, callTimeout))
	require.Equal(t, dtx.Success, out.Class, "err: %v", out.Err)
	require.JSONEq(t, `{"deducted":3}`, string(out.Body))
	s := <-got
	require.Equal(t, participant.Branch{GID: "order-1", Index: 2, Op: dtx.OpAction}, s.br)
	require.Equal(t, `{"n":7}`, s.body)
	require.Equal(t, brokertransport.Stats{Calls: 1, Replies: 1}, tr.Stats())

	// An empty payload travels as an empty JSON object.
	c := call("order-2", "inventory-deduct", 1, callTimeout)
	c.Payload = nil
	out = tr.Call(ctxT(t), c)
	require.Equal(t, dtx.Success, out.Class, "err: %v", out.Err)
	require.Equal(t, "{}", (<-got).body)
}

func TestCall_CommandMessage(t *testing.T) {
	t.Parallel()
	b := openBroker(t)
	tr := newTransport(t, b, brokertransport.Config{Owner: "Coord.One"})
	require.Regexp(t, `^dtx-replies-coord-one-[0-9a-f]{8}$`, tr.ReplyTopic())
	cmds := make(chan broker.Delivery, 4)
	sub, err := b.Subscribe(ctxT(t), "raw-cmd", "raw", func(_ context.Context, d broker.Delivery) error {
		cmds <- d
		return b.Publish(context.Background(), broker.Message{
			ID: d.ID + "/reply", Topic: d.Headers[brokertransport.HeaderReplyTo], Key: d.Key,
			Headers: map[string]string{broker.HeaderCausationID: d.ID, brokertransport.HeaderStatus: "201"},
			Payload: []byte(`{"ok":true}`),
		})
	})
	require.NoError(t, err)
	defer sub.Close()

	c := dtx.Call{GID: "order-9", Branch: 1, Op: dtx.OpCompensate, URL: "broker://raw-cmd", Payload: []byte(`{"a":1}`), Attempt: 3, Timeout: callTimeout}
	out := tr.Call(ctxT(t), c)
	require.Equal(t, dtx.Success, out.Class, "err: %v", out.Err)
	out2 := tr.Call(ctxT(t), c) // the same attempt again: a new message
	require.Equal(t, dtx.Success, out2.Class, "err: %v", out2.Err)

	d1, d2 := <-cmds, <-cmds
	require.Regexp(t, `^order-9/1/compensate/3/[0-9a-f]{12}-\d+$`, d1.ID)
	require.NotEqual(t, d1.ID, d2.ID, "every call is its own message")
	require.Equal(t, "order-9", d1.Key, "keyed by gid: one transaction's commands stay in order")
	require.Equal(t, `{"a":1}`, string(d1.Payload))
	deadline, err := time.Parse(time.RFC3339Nano, d1.Headers[brokertransport.HeaderDeadline])
	require.NoError(t, err, "the deadline is RFC 3339")
	require.WithinDuration(t, time.Now().Add(callTimeout), deadline, callTimeout, "the deadline is the call's timeout from its start")
	require.Greater(t, time.Until(deadline), callTimeout/2)
	delete(d1.Headers, brokertransport.HeaderDeadline)
	require.Equal(t, map[string]string{
		dtx.HeaderGID: "order-9", dtx.HeaderBranch: "1", dtx.HeaderOp: "compensate", dtx.HeaderAttempt: "3",
		brokertransport.HeaderReplyTo: tr.ReplyTopic(), broker.HeaderCorrelationID: "order-9", broker.HeaderType: brokertransport.TypeCommand,
	}, d1.Headers)
}

func TestCall_ErrorsMapLikeHTTP(t *testing.T) {
	t.Parallel()
	b := openBroker(t)
	tr := newTransport(t, b, brokertransport.Config{})
	serve(t, b, "payment-charge", func(_ context.Context, br participant.Branch, body []byte) (any, error) {
		switch br.GID {
		case "declined":
			return nil, dtx.Permanentf("card declined")
		case "flaky":
			return nil, errors.New("database is restarting")
		case "panics":
			panic("boom")
		}
		return nil, nil
	})

	out := tr.Call(ctxT(t), call("declined", "payment-charge", 1, callTimeout))
	require.Equal(t, dtx.Failure, out.Class)
	var se *httptransport.StatusError
	require.ErrorAs(t, out.Err, &se)
	require.Equal(t, 409, se.Code)
	require.Equal(t, "card declined", se.Detail)

	out = tr.Call(ctxT(t), call("flaky", "payment-charge", 1, callTimeout))
	require.Equal(t, dtx.Unknown, out.Class)
	require.ErrorAs(t, out.Err, &se)
	require.Equal(t, 500, se.Code)
	require.Equal(t, "database is restarting", se.Detail)

	out = tr.Call(ctxT(t), call("panics", "payment-charge", 1, callTimeout))
	require.Equal(t, dtx.Unknown, out.Class)
	require.ErrorAs(t, out.Err, &se)
	require.Equal(t, 500, se.Code)
	require.Contains(t, se.Detail, "boom")

	out = tr.Call(ctxT(t), call("fine", "payment-charge", 1, callTimeout))
	require.Equal(t, dtx.Success, out.Class, "err: %v", out.Err)
	require.JSONEq(t, `{}`, string(out.Body))
}

// TestCall_StatusClasses answers with raw statuses and checks that each is
// classified as httptransport.Classify would.
func TestCall_StatusClasses(t *testing.T) {
	t.Parallel()
	b := openBroker(t)
	tr := newTransport(t, b, brokertransport.Config{})
	sub, err := b.Subscribe(ctxT(t), "statuses", "raw", func(_ context.Context, d broker.Delivery) error {
		return b.Publish(context.Background(), broker.Message{
			ID: d.ID + "/reply", Topic: d.Headers[brokertransport.HeaderReplyTo], Key: d.Key,
			Headers: map[string]string{broker.HeaderCausationID: d.ID, brokertransport.HeaderStatus: d.Headers[dtx.HeaderGID]},
			Payload: []byte(`{"title":"T","detail":"why"}`),
		})
	})
	require.NoError(t, err)
	defer sub.Close()
	for _, tt := range []struct {
		status string
		want   dtx.Class
	}{
		{"200", dtx.Success}, {"204", dtx.Success}, {"400", dtx.Failure}, {"409", dtx.Failure}, {"422", dtx.Failure},
		{"408", dtx.Unknown}, {"425", dtx.Unknown}, {"429", dtx.Unknown}, {"500", dtx.Unknown}, {"503", dtx.Unknown},
		{"301", dtx.Unknown}, {"abc", dtx.Unknown}, {"0", dtx.Unknown},
	} {
		out := tr.Call(ctxT(t), call(tt.status, "statuses", 1, callTimeout))
		require.Equal(t, tt.want, out.Class, "status %s: %v", tt.status, out.Err)
		if tt.want != dtx.Success {
			require.Error(t, out.Err)
		}
		if tt.status == "409" {
			require.EqualError(t, out.Err, "HTTP 409: why")
		}
	}
	require.Zero(t, tr.Stats().Timeouts)
}

func TestCall_NoReplyIsUnknown(t *testing.T) {
	t.Parallel()
	b := openBroker(t)
	tr := newTransport(t, b, brokertransport.Config{})
	// Nobody serves "nobody-home".
	start := time.Now()
	out := tr.Call(ctxT(t), call("order-1", "nobody-home", 1, 300*time.Millisecond))
	took := time.Since(start)
	require.Equal(t, dtx.Unknown, out.Class)
	require.ErrorContains(t, out.Err, "no reply from nobody-home within 300ms")
	require.GreaterOrEqual(t, took, 300*time.Millisecond)
	require.Less(t, took, 5*time.Second)
	require.Equal(t, int64(1), tr.Stats().Timeouts)

	// The caller's context ends the wait too.
	ctx, cancel := context.WithCancel(ctxT(t))
	sent := published(t, b, "nobody-home", 2)
	go func() {
		select {
		case <-sent: // the call waits for its reply
		case <-ctx.Done():
		}
		cancel()
	}()
	out = tr.Call(ctx, call("order-1", "nobody-home", 2, callTimeout))
	require.Equal(t, dtx.Unknown, out.Class)
	require.ErrorIs(t, out.Err, context.Canceled)
}

// TestCall_LateReplyDropped: a reply that comes after its call timed out
// is dropped, and the retry gets its own reply.
func TestCall_LateReplyDropped(t *testing.T) {
	t.Parallel()
	b := openBroker(t)
	tr := newTransport(t, b, brokertransport.Config{})
	release := make(chan struct{})
	// A raw command handler, to tell attempts apart (participant.Branch
	// does not carry the attempt).
	attempts := make(chan string, 4)
	sub, err := b.Subscribe(ctxT(t), "slow-raw", "raw", func(ctx context.Context, d broker.Delivery) error {
		attempt := d.Headers[dtx.HeaderAttempt]
		attempts <- attempt
		status := "200"
		if attempt == "1" {
			<-release // answered only after the caller gave up
			status = "409"
		}
		return b.Publish(ctx, broker.Message{
			ID: d.ID + "/reply", Topic: d.Headers[brokertransport.HeaderReplyTo], Key: d.Key,
			Headers: map[string]string{broker.HeaderCausationID: d.ID, brokertransport.HeaderStatus: status},
			Payload: []byte(`{"attempt":` + attempt + `}`),
		})
	})
	require.NoError(t, err)
	defer sub.Close()

	out := tr.Call(ctxT(t), call("order-5", "slow-raw", 1, 300*time.Millisecond))
	require.Equal(t, dtx.Unknown, out.Class)
	require.Equal(t, "1", <-attempts)
	close(release)
	require.Eventually(t, func() bool { return tr.Stats().LateReplies == 1 }, 10*time.Second, 10*time.Millisecond,
		"the late 409 is dropped")
	out = tr.Call(ctxT(t), call("order-5", "slow-raw", 2, callTimeout))
	require.Equal(t, dtx.Success, out.Class, "the retry gets its own answer, not the late one: %v", out.Err)
	require.JSONEq(t, `{"attempt":2}`, string(out.Body))
	require.Equal(t, brokertransport.Stats{Calls: 2, Replies: 1, Timeouts: 1, LateReplies: 1}, tr.Stats())
}

// TestCall_RedeliveredCommand: a command delivered again (its
// acknowledgement lost) runs the handler again and replies again; the
// caller takes the first reply and drops the second.
func TestCall_RedeliveredCommand(t *testing.T) {
	t.Parallel()
	b := openBroker(t)
	tr := newTransport(t, b, brokertransport.Config{})
	var mu sync.Mutex
	runs := 0
	h := brokertransport.CommandHandler(b, func(context.Context, participant.Branch, []byte) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		runs++
		return map[string]int{"run": runs}, nil
	})
	var deliveries sync.Map
	sub, err := b.Subscribe(ctxT(t), "dup", "svc", func(ctx context.Context, d broker.Delivery) error {
		if err := h(ctx, d); err != nil {
			return err
		}
		if _, again := deliveries.LoadOrStore(d.ID, true); !again {
			return errors.New("acknowledgement lost") // delivered again
		}
		return nil
	})
	require.NoError(t, err)
	defer sub.Close()

	out := tr.Call(ctxT(t), call("order-3", "dup", 1, callTimeout))
	require.Equal(t, dtx.Success, out.Class, "err: %v", out.Err)
	require.JSONEq(t, `{"run":1}`, string(out.Body))
	require.Eventually(t, func() bool { return tr.Stats().LateReplies == 1 }, 10*time.Second, 10*time.Millisecond)
	mu.Lock()
	require.Equal(t, 2, runs)
	mu.Unlock()
}

func TestCall_Concurrent(t *testing.T) {
	t.Parallel()
	b := openBroker(t)
	tr := newTransport(t, b, brokertransport.Config{})
	for _, topic := range []string{"svc-a", "svc-b"} {
		serve(t, b, topic, func(_ context.Context, br participant.Branch, body []byte) (any, error) {
			var p struct{ N int }
			if err := json.Unmarshal(body, &p); err != nil {
				return nil, dtx.Permanent(err)
			}
			if p.N%3 == 0 {
				return nil, dtx.Permanentf("refused %s/%d", br.GID, p.N)
			}
			return map[string]any{"gid": br.GID, "n": p.N, "branch": br.Index, "topic": topic}, nil
		})
	}
	const n = 120
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			topic := []string{"svc-a", "svc-b"}[i%2]
			gid := fmt.Sprintf("order-%d", i%17) // shared gids: same key, ordered
			c := dtx.Call{GID: gid, Branch: i, Op: dtx.OpAction, URL: brokertransport.URL(topic), Payload: fmt.Appendf(nil, `{"n":%d}`, i), Attempt: 1, Timeout: callTimeout}
			out := tr.Call(ctxT(t), c)
			if i%3 == 0 {
				if out.Class != dtx.Failure || !strings.Contains(out.Reason(), fmt.Sprintf("refused %s/%d", gid, i)) {
					errs <- fmt.Errorf("call %d: want its own failure, got %v %v", i, out.Class, out.Err)
				}
				return
			}
			want := fmt.Sprintf(`{"gid":%q,"n":%d,"branch":%d,"topic":%q}`, gid, i, i, topic)
			if out.Class != dtx.Success || !jsonEq(want, string(out.Body)) {
				errs <- fmt.Errorf("call %d: want %s, got %v %s %v", i, want, out.Class, out.Body, out.Err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Equal(t, brokertransport.Stats{Calls: n, Replies: n}, tr.Stats())
}

func jsonEq(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// TestCall_NotBrokerURL: a URL that is not broker://<topic> is not
// published (the scheme table routes other schemes elsewhere) and is an
// Unknown outcome.
func TestCall_NotBrokerURL(t *testing.T) {
	t.Parallel()
	b := openBroker(t)
	tr := newTransport(t, b, brokertransport.Config{Owner: "plain"})
	out := tr.Call(ctxT(t), dtx.Call{GID: "g", Op: dtx.OpAction, URL: "http://127.0.0.1:1/x", Attempt: 1, Timeout: callTimeout})
	require.Equal(t, dtx.Unknown, out.Class)
	require.ErrorContains(t, out.Err, "is not broker://<topic>")
	// A malformed broker URL is unknown too (it cannot pass validation).
	out = tr.Call(ctxT(t), dtx.Call{GID: "g", Op: dtx.OpAction, URL: "broker://Bad.Topic", Attempt: 1, Timeout: callTimeout})
	require.Equal(t, dtx.Unknown, out.Class)
	require.Zero(t, tr.Stats().Calls)
}

// TestCheckURL: the broker:// URL rule the coordinator applies to step
// URLs at submission.
func TestCheckURL(t *testing.T) {
	t.Parallel()
	var tr *brokertransport.Transport // CheckURL needs no broker
	for _, ok := range []string{"broker://orders-saga-cancel", "broker://inventory-deduct", "broker://x0-9", brokertransport.URL("a")} {
		require.NoError(t, tr.CheckURL(ok), ok)
	}
	for raw, want := range map[string]string{
		"broker://Inventory":         "the topic must be",
		"broker://inventory/deduct":  "the topic must be",
		"broker://inventory.deduct":  "the topic must be",
		"broker://inventory?x=1":     "the topic must be",
		"broker://":                  "the topic must be",
		"broker:inventory":           "is not broker://<topic>",
		"BROKER://inventory":         "is not broker://<topic>",
		"http://svc.local/inventory": "is not broker://<topic>",
	} {
		require.ErrorContains(t, tr.CheckURL(raw), want, raw)
	}
	topic, err := brokertransport.ParseURL("broker://inventory-deduct")
	require.NoError(t, err)
	require.Equal(t, "inventory-deduct", topic)
}

func TestClose_EndsWaitingCalls(t *testing.T) {
	t.Parallel()
	b := openBroker(t)
	tr, err := brokertransport.New(ctxT(t), b, brokertransport.Config{Owner: "closing"})
	require.NoError(t, err)
	sent := published(t, b, "nobody-home", 1)
	done := make(chan dtx.Outcome, 1)
	go func() { done <- tr.Call(ctxT(t), call("g", "nobody-home", 1, time.Minute)) }()
	waitSignal(t, sent, "command published") // the call waits for its reply
	require.NoError(t, tr.Close())
	select {
	case out := <-done:
		require.Equal(t, dtx.Unknown, out.Class)
		require.ErrorIs(t, out.Err, broker.ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting call did not end on Close")
	}
	out := tr.Call(ctxT(t), call("g", "nobody-home", 2, time.Minute))
	require.ErrorIs(t, out.Err, broker.ErrClosed)
	require.NoError(t, tr.Close(), "idempotent")
}

func TestNew_Validates(t *testing.T) {
	t.Parallel()
	b := openBroker(t)
	_, err := brokertransport.New(ctxT(t), b, brokertransport.Config{})
	require.ErrorContains(t, err, "Owner is required")
	_, err = brokertransport.New(ctxT(t), b, brokertransport.Config{Owner: "x", ReplyTopic: "Bad.Topic"})
	require.ErrorContains(t, err, "reply topic")
	_, err = brokertransport.New(ctxT(t), nil, brokertransport.Config{Owner: "x"})
	require.Error(t, err)
}

func TestReplyTopicFor(t *testing.T) {
	t.Parallel()
	require.Equal(t, "dtx-replies-coord-1", brokertransport.ReplyTopicFor("coord-1"))
	a, b := brokertransport.ReplyTopicFor("host.a-1"), brokertransport.ReplyTopicFor("host_a-1")
	require.NotEqual(t, a, b, "owners that clean up alike stay apart")
	for _, owner := range []string{"host.a-1", "Host-12-ab", strings.Repeat("x", 300), "ü"} {
		topic := brokertransport.ReplyTopicFor(owner)
		require.NoError(t, brokertransport.CheckTopic(topic), owner)
		require.LessOrEqual(t, len(topic), 100)
	}
}
