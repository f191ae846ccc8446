package shop

import (
	"encoding/json"
	"time"

	"github.com/dtxhq/dtx/internal/atomicfile"
)

// KeepFaultStats rewrites path with the shop's fault counts (FaultStats,
// as JSON) every 100ms until the returned function is called, which writes
// them a last time. A process killed with SIGKILL leaves its last
// snapshot: at most 100ms of faults are missing from it. An empty path
// does nothing.
func (s *Shop) KeepFaultStats(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	write := func() {
		b, _ := json.Marshal(s.FaultStats())
		_ = atomicfile.Write(path, string(b))
	}
	write()
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				write()
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		write()
	}
}
