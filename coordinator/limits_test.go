package coordinator_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// TestCoordinator_MaxTimeouts: timeouts above the configured maxima are
// refused at submission (dtx.ErrInvalid naming the field) and nothing is
// stored; a spec that asks for none gets the default capped at the
// maximum; the maxima are the defaults when not configured.
func TestCoordinator_MaxTimeouts(t *testing.T) {
	p := newParticipant(t, nil)
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	c, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{
		RetryBase: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		MaxTimeout: 30 * time.Second, MaxBranchTimeout: 2 * time.Second,
	})
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() { c.Close(context.Background()) })

	steps := []saga.Step{{Name: "a", Action: p.url("/a"), Compensate: p.url("/a-undo")}}
	_, _, err = c.Submit(context.Background(), saga.Spec{GID: "max-1", Steps: steps,
		Timeout: dtx.Duration(time.Minute), BranchTimeout: dtx.Duration(3 * time.Second)})
	require.ErrorIs(t, err, dtx.ErrInvalid)
	require.ErrorContains(t, err, "timeout: 1m0s is above this server's maximum of 30s")
	require.ErrorContains(t, err, "branch_timeout: 3s is above this server's maximum of 2s")
	_, _, err = st.Get(context.Background(), "max-1")
	require.ErrorIs(t, err, dtx.ErrNotFound, "nothing stored")

	// No timeouts asked: saga.DefaultTimeout (60s) capped at 30s, the
	// default branch timeout (5s) at 2s.
	d := submitWait(t, c, saga.Spec{GID: "max-2", Steps: steps})
	require.Equal(t, dtx.StatusSucceeded, d.Status)
	var got saga.Spec
	require.NoError(t, json.Unmarshal(d.Spec, &got))
	require.Equal(t, 30*time.Second, got.Timeout.Std())
	require.Equal(t, 2*time.Second, got.BranchTimeout.Std())

	// At the maxima exactly: accepted.
	d = submitWait(t, c, saga.Spec{GID: "max-3", Steps: steps,
		Timeout: dtx.Duration(30 * time.Second), BranchTimeout: dtx.Duration(2 * time.Second)})
	require.Equal(t, dtx.StatusSucceeded, d.Status)
}

func TestCoordinator_DefaultMaxTimeouts(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	c, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{})
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() { c.Close(context.Background()) })
	_, _, err = c.Submit(context.Background(), saga.Spec{GID: "huge", Steps: []saga.Step{{Action: "http://127.0.0.1:1/a"}},
		Timeout: dtx.Duration(1000000 * time.Hour), BranchTimeout: dtx.Duration(1000000 * time.Hour)})
	require.ErrorIs(t, err, dtx.ErrInvalid)
	require.ErrorContains(t, err, "timeout: 1000000h0m0s is above this server's maximum of "+coordinator.DefaultMaxTimeout.String())
	require.ErrorContains(t, err, "branch_timeout: 1000000h0m0s is above this server's maximum of "+coordinator.DefaultMaxBranchTimeout.String())
}

func TestConfig_ValidateMaxTimeouts(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	defer st.Close()
	_, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{MaxBranchTimeout: time.Millisecond})
	require.ErrorContains(t, err, "need at least 10ms")
}
