package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/client"
	"github.com/dtxhq/dtx/internal/problem"
	"github.com/dtxhq/dtx/saga"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzGet reads arbitrary answers to Client.Get, in memory. Any gid a saga
// may have reaches the server's {gid} route as itself; a 2xx answer is
// returned exactly when it is JSON of a transaction; any other status is an
// *APIError with that status whose Detail is the problem's detail, else its
// title, else the trimmed body, and which matches the dtx sentinels by
// status as documented.
func FuzzGet(f *testing.F) {
	for _, s := range []struct {
		gid    string
		status uint16
		body   string
	}{
		{"order-1", 200, `{"gid":"order-1","status":"succeeded","branches":[]}`},
		{"a b?c#d%2F", 200, `{"gid":"x"}`},
		{"order-1", 200, `not json`},
		{"order-1", 404, `{"type":"` + problem.TypeTransactionNotFound + `","title":"Not Found","status":404,"detail":"no such transaction"}`},
		{"order-1", 404, `404 page not found`},
		{"order-1", 409, `{"title":"Conflict"}`},
		{"order-1", 400, "  bad \n"},
		{"order-1", 502, "\xff"},
		{"é", 301, ""},
	} {
		f.Add(s.gid, s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, gid string, status uint16, body []byte) {
		if sp := (saga.Spec{GID: gid, Steps: []saga.Step{{Action: "http://a/b"}}}); gid == "" || sp.Normalize() != nil {
			return
		}
		code := 200 + int(status)%400
		mux := http.NewServeMux()
		var routed string
		mux.HandleFunc("GET /v1/transactions/{gid}", func(w http.ResponseWriter, r *http.Request) { routed = r.PathValue("gid") })
		hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			mux.ServeHTTP(httptest.NewRecorder(), r)
			return &http.Response{StatusCode: code, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
		})}
		c := client.ForURL("http://coordinator.local", hc)
		d, err := c.Get(context.Background(), gid)
		if routed != gid {
			t.Fatalf("Get(%q) reached the {gid} route as %q", gid, routed)
		}
		if code < 300 {
			var want dtx.TxDetail
			if wantOK := json.Unmarshal(body, &want) == nil; (err == nil) != wantOK || (err == nil && d == nil) {
				t.Fatalf("%d %q: Get = %v, %v; JSON decodes: %v", code, body, d, err, wantOK)
			}
			return
		}
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != code {
			t.Fatalf("%d %q: error %v, want an APIError with status %d", code, body, err, code)
		}
		var p problem.Details
		json.Unmarshal(body, &p)
		want := p.Detail
		if want == "" {
			want = p.Title
		}
		if want == "" {
			want = strings.TrimSpace(string(body))
		}
		if ae.Detail != want || ae.Type != p.Type {
			t.Fatalf("%d %q: detail %q type %q, want %q %q", code, body, ae.Detail, ae.Type, want, p.Type)
		}
		if errors.Is(err, dtx.ErrConflict) != (code == 409) || errors.Is(err, dtx.ErrInvalid) != (code == 400) ||
			errors.Is(err, dtx.ErrNotFound) != (code == 404 && p.Type == problem.TypeTransactionNotFound) {
			t.Fatalf("%d type %q: error %v matches the wrong sentinels", code, p.Type, err)
		}
	})
}
