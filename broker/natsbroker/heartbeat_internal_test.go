package natsbroker

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// beatCounter is a jetstream.Msg whose InProgress counts its calls and
// signals each; its other methods are not used by keepAlive.
type beatCounter struct {
	jetstream.Msg
	n       atomic.Int32
	beats   chan struct{}
	stopped atomic.Bool
	t       *testing.T
}

func (m *beatCounter) InProgress() error {
	if m.stopped.Load() {
		m.t.Error("InProgress after stop returned")
	}
	m.n.Add(1)
	select {
	case m.beats <- struct{}{}:
	default:
	}
	return nil
}

func TestKeepAlive_BeatsUntilStopped(t *testing.T) {
	a := &beatCounter{beats: make(chan struct{}, 1), t: t}
	h := keepAlive(a, time.Millisecond)
	for range 3 { // it beats again and again while the handler runs
		<-a.beats
	}
	h.stop()
	a.stopped.Store(true)
	// Let a second heartbeat of the same period beat three times: the
	// stopped one would have beaten meanwhile.
	b := &beatCounter{beats: make(chan struct{}, 1), t: t}
	hb := keepAlive(b, time.Millisecond)
	for range 3 {
		<-b.beats
	}
	hb.stop()
}

func TestKeepAlive_NoBeatForAShortHandler(t *testing.T) {
	a := &beatCounter{beats: make(chan struct{}, 1), t: t}
	h := keepAlive(a, time.Hour)
	h.stop()
	a.stopped.Store(true)
	if n := a.n.Load(); n != 0 {
		t.Fatalf("%d beats", n)
	}
}
