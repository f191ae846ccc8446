package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/coordinator"
	"github.com/dtxhq/dtx/saga"
	"github.com/dtxhq/dtx/server"
	"github.com/dtxhq/dtx/store/sqlite"
	"github.com/dtxhq/dtx/store/sqlstore"
	"github.com/dtxhq/dtx/tcc"
	"github.com/dtxhq/dtx/transport"
	"github.com/dtxhq/dtx/transport/brokertransport"
	"github.com/dtxhq/dtx/transport/httptransport"
)

// fuzzTransport answers every call with success at once, without any
// network, and checks URLs with the rule of the transport that really
// serves the scheme.
type fuzzTransport struct{ check func(string) error }

func (fuzzTransport) Call(context.Context, dtx.Call) dtx.Outcome { return dtx.Succeeded(nil) }
func (t fuzzTransport) CheckURL(raw string) error                { return t.check(raw) }

// fuzzServer is a server over a real coordinator on a fresh SQLite store
// whose transport serves http, https and broker URLs in memory.
func fuzzServer(f *testing.F) (http.Handler, dtx.URLChecker) {
	st, err := sqlite.Open(context.Background(), filepath.Join(f.TempDir(), "dtx.db"), sqlstore.Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	h := fuzzTransport{check: httptransport.New(nil).CheckURL}
	b := fuzzTransport{check: func(raw string) error { _, err := brokertransport.ParseURL(raw); return err }}
	tr := transport.Schemes{"http": h, "https": h, "broker": b}
	c, err := coordinator.New(st, tr, coordinator.Config{LeaseTTL: 5 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { c.Close(context.Background()) })
	return server.New(c, server.WithAllowedHosts("example.com")), tr // httptest.NewRequest names example.com
}

// decodeModel is the documented decoding of a request body: one JSON object
// (no unknown fields, nothing after it but white space).
func decodeModel(body []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(v) != nil {
		return false
	}
	_, err := dec.Token()
	return errors.Is(err, io.EOF)
}

// requireFuzzProblem fails unless w is an application/problem+json answer
// whose detail is valid UTF-8.
func requireFuzzProblem(t *testing.T, w *httptest.ResponseRecorder, what string) {
	t.Helper()
	mt, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type"))
	var p struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if mt != "application/problem+json" || json.Unmarshal(w.Body.Bytes(), &p) != nil || p.Status != w.Code || p.Detail == "" || !utf8.ValidString(p.Detail) {
		t.Fatalf("%s: answer %d %q is not a problem: %s", what, w.Code, mt, w.Body)
	}
}

// FuzzSubmit posts arbitrary bodies to POST /v1/sagas, /v1/tcc and /v1/xa
// of a server over a real coordinator (SQLite store, in-memory transport).
// The server accepts a body exactly when it decodes strictly to a spec that
// Normalize (after tcc.Spec.Saga for TCC and XA) and the transport's URL
// rules accept; it never answers 5xx; a refusal is a 400 problem (409 for a
// gid already used with other content); an acceptance answers the
// transaction, with the gid asked for.
func FuzzSubmit(f *testing.F) {
	for _, s := range fuzzSubmitSeeds {
		f.Add(s.route, []byte(s.body))
	}
	h, urls := fuzzServer(f)
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := []string{"/v1/sagas", "/v1/tcc", "/v1/xa"}[route%3]
		var spec saga.Spec
		var ok bool
		if path == "/v1/sagas" {
			ok = decodeModel(body, &spec)
		} else {
			var ts tcc.Spec
			ok = decodeModel(body, &ts)
			ts.Sequential = ts.Sequential || path == "/v1/xa"
			if ok {
				var err error
				spec, err = ts.Saga()
				ok = err == nil
			}
		}
		gid := spec.GID
		if ok {
			if spec.GID == "" {
				spec.GID = "generated"
			}
			ok = spec.Normalize() == nil
			for _, st := range spec.Steps {
				for _, u := range []string{st.Action, st.Compensate} {
					ok = ok && (u == "" || urls.CheckURL(u) == nil)
				}
			}
		}
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch {
		case w.Code >= 500:
			t.Fatalf("POST %s %q: %d %s", path, body, w.Code, w.Body)
		case w.Code == http.StatusConflict && ok:
			requireFuzzProblem(t, w, "conflict")
		case (w.Code == http.StatusCreated || w.Code == http.StatusOK) != ok:
			t.Fatalf("POST %s %q: %d %s; the model says accepted=%v", path, body, w.Code, w.Body, ok)
		case !ok:
			if w.Code != http.StatusBadRequest {
				t.Fatalf("POST %s %q: %d, want 400", path, body, w.Code)
			}
			requireFuzzProblem(t, w, "refusal")
		default:
			var d dtx.TxDetail
			if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil || d.GID == "" || (gid != "" && d.GID != gid) || len(d.Branches) != len(spec.Steps) {
				t.Fatalf("POST %s %q: answer %s, want the transaction %q with %d branches", path, body, w.Body, gid, len(spec.Steps))
			}
		}
	})
}

