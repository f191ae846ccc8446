package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/api"
	"github.com/dtxhq/dtx/internal/problem"
)

// GET /v1/events is a Server-Sent Events stream of transaction changes, for
// the dashboard and anything else that wants to watch live:
//
//	event: hello     data: {"counts": {...}}   once on connect: (re)load everything
//	event: tx        data: api.TxChange         a transaction was created or changed
//	event: counts    data: {"counts": {...}}   transactions per status, after changes
//
// The changes come from polling the store, not from the coordinator's hot
// path: a poller runs only while at least one client is connected and reads,
// every EventPollInterval, the unfinished transactions and the newest ones
// (both served by indexes), then the final state of those that left the
// unfinished set. Polling the store rather than hooking the coordinator also
// shows the work of every coordinator sharing the database. A transaction
// created and finished between two polls is reported if it is among the
// EventWindow newest; so is one that changes while more than EventWindow
// others are unfinished only if it is among them.

// EventPollInterval is how often the event stream's poller reads the store.
const EventPollInterval = 500 * time.Millisecond

// EventWindow bounds each of the poller's reads (newest transactions, and
// unfinished transactions per status).
const EventWindow = 500

// eventHeartbeat keeps idle streams open through proxies and notices gone
// clients.
const eventHeartbeat = 15 * time.Second

// eventBuffer is how many events a slow client may have pending; past it
// the client is disconnected and its EventSource reconnects and reloads.
const eventBuffer = 256

type sseEvent struct {
	name string
	data []byte
	// public, if set, is data as readers without the admin token see it
	// (redact.go).
	public []byte
}

type subscriber struct {
	ch   chan sseEvent
	gone chan struct{} // closed when dropped for falling behind
}

// hub fans the poller's events out to the connected streams.
type hub struct {
	store    dtx.TxLog
	interval time.Duration
	// writeTimeout bounds each write to a stream: a client that stops
	// reading is disconnected rather than held.
	writeTimeout time.Duration

	mu       sync.Mutex
	subs     map[*subscriber]struct{}
	stopPoll chan struct{} // closes the running poller; nil when none runs
	closed   bool
	done     chan struct{} // closed by close: every stream ends
	pollWG   sync.WaitGroup
	// baselined, if set (by tests, before the first stream), is called
	// after each poller's first read: changes from then on are reported.
	baselined func()
}

// writeDeadline is the deadline of the next write to a stream (none
// without a write timeout).
func (h *hub) writeDeadline() time.Time {
	if h.writeTimeout <= 0 {
		return time.Time{}
	}
	return time.Now().Add(h.writeTimeout)
}

func newHub(store dtx.TxLog, interval time.Duration) *hub {
	return &hub{store: store, interval: interval, subs: map[*subscriber]struct{}{}, done: make(chan struct{})}
}

// CloseStreams ends every open event stream and refuses new ones, so that
// an http.Server's Shutdown need not wait for them (register it with
// RegisterOnShutdown).
func (s *Server) CloseStreams() { s.events.close() }

func (h *hub) close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.done)
		if h.stopPoll != nil {
			close(h.stopPoll)
			h.stopPoll = nil
		}
	}
	h.mu.Unlock()
	h.pollWG.Wait()
}

// subscribe adds a stream, starting the poller for the first one. It returns
// nil once the hub is closed.
func (h *hub) subscribe() *subscriber {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	s := &subscriber{ch: make(chan sseEvent, eventBuffer), gone: make(chan struct{})}
	h.subs[s] = struct{}{}
	if h.stopPoll == nil {
		h.stopPoll = make(chan struct{})
		h.pollWG.Add(1)
		go h.poll(h.stopPoll)
	}
	return s
}

// unsubscribe removes a stream, stopping the poller after the last one.
func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drop(s)
}

// drop removes s; h.mu is held.
func (h *hub) drop(s *subscriber) {
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	close(s.gone)
	if len(h.subs) == 0 && h.stopPoll != nil {
		close(h.stopPoll)
		h.stopPoll = nil
	}
}

// publish hands ev to every stream without blocking; a stream whose buffer
// is full is dropped (its client reconnects and reloads).
func (h *hub) publish(ev sseEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- ev:
		default:
			h.drop(s)
		}
	}
}

