package flow_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/flow"
)

// TestPurge: events observed before the cutoff go, in batches; later ones
// stay.
func TestPurge(t *testing.T) {
	t.Parallel()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			require.NoError(t, st.Migrate(ctx))
			now := time.Now()
			for i := range 7 {
				require.NoError(t, st.Record(ctx, flow.Event{MessageID: fmt.Sprintf("old/%d", i), CorrelationID: "old",
					Type: "placed", ObservedAt: now.Add(-30 * 24 * time.Hour)}))
			}
			require.NoError(t, st.Record(ctx, flow.Event{MessageID: "new/0", CorrelationID: "new", Type: "placed", ObservedAt: now}))
			n, err := st.Purge(ctx, now.Add(-24*time.Hour), 3)
			require.NoError(t, err)
			require.EqualValues(t, 7, n)
			_, err = st.Timeline(ctx, "old")
			require.ErrorIs(t, err, flow.ErrNotFound)
			tl, err := st.Timeline(ctx, "new")
			require.NoError(t, err)
			require.Len(t, tl, 1)
		})
	}
}