var fuzzSubmitSeeds = []struct {
	route uint8
	body  string
}{
	{0, `{"gid":"s-1","steps":[{"action":"http://svc.local/a","compensate":"http://svc.local/c"}]}`},
	{0, `{"steps":[{"action":"broker://pay","compensate":"broker://pay"}],"timeout":"1s"}`},
	{0, `{"steps":[{"action":"broker://Pay"}]}`},
	{0, `{"steps":[{"action":"ftp://x/y"}]}`},
	{0, `{"steps":[{"action":"http://a/b"}]} {}`},
	{0, `{"steps":[{"action":"http://a/b"}],"extra":1}`},
	{0, `{"gid":"s-1","steps":[{"action":"http://svc.local/other"}]}`},
	{1, `{"gid":"t-1","participants":[{"try":"http://i/t","confirm":"http://i/c","cancel":"http://i/x"}]}`},
	{1, `{"participants":[{"try":"http://i/t"}]}`},
	{2, `{"participants":[{"try":"http://i/t","cancel":"http://i/x"},{"try":"http://p/t","cancel":"http://p/x"}]}`},
	{2, `{"participants":[{"try":"http://:80/t","cancel":"http://i/x"}]}`},
	{0, ``},
	{0, `[]`},
}

// FuzzQuery sends arbitrary query strings to GET /v1/transactions, GET
// /v1/attention and POST /v1/sagas (?wait, ?timeout). Each answers 200 (201
// for a new submission, 202 when a wait timed out) exactly when every
// parameter follows the documented rule, and a 400 problem otherwise.
func FuzzQuery(f *testing.F) {
	for _, s := range []struct {
		route uint8
		query string
	}{
		{0, "status=running&limit=10&before=2026-01-02T03:04:05Z&since=2025-01-01T00:00:00.5+02:00&pattern=tcc&q=order"},
		{0, "status=bogus"}, {0, "limit=0"}, {0, "limit=1001"}, {0, "before=yesterday"}, {0, "pattern=outbox"},
		{0, "q=" + string(bytes.Repeat([]byte("x"), 201))}, {0, "limit=%zz&status=failed"}, {0, "limit=5&limit=x"},
		{1, "min_attempts=3&older_than=10m&limit=5"}, {1, "min_attempts=0&older_than=0"}, {1, "older_than=-1s"}, {1, "min_attempts=1000001"},
		{2, "wait=true&timeout=30s"}, {2, "wait=maybe"}, {2, "timeout=0s"}, {2, "timeout=6m"}, {2, "wait=1&timeout=1ns"},
	} {
		f.Add(s.route, s.query)
	}
	h, _ := fuzzServer(f)
	f.Fuzz(func(t *testing.T, route uint8, query string) {
		q, _ := url.ParseQuery(query)
		var r *http.Request
		var ok bool
		switch route % 3 {
		case 0:
			r = httptest.NewRequest(http.MethodGet, "/v1/transactions", nil)
			ok = listModel(q)
		case 1:
			r = httptest.NewRequest(http.MethodGet, "/v1/attention", nil)
			ok = attentionModel(q)
		default:
			r = httptest.NewRequest(http.MethodPost, "/v1/sagas", bytes.NewReader([]byte(`{"gid":"fuzz-query","steps":[{"action":"http://svc.local/a"}]}`)))
			r.Header.Set("Content-Type", "application/json")
			ok = waitModel(q)
		}
		r.URL.RawQuery = query
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch {
		case w.Code >= 500:
			t.Fatalf("%s ?%s: %d %s", r.URL.Path, query, w.Code, w.Body)
		case (w.Code == http.StatusOK || w.Code == http.StatusCreated || (route%3 == 2 && w.Code == http.StatusAccepted)) != ok:
			t.Fatalf("%s ?%s: %d %s; the rule says ok=%v", r.URL.Path, query, w.Code, w.Body, ok)
		case !ok:
			if w.Code != http.StatusBadRequest {
				t.Fatalf("%s ?%s: %d, want 400", r.URL.Path, query, w.Code)
			}
			requireFuzzProblem(t, w, r.URL.Path+"?"+query)
		}
	})
}

func intIn(v string, lo, hi int) bool {
	n, err := strconv.Atoi(v)
	return err == nil && n >= lo && n <= hi
}

func rfc3339(v string) bool {
	_, err := time.Parse(time.RFC3339Nano, v)
	return err == nil
}

// listModel is the documented rule of GET /v1/transactions's parameters.
func listModel(q url.Values) bool {
	s := q.Get("status")
	p := q.Get("pattern")
	return (s == "" || s == "running" || s == "compensating" || s == "succeeded" || s == "failed") &&
		(q.Get("limit") == "" || intIn(q.Get("limit"), 1, 1000)) &&
		(q.Get("before") == "" || rfc3339(q.Get("before"))) &&
		(q.Get("since") == "" || rfc3339(q.Get("since"))) &&
		(p == "" || p == "saga" || p == "tcc" || p == "xa") &&
		len(q.Get("q")) <= server.MaxQuery
}

// attentionModel is the documented rule of GET /v1/attention's parameters.
func attentionModel(q url.Values) bool {
	attempts, age := 1, time.Duration(1)
	if v := q.Get("min_attempts"); v != "" {
		if !intIn(v, 0, 1_000_000) {
			return false
		}
		attempts, _ = strconv.Atoi(v)
	}
	if v := q.Get("older_than"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return false
		}
		age = d
	}
	return (q.Get("limit") == "" || intIn(q.Get("limit"), 1, 1000)) && (attempts != 0 || age != 0)
}

// waitModel is the documented rule of ?wait and ?timeout of submissions.
func waitModel(q url.Values) bool {
	if v := q.Get("wait"); v != "" {
		if _, err := strconv.ParseBool(v); err != nil {
			return false
		}
	}
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		return err == nil && d > 0 && d <= server.MaxWait
	}
	return true
}
