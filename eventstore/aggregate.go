package eventstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Apply folds one event into an aggregate's state. It must be a pure
// function of its arguments: Load may start from a snapshot instead of the
// first event.
type Apply[S any] func(state S, e Event) (S, error)

// Load folds the events of stream into initial with apply and returns the
// state and the stream's version (0 for a stream without events), to pass
// as the expected version of the next Append.
func Load[S any](ctx context.Context, s *Store, stream string, initial S, apply Apply[S]) (S, int64, error) {
	return Aggregate[S]{Store: s, Initial: initial, Apply: apply}.Load(ctx, stream)
}

// Aggregate loads the state of one kind of stream, optionally from
// snapshots. The zero SnapshotEvery loads from the first event every time.
type Aggregate[S any] struct {
	Store *Store
	// Initial is the state before the first event. Apply receives it by
	// value: a state holding maps or slices must copy before changing them.
	Initial S
	Apply   Apply[S]
	// SnapshotEvery > 0 makes Load save the state (JSON-encoded, so S must
	// round-trip through encoding/json) once at least that many events
	// follow the last snapshot, and start later loads from it.
	SnapshotEvery int
	// SnapshotKey names the state's layout (default "v1"). Change it when S
	// or Apply changes meaning: snapshots of other keys are ignored and the
	// state is folded from the events again.
	SnapshotKey string
}

// readPage is the page size Load reads a stream in.
const readPage = 500

// Load returns the state of stream and its version. With snapshots it
// starts from the latest snapshot of SnapshotKey and, when SnapshotEvery or
// more events followed it, saves a new one; a failure to save is returned.
func (a Aggregate[S]) Load(ctx context.Context, stream string) (S, int64, error) {
	if a.Store == nil || a.Apply == nil {
		var zero S
		return zero, 0, fmt.Errorf("%w: aggregate needs a Store and Apply", ErrInvalid)
	}
	state, version := a.Initial, int64(0)
	key := a.SnapshotKey
	if key == "" {
		key = "v1"
	}
	if a.SnapshotEvery > 0 {
		var raw []byte
		err := a.Store.db.QueryRowContext(ctx, a.Store.q.snapshot, stream, key).Scan(&version, &raw)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			version = 0
		case err != nil:
			return state, 0, fmt.Errorf("eventstore: read snapshot: %w", err)
		default:
			var snap S
			if err := json.Unmarshal(raw, &snap); err != nil {
				return state, 0, fmt.Errorf("eventstore: decode snapshot of %q at %d: %w", stream, version, err)
			}
			state = snap
		}
	}
	snapAt := version
	for {
		evs, err := a.Store.ReadStream(ctx, stream, version+1, readPage)
		if err != nil {
			return state, 0, err
		}
		for _, e := range evs {
			if state, err = a.Apply(state, e); err != nil {
				return state, 0, fmt.Errorf("eventstore: apply %s (stream %q version %d): %w", e.Type, stream, e.Version, err)
			}
			version = e.Version
		}
		if len(evs) < readPage {
			break
		}
	}
	if a.SnapshotEvery > 0 && version-snapAt >= int64(a.SnapshotEvery) {
		raw, err := json.Marshal(state)
		if err != nil {
			return state, version, fmt.Errorf("eventstore: encode snapshot: %w", err)
		}
		if _, err := a.Store.db.ExecContext(ctx, a.Store.q.upsertSnap, stream, key, version, raw); err != nil {
			return state, version, fmt.Errorf("eventstore: save snapshot: %w", err)
		}
	}
	return state, version, nil
}

// SnapshotVersion returns the version of the stream's latest snapshot under
// key ("" for "v1"), 0 if there is none. It is meant for tests and tools.
func (s *Store) SnapshotVersion(ctx context.Context, stream, key string) (int64, error) {
	if key == "" {
		key = "v1"
	}
	var v int64
	var raw []byte
	switch err := s.db.QueryRowContext(ctx, s.q.snapshot, stream, key).Scan(&v, &raw); {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("eventstore: read snapshot: %w", err)
	}
	return v, nil
}
