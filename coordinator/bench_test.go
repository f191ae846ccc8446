package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/tcc"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// noopTransport answers every branch call with success at once: the
// benchmarks below measure the coordinator and its store, not a network.
type noopTransport struct{}

func (noopTransport) Call(context.Context, dtx.Call) dtx.Outcome {
	return dtx.Succeeded([]byte(`{}`))
}

func benchCoordinator(b *testing.B, tr dtx.Transport) *coordinator.Coordinator {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "c.db"), sqlstore.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	c, err := coordinator.New(st, tr, coordinator.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// BenchmarkSagaSubmitWait submits a 2-step saga and waits for its end,
// from 8 goroutines per CPU, on SQLite with no-op participants: the
// coordinator's and the store's cost (ns/op, allocs/op) per saga.
func BenchmarkSagaSubmitWait(b *testing.B) {
	c := benchCoordinator(b, noopTransport{})
	benchSubmitWait(b, func(gid string) (dtx.Pattern, saga.Spec) {
		return dtx.PatternSaga, saga.Spec{GID: gid, Steps: []saga.Step{
			{Name: "out", Action: "http://127.0.0.1:1/out", Compensate: "http://127.0.0.1:1/out-undo", Payload: json.RawMessage(`{"amount":30}`)},
			{Name: "in", Action: "http://127.0.0.1:1/in", Compensate: "http://127.0.0.1:1/in-undo", Payload: json.RawMessage(`{"amount":30}`)},
		}}
	}, c)
}

// BenchmarkTCCSubmitWait is BenchmarkSagaSubmitWait for a TCC transaction
// of two participants (2 tries, then 2 confirms).
func BenchmarkTCCSubmitWait(b *testing.B) {
	c := benchCoordinator(b, noopTransport{})
	benchSubmitWait(b, func(gid string) (dtx.Pattern, saga.Spec) {
		part := func(n string) tcc.Participant {
			return tcc.Participant{Name: n, Try: "http://127.0.0.1:1/" + n + "-try", Confirm: "http://127.0.0.1:1/" + n + "-confirm",
				Cancel: "http://127.0.0.1:1/" + n + "-cancel", Payload: json.RawMessage(`{"amount":30}`)}
		}
		spec, err := (&tcc.Spec{GID: gid, Participants: []tcc.Participant{part("out"), part("in")}}).Saga()
		if err != nil {
			b.Fatal(err)
		}
		return dtx.PatternTCC, spec
	}, c)
}

// BenchmarkSagaHTTP is BenchmarkSagaSubmitWait with the branch calls made
// over loopback HTTP to a no-op participant (the transport's cost added).
func BenchmarkSagaHTTP(b *testing.B) {
	p := newParticipant(b, nil)
	c := benchCoordinator(b, httptransport.New(nil))
	benchSubmitWait(b, func(gid string) (dtx.Pattern, saga.Spec) {
		return dtx.PatternSaga, saga.Spec{GID: gid, Steps: []saga.Step{
			{Name: "out", Action: p.url("/out"), Compensate: p.url("/out-undo"), Payload: json.RawMessage(`{"amount":30}`)},
			{Name: "in", Action: p.url("/in"), Compensate: p.url("/in-undo"), Payload: json.RawMessage(`{"amount":30}`)},
		}}
	}, c)
}

func benchSubmitWait(b *testing.B, spec func(gid string) (dtx.Pattern, saga.Spec), c *coordinator.Coordinator) {
	var n atomic.Int64
	prefix := b.Name()
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			pattern, s := spec(fmt.Sprintf("%s-%d", prefix, n.Add(1)))
			d, _, err := c.SubmitPattern(ctx, pattern, s)
			if err != nil {
				b.Fatal(err)
			}
			final, err := c.Wait(ctx, d.GID)
			if err != nil {
				b.Fatal(err)
			}
			if final.Status != dtx.StatusSucceeded {
				b.Fatalf("%s: %s", final.GID, final.Status)
			}
		}
	})
}
