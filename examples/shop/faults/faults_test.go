package faults_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/examples/shop/faults"
	"github.com/dtxhq/dtx/examples/shop/internal/shoptest"
)

func TestParseKinds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []faults.Kind
		err  bool
	}{
		{"", nil, false},
		{"fail", []faults.Kind{faults.Fail}, false},
		{"fail, delay,lose", []faults.Kind{faults.Fail, faults.Delay, faults.Lose}, false},
		{"all", faults.AllKinds, false},
		{"fail,crash", nil, true},
	} {
		got, err := faults.ParseKinds(tc.in)
		if tc.err {
			assert.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
}

func TestNew_Validates(t *testing.T) {
	_, err := faults.New(faults.Config{Rate: 1.5})
	require.Error(t, err)
	_, err = faults.New(faults.Config{Rate: 0.5, Kinds: []faults.Kind{"boom"}})
	require.Error(t, err)
}

// serve wraps a handler that counts its calls and answers 200.
func serve(t *testing.T, cfg faults.Config) (*faults.Injector, *httptest.Server, *atomic.Int64) {
	t.Helper()
	in, err := faults.New(cfg)
	require.NoError(t, err)
	var calls atomic.Int64
	srv := httptest.NewServer(in.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Write([]byte(`{}`))
	})))
	t.Cleanup(srv.Close)
	return in, srv, &calls
}

func branchCall(url string) (int, error) {
	code, _, err := shoptest.TryCall(url, "g1", 0, dtx.OpAction, `{}`)
	return code, err
}

func TestInjector(t *testing.T) {
	t.Run("OnlyBranchCalls", func(t *testing.T) {
		in, srv, calls := serve(t, faults.Config{Rate: 1, Kinds: []faults.Kind{faults.Fail}})
		code, _ := shoptest.Get(t, srv.URL)
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, int64(1), calls.Load())
		assert.Equal(t, faults.Stats{}, in.Stats())
	})

	t.Run("FailRunsNothing", func(t *testing.T) {
		in, srv, calls := serve(t, faults.Config{Rate: 1, Kinds: []faults.Kind{faults.Fail}})
		code, err := branchCall(srv.URL)
		require.NoError(t, err)
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.Zero(t, calls.Load())
		assert.Equal(t, faults.Stats{Calls: 1, Fail: 1}, in.Stats())
	})

	t.Run("LoseRunsThenHidesTheAnswer", func(t *testing.T) {
		in, srv, calls := serve(t, faults.Config{Rate: 1, Kinds: []faults.Kind{faults.Lose}, Seed: 1})
		var answered500, dropped int
		for range 20 {
			code, err := branchCall(srv.URL)
			if err != nil {
				dropped++
			} else {
				assert.Equal(t, http.StatusInternalServerError, code)
				answered500++
			}
		}
		assert.Equal(t, int64(20), calls.Load(), "the handler ran every time")
		assert.Positive(t, answered500)
		assert.Positive(t, dropped)
		assert.Equal(t, int64(20), in.Stats().Lose)
	})

	t.Run("DelayRunsLate", func(t *testing.T) {
		in, srv, calls := serve(t, faults.Config{Rate: 1, Kinds: []faults.Kind{faults.Delay}, Delay: 20 * time.Millisecond})
		code, err := branchCall(srv.URL)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, int64(1), calls.Load())
		assert.Equal(t, int64(1), in.Stats().Delay)
	})

	t.Run("DeterministicWithSeed", func(t *testing.T) {
		run := func() []int {
			_, srv, _ := serve(t, faults.Config{Rate: 0.5, Kinds: []faults.Kind{faults.Fail}, Seed: 42})
			var codes []int
			for range 40 {
				code, err := branchCall(srv.URL)
				require.NoError(t, err)
				codes = append(codes, code)
			}
			return codes
		}
		a, b := run(), run()
		assert.Equal(t, a, b)
		assert.Contains(t, a, http.StatusOK)
		assert.Contains(t, a, http.StatusServiceUnavailable)
	})

	t.Run("NilAndZeroRateInjectNothing", func(t *testing.T) {
		var in *faults.Injector
		h := http.NotFoundHandler()
		assert.Equal(t, faults.Stats{}, in.Stats())
		_, srv, calls := serve(t, faults.Config{})
		code, err := branchCall(srv.URL)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, int64(1), calls.Load())
		assert.NotNil(t, in.Wrap(h))
	})
}

func TestOpsAndMax(t *testing.T) {
	in, srv, calls := serve(t, faults.Config{Rate: 1, Kinds: []faults.Kind{faults.Fail}, Ops: []dtx.Op{dtx.OpConfirm}, Max: 2})
	code, _ := shoptest.Call(t, srv.URL, "g", 1, dtx.OpTry, `{}`)
	assert.Equal(t, http.StatusOK, code, "other ops pass through")
	for range 2 {
		code, _ = shoptest.Call(t, srv.URL, "g", 2, dtx.OpConfirm, `{}`)
		assert.Equal(t, http.StatusServiceUnavailable, code)
	}
	code, _ = shoptest.Call(t, srv.URL, "g", 2, dtx.OpConfirm, `{}`)
	assert.Equal(t, http.StatusOK, code, "no more than Max faults")
	assert.Equal(t, int64(2), calls.Load())
	assert.Equal(t, faults.Stats{Calls: 3, Fail: 2}, in.Stats())
}

func TestMinDelay(t *testing.T) {
	_, srv, _ := serve(t, faults.Config{Rate: 1, Kinds: []faults.Kind{faults.Delay}, MinDelay: 80 * time.Millisecond, Delay: 100 * time.Millisecond})
	start := time.Now()
	code, _ := shoptest.Call(t, srv.URL, "g", 1, dtx.OpAction, `{}`)
	assert.Equal(t, http.StatusOK, code)
	assert.GreaterOrEqual(t, time.Since(start), 80*time.Millisecond)
	_, err := faults.New(faults.Config{Rate: 1, MinDelay: -1})
	require.Error(t, err)
}
