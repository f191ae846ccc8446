package eventstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dtxhq/dtx/appdb"
	"github.com/dtxhq/dtx/broker"
	"github.com/dtxhq/dtx/outbox"
)

// Expected versions with a special meaning for Append.
const (
	// NoStream expects the stream not to exist yet (version 0).
	NoStream int64 = 0
	// AnyVersion appends whatever the stream's version is.
	AnyVersion int64 = -1
)

// MaxStreamLen bounds the length in bytes of a stream name; MaxTypeLen
// bounds an event type. Both fit the indexed columns of every dialect, and a
// stream name leaves room for the version in an outbox message id.
const (
	MaxStreamLen = 200
	MaxTypeLen   = 255
)

// Errors returned by the package.
var (
	// ErrConflict matches (errors.Is) every *ConflictError.
	ErrConflict = errors.New("eventstore: version conflict")
	// ErrInvalid is returned (wrapped) for a bad argument: an empty or too
	// long stream name or event type, no events, an expected version below
	// AnyVersion. Nothing is written.
	ErrInvalid = errors.New("eventstore: invalid argument")
)

// ConflictError is the error of an append whose expected version is not the
// stream's current version: another writer appended first. Reload the
// aggregate, decide again and retry.
type ConflictError struct {
	Stream   string
	Expected int64
	// Actual is the stream's version when the append was refused.
	Actual int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("eventstore: stream %q is at version %d, expected %d", e.Stream, e.Actual, e.Expected)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// EventData is an event to append.
type EventData struct {
	// Type names the event ("ItemAdded"); required.
	Type string
	// SchemaVersion is the version of Data's layout for this Type (0 means
	// 1). Bump it when the payload changes and register an Upcaster from
	// the old version.
	SchemaVersion int
	// Data is the payload, usually JSON.
	Data []byte
	// Metadata is optional (correlation ids, user, ...), usually JSON.
	Metadata []byte
}

// Event is a stored event.
type Event struct {
	// Position is the event's place in the store's global order, from 1,
	// without gaps: positions become visible in increasing order.
	Position int64
	// Stream and Version: the event is number Version (from 1) of Stream.
	Stream  string
	Version int64
	Type    string
	// SchemaVersion is the payload's layout version after upcasting.
	SchemaVersion int
	Data          []byte
	Metadata      []byte
	// RecordedAt is the database clock at the append, to the millisecond;
	// zero in the events Append returns (the clock is read by the database).
	RecordedAt time.Time
}

// Upcaster converts the payload of an event of Type from schema version
// From to From+1. Upcasters run when events are read (they never rewrite
// stored rows), one after the other, until no upcaster matches.
type Upcaster struct {
	Type string
	From int
	Up   func(data []byte) ([]byte, error)
}

// Config configures a Store.
type Config struct {
	// Dialect is the SQL flavour of the database.
	Dialect appdb.Dialect
	// Table is the event table (default DefaultTable), optionally
	// schema-qualified; at most 48 characters for the table part.
	Table string
	// Upcasters convert old payloads on read; at most one per (Type, From).
	Upcasters []Upcaster
	// Outbox, if set, makes every append also write one message per event
	// into this outbox in the same transaction (see Message), so that an
	// event is published if and only if it is stored. The outbox table
	// must live in the same database (run its Migrate too).
	Outbox *outbox.Outbox
	// Topic names the topic of an event's message (default: the constant
	// "events"). Used only with Outbox.
	Topic func(Event) string
}

// Store is an event store in a database/sql database. It is safe for
// concurrent use.
//
// Appends are serialised store-wide by a lock on one row (the _head table)
// held until the appending transaction commits: that is what makes global
// positions gapless and visible in order, so that a subscriber reading
// "after position p" never skips an event that commits later. Keep
// appending transactions short; appends to different streams do not run in
// parallel.
type Store struct {
	db        *sql.DB
	dialect   appdb.Dialect
	q         queries
	upcasters map[upKey]func([]byte) ([]byte, error)
	outbox    *outbox.Outbox
	topic     func(Event) string
}

type upKey struct {
	typ  string
	from int
}

// New returns a Store on db. Call Migrate once before use.
func New(db *sql.DB, cfg Config) (*Store, error) {
	q, err := buildQueries(cfg.Dialect, cfg.Table)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, dialect: cfg.Dialect, q: q, outbox: cfg.Outbox, topic: cfg.Topic,
		upcasters: map[upKey]func([]byte) ([]byte, error){}}
	for _, u := range cfg.Upcasters {
		k := upKey{u.Type, u.From}
		if u.Type == "" || u.From < 1 || u.Up == nil {
			return nil, fmt.Errorf("%w: upcaster for %q from %d needs a type, From >= 1 and Up", ErrInvalid, u.Type, u.From)
		}
		if _, dup := s.upcasters[k]; dup {
			return nil, fmt.Errorf("%w: two upcasters for %q from %d", ErrInvalid, u.Type, u.From)
		}
		s.upcasters[k] = u.Up
	}
	if s.topic == nil {
		s.topic = func(Event) string { return "events" }
	}
	return s, nil
}

