package bench_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/bench"
)

// TestRunEventsPerTx runs producers that write several events per
// transaction and wait for all of them: the loop only advances if every
// event of a transaction reaches the consumer.
func TestRunEventsPerTx(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for a second")
	}
	const perTx, clients = 4, 2
	res, err := bench.RunEvents(context.Background(), bench.Config{
		Pattern: "events", Store: "sqlite", Broker: "embedded", Clients: clients,
		Duration: 700 * time.Millisecond, Warmup: 100 * time.Millisecond, EventsPerTx: perTx,
	})
	require.NoError(t, err)
	require.Equal(t, perTx, res.EventsPerTx)
	require.Zero(t, res.Produced%perTx, "events are counted by whole transactions")
	// With a wait that never completed, each producer would be stuck in
	// its first transaction and at most one per client could be counted.
	require.Greater(t, res.Produced, int64(clients*perTx), "producers went past their first transaction")
	require.Positive(t, res.Consumed)
	var b strings.Builder
	res.WriteText(&b)
	require.Contains(t, b.String(), "4 events per transaction")
	require.Contains(t, b.String(), "producer transactions/s over that")
}
