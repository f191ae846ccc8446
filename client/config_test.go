package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/tcc"
	"github.com/dtxhq/dtx/transport/httptransport"
)

func TestConfig_ValidateNamesTheField(t *testing.T) {
	for _, c := range []struct {
		cfg  client.Config
		want string
	}{
		{client.Config{}, "Config.URL is empty"},
		{client.Config{URL: "127.0.0.1:8480"}, "Config.URL"},
		{client.Config{URL: "ftp://host"}, "want an absolute http:// or https:// URL"},
		{client.Config{URL: "http://host/?x=1"}, "want no query"},
		{client.Config{URL: "http://host", Timeout: -time.Second}, "Config.Timeout"},
		{client.Config{URL: "http://host", WaitTimeout: time.Hour}, "Config.WaitTimeout"},
	} {
		err := c.cfg.Validate()
		require.ErrorContains(t, err, c.want, "%+v", c.cfg)
		_, err = client.New(c.cfg)
		require.ErrorContains(t, err, c.want)
	}
	require.NoError(t, client.Config{URL: "https://dtx.example:8480/base/"}.Validate())
}

// newAPI starts a participant whose handler is behave, a coordinator and
// its API, and returns a client made by New and the participant's
// URL.
func newAPI(t *testing.T, behave http.HandlerFunc) (*client.Client, string) {
	t.Helper()
	part := httptest.NewServer(behave)
	t.Cleanup(part.Close)
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "dtx.db"), sqlstore.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	c, err := coordinator.New(st, httptransport.New(nil), coordinator.Config{
		RetryBase: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() { c.Close(context.Background()) })
	api := httptest.NewServer(server.New(c))
	t.Cleanup(api.Close)
	cl, err := client.New(client.Config{URL: api.URL, WaitTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	return cl, part.URL
}

// StartSaga returns while a step is still being called; Wait returns the
// outcome once it is there, asking again across several server-side waits
// (200ms each here) and giving the latest state with ctx's error when ctx
// ends first.
func TestClient_StartReturnsAtOnceAndWaitGivesTheOutcome(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	cl, part := newAPI(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
	})
	spec, err := saga.New("slow-1").Step("slow", part+"/slow", part+"/undo").BranchTimeout(time.Minute).Build()
	require.NoError(t, err)
	tx, err := cl.StartSaga(ctx(t), spec)
	require.NoError(t, err)
	require.Equal(t, dtx.StatusRunning, tx.Status)
	<-entered

	short, cancel := context.WithTimeout(ctx(t), 500*time.Millisecond)
	defer cancel()
	got, err := cl.Wait(short, "slow-1")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotNil(t, got)
	require.Equal(t, dtx.StatusRunning, got.Status)

	close(release)
	got, err = cl.Wait(ctx(t), "slow-1")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusSucceeded, got.Status)
}

func TestClient_StartTCCAndWait(t *testing.T) {
	cl, part := newAPI(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/b/try" {
			w.WriteHeader(http.StatusConflict)
		}
	})
	spec, err := tcc.New("tcc-1").
		Participant("a", part+"/a/try", part+"/a/confirm", part+"/a/cancel").
		Participant("b", part+"/b/try", part+"/b/confirm", part+"/b/cancel").
		Build()
	require.NoError(t, err)
	_, err = cl.StartTCC(ctx(t), spec)
	require.NoError(t, err)
	got, err := cl.Wait(ctx(t), "tcc-1")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, got.Status, "b refused its try: the transaction cancels")
}

// 4xx answers are *APIError values that carry the status, problem type and
// detail and match the package's sentinels.
func TestClient_TypedErrors(t *testing.T) {
	cl, part := newAPI(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })

	_, err := cl.Wait(ctx(t), "no-such-gid")
	require.ErrorIs(t, err, client.ErrNotFound)
	var ae *client.APIError
	require.True(t, errors.As(err, &ae))
	require.Equal(t, http.StatusNotFound, ae.Status)
	require.Equal(t, problem.TypeTransactionNotFound, ae.Type)

	spec, err := saga.New("same-gid").Step("a", part+"/a", part+"/undo-a").Build()
	require.NoError(t, err)
	_, err = cl.StartSaga(ctx(t), spec)
	require.NoError(t, err)
	other, err := saga.New("same-gid").Step("b", part+"/b", part+"/undo-b").Build()
	require.NoError(t, err)
	_, err = cl.StartSaga(ctx(t), other)
	require.ErrorIs(t, err, client.ErrConflict)
	require.NotErrorIs(t, err, client.ErrNotFound)

	// A spec the builder did not check: the coordinator's 400 names the field.
	_, err = cl.StartSaga(ctx(t), saga.Spec{GID: "bad", Steps: []saga.Step{{Name: "a", Action: "not-a-url"}}})
	require.ErrorIs(t, err, client.ErrInvalid)
	require.True(t, errors.As(err, &ae))
	require.Equal(t, http.StatusBadRequest, ae.Status)
	require.Contains(t, ae.Detail, `step 0 (a): URL "not-a-url"`)
}
