// Package tracing checks the OpenTelemetry spans of dtx end to end: a saga
// submitted through the client under a caller's span, driven by the
// coordinator behind its HTTP API, calling participants served by the
// participant SDK; and an event that travels from an outbox through a broker
// to an inbox consumer.
package tracing

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// recorder is an in-memory exporter whose test can wait for a span by name.
type recorder struct {
	*tracetest.InMemoryExporter
	ended chan string
}

// newProvider returns a tracer provider that exports every span, at its
// end, to an in-memory exporter.
func newProvider(t *testing.T) (*sdktrace.TracerProvider, *recorder) {
	rec := &recorder{InMemoryExporter: tracetest.NewInMemoryExporter(), ended: make(chan string, 1000)}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(rec.InMemoryExporter), sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, rec
}

// The recorder is also a span processor that reports the name of every
// ended span.
func (r *recorder) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (r *recorder) OnEnd(s sdktrace.ReadOnlySpan)                   { r.ended <- s.Name() }
func (r *recorder) Shutdown(context.Context) error                  { return nil }
func (r *recorder) ForceFlush(context.Context) error                { return nil }

// waitFor waits until n spans named name have ended.
func (r *recorder) waitFor(t *testing.T, name string, n int) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for n > 0 {
		select {
		case got := <-r.ended:
			if got == name {
				n--
			}
		case <-timeout:
			t.Fatalf("span %q did not end; spans so far:\n%s", name, render(r.GetSpans()))
		}
	}
}

// attr returns the value of attribute key of s ("" if absent).
func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// render prints spans as an indented tree, children under their parent in
// start order, with the dtx attributes of each.
func render(spans tracetest.SpanStubs) string {
	children := map[trace.SpanID][]tracetest.SpanStub{}
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext.SpanID()] = true
	}
	var roots []tracetest.SpanStub
	for _, s := range spans {
		if p := s.Parent.SpanID(); ids[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	byStart := func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) }
	var b strings.Builder
	var walk func(s tracetest.SpanStub, depth int)
	walk = func(s tracetest.SpanStub, depth int) {
		fmt.Fprintf(&b, "%s%s (%s)", strings.Repeat("  ", depth), s.Name, s.SpanKind)
		for _, kv := range s.Attributes {
			if k := string(kv.Key); strings.HasPrefix(k, "dtx.") && k != dtx.AttrGID {
				fmt.Fprintf(&b, " %s=%s", strings.TrimPrefix(k, "dtx."), kv.Value.Emit())
			}
		}
		b.WriteString("\n")
		kids := children[s.SpanContext.SpanID()]
		slices.SortStableFunc(kids, byStart)
		for _, c := range kids {
			walk(c, depth+1)
		}
	}
	slices.SortStableFunc(roots, byStart)
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}

