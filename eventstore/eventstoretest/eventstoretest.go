// Package eventstoretest is the conformance suite of package eventstore:
// every database the store supports must pass it. A test calls Run with a
// factory that returns a fresh, empty database.
package eventstoretest

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/eventstore"
	"github.com/dtxhq/dtx/outbox"
)

// Factory returns a connection pool on a fresh, empty database and its
// dialect. The pool should allow several connections (the suite appends
// concurrently); the factory closes it when t ends.
type Factory func(t *testing.T) (*sql.DB, appdb.Dialect)

// Run runs the suite; its tests run in parallel, each on its own database.
func Run(t *testing.T, newDB Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, db *sql.DB, d appdb.Dialect)
	}{
		{"AppendRead", testAppendRead},
		{"Conflict", testConflict},
		{"Invalid", testInvalid},
		{"ConcurrentOneStream", testConcurrentOneStream},
		{"SubscriberNeverSkips", testSubscriberNeverSkips},
		{"RollbackLeavesNoGap", testRollbackLeavesNoGap},
		{"LoadAndSnapshots", testLoadAndSnapshots},
		{"Upcasters", testUpcasters},
		{"OutboxAtomic", testOutboxAtomic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, d := newDB(t)
			tc.fn(t, db, d)
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newStore(t *testing.T, db *sql.DB, cfg eventstore.Config) *eventstore.Store {
	t.Helper()
	s, err := eventstore.New(db, cfg)
	require.NoError(t, err)
	require.NoError(t, s.Migrate(ctxFor(t)))
	return s
}

func ev(typ, data string) eventstore.EventData {
	return eventstore.EventData{Type: typ, Data: []byte(data)}
}

func testAppendRead(t *testing.T, db *sql.DB, d appdb.Dialect) {
	ctx := ctxFor(t)
	s := newStore(t, db, eventstore.Config{Dialect: d})
	require.NoError(t, s.Migrate(ctx), "Migrate runs again on every start")

	head, err := s.Head(ctx)
	require.NoError(t, err)
	require.Zero(t, head)
	got, err := s.ReadStream(ctx, "cart-1", 1, 0)
	require.NoError(t, err)
	require.Empty(t, got)

	out, err := s.Append(ctx, "cart-1", eventstore.NoStream,
		ev("Created", `{"id":"cart-1"}`),
		eventstore.EventData{Type: "ItemAdded", SchemaVersion: 2, Data: []byte(`{"sku":"a"}`), Metadata: []byte(`{"user":"u"}`)})
	require.NoError(t, err)
	require.Len(t, out, 2)
	require.Equal(t, []int64{1, 2}, []int64{out[0].Position, out[1].Position})
	require.Equal(t, []int64{1, 2}, []int64{out[0].Version, out[1].Version})
	_, err = s.Append(ctx, "cart-2", eventstore.NoStream, ev("Created", `{"id":"cart-2"}`))
	require.NoError(t, err)
	_, err = s.Append(ctx, "cart-1", 2, ev("ItemRemoved", `{"sku":"a"}`))
	require.NoError(t, err)

	got, err = s.ReadStream(ctx, "cart-1", 1, 0)
	require.NoError(t, err)
	require.Len(t, got, 3)
	for i, e := range got {
		require.Equal(t, "cart-1", e.Stream)
		require.Equal(t, int64(i+1), e.Version)
		require.False(t, e.RecordedAt.IsZero())
		require.WithinDuration(t, time.Now(), e.RecordedAt, time.Hour, "database clock in Unix ms")
	}
	require.Equal(t, []int64{1, 2, 4}, []int64{got[0].Position, got[1].Position, got[2].Position})
	require.Equal(t, "Created", got[0].Type)
	require.Equal(t, 1, got[0].SchemaVersion, "schema version 0 is stored as 1")
	require.Equal(t, 2, got[1].SchemaVersion)
	require.JSONEq(t, `{"sku":"a"}`, string(got[1].Data))
	require.JSONEq(t, `{"user":"u"}`, string(got[1].Metadata))
	require.Empty(t, got[0].Metadata)

	from3, err := s.ReadStream(ctx, "cart-1", 3, 0)
	require.NoError(t, err)
	require.Len(t, from3, 1)
	require.Equal(t, "ItemRemoved", from3[0].Type)
	page, err := s.ReadStream(ctx, "cart-1", 1, 2)
	require.NoError(t, err)
	require.Len(t, page, 2)

	all, err := s.ReadAll(ctx, 0, 0)
	require.NoError(t, err)
	require.Len(t, all, 4)
	for i, e := range all {
		require.Equal(t, int64(i+1), e.Position)
	}
	require.Equal(t, "cart-2", all[2].Stream)
	after2, err := s.ReadAll(ctx, 2, 1)
	require.NoError(t, err)
	require.Len(t, after2, 1)
	require.Equal(t, int64(3), after2[0].Position)
	head, err = s.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(4), head)

	// A second store on another table of the same database is independent.
	other := newStore(t, db, eventstore.Config{Dialect: d, Table: "other_events"})
	o, err := other.Append(ctx, "cart-1", eventstore.NoStream, ev("Created", `{}`))
	require.NoError(t, err)
	require.Equal(t, int64(1), o[0].Position)
}

func testConflict(t *testing.T, db *sql.DB, d appdb.Dialect) {
	ctx := ctxFor(t)
	s := newStore(t, db, eventstore.Config{Dialect: d})
	_, err := s.Append(ctx, "s", eventstore.NoStream, ev("A", `1`), ev("A", `2`))
	require.NoError(t, err)

	for _, expected := range []int64{eventstore.NoStream, 1, 3} {
		_, err = s.Append(ctx, "s", expected, ev("B", `x`))
		require.ErrorIs(t, err, eventstore.ErrConflict, "expected %d", expected)
		var ce *eventstore.ConflictError
		require.True(t, errors.As(err, &ce))
		require.Equal(t, eventstore.ConflictError{Stream: "s", Expected: expected, Actual: 2}, *ce)
	}
	_, err = s.Append(ctx, "new", 1, ev("B", `x`))
	var ce *eventstore.ConflictError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, int64(0), ce.Actual)

	head, err := s.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), head, "refused appends write nothing")

	out, err := s.Append(ctx, "s", eventstore.AnyVersion, ev("C", `y`))
	require.NoError(t, err)
	require.Equal(t, int64(3), out[0].Version)
	out, err = s.Append(ctx, "fresh", eventstore.AnyVersion, ev("C", `y`))
	require.NoError(t, err)
	require.Equal(t, int64(1), out[0].Version)
	require.Equal(t, int64(4), out[0].Position)
}

