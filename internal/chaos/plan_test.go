package chaos

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSchedule(t *testing.T) {
	for _, p := range Patterns {
		for _, d := range []time.Duration{10 * time.Second, 20 * time.Second, time.Minute} {
			s := Schedule(rand.New(rand.NewPCG(1, 2)), p, d)
			kinds := map[Kind]bool{}
			var last time.Duration
			for _, sl := range s {
				kinds[sl.Kind] = true
				require.Greater(t, sl.At, last, "slots in order")
				require.Less(t, sl.At, d-3*time.Second, "room to recover before the end")
				last = sl.At
			}
			for _, k := range ProcessKinds(p) {
				require.True(t, kinds[k], "%s %v: %s planned", p, d, k)
			}
			require.Equal(t, s, Schedule(rand.New(rand.NewPCG(1, 2)), p, d), "seeded")
		}
	}
}
