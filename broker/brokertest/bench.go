package brokertest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtxhq/dtx/broker"
)

// Benchmark publishes b.N messages over 64 keys, in batches of 100, to a
// new topic of br and waits until one subscription has handled them all;
// it reports messages per second end to end.
func Benchmark(b *testing.B, br broker.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	topic := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	var handled atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	s, err := br.Subscribe(ctx, topic, "bench", func(context.Context, broker.Delivery) error {
		if handled.Add(1) == n {
			close(done)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	payload := make([]byte, 256)
	b.ResetTimer()
	start := time.Now()
	batch := make([]broker.Message, 0, 100)
	for i := range b.N {
		batch = append(batch, broker.Message{
			ID: fmt.Sprint(i), Topic: topic, Key: fmt.Sprintf("key-%d", i%64), Payload: payload,
		})
		if len(batch) == cap(batch) || i == b.N-1 {
			if err := br.Publish(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	published := time.Since(start)
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("handled %d of %d messages", handled.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/published.Seconds(), "published/s")
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