// TestSagaSpanTree submits a two-step saga under a caller's span: the first
// step succeeds, the second fails for good, so the saga compensates; the
// first step's compensation fails once (an unknown outcome) and succeeds on
// the retry. It checks the whole span tree: the transaction under the caller's
// span, one branch-call span per call under the transaction, each
// participant's server span under the branch call that reached it (the
// context crossed HTTP), with the attributes of each.
func TestSagaSpanTree(t *testing.T) {
	tp, rec := newProvider(t)

	var refunds atomic.Int32
	mux := http.NewServeMux()
	ok := func(context.Context, participant.Branch, []byte) (any, error) { return nil, nil }
	mux.Handle("/reserve", participant.Handler(ok, participant.WithTracerProvider(tp)))
	mux.Handle("/charge", participant.Handler(func(context.Context, participant.Branch, []byte) (any, error) {
		return nil, dtx.Permanentf("card declined")
	}, participant.WithTracerProvider(tp)))
	mux.Handle("/release", participant.Handler(func(context.Context, participant.Branch, []byte) (any, error) {
		if refunds.Add(1) == 1 {
			return nil, fmt.Errorf("stock service restarting")
		}
		return nil, nil
	}, participant.WithTracerProvider(tp)))
	mux.Handle("/refund", participant.Handler(ok, participant.WithTracerProvider(tp)))
	part := httptest.NewServer(mux)
	t.Cleanup(part.Close)

	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "dtx.db"), sqlstore.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	c, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{
		RetryBase: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond, TracerProvider: tp,
	})
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() { c.Close(context.Background()) })
	api := httptest.NewServer(server.New(c))
	t.Cleanup(api.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx, caller := tp.Tracer("shop").Start(ctx, "checkout")
	d, err := client.ForURL(api.URL, nil).SubmitSaga(ctx, saga.Spec{GID: "order-1", Steps: []saga.Step{
		{Name: "reserve", Action: part.URL + "/reserve", Compensate: part.URL + "/release"},
		{Name: "charge", Action: part.URL + "/charge", Compensate: part.URL + "/refund"},
	}}, true)
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, d.Status, "the charge failed: the saga compensated")
	caller.End()
	rec.waitFor(t, "dtx.transaction", 1)

	spans := rec.GetSpans()
	t.Logf("span tree of one saga:\n%s", render(spans))

	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
		require.Equal(t, caller.SpanContext().TraceID(), s.SpanContext.TraceID(), "%s: one trace, the caller's", s.Name)
	}
	named := func(name string) []tracetest.SpanStub {
		var out []tracetest.SpanStub
		for _, s := range spans {
			if s.Name == name {
				out = append(out, s)
			}
		}
		slices.SortStableFunc(out, func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
		return out
	}

	txs := named("dtx.transaction")
	require.Len(t, txs, 1)
	tx := txs[0]
	require.Equal(t, caller.SpanContext().SpanID(), tx.Parent.SpanID(), "the transaction is a child of the caller's span")
	require.Equal(t, trace.SpanKindInternal, tx.SpanKind)
	require.Equal(t, "order-1", attr(tx, dtx.AttrGID))
	require.Equal(t, "saga", attr(tx, dtx.AttrPattern))
	require.Equal(t, "failed", attr(tx, dtx.AttrStatus))
	require.Equal(t, "false", attr(tx, dtx.AttrRecovered))

	// Every call: both actions, then the compensation of each step (the
	// failed one's too: dtx compensates every step it called, and the
	// barrier makes a compensation of nothing a no-op), the first step's
	// twice.
	type call struct{ op, branch, attempt, outcome, retry string }
	var calls []call
	for _, s := range spans {
		if !strings.HasPrefix(s.Name, "dtx.branch ") {
			continue
		}
		require.Equal(t, tx.SpanContext.SpanID(), s.Parent.SpanID(), "%s: a child of the transaction", s.Name)
		require.Equal(t, trace.SpanKindClient, s.SpanKind)
		require.Equal(t, "dtx.branch "+attr(s, dtx.AttrOp), s.Name)
		require.Equal(t, "order-1", attr(s, dtx.AttrGID))
		calls = append(calls, call{attr(s, dtx.AttrOp), attr(s, dtx.AttrBranch), attr(s, dtx.AttrAttempt), attr(s, dtx.AttrOutcome), attr(s, dtx.AttrRetry)})

		// The participant's server span of this call is its child.
		var served []tracetest.SpanStub
		for _, p := range spans {
			if p.Parent.SpanID() == s.SpanContext.SpanID() {
				served = append(served, p)
			}
		}
		require.Len(t, served, 1, "%s branch %s attempt %s: one participant span under the call", attr(s, dtx.AttrOp), attr(s, dtx.AttrBranch), attr(s, dtx.AttrAttempt))
		p := served[0]
		require.Equal(t, "dtx.participant "+attr(s, dtx.AttrOp), p.Name)
		require.Equal(t, trace.SpanKindServer, p.SpanKind)
		for _, k := range []string{dtx.AttrGID, dtx.AttrBranch, dtx.AttrOp, dtx.AttrAttempt, dtx.AttrOutcome} {
			require.Equal(t, attr(s, k), attr(p, k), "%s: the participant saw the call the coordinator made", k)
		}
		require.True(t, p.Parent.IsRemote(), "the context crossed HTTP")
	}
	slices.SortFunc(calls, func(a, b call) int { return strings.Compare(a.op+a.branch+a.attempt, b.op+b.branch+b.attempt) })
	require.Equal(t, []call{
		{"action", "0", "1", "success", "false"},
		{"action", "1", "1", "failure", "false"},
		{"compensate", "0", "1", "unknown", "true"},
		{"compensate", "0", "2", "success", "false"},
		{"compensate", "1", "1", "success", "false"},
	}, calls)
	require.Len(t, spans, 1+1+5+5, "caller, transaction, five calls, five participant spans")
}