// Schema returns the statements that create the store's tables if they do
// not exist, to run in order in one transaction.
func (s *Store) Schema() []string { return append([]string(nil), s.q.schema...) }

// Migrate creates the store's tables if they do not exist. It is safe to
// call on every start, concurrently from several processes.
func (s *Store) Migrate(ctx context.Context) error {
	if err := appdb.Migrate(ctx, appdb.FromSQL(s.db), s.q.schema); err != nil {
		return fmt.Errorf("eventstore: migrate: %w", err)
	}
	return nil
}

// Append appends events to stream in a transaction of its own, if the
// stream is at version expected (NoStream for a new stream, AnyVersion to
// skip the check), and returns the stored events. A stale expected version
// gets a *ConflictError (errors.Is(err, ErrConflict)) and writes nothing.
func (s *Store) Append(ctx context.Context, stream string, expected int64, events ...EventData) ([]Event, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("eventstore: begin: %w", err)
	}
	defer tx.Rollback()
	out, err := s.AppendTx(ctx, tx, stream, expected, events...)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("eventstore: commit: %w", err)
	}
	return out, nil
}

// AppendTx is Append inside the caller's open transaction tx on the store's
// database: the events (and their outbox messages, with Config.Outbox)
// exist if and only if tx commits, together with whatever else tx writes.
// The store's append lock is held from this call until tx ends, so call it
// last, commit promptly, and append to one stream per transaction. On error
// the caller must roll tx back; a *ConflictError leaves tx unchanged.
//
// On PostgreSQL tx must run at READ COMMITTED (the default); on SQLite it
// must have begun as a write transaction (BEGIN IMMEDIATE), or a concurrent
// writer may get SQLITE_BUSY.
func (s *Store) AppendTx(ctx context.Context, tx *sql.Tx, stream string, expected int64, events ...EventData) ([]Event, error) {
	if err := checkAppend(stream, expected, events); err != nil {
		return nil, err
	}
	var head int64
	if err := tx.QueryRowContext(ctx, s.q.lockHead).Scan(&head); err != nil {
		return nil, fmt.Errorf("eventstore: lock head: %w", err)
	}
	var current int64
	switch err := tx.QueryRowContext(ctx, s.q.streamVersion, stream).Scan(&current); {
	case errors.Is(err, sql.ErrNoRows):
		current = 0
	case err != nil:
		return nil, fmt.Errorf("eventstore: read stream version: %w", err)
	}
	if expected != AnyVersion && expected != current {
		return nil, &ConflictError{Stream: stream, Expected: expected, Actual: current}
	}
	next := current + int64(len(events))
	if current == 0 {
		if _, err := tx.ExecContext(ctx, s.q.insertStream, stream, next); err != nil {
			return nil, fmt.Errorf("eventstore: create stream: %w", err)
		}
	} else {
		res, err := tx.ExecContext(ctx, s.q.updateStream, next, stream, current)
		if err != nil {
			return nil, fmt.Errorf("eventstore: update stream: %w", err)
		}
		if n, err := res.RowsAffected(); err == nil && n != 1 {
			// Cannot happen under the head lock; refuse rather than fork.
			return nil, &ConflictError{Stream: stream, Expected: expected, Actual: -1}
		}
	}
	if _, err := tx.ExecContext(ctx, s.q.setHead, head+int64(len(events))); err != nil {
		return nil, fmt.Errorf("eventstore: advance head: %w", err)
	}
	out := make([]Event, len(events))
	for i, e := range events {
		sv := e.SchemaVersion
		if sv == 0 {
			sv = 1
		}
		out[i] = Event{Position: head + 1 + int64(i), Stream: stream, Version: current + 1 + int64(i),
			Type: e.Type, SchemaVersion: sv, Data: nonNil(e.Data), Metadata: nonNil(e.Metadata)}
	}
	if err := s.insert(ctx, tx, out); err != nil {
		return nil, err
	}
	if s.outbox != nil {
		msgs := make([]broker.Message, len(out))
		for i, e := range out {
			msgs[i] = Message(s.topic(e), e)
		}
		if err := s.outbox.Add(ctx, tx, msgs...); err != nil {
			return nil, fmt.Errorf("eventstore: outbox: %w", err)
		}
	}
	return out, nil
}

// insertChunk bounds the rows of one INSERT (7 parameters each).
const insertChunk = 100

