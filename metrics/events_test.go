package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/metrics"
	"github.com/dtxhq/dtx/outbox"
)

type relayStats outbox.Stats

func (r *relayStats) Stats() outbox.Stats { return outbox.Stats(*r) }

// TestEvents_Exposition: the relay's counters and lag and the dead-letter
// counts are served per service; a count that fails is left out of the
// scrape while the rest is still served.
func TestEvents_Exposition(t *testing.T) {
	e := metrics.NewEvents()
	r := &relayStats{Published: 7, Failures: 3, GivenUp: 1, DBErrors: 2, Lag: 1500 * time.Millisecond, Leader: true}
	e.WatchRelay("inventory", r)
	e.WatchDeadLetters("inventory", "outbox", func(context.Context) (int, error) { return 1, nil })
	e.WatchDeadLetters("inventory", "inbox", func(context.Context) (int, error) { return 4, nil })
	e.WatchDeadLetters("payment", "inbox", func(context.Context) (int, error) { return 0, errors.New("database is locked") })

	scrape := func() (int, string) {
		rec := httptest.NewRecorder()
		e.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	code, body := scrape()
	require.Equal(t, 200, code)
	for _, want := range []string{
		`dtx_outbox_published_total{service="inventory"} 7`,
		`dtx_outbox_publish_failures_total{service="inventory"} 3`,
		`dtx_outbox_given_up_total{service="inventory"} 1`,
		`dtx_outbox_db_errors_total{service="inventory"} 2`,
		`dtx_outbox_lag_seconds{service="inventory"} 1.5`,
		`dtx_outbox_leader{service="inventory"} 1`,
		`dtx_dead_letters{service="inventory",source="outbox"} 1`,
		`dtx_dead_letters{service="inventory",source="inbox"} 4`,
	} {
		require.Contains(t, body, want+"\n")
	}
	require.NotContains(t, body, `service="payment"`)

	r.Published, r.Leader = 9, false
	_, body = scrape()
	require.True(t, strings.Contains(body, `dtx_outbox_published_total{service="inventory"} 9`+"\n"), "read at scrape time")
	require.Contains(t, body, `dtx_outbox_leader{service="inventory"} 0`+"\n")
}
