package demo_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/examples/shop"
	"github.com/dtxhq/dtx/examples/shop/demo"
	"github.com/dtxhq/dtx/internal/pgserver"
	"github.com/dtxhq/dtx/internal/pgtest"
)

// The choreographed shop with log-tailing relays: the services run on a
// throwaway PostgreSQL with wal_level=logical and every event leaves its
// outbox through the replication stream. Every order is accounted for,
// nothing is stuck, no invariant is violated.
func TestRunChoreographyWithTailingRelays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := demo.Run(ctx, demo.Config{
		Pattern: "choreography", Relay: shop.RelayTailing, Orders: 30, Concurrency: 4, FaultRate: 0.2, Seed: 4,
		Dir: t.TempDir(), QuiesceTimeout: 2 * time.Minute,
	})
	if errors.Is(err, pgserver.ErrNotInstalled) && os.Getenv(pgtest.EnvRequire) != "1" {
		t.Skip("PostgreSQL is not installed:", err)
	}
	require.NoError(t, err)
	require.True(t, res.OK(), "violations %v, stuck %v", res.ViolationList, res.StuckList)
	require.Equal(t, 30, res.Orders)
	require.Equal(t, res.Orders, res.Completed+res.Cancelled)
	require.Positive(t, res.Cancelled)
}

func TestRelayChoice(t *testing.T) {
	base := demo.Config{Pattern: "choreography", Orders: 1, Concurrency: 1}
	for relay, want := range map[string]string{"": "", shop.RelayPolling: "", shop.RelayTailing: "", "wal": `relay "wal"`} {
		c := base
		c.Relay = relay
		if err := c.Validate(); want == "" {
			require.NoError(t, err, relay)
		} else {
			require.ErrorContains(t, err, want)
		}
	}
	c := base
	c.Pattern, c.Relay = "saga", shop.RelayTailing
	require.ErrorContains(t, c.Validate(), "only the choreography pattern")
}