func (s *Store) insert(ctx context.Context, tx *sql.Tx, evs []Event) error {
	for len(evs) > 0 {
		n := min(len(evs), insertChunk)
		args := make([]any, 0, n*7)
		for _, e := range evs[:n] {
			args = append(args, e.Position, e.Stream, e.Version, e.Type, e.SchemaVersion, e.Data, e.Metadata)
		}
		q := s.dialect.Rebind(s.q.insertEvents + s.dialect.Expand(appdb.Table{}, appdb.Placeholders(n, 7, "{now}")))
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("eventstore: insert events: %w", err)
		}
		evs = evs[n:]
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func checkAppend(stream string, expected int64, events []EventData) error {
	if stream == "" || len(stream) > MaxStreamLen {
		return fmt.Errorf("%w: stream name must have 1 to %d bytes", ErrInvalid, MaxStreamLen)
	}
	if expected < AnyVersion {
		return fmt.Errorf("%w: expected version %d", ErrInvalid, expected)
	}
	if len(events) == 0 {
		return fmt.Errorf("%w: no events", ErrInvalid)
	}
	for i, e := range events {
		if e.Type == "" || len(e.Type) > MaxTypeLen {
			return fmt.Errorf("%w: event %d: type must have 1 to %d bytes", ErrInvalid, i, MaxTypeLen)
		}
		if e.SchemaVersion < 0 {
			return fmt.Errorf("%w: event %d: schema version %d", ErrInvalid, i, e.SchemaVersion)
		}
	}
	return nil
}

// Message is the broker message that announces e, as Append writes it into
// the outbox: ID "<stream>@<version>" (stable, for the inbox), Key the
// stream (per-stream order), Payload e.Data, and the headers event-type,
// event-schema-version, event-stream, event-version and event-position.
func Message(topic string, e Event) broker.Message {
	return broker.Message{
		ID:    e.Stream + "@" + strconv.FormatInt(e.Version, 10),
		Topic: topic,
		Key:   e.Stream,
		Headers: map[string]string{
			"event-type":           e.Type,
			"event-schema-version": strconv.Itoa(e.SchemaVersion),
			"event-stream":         e.Stream,
			"event-version":        strconv.FormatInt(e.Version, 10),
			"event-position":       strconv.FormatInt(e.Position, 10),
		},
		Payload: e.Data,
	}
}

// EventFromMessage is the inverse of Message: it rebuilds the event a
// message announces (without RecordedAt, and before upcasting: see
// Store.Upcast), for consumers that receive events through a broker. A
// message without the event headers, or with malformed ones, gets an error
// wrapping ErrInvalid.
func EventFromMessage(m broker.Message) (Event, error) {
	e := Event{Stream: m.Headers["event-stream"], Type: m.Headers["event-type"], Data: m.Payload, Metadata: []byte{}}
	var err1, err2, err3 error
	e.Version, err1 = strconv.ParseInt(m.Headers["event-version"], 10, 64)
	e.Position, err2 = strconv.ParseInt(m.Headers["event-position"], 10, 64)
	e.SchemaVersion, err3 = strconv.Atoi(m.Headers["event-schema-version"])
	if e.Stream == "" || e.Type == "" || errors.Join(err1, err2, err3) != nil || e.Version < 1 || e.Position < 1 || e.SchemaVersion < 1 {
		return Event{}, fmt.Errorf("%w: message %q does not carry an event (headers event-stream, event-type, event-version, event-position, event-schema-version)", ErrInvalid, m.ID)
	}
	if e.Data == nil {
		e.Data = []byte{}
	}
	return e, nil
}

// DefaultLimit is the page size of ReadStream and ReadAll when limit <= 0.
const DefaultLimit = 1000

// ReadStream returns up to limit events of stream with version >= from, in
// version order, upcast (limit <= 0: DefaultLimit). A stream that does not
// exist has no events.
func (s *Store) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return s.query(ctx, s.q.readStream, stream, from, limit)
}

// ReadAll returns up to limit events with a global position after after,
// in position order, upcast (limit <= 0: DefaultLimit). A subscriber that
// remembers the last position it handled and asks for what follows sees
// every event exactly once, in commit order.
func (s *Store) ReadAll(ctx context.Context, after int64, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return s.query(ctx, s.q.readAll, after, limit)
}

// Head returns the position of the last committed event (0 if none).
func (s *Store) Head(ctx context.Context) (int64, error) {
	var p int64
	if err := s.db.QueryRowContext(ctx, s.q.head).Scan(&p); err != nil {
		return 0, fmt.Errorf("eventstore: head: %w", err)
	}
	return p, nil
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("eventstore: read: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var ms int64
		if err := rows.Scan(&e.Position, &e.Stream, &e.Version, &e.Type, &e.SchemaVersion, &e.Data, &e.Metadata, &ms); err != nil {
			return nil, fmt.Errorf("eventstore: read: %w", err)
		}
		e.RecordedAt = time.UnixMilli(ms)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventstore: read: %w", err)
	}
	for i := range out {
		if err := s.upcast(&out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Upcast returns e with the store's upcasters applied, as the read methods
// return it. Events read from the store are upcast already; this is for
// events rebuilt from messages (EventFromMessage). It needs no database:
// a consumer may build a Store with New(nil, cfg) for its upcasters alone.
func (s *Store) Upcast(e Event) (Event, error) {
	err := s.upcast(&e)
	return e, err
}

// upcast applies the registered upcasters to e in place.
func (s *Store) upcast(e *Event) error {
	for {
		up, ok := s.upcasters[upKey{e.Type, e.SchemaVersion}]
		if !ok {
			return nil
		}
		data, err := up(e.Data)
		if err != nil {
			return fmt.Errorf("eventstore: upcast %s v%d (stream %q version %d): %w", e.Type, e.SchemaVersion, e.Stream, e.Version, err)
		}
		e.Data = data
		e.SchemaVersion++
	}
}
