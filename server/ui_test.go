package server_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDashboardRoutes(t *testing.T) {
	e := newEnv(t, nil)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(e.api.URL + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	require.Equal(t, "/ui/", resp.Header.Get("Location"))

	r := e.do(t, "GET", "/ui/", nil)
	require.Equal(t, http.StatusOK, r.code)
	require.Contains(t, string(r.body), "dtx dashboard")
	require.Equal(t, http.StatusOK, e.do(t, "GET", "/ui/app.js", nil).code)
	requireProblem(t, e.do(t, "GET", "/nothing-here", nil), http.StatusNotFound, "no route")
	requireProblem(t, e.do(t, "POST", "/", nil), http.StatusNotFound, "no route")
}
