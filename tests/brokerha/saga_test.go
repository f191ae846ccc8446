package brokerha_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/participant"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/transport"
	"github.com/dtxhq/dtx/transport/brokertransport"
)

// TestNATSCluster_SagaAsync runs sagas whose two steps are broker
// commands (saga-async) on a 3-node cluster, and kills one node (any
// will do) while sagas are being submitted: every saga, those running at the kill and those submitted while the
// node is down, succeeds, and each participant ran each saga's action.
func TestNATSCluster_SagaAsync(t *testing.T) {
	const killed = 1
	c := startCluster(t)
	b := connect(t, c)
	ctx := ctxT(t)

	calls := map[string]int{} // "<topic>/<gid>" → actions run (redeliveries may run one twice)
	var mu sync.Mutex
	for _, topic := range []string{"ha-stock", "ha-pay"} {
		sub, err := brokertransport.Serve(ctx, b, topic, topic, func(_ context.Context, br participant.Branch, _ []byte) (any, error) {
			if br.Op == dtx.OpAction {
				mu.Lock()
				calls[topic+"/"+br.GID]++
				mu.Unlock()
			}
			return map[string]bool{"ok": true}, nil
		})
		require.NoError(t, err)
		t.Cleanup(func() { sub.Close() })
	}

	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "coordinator.db"), sqlstore.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	const owner = "ha-coordinator"
	tr, err := brokertransport.New(ctx, b, brokertransport.Config{Owner: owner, DefaultTimeout: 3 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	co, err := coordinator.New(st, transport.Schemes{brokertransport.URLScheme: tr}, coordinator.Config{
		Owner: owner, RetryBase: 50 * time.Millisecond, RetryMax: time.Second, RecoverInterval: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, co.Start(ctx))
	t.Cleanup(func() { co.Close(context.Background()) })

	var gids []string
	submit := func(n int) {
		t.Helper()
		for range n {
			gid := fmt.Sprintf("ha-saga-%03d", len(gids))
			_, _, err := co.Submit(ctx, saga.Spec{GID: gid, Steps: []saga.Step{
				{Name: "stock", Action: brokertransport.URL("ha-stock"), Compensate: brokertransport.URL("ha-stock")},
				{Name: "pay", Action: brokertransport.URL("ha-pay")},
			}})
			require.NoError(t, err)
			gids = append(gids, gid)
		}
	}
	start := time.Now()
	submit(20) // running when the node dies
	require.NoError(t, c.Kill(killed))
	submit(20) // submitted while it is down
	for _, gid := range gids {
		d, err := co.Wait(ctx, gid)
		require.NoError(t, err, gid)
		require.Equal(t, dtx.StatusSucceeded, d.Status, gid)
	}
	elapsed := time.Since(start)
	require.NoError(t, c.Restart(ctx, killed))
	require.NoError(t, c.WaitHealthy(ctx), "logs in %s", c.Dir())
	mu.Lock()
	defer mu.Unlock()
	for _, gid := range gids {
		for _, topic := range []string{"ha-stock", "ha-pay"} {
			require.GreaterOrEqual(t, calls[topic+"/"+gid], 1, "%s of %s", topic, gid)
		}
	}
	t.Logf("%d sagas across the kill of node %d, all succeeded within %v", len(gids), killed, elapsed.Round(time.Millisecond))
}
