package server_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
)

// GET /v1/transactions/{gid}?wait=true holds the answer until the
// transaction has finished (200), answers 202 with the state at the end of
// its wait, and refuses a malformed wait or timeout as the submissions do.
func TestGet_Wait(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	e := newEnv(t, func(path string) int {
		if path == "/reserve" {
			entered <- struct{}{}
			<-release
		}
		return http.StatusOK
	})
	r := e.do(t, "POST", "/v1/sagas", e.spec("get-wait"))
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	<-entered

	r = e.do(t, "GET", "/v1/transactions/get-wait?wait=true&timeout=100ms", nil)
	require.Equal(t, http.StatusAccepted, r.code, "body: %s", r.body)
	require.Equal(t, dtx.StatusRunning, r.detail(t).Status)

	requireProblem(t, e.do(t, "GET", "/v1/transactions/get-wait?wait=maybe", nil), http.StatusBadRequest, "wait=")
	requireProblem(t, e.do(t, "GET", "/v1/transactions/get-wait?wait=true&timeout=5", nil), http.StatusBadRequest, "timeout=")
	requireProblem(t, e.do(t, "GET", "/v1/transactions/no-such-gid?wait=true", nil), http.StatusNotFound)

	close(release)
	r = e.do(t, "GET", "/v1/transactions/get-wait?wait=true&timeout=9s", nil)
	require.Equal(t, http.StatusOK, r.code, "body: %s", r.body)
	require.Equal(t, dtx.StatusSucceeded, r.detail(t).Status)

	r = e.do(t, "GET", "/v1/transactions/get-wait?wait=true", nil)
	require.Equal(t, http.StatusOK, r.code, "a finished transaction is answered at once")
	require.NotEmpty(t, r.detail(t).Events)
}
