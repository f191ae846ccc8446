package flow_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dtxhq/dtx/flow"
	"github.com/dtxhq/dtx/internal/sqlitedb"
)

// FuzzHandler sends arbitrary limits and correlation ids to the flow API
// over a real (empty) SQLite store: a limit is accepted exactly when it is
// an integer from 1 to 1000, and an unknown id (one that fits a path
// segment) is a 404 problem that names the id.
func FuzzHandler(f *testing.F) {
	for _, s := range []string{"10", "0", "1001", "x", "", "-1", "1e3", "order-1", "a/b", "%00", "é"} {
		f.Add(s)
	}
	db, err := sqlitedb.Open(context.Background(), filepath.Join(f.TempDir(), "flow.db"), 4)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	st := flow.NewStore(db)
	if err := st.Migrate(context.Background()); err != nil {
		f.Fatal(err)
	}
	h := flow.Handler(st)
	f.Fuzz(func(t *testing.T, v string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/flows?limit="+url.QueryEscape(v), nil))
		n, err := strconv.Atoi(v)
		ok := v == "" || (err == nil && n >= 1 && n <= 1000)
		if (w.Code == http.StatusOK) != ok || (!ok && w.Code != http.StatusBadRequest) {
			t.Fatalf("limit=%q: %d %s; the rule says ok=%v", v, w.Code, w.Body, ok)
		}
		if v == "" || v == "." || v == ".." || strings.Contains(v, "/") {
			return // no path segment names these (like gids, see saga.Spec.Normalize)
		}
		w = httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/flows/"+url.PathEscape(v), nil))
		var p struct {
			Detail string `json:"detail"`
		}
		if w.Code != http.StatusNotFound || json.Unmarshal(w.Body.Bytes(), &p) != nil || p.Detail != "no events for correlation id "+strconv.Quote(v) || !utf8.ValidString(p.Detail) {
			t.Fatalf("GET /v1/flows/%s: %d %s, want a 404 problem naming %q", url.PathEscape(v), w.Code, w.Body, v)
		}
	})
}
