package shoptest

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/transport/brokertransport"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// MustAsyncCoordinator is MustCoordinator with a broker transport: steps
// with broker:// URLs are sent as commands over b (HTTP steps still go
// over HTTP). It returns the client and the transport (for its Stats); both
// are stopped when tb ends.
func MustAsyncCoordinator(tb testing.TB, b broker.Broker) (*client.Client, *brokertransport.Transport) {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "coordinator.db"), sqlstore.Config{})
	require.NoError(tb, err)
	const owner = "shoptest-coordinator"
	tr, err := brokertransport.New(ctx, b, brokertransport.Config{Owner: owner, Fallback: httptransport.New(nil), Logger: Logger()})
	require.NoError(tb, err)
	c, err := coordinator.New(st, tr, coordinator.Config{
		Owner:     owner,
		RetryBase: 5 * time.Millisecond,
		RetryMax:  100 * time.Millisecond,
		Logger:    Logger(),
	})
	require.NoError(tb, err)
	require.NoError(tb, c.Start(ctx))
	srv := httptest.NewServer(server.New(c))
	tb.Cleanup(func() {
		srv.Close()
		c.Close(ctx)
		tr.Close()
		st.Close()
	})
	return client.New(srv.URL, nil), tr
}