func testInvalid(t *testing.T, db *sql.DB, d appdb.Dialect) {
	ctx := ctxFor(t)
	s := newStore(t, db, eventstore.Config{Dialect: d})
	for name, call := range map[string]func() error{
		"empty stream": func() error { _, err := s.Append(ctx, "", 0, ev("A", `1`)); return err },
		"long stream": func() error {
			_, err := s.Append(ctx, strings.Repeat("s", eventstore.MaxStreamLen+1), 0, ev("A", `1`))
			return err
		},
		"no events":   func() error { _, err := s.Append(ctx, "s", 0); return err },
		"empty type":  func() error { _, err := s.Append(ctx, "s", 0, ev("", `1`)); return err },
		"expected -2": func() error { _, err := s.Append(ctx, "s", -2, ev("A", `1`)); return err },
		"schema -1": func() error {
			_, err := s.Append(ctx, "s", 0, eventstore.EventData{Type: "A", SchemaVersion: -1})
			return err
		},
		"nil aggregate": func() error { _, _, err := eventstore.Aggregate[int]{}.Load(ctx, "s"); return err },
	} {
		require.ErrorIs(t, call(), eventstore.ErrInvalid, name)
	}
	head, err := s.Head(ctx)
	require.NoError(t, err)
	require.Zero(t, head)

	_, err = eventstore.New(db, eventstore.Config{Dialect: d, Table: "bad-name"})
	require.Error(t, err)
	_, err = eventstore.New(db, eventstore.Config{Dialect: d, Upcasters: []eventstore.Upcaster{
		{Type: "A", From: 1, Up: func(b []byte) ([]byte, error) { return b, nil }},
		{Type: "A", From: 1, Up: func(b []byte) ([]byte, error) { return b, nil }},
	}})
	require.ErrorIs(t, err, eventstore.ErrInvalid)
}

