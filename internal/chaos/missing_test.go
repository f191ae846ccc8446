package chaos

import (
	"context"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// notNowDomain refuses its fault (errNotNow) the first refusals times.
type notNowDomain struct {
	refusals, calls int
}

func (d *notNowDomain) kinds() []Kind { return []Kind{PGFailover} }

func (d *notNowDomain) inject(context.Context, *rand.Rand, Kind, func(string, ...any)) error {
	d.calls++
	if d.calls <= d.refusals {
		return errNotNow
	}
	return nil
}

func (d *notNowDomain) settle(context.Context) error { return nil }
func (d *notNowDomain) close()                       {}

// TestInjectMissing: a planned kind whose slot was skipped (the CI failure
// of stop 22: pg_auto_failover was failing over on its own when the
// pg_failover slot came) is tried again until it is injected, and given up
// after missingFor, so that the run reports it missing.
func TestInjectMissing(t *testing.T) {
	every, within := missingEvery, missingFor
	t.Cleanup(func() { missingEvery, missingFor = every, within })
	missingEvery = time.Millisecond
	run := func(d *notNowDomain, injected int64) *runner {
		r := &runner{cfg: Config{Log: io.Discard}, t0: time.Now(), shop: &proc{},
			topo: &topology{domains: []faultDomain{d}}, injected: map[Kind]int64{PGFailover: injected}}
		require.NoError(t, r.injectMissing(context.Background(), []Kind{PGFailover}))
		return r
	}

	missingFor = time.Minute
	d := &notNowDomain{refusals: 3}
	r := run(d, 0)
	require.Equal(t, int64(1), r.injected[PGFailover])
	require.Equal(t, 4, d.calls, "tried until injected, then no more")

	d = &notNowDomain{}
	run(d, 1)
	require.Zero(t, d.calls, "nothing to do: the kind is in")

	missingFor = 50 * time.Millisecond
	d = &notNowDomain{refusals: 1 << 30}
	r = run(d, 0)
	require.Zero(t, r.injected[PGFailover], "still missing: the run reports it")
	require.Positive(t, d.calls)
}
