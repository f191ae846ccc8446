package serve

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/flow"
	"github.com/dtxhq/dtx/internal/open"
	"github.com/dtxhq/dtx/internal/sqlitedb"
)

// flowRecorder is `dtx server --broker … --record-flows …`: it records the
// listed topics' events into a SQLite file and serves GET /v1/flows[/{id}].
type flowRecorder struct {
	broker broker.Broker
	subs   []broker.Subscription
	close  []func()
	store  *flow.Store
}

// startFlowRecorder returns nil when topics is empty.
func startFlowRecorder(ctx context.Context, brokerSpec, topics, dbPath string) (*flowRecorder, error) {
	if topics == "" {
		return nil, nil
	}
	if brokerSpec == "" {
		return nil, &ConfigError{"--record-flows needs --broker"}
	}
	if brokerSpec == "embedded" {
		// An embedded NATS would be private to this process: no service
		// could publish the events to record.
		return nil, &ConfigError{"--record-flows needs the services' broker: nats://host:port or kafka://host:port, not embedded"}
	}
	fr := &flowRecorder{}
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o755); err != nil {
		return nil, err
	}
	db, err := sqlitedb.Open(ctx, dbPath, 4)
	if err != nil {
		return nil, err
	}
	fr.close = append(fr.close, func() { db.Close() })
	st := flow.NewStore(db)
	if err := st.Migrate(ctx); err != nil {
		fr.Close()
		return nil, err
	}
	b, _, err := open.Broker(ctx, brokerSpec, filepath.Dir(dbPath))
	if err != nil {
		fr.Close()
		return nil, err
	}
	fr.broker = b
	fr.subs, err = flow.Record(ctx, b, st, strings.Split(topics, ",")...)
	if err != nil {
		fr.Close()
		return nil, err
	}
	fr.store = st
	return fr, nil
}

// Mount adds the flow routes in front of next.
func (fr *flowRecorder) Mount(next http.Handler) http.Handler {
	if fr == nil {
		return next
	}
	return flow.Mount(next, fr.store)
}

// Close stops recording.
func (fr *flowRecorder) Close() {
	if fr == nil {
		return
	}
	for _, s := range fr.subs {
		s.Close()
	}
	if fr.broker != nil {
		fr.broker.Close()
	}
	for _, f := range fr.close {
		f()
	}
}