// counter is the aggregate of the concurrency tests: the sum of its events.
func addInt(sum int, e eventstore.Event) (int, error) {
	var n int
	if err := json.Unmarshal(e.Data, &n); err != nil {
		return sum, err
	}
	return sum + n, nil
}

// Writers load, decide and append with the version they loaded, retrying on
// conflicts: none of their increments is lost and versions stay dense.
func testConcurrentOneStream(t *testing.T, db *sql.DB, d appdb.Dialect) {
	ctx := ctxFor(t)
	s := newStore(t, db, eventstore.Config{Dialect: d})
	const writers, each = 4, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; {
				_, version, err := eventstore.Load(ctx, s, "counter", 0, addInt)
				if err != nil {
					errs <- err
					return
				}
				_, err = s.Append(ctx, "counter", version, ev("Added", `1`))
				if errors.Is(err, eventstore.ErrConflict) {
					mu.Lock()
					conflicts++
					mu.Unlock()
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				i++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	sum, version, err := eventstore.Load(ctx, s, "counter", 0, addInt)
	require.NoError(t, err)
	require.Equal(t, writers*each, sum)
	require.Equal(t, int64(writers*each), version)
	t.Logf("%d conflicts retried", conflicts)
}

// Concurrent appenders on many streams while a subscriber reads "after the
// last position seen": every batch it gets starts right after that
// position and has no gap, so no event that commits later can carry a
// smaller position than one already seen.
func testSubscriberNeverSkips(t *testing.T, db *sql.DB, d appdb.Dialect) {
	ctx := ctxFor(t)
	s := newStore(t, db, eventstore.Config{Dialect: d})
	const appenders, each = 6, 15
	done := make(chan struct{})
	errs := make(chan error, appenders+1)
	var wg sync.WaitGroup
	for a := 0; a < appenders; a++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				stream := fmt.Sprintf("s%d-%d", a, i%3)
				// Hold the transaction open after the append (another
				// statement before the commit) to widen the window in which
				// a later position could otherwise become visible first.
				err := inTx(ctx, db, func(tx *sql.Tx) error {
					if _, err := s.AppendTx(ctx, tx, stream, eventstore.AnyVersion, ev("E", fmt.Sprint(i)), ev("E", fmt.Sprint(i))); err != nil {
						return err
					}
					var one int
					return tx.QueryRowContext(ctx, "SELECT 1").Scan(&one)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()

	var last int64
	total := int64(appenders * each * 2)
	finished := false
	for last < total {
		if !finished {
			select {
			case <-done:
				finished = true
			default:
			}
		}
		batch, err := s.ReadAll(ctx, last, 7)
		require.NoError(t, err)
		for _, e := range batch {
			require.Equal(t, last+1, e.Position, "subscriber skipped or repeated a position")
			last = e.Position
		}
		if finished && len(batch) == 0 {
			break
		}
	}
	<-done
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, total, last)
	head, err := s.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, total, head)
}

func inTx(ctx context.Context, db *sql.DB, f func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func testRollbackLeavesNoGap(t *testing.T, db *sql.DB, d appdb.Dialect) {
	ctx := ctxFor(t)
	s := newStore(t, db, eventstore.Config{Dialect: d})
	_, err := s.Append(ctx, "a", eventstore.NoStream, ev("E", `1`))
	require.NoError(t, err)
	errBoom := errors.New("boom")
	err = inTx(ctx, db, func(tx *sql.Tx) error {
		out, err := s.AppendTx(ctx, tx, "b", eventstore.NoStream, ev("E", `2`), ev("E", `3`))
		require.NoError(t, err)
		require.Equal(t, int64(2), out[0].Position)
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	got, err := s.ReadStream(ctx, "b", 1, 0)
	require.NoError(t, err)
	require.Empty(t, got, "rolled back with the caller's transaction")
	out, err := s.Append(ctx, "b", eventstore.NoStream, ev("E", `4`))
	require.NoError(t, err)
	require.Equal(t, int64(2), out[0].Position, "positions stay dense")
}

type cart struct {
	Items map[string]int `json:"items"`
	Adds  int            `json:"adds"`
}

func applyCart(c cart, e eventstore.Event) (cart, error) {
	items := map[string]int{}
	for k, v := range c.Items {
		items[k] = v
	}
	switch e.Type {
	case "ItemAdded":
		items[string(e.Data)]++
		c.Adds++
	case "ItemRemoved":
		items[string(e.Data)]--
		if items[string(e.Data)] <= 0 {
			delete(items, string(e.Data))
		}
	default:
		return c, fmt.Errorf("unknown event %s", e.Type)
	}
	c.Items = items
	return c, nil
}

func testLoadAndSnapshots(t *testing.T, db *sql.DB, d appdb.Dialect) {
	ctx := ctxFor(t)
	s := newStore(t, db, eventstore.Config{Dialect: d})
	var applied int
	agg := eventstore.Aggregate[cart]{
		Store: s, SnapshotEvery: 3,
		Apply: func(c cart, e eventstore.Event) (cart, error) { applied++; return applyCart(c, e) },
	}
	c, v, err := agg.Load(ctx, "cart")
	require.NoError(t, err)
	require.Zero(t, v)
	require.Empty(t, c.Items)

	var evs []eventstore.EventData
	for i := 0; i < 7; i++ {
		evs = append(evs, ev("ItemAdded", fmt.Sprint("sku", i%2)))
	}
	_, err = s.Append(ctx, "cart", v, evs...)
	require.NoError(t, err)
	c, v, err = agg.Load(ctx, "cart")
	require.NoError(t, err)
	require.Equal(t, int64(7), v)
	require.Equal(t, cart{Items: map[string]int{"sku0": 4, "sku1": 3}, Adds: 7}, c)
	require.Equal(t, 7, applied)
	snap, err := s.SnapshotVersion(ctx, "cart", "")
	require.NoError(t, err)
	require.Equal(t, int64(7), snap)

	_, err = s.Append(ctx, "cart", v, ev("ItemRemoved", "sku0"), ev("ItemRemoved", "sku1"))
	require.NoError(t, err)
	applied = 0
	c, v, err = agg.Load(ctx, "cart")
	require.NoError(t, err)
	require.Equal(t, int64(9), v)
	require.Equal(t, cart{Items: map[string]int{"sku0": 3, "sku1": 2}, Adds: 7}, c)
	require.Equal(t, 2, applied, "loaded from the snapshot at 7")
	snap, err = s.SnapshotVersion(ctx, "cart", "")
	require.NoError(t, err)
	require.Equal(t, int64(7), snap, "fewer than SnapshotEvery events since: no new snapshot")

	// The plain fold agrees with the snapshot path.
	plain, pv, err := eventstore.Load(ctx, s, "cart", cart{}, applyCart)
	require.NoError(t, err)
	require.Equal(t, c, plain)
	require.Equal(t, v, pv)

	// A new snapshot key ignores the old snapshots.
	applied = 0
	agg.SnapshotKey = "v2"
	c2, _, err := agg.Load(ctx, "cart")
	require.NoError(t, err)
	require.Equal(t, c, c2)
	require.Equal(t, 9, applied)
	snap, err = s.SnapshotVersion(ctx, "cart", "v2")
	require.NoError(t, err)
	require.Equal(t, int64(9), snap)

	// A failing Apply is reported with the event.
	_, err = s.Append(ctx, "cart", 9, ev("Bogus", "x"))
	require.NoError(t, err)
	_, _, err = eventstore.Load(ctx, s, "cart", cart{}, applyCart)
	require.ErrorContains(t, err, "unknown event Bogus")
}

// An event type's payload changed twice (v1 {"name"} → v2 {"title"} → v3
// {"title","qty"}); events written as v1 and v2 still load as v3.
func testUpcasters(t *testing.T, db *sql.DB, d appdb.Dialect) {
	ctx := ctxFor(t)
	old := newStore(t, db, eventstore.Config{Dialect: d})
	_, err := old.Append(ctx, "p", eventstore.NoStream,
		eventstore.EventData{Type: "ItemAdded", Data: []byte(`{"name":"pen"}`)},
		eventstore.EventData{Type: "ItemAdded", SchemaVersion: 2, Data: []byte(`{"title":"ink"}`)},
		eventstore.EventData{Type: "Other", Data: []byte(`{"name":"keep"}`)})
	require.NoError(t, err)

	v1to2 := func(b []byte) ([]byte, error) {
		var p struct{ Name string }
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"title": p.Name})
	}
	v2to3 := func(b []byte) ([]byte, error) {
		var p map[string]any
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, err
		}
		p["qty"] = 1
		return json.Marshal(p)
	}
	s := newStore(t, db, eventstore.Config{Dialect: d, Upcasters: []eventstore.Upcaster{
		{Type: "ItemAdded", From: 2, Up: v2to3},
		{Type: "ItemAdded", From: 1, Up: v1to2},
	}})
	_, err = s.Append(ctx, "p", 3, eventstore.EventData{Type: "ItemAdded", SchemaVersion: 3, Data: []byte(`{"title":"cap","qty":2}`)})
	require.NoError(t, err)

	for _, read := range []func() ([]eventstore.Event, error){
		func() ([]eventstore.Event, error) { return s.ReadStream(ctx, "p", 1, 0) },
		func() ([]eventstore.Event, error) { return s.ReadAll(ctx, 0, 0) },
	} {
		got, err := read()
		require.NoError(t, err)
		require.Len(t, got, 4)
		require.Equal(t, 3, got[0].SchemaVersion)
		require.JSONEq(t, `{"title":"pen","qty":1}`, string(got[0].Data))
		require.Equal(t, 3, got[1].SchemaVersion)
		require.JSONEq(t, `{"title":"ink","qty":1}`, string(got[1].Data))
		require.Equal(t, 1, got[2].SchemaVersion, "other types untouched")
		require.JSONEq(t, `{"name":"keep"}`, string(got[2].Data))
		require.JSONEq(t, `{"title":"cap","qty":2}`, string(got[3].Data))
	}
	qty, _, err := eventstore.Load(ctx, s, "p", 0, func(n int, e eventstore.Event) (int, error) {
		if e.Type != "ItemAdded" {
			return n, nil
		}
		require.Equal(t, 3, e.SchemaVersion)
		var p struct{ Qty int }
		err := json.Unmarshal(e.Data, &p)
		return n + p.Qty, err
	})
	require.NoError(t, err)
	require.Equal(t, 4, qty)

	// The old store, without upcasters, still reads the stored payloads.
	raw, err := old.ReadStream(ctx, "p", 1, 1)
	require.NoError(t, err)
	require.JSONEq(t, `{"name":"pen"}`, string(raw[0].Data))

	broken := newStore(t, db, eventstore.Config{Dialect: d, Upcasters: []eventstore.Upcaster{
		{Type: "ItemAdded", From: 1, Up: func([]byte) ([]byte, error) { return nil, errors.New("cannot convert") }},
	}})
	_, err = broken.ReadStream(ctx, "p", 1, 0)
	require.ErrorContains(t, err, "cannot convert")
}

func testOutboxAtomic(t *testing.T, db *sql.DB, d appdb.Dialect) {
	ctx := ctxFor(t)
	ob := &outbox.Outbox{Dialect: d, Table: "es_outbox"}
	require.NoError(t, ob.Migrate(ctx, db))
	s := newStore(t, db, eventstore.Config{Dialect: d, Outbox: ob,
		Topic: func(e eventstore.Event) string { return "shop." + e.Type }})
	_, err := db.ExecContext(ctx, `CREATE TABLE business (id VARCHAR(20) PRIMARY KEY)`)
	require.NoError(t, err)

	messages := func() []string {
		rows, err := db.QueryContext(ctx, `SELECT msg_id, topic, msg_key FROM es_outbox ORDER BY seq`)
		require.NoError(t, err)
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, topic, key string
			require.NoError(t, rows.Scan(&id, &topic, &key))
			out = append(out, id+" "+topic+" "+key)
		}
		require.NoError(t, rows.Err())
		return out
	}

	_, err = s.Append(ctx, "cart-1", eventstore.NoStream, ev("Created", `{}`), ev("ItemAdded", `"a"`))
	require.NoError(t, err)
	require.Equal(t, []string{"cart-1@1 shop.Created cart-1", "cart-1@2 shop.ItemAdded cart-1"}, messages())

	// A conflict writes neither event nor message.
	_, err = s.Append(ctx, "cart-1", eventstore.NoStream, ev("Created", `{}`))
	require.ErrorIs(t, err, eventstore.ErrConflict)
	require.Len(t, messages(), 2)

	// With the caller's transaction: business row, events and messages
	// commit together or not at all.
	insert := d.Rebind(`INSERT INTO business (id) VALUES (?)`)
	errBoom := errors.New("boom")
	err = inTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, insert, "x"); err != nil {
			return err
		}
		if _, err := s.AppendTx(ctx, tx, "cart-2", eventstore.NoStream, ev("Created", `{}`)); err != nil {
			return err
		}
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	require.Len(t, messages(), 2)
	got, err := s.ReadStream(ctx, "cart-2", 1, 0)
	require.NoError(t, err)
	require.Empty(t, got)

	err = inTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, insert, "y"); err != nil {
			return err
		}
		_, err := s.AppendTx(ctx, tx, "cart-2", eventstore.NoStream, ev("Created", `{}`))
		return err
	})
	require.NoError(t, err)
	require.Equal(t, "cart-2@1 shop.Created cart-2", messages()[2])
	var n int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM business`).Scan(&n))
	require.Equal(t, 1, n)

	// The message carries the event.
	m := eventstore.Message("t", eventstore.Event{Position: 9, Stream: "s", Version: 3, Type: "T", SchemaVersion: 2, Data: []byte("p")})
	require.Equal(t, "s@3", m.ID)
	require.Equal(t, "s", m.Key)
	require.Equal(t, map[string]string{"event-type": "T", "event-schema-version": "2", "event-stream": "s",
		"event-version": "3", "event-position": "9"}, m.Headers)
	back, err := eventstore.EventFromMessage(m)
	require.NoError(t, err)
	require.Equal(t, eventstore.Event{Position: 9, Stream: "s", Version: 3, Type: "T", SchemaVersion: 2, Data: []byte("p"), Metadata: []byte{}}, back)
	delete(m.Headers, "event-position")
	_, err = eventstore.EventFromMessage(m)
	require.ErrorIs(t, err, eventstore.ErrInvalid)
}
