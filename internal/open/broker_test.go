package open

import (
	"context"
	"hash/fnv"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker"
)

// TestBrokerPartitions: BrokerOptions.Partitions reaches the embedded NATS
// broker. Two keys share a partition of the default 16 but not of 64; each
// partition delivers one message at a time, so the first key's handler can
// see the second key's message only if the stream has 64 partitions.
func TestBrokerPartitions(t *testing.T) {
	part := func(key string, n uint32) uint32 {
		h := fnv.New32a()
		_, _ = h.Write([]byte(key))
		return h.Sum32() % n
	}
	first, second := "k0", ""
	for i := 1; second == ""; i++ {
		k := "k" + strconv.Itoa(i)
		if part(k, 16) == part(first, 16) && part(k, 64) != part(first, 64) {
			second = k
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, _, err := BrokerWith(ctx, "embedded", t.TempDir(), BrokerOptions{Partitions: 64})
	require.NoError(t, err)
	defer b.Close()

	secondSeen := make(chan struct{})
	sub, err := b.Subscribe(ctx, "t", "g", func(_ context.Context, d broker.Delivery) error {
		if d.Key == second {
			close(secondSeen)
			return nil
		}
		select { // the first key's message holds its partition until the second arrives
		case <-secondSeen:
			return nil
		case <-ctx.Done(): // the test's: a handler's own context outlives it
			return ctx.Err()
		}
	})
	require.NoError(t, err)
	defer sub.Close()
	require.NoError(t, b.Publish(ctx, broker.Message{ID: "m1", Topic: "t", Key: first}))
	require.NoError(t, b.Publish(ctx, broker.Message{ID: "m2", Topic: "t", Key: second}))
	select {
	case <-secondSeen:
	case <-ctx.Done():
		t.Fatal("the second key's message was not delivered while the first was in flight: the stream does not have 64 partitions")
	}
}
