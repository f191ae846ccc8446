package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/api"
	"github.com/dtxhq/dtx/server"
)

func TestList_PatternSinceAndSearch(t *testing.T) {
	e := newEnv(t, nil)
	for _, gid := range []string{"order-7", "order-71", "refund-7"} {
		require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/sagas?wait=true", e.spec(gid)).code)
	}
	mid := time.Now()
	tcc := map[string]any{"gid": "order-8", "participants": []map[string]string{
		{"name": "stock", "try": e.part.URL + "/try", "confirm": e.part.URL + "/confirm", "cancel": e.part.URL + "/cancel"},
	}}
	require.Equal(t, http.StatusCreated, e.do(t, "POST", "/v1/tcc?wait=true", tcc).code)

	gids := func(query string) []string {
		t.Helper()
		r := e.do(t, "GET", "/v1/transactions"+query, nil)
		require.Equal(t, http.StatusOK, r.code, "body: %s", r.body)
		var lr api.ListResponse
		require.NoError(t, json.Unmarshal(r.body, &lr))
		require.Equal(t, 4, lr.Counts["succeeded"], "counts are over every transaction, not the filtered page")
		out := []string{}
		for _, tx := range lr.Transactions {
			out = append(out, tx.GID)
		}
		return out
	}
	require.Equal(t, []string{"order-8"}, gids("?pattern=tcc"))
	require.Equal(t, []string{"refund-7", "order-71", "order-7"}, gids("?pattern=saga"))
	require.Equal(t, []string{"order-8", "order-71", "order-7"}, gids("?q=order-"))
	require.Equal(t, []string{"order-71"}, gids("?q=71"))
	require.Equal(t, []string{"order-8"}, gids("?since="+url.QueryEscape(mid.Format(time.RFC3339Nano))))
	require.Equal(t, []string{"refund-7", "order-71"}, gids("?pattern=saga&q=7&status=succeeded&limit=2"))
	require.Equal(t, []string{}, gids("?q=ORDER"), "the search is case-sensitive like gids")

	for _, q := range []struct{ query, want string }{
		{"?pattern=2pc", "pattern"},
		{"?since=today", "since"},
		{"?q=" + strings.Repeat("x", server.MaxQuery+1), "q"},
	} {
		requireProblem(t, e.do(t, "GET", "/v1/transactions"+q.query, nil), http.StatusBadRequest, q.want)
	}
}
