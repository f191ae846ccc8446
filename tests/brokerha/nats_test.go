package brokerha_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNATSCluster_OutboxInbox runs outbox relay → R3 stream → inbox on a
// 3-node cluster while events keep coming: each node in turn is killed
// (SIGKILL) and events must still be applied while it is down, then it is
// restarted; then all three are restarted one after another (SIGTERM).
// At the end every event was applied exactly once, each key's in order.
func TestNATSCluster_OutboxInbox(t *testing.T) {
	c := startCluster(t)
	b := connect(t, c)
	p := newPipeline(t, b, "ha-events", 8)
	ctx := ctxT(t)
	start := time.Now()
	stop := p.produce(10 * time.Millisecond)
	p.progress(ctx, 20, "before the faults")
	for i := range c.Size() {
		p.pub.fault(true)
		require.NoError(t, c.Kill(i))
		p.progress(ctx, 30, "with a node killed") // the two others carry on
		require.NoError(t, c.Restart(ctx, i))
		require.NoError(t, c.WaitHealthy(ctx), "logs in %s", c.Dir())
		p.pub.fault(false)
	}
	killDuring, killPause := p.pub.figures()
	for i := range c.Size() { // a rolling restart
		p.pub.fault(true)
		require.NoError(t, c.Stop(i, 10*time.Second))
		p.progress(ctx, 10, "in a rolling restart")
		require.NoError(t, c.Restart(ctx, i))
		require.NoError(t, c.WaitHealthy(ctx), "logs in %s", c.Dir())
		p.pub.fault(false)
	}
	total := stop()
	p.check(ctx, total)
	rollDuring, rollPause := p.pub.figures()
	t.Logf("%d events in %v; 3 kills (until healthy again): %d events published, longest relay pause %v; rolling restart: %d published, longest pause %v",
		total, time.Since(start).Round(time.Millisecond), killDuring, killPause.Round(time.Millisecond),
		rollDuring, rollPause.Round(time.Millisecond))
}
