package coordinator

import (
	"sync/atomic"
	"time"
)

// workers runs functions on goroutines kept between uses. A new goroutine
// starts with a small stack and grows it, by copying, as a branch call
// goes down through the transport and a driver through the store; one kept
// from an earlier call has grown already (measured: stack copies were 6 %
// of a coordinator's CPU with a goroutine per call and per driver).
type workers struct {
	tasks chan func() // unbuffered: a send succeeds only on an idle worker
	idle  time.Duration
	quit  <-chan struct{}
	live  atomic.Int64 // workers running or idle
}

func newWorkers(idle time.Duration, quit <-chan struct{}) *workers {
	return &workers{tasks: make(chan func()), idle: idle, quit: quit}
}

// Go runs f on an idle worker, or on a new one when none is idle, as the
// go statement would: f starts at once in any case.
func (w *workers) Go(f func()) {
	select {
	case w.tasks <- f:
	default:
		w.live.Add(1)
		go w.work(f)
	}
}

// work runs f, then whatever Go hands it, until it has been idle for
// w.idle or quit is closed.
func (w *workers) work(f func()) {
	defer w.live.Add(-1)
	t := time.NewTimer(w.idle)
	defer t.Stop()
	for {
		f()
		f = nil // let what f holds be collected while idle
		t.Reset(w.idle)
		select {
		case f = <-w.tasks:
		case <-t.C:
			return
		case <-w.quit:
			return
		}
	}
}