// txKey is what the poller compares to notice a change.
type txKey struct {
	status    dtx.Status
	reason    string
	updatedAt time.Time
	owner     string
}

func keyOf(tx *dtx.Tx) txKey {
	return txKey{tx.Status, tx.Reason, tx.UpdatedAt, tx.LeaseOwner}
}

// poll reads the store every interval until stop is closed and publishes
// what changed since the previous read. The first read only sets the
// baseline: clients load the current state themselves on "hello".
func (h *hub) poll(stop chan struct{}) {
	defer h.pollWG.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	var prev map[string]txKey
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		next, changed, err := h.scan(ctx, prev)
		if err == nil {
			if prev != nil {
				for i := range changed {
					h.publishTx(&changed[i])
				}
				if len(changed) > 0 {
					if counts, err := h.store.Counts(ctx); err == nil {
						h.publishJSON("counts", api.CountsEvent{Counts: counts})
					}
				}
			}
			if prev == nil && h.baselined != nil {
				h.baselined()
			}
			prev = next
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// scan reads the watched transactions and returns them keyed by gid, plus
// those that differ from prev (all of them when prev is nil).
func (h *hub) scan(ctx context.Context, prev map[string]txKey) (map[string]txKey, []dtx.Tx, error) {
	next := map[string]txKey{}
	var changed []dtx.Tx
	see := func(tx *dtx.Tx) {
		k := keyOf(tx)
		if old, ok := prev[tx.GID]; !ok || old != k {
			changed = append(changed, *tx)
		}
		next[tx.GID] = k
	}
	for _, f := range []dtx.ListFilter{
		{Limit: EventWindow},
		{Status: dtx.StatusRunning, Limit: EventWindow},
		{Status: dtx.StatusCompensating, Limit: EventWindow},
	} {
		txs, err := h.store.List(ctx, f)
		if err != nil {
			return nil, nil, err
		}
		for i := range txs {
			if _, dup := next[txs[i].GID]; !dup {
				see(&txs[i])
			}
		}
	}
	// A transaction that was unfinished and is no longer among those read
	// has moved on (usually finished): read it alone.
	for gid, k := range prev {
		if _, ok := next[gid]; ok || k.status.Terminal() {
			continue
		}
		tx, _, err := h.store.Get(ctx, gid)
		if err != nil {
			continue // gone, or a read error: tried again on the next poll if still tracked
		}
		see(tx)
	}
	return next, changed, nil
}

func (h *hub) publishTx(tx *dtx.Tx) {
	h.publishChange(api.Summarize(tx))
}

func (h *hub) publishJSON(name string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		return
	}
	h.publish(sseEvent{name: name, data: data})
}

// ServeHTTP serves one event stream until the client goes, falls behind,
// or the hub closes.
func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	sub := h.subscribe()
	if sub == nil {
		problem.Write(w, http.StatusServiceUnavailable, "the coordinator is shutting down")
		return
	}
	defer h.unsubscribe(sub)
	counts, err := h.store.Counts(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	hello, _ := json.Marshal(api.CountsEvent{Counts: counts})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // no proxy buffering
	// The stream outlives the server's read deadline; each write gets its
	// own deadline.
	extendDeadlines(w, h.writeDeadline())
	w.WriteHeader(http.StatusOK)
	// retry: how long a browser waits before reconnecting.
	if _, err := fmt.Fprintf(w, "retry: 2000\n\nevent: hello\ndata: %s\n\n", hello); err != nil || rc.Flush() != nil {
		return
	}
	reveal := revealed(r.Context())
	beat := time.NewTicker(eventHeartbeat)
	defer beat.Stop()
	for {
		var msg string
		select {
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		case <-sub.gone:
			return
		case <-beat.C:
			msg = ": ping\n\n"
		case ev := <-sub.ch:
			msg = fmt.Sprintf("event: %s\ndata: %s\n\n", ev.name, ev.dataFor(reveal))
		}
		_ = rc.SetWriteDeadline(h.writeDeadline())
		if _, err := fmt.Fprint(w, msg); err != nil || rc.Flush() != nil {
			return
		}
	}
}
