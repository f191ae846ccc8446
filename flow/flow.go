// Package flow reconstructs choreographed transactions: no coordinator
// drives them, so their history is spread over the services' events. Record
// consumes the events as one more consumer group (Group) and keeps them in a
// Store by correlation id (the transaction, e.g. the order's gid), and
// Timeline puts one transaction's events back in causal order (each event
// after the one it answers, by causation id), ready to be drawn.
package flow

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
)

// Header names the flow reads besides broker's correlation, causation and
// type headers.
const (
	HeaderSource = "Dtx-Source" // the publishing service
	HeaderTime   = "Dtx-Time"   // when it was published, RFC 3339 with nanoseconds
)

// Event is one observed message of a flow.
type Event struct {
	CorrelationID string          `json:"correlation_id"`
	MessageID     string          `json:"message_id"`
	CausationID   string          `json:"causation_id,omitempty"`
	Type          string          `json:"type"`
	Topic         string          `json:"topic"`
	Source        string          `json:"source,omitempty"`
	PublishedAt   time.Time       `json:"published_at,omitzero"`
	ObservedAt    time.Time       `json:"observed_at"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	// Depth is the event's distance from the first event of its flow (set
	// by Timeline).
	Depth int `json:"depth"`
}

// Summary describes one flow.
type Summary struct {
	CorrelationID string    `json:"correlation_id"`
	Events        int       `json:"events"`
	First         time.Time `json:"first"`
	Last          time.Time `json:"last"`
	LastType      string    `json:"last_type"`
}

// Store keeps observed events in a SQL database (SQLite or PostgreSQL; the
// statements use $n placeholders, which both accept).
type Store struct{ db *sql.DB }

// NewStore returns a store over db; call Migrate before use.
func NewStore(db *sql.DB) *Store { return &Store{db: db} }

// Migrate creates the table and its indexes if they do not exist.
func (s *Store) Migrate(ctx context.Context) error {
	err := appdb.Migrate(ctx, appdb.FromSQL(s.db), []string{
		`CREATE TABLE IF NOT EXISTS dtx_flow_events (
			message_id     TEXT   NOT NULL PRIMARY KEY,
			correlation_id TEXT   NOT NULL,
			causation_id   TEXT   NOT NULL,
			type           TEXT   NOT NULL,
			topic          TEXT   NOT NULL,
			source         TEXT   NOT NULL,
			published_at   BIGINT NOT NULL,
			observed_at    BIGINT NOT NULL,
			payload        TEXT   NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS dtx_flow_events_corr ON dtx_flow_events (correlation_id, observed_at)`,
		`CREATE INDEX IF NOT EXISTS dtx_flow_events_time ON dtx_flow_events (observed_at)`,
	})
	if err != nil {
		return fmt.Errorf("flow: migrate: %w", err)
	}
	return nil
}

// Record stores e; recording a message id again does nothing.
func (s *Store) Record(ctx context.Context, e Event) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO dtx_flow_events (message_id, correlation_id, causation_id, type, topic, source, published_at, observed_at, payload)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (message_id) DO NOTHING`,
		e.MessageID, e.CorrelationID, e.CausationID, e.Type, e.Topic, e.Source,
		micros(e.PublishedAt), micros(e.ObservedAt), string(e.Payload))
	if err != nil {
		return fmt.Errorf("flow: record %s: %w", e.MessageID, err)
	}
	return nil
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// ErrNotFound is returned by Timeline for a correlation id with no events.
var ErrNotFound = errors.New("flow: no events for this correlation id")

// Timeline returns the events of one flow in causal order: an event comes
// after the event it answers; events without a known cause start the
// timeline; ties go by publication (else observation) time.
func (s *Store) Timeline(ctx context.Context, correlationID string) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT message_id, correlation_id, causation_id, type, topic, source, published_at, observed_at, payload
		 FROM dtx_flow_events WHERE correlation_id = $1`, correlationID)
	if err != nil {
		return nil, fmt.Errorf("flow: timeline: %w", err)
	}
	defer rows.Close()
	var evs []Event
	for rows.Next() {
		var e Event
		var pub, obs int64
		var payload string
		if err := rows.Scan(&e.MessageID, &e.CorrelationID, &e.CausationID, &e.Type, &e.Topic, &e.Source, &pub, &obs, &payload); err != nil {
			return nil, fmt.Errorf("flow: timeline: %w", err)
		}
		e.PublishedAt, e.ObservedAt = fromMicros(pub), fromMicros(obs)
		if json.Valid([]byte(payload)) {
			e.Payload = json.RawMessage(payload)
		}
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("flow: timeline: %w", err)
	}
	if len(evs) == 0 {
		return nil, ErrNotFound
	}
	return causalOrder(evs), nil
}

// causalOrder sorts events depth-first from their roots, children by time.
func causalOrder(evs []Event) []Event {
	when := func(e Event) time.Time {
		if !e.PublishedAt.IsZero() {
			return e.PublishedAt
		}
		return e.ObservedAt
	}
	byTime := func(a, b Event) int {
		return cmp.Or(when(a).Compare(when(b)), cmp.Compare(a.MessageID, b.MessageID))
	}
	slices.SortFunc(evs, byTime)
	known := map[string]bool{}
	for _, e := range evs {
		known[e.MessageID] = true
	}
	children := map[string][]Event{}
	var roots []Event
	for _, e := range evs {
		if e.CausationID != "" && known[e.CausationID] && e.CausationID != e.MessageID {
			children[e.CausationID] = append(children[e.CausationID], e)
		} else {
			roots = append(roots, e)
		}
	}
	out := make([]Event, 0, len(evs))
	seen := map[string]bool{}
	var walk func(e Event, depth int)
	walk = func(e Event, depth int) {
		if seen[e.MessageID] {
			return
		}
		seen[e.MessageID] = true
		e.Depth = depth
		out = append(out, e)
		for _, c := range children[e.MessageID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	for _, e := range evs { // causation cycles: keep them, at the end
		if !seen[e.MessageID] {
			walk(e, 0)
		}
	}
	return out
}

// Flows lists the most recently active flows, newest first.
func (s *Store) Flows(ctx context.Context, limit int) ([]Summary, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx,
		`SELECT correlation_id, COUNT(*), MIN(observed_at), MAX(observed_at) FROM dtx_flow_events
		 GROUP BY correlation_id ORDER BY MAX(observed_at) DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("flow: list: %w", err)
	}
	defer rows.Close()
	var out []Summary
	for rows.Next() {
		var sm Summary
		var first, last int64
		if err := rows.Scan(&sm.CorrelationID, &sm.Events, &first, &last); err != nil {
			return nil, fmt.Errorf("flow: list: %w", err)
		}
		sm.First, sm.Last = fromMicros(first), fromMicros(last)
		out = append(out, sm)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("flow: list: %w", err)
	}
	for i := range out {
		err := s.db.QueryRowContext(ctx,
			`SELECT type FROM dtx_flow_events WHERE correlation_id = $1
			 ORDER BY CASE WHEN published_at > 0 THEN published_at ELSE observed_at END DESC, message_id DESC LIMIT 1`,
			out[i].CorrelationID).Scan(&out[i].LastType)
		if err != nil {
			return nil, fmt.Errorf("flow: list: %w", err)
		}
	}
	return out, nil
}

