package flow_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/broker/natsbroker"
	"github.com/dtxhq/dtx/flow"
	"github.com/dtxhq/dtx/internal/pgtest"
	"github.com/dtxhq/dtx/internal/sqlitedb"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func msg(id, corr, cause, typ string, at time.Time) broker.Message {
	h := map[string]string{broker.HeaderCorrelationID: corr, broker.HeaderType: typ, flow.HeaderSource: "svc-" + typ,
		flow.HeaderTime: at.Format(time.RFC3339Nano)}
	if cause != "" {
		h[broker.HeaderCausationID] = cause
	}
	return broker.Message{ID: id, Topic: "t-" + typ, Key: corr, Headers: h, Payload: []byte(`{"n":1}`)}
}

func stores(t *testing.T) map[string]*flow.Store {
	db, err := sqlitedb.Open(context.Background(), filepath.Join(t.TempDir(), "flow.db"), 4)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	out := map[string]*flow.Store{"sqlite": flow.NewStore(db)}
	if !testing.Short() {
		pg, err := sql.Open("pgx", pgtest.DSN(t))
		require.NoError(t, err)
		t.Cleanup(func() { pg.Close() })
		out["postgres"] = flow.NewStore(pg)
	}
	return out
}

// TestTimeline_CausalOrder records a branching flow whose events arrive
// out of order, with a clock that disagrees with causality, and checks
// that the timeline follows causation.
func TestTimeline_CausalOrder(t *testing.T) {
	t.Parallel()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // a database each
			ctx := context.Background()
			require.NoError(t, st.Migrate(ctx))
			t0 := time.Now().UTC()
			// placed -> deducted -> failed -> restored -> cancelled; the
			// restore was stamped before the failure (clock skew).
			evs := []flow.Event{
				{MessageID: "g/cancelled", CausationID: "g/restored", Type: "cancelled", PublishedAt: t0.Add(5 * time.Millisecond)},
				{MessageID: "g/restored", CausationID: "g/failed", Type: "restored", PublishedAt: t0.Add(2 * time.Millisecond)},
				{MessageID: "g/failed", CausationID: "g/deducted", Type: "failed", PublishedAt: t0.Add(3 * time.Millisecond)},
				{MessageID: "g/placed", Type: "placed", PublishedAt: t0},
				{MessageID: "g/deducted", CausationID: "g/placed", Type: "deducted", PublishedAt: t0.Add(time.Millisecond)},
				{MessageID: "other/placed", Type: "placed", PublishedAt: t0, CorrelationID: "other"},
			}
			for _, e := range evs {
				if e.CorrelationID == "" {
					e.CorrelationID = "g"
				}
				e.Topic, e.ObservedAt = e.Type, time.Now()
				require.NoError(t, st.Record(ctx, e))
				require.NoError(t, st.Record(ctx, e), "recording twice is a no-op")
			}
			tl, err := st.Timeline(ctx, "g")
			require.NoError(t, err)
			var types []string
			var depths []int
			for _, e := range tl {
				types = append(types, e.Type)
				depths = append(depths, e.Depth)
			}
			assert.Equal(t, []string{"placed", "deducted", "failed", "restored", "cancelled"}, types)
			assert.Equal(t, []int{0, 1, 2, 3, 4}, depths)
			_, err = st.Timeline(ctx, "nope")
			require.ErrorIs(t, err, flow.ErrNotFound)
			fl, err := st.Flows(ctx, 10)
			require.NoError(t, err)
			require.Len(t, fl, 2)
		})
	}
}

// TestRecord_FromBroker records a flow published on an embedded NATS and
// serves it over HTTP.
func TestRecord_FromBroker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := natsbroker.OpenEmbedded(ctx, t.TempDir(), natsbroker.Config{})
	require.NoError(t, err)
	defer b.Close()
	st := stores(t)["sqlite"]
	require.NoError(t, st.Migrate(ctx))
	subs, err := flow.Record(ctx, b, st, "t-placed", "t-charged", "t-completed")
	require.NoError(t, err)
	defer func() {
		for _, s := range subs {
			s.Close()
		}
	}()
	t0 := time.Now().UTC()
	// Published in reverse causal order, on three topics.
	require.NoError(t, b.Publish(ctx, msg("o1/completed", "o1", "o1/charged", "completed", t0.Add(2*time.Millisecond))))
	require.NoError(t, b.Publish(ctx, msg("o1/charged", "o1", "o1/placed", "charged", t0.Add(time.Millisecond))))
	require.NoError(t, b.Publish(ctx, msg("o1/placed", "o1", "", "placed", t0)))
	require.NoError(t, b.Publish(ctx, broker.Message{ID: "x", Topic: "t-placed", Payload: []byte(`{}`)})) // no correlation id: skipped

	srv := httptest.NewServer(flow.Handler(st))
	defer srv.Close()
	var got struct {
		Events []flow.Event `json:"events"`
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get(srv.URL + "/v1/flows/o1")
		if err != nil || resp.StatusCode != http.StatusOK {
			if resp != nil {
				resp.Body.Close()
			}
			return false
		}
		defer resp.Body.Close()
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		return len(got.Events) == 3
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, "placed", got.Events[0].Type)
	assert.Equal(t, "charged", got.Events[1].Type)
	assert.Equal(t, "completed", got.Events[2].Type)
	assert.Equal(t, "svc-charged", got.Events[1].Source)
	assert.Equal(t, "o1/placed", got.Events[1].CausationID)

	resp, err := http.Get(srv.URL + "/v1/flows/unknown")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, err = http.Get(srv.URL + "/v1/flows?limit=0")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
}