// TestOutboxInboxContinueTrace adds an event to an outbox under a
// producer's span, lets the relay publish it through an embedded NATS
// broker, and consumes it with an inbox consumer: the consumer's span, and
// the span Process starts from its context, continue the producer's trace.
func TestOutboxInboxContinueTrace(t *testing.T) {
	tp, rec := newProvider(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	brk := openBroker(t, ctx)

	prodDB, consDB := openDB(t, "producer.db"), openDB(t, "consumer.db")
	ob := newOutbox(tp)
	require.NoError(t, ob.Migrate(ctx, prodDB))
	relay := startRelay(t, ctx, prodDB, ob, brk)

	processed := make(chan string, 1)
	sub := subscribe(t, ctx, brk, consDB, tp, func(ctx context.Context, tx *sql.Tx, id string) error {
		_, span := tp.Tracer("inventory").Start(ctx, "reserve stock")
		span.End()
		processed <- id
		return nil
	})
	defer sub.Close()

	// The producer's business transaction adds the event under its span.
	pctx, producer := tp.Tracer("order").Start(ctx, "place order")
	tx, err := prodDB.BeginTx(pctx, nil)
	require.NoError(t, err)
	require.NoError(t, ob.Add(pctx, tx, event("evt-1")))
	require.NoError(t, tx.Commit())
	producer.End()
	relay.Notify()

	select {
	case id := <-processed:
		require.Equal(t, "evt-1", id)
	case <-ctx.Done():
		t.Fatal("the event was not consumed")
	}
	rec.waitFor(t, "dtx.inbox orders", 1)
	spans := rec.GetSpans()
	t.Logf("spans of one event:\n%s", render(spans))

	find := func(name string) tracetest.SpanStub {
		t.Helper()
		for _, s := range spans {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no span %q in:\n%s", name, render(spans))
		return tracetest.SpanStub{}
	}
	prod, add, cons, proc := find("place order"), find("dtx.outbox orders"), find("dtx.inbox orders"), find("reserve stock")
	for _, s := range []tracetest.SpanStub{add, cons, proc} {
		require.Equal(t, prod.SpanContext.TraceID(), s.SpanContext.TraceID(), "%s continues the producer's trace", s.Name)
	}
	require.Equal(t, prod.SpanContext.SpanID(), add.Parent.SpanID(), "the outbox span is the producer's child")
	require.Equal(t, trace.SpanKindProducer, add.SpanKind)
	require.Equal(t, add.SpanContext.SpanID(), cons.Parent.SpanID(), "the consumer span is the outbox span's child")
	require.True(t, cons.Parent.IsRemote(), "the context crossed the broker")
	require.Equal(t, trace.SpanKindConsumer, cons.SpanKind)
	require.Contains(t, cons.Attributes, attribute.String("messaging.message.id", "evt-1"))
	require.Contains(t, cons.Attributes, attribute.String(dtx.AttrOutcome, "processed"))
	require.Equal(t, cons.SpanContext.SpanID(), proc.Parent.SpanID(), "Process runs in the consumer span")
}
