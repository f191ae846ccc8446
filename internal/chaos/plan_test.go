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
			// The run relies on this: the first slots hold each kind once.
			first := map[Kind]int{}
			for _, sl := range s[:len(ProcessKinds(p))] {
				first[sl.Kind]++
			}
			for _, k := range ProcessKinds(p) {
				require.Equal(t, 1, first[k], "%s %v: %s once among the first slots", p, d, k)
			}
			require.Equal(t, s, Schedule(rand.New(rand.NewPCG(1, 2)), p, d), "seeded")
		}
	}
}
