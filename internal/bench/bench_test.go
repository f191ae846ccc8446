package bench_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/bench"
)

func TestRunSagaOnSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for a second")
	}
	res, err := bench.Run(context.Background(), bench.Config{
		Pattern: "saga", Store: "sqlite", Clients: 2, Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	require.Positive(t, res.Sagas)
	require.Zero(t, res.Errors)
	require.Positive(t, res.RawCommits)
	var b strings.Builder
	res.WriteText(&b)
	require.Contains(t, b.String(), "throughput")
}

func TestRunEventsOnSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for a second")
	}
	res, err := bench.RunEvents(context.Background(), bench.Config{
		Pattern: "events", Store: "sqlite", Broker: "embedded", Clients: 2, Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	require.Positive(t, res.Consumed)
	require.Equal(t, "sqlite", res.Dialect)
}
