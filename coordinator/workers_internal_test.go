package coordinator

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWorkers: Go never waits for a busy worker, reuses an idle one, and
// idle workers stop on quit and after their idle time.
func TestWorkers(t *testing.T) {
	quit := make(chan struct{})
	w := newWorkers(time.Hour, quit)

	// Two functions that wait for each other both run: the second does
	// not wait for the worker of the first.
	a, b := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	w.Go(func() { defer wg.Done(); close(a); <-b })
	w.Go(func() { defer wg.Done(); <-a; close(b) })
	wg.Wait()
	require.Equal(t, int64(2), w.live.Load())

	// The next functions run one at a time on idle workers. A worker
	// still on its way back to idle when Go comes has a new one started,
	// so a few more may be; a goroutine per function would be 100 more.
	for range 100 {
		done := make(chan struct{})
		w.Go(func() { close(done) })
		<-done
	}
	require.LessOrEqual(t, w.live.Load(), int64(10), "idle workers reused")

	close(quit)
	require.Eventually(t, func() bool { return w.live.Load() == 0 }, time.Minute, time.Millisecond, "stopped on quit")

	w = newWorkers(time.Millisecond, make(chan struct{}))
	done := make(chan struct{})
	w.Go(func() { close(done) })
	<-done
	require.Eventually(t, func() bool { return w.live.Load() == 0 }, time.Minute, time.Millisecond, "stopped when idle")
}