// Group is the consumer group Record subscribes as.
const Group = "dtx-flow"

// Record subscribes st to topics on b: every message with a correlation id
// is recorded (others are skipped). Close the subscriptions to stop.
func Record(ctx context.Context, b broker.Broker, st *Store, topics ...string) ([]broker.Subscription, error) {
	var subs []broker.Subscription
	for _, topic := range topics {
		sub, err := b.Subscribe(ctx, topic, Group, func(ctx context.Context, d broker.Delivery) error {
			corr := d.Headers[broker.HeaderCorrelationID]
			if corr == "" {
				return nil
			}
			e := Event{
				CorrelationID: corr, MessageID: d.ID, CausationID: d.Headers[broker.HeaderCausationID],
				Type: cmp.Or(d.Headers[broker.HeaderType], d.Topic), Topic: d.Topic, Source: d.Headers[HeaderSource],
				ObservedAt: time.Now().UTC(),
			}
			if ts, err := time.Parse(time.RFC3339Nano, d.Headers[HeaderTime]); err == nil {
				e.PublishedAt = ts.UTC()
			}
			if json.Valid(d.Payload) {
				e.Payload = d.Payload
			}
			return st.Record(ctx, e)
		})
		if err != nil {
			for _, s := range subs {
				s.Close()
			}
			return nil, fmt.Errorf("flow: subscribe %s: %w", topic, err)
		}
		subs = append(subs, sub)
	}
	return subs, nil
}
