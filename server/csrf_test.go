package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/internal/problem"
)

// TestStateChanging_ContentTypeAndCrossSite: a web page on another origin
// must not be able to submit transactions (the coordinator would call its
// URLs) or run admin actions.
func TestStateChanging_ContentTypeAndCrossSite(t *testing.T) {
	e := newEnv(t, nil)
	host := strings.TrimPrefix(e.api.URL, "http://")
	n := 0
	sagaBody := func() string {
		n++
		raw, err := json.Marshal(e.spec(fmt.Sprintf("csrf-%d", n)))
		require.NoError(t, err)
		return string(raw)
	}
	form := func() string { return url.Values{"x": {sagaBody()}}.Encode() }
	for _, tc := range []struct {
		name     string
		path     string // default /v1/sagas
		body     func() string
		header   map[string]string
		want     int
		wantType string
	}{
		{name: "TextPlainForm", body: sagaBody, header: map[string]string{"Content-Type": "text/plain"}, want: http.StatusUnsupportedMediaType},
		{name: "URLEncodedForm", body: form, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, want: http.StatusUnsupportedMediaType},
		{name: "NoContentTypeWithBody", body: sagaBody, want: http.StatusUnsupportedMediaType},
		{name: "BadContentType", body: sagaBody, header: map[string]string{"Content-Type": "application/json;;"}, want: http.StatusUnsupportedMediaType},
		{name: "JSON", body: sagaBody, header: map[string]string{"Content-Type": "application/json"}, want: http.StatusCreated},
		{name: "JSONCharset", body: sagaBody, header: map[string]string{"Content-Type": "Application/JSON; charset=utf-8"}, want: http.StatusCreated},
		{name: "OtherOrigin", body: sagaBody, header: map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, want: http.StatusForbidden, wantType: problem.TypeCrossSite},
		{name: "OtherPortOrigin", body: sagaBody, header: map[string]string{"Content-Type": "application/json", "Origin": "http://127.0.0.1:1"}, want: http.StatusForbidden, wantType: problem.TypeCrossSite},
		{name: "NullOrigin", body: sagaBody, header: map[string]string{"Content-Type": "application/json", "Origin": "null"}, want: http.StatusForbidden, wantType: problem.TypeCrossSite},
		{name: "CrossSite", body: sagaBody, header: map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, want: http.StatusForbidden, wantType: problem.TypeCrossSite},
		{name: "SameSite", body: sagaBody, header: map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}, want: http.StatusForbidden, wantType: problem.TypeCrossSite},
		{name: "CrossSiteTextPlain", body: sagaBody, header: map[string]string{"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}, want: http.StatusForbidden, wantType: problem.TypeCrossSite},
		{name: "SameOrigin", body: sagaBody, header: map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin", "Origin": "http://" + host}, want: http.StatusCreated},
		{name: "UserTyped", body: sagaBody, header: map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "none"}, want: http.StatusCreated},
		{name: "NoOrigin", body: sagaBody, header: map[string]string{"Content-Type": "application/json"}, want: http.StatusCreated},
		// Admin actions: same rules; a body-less one needs no content type.
		{name: "RetryCrossSite", path: "/v1/transactions/csrf-1/retry", header: map[string]string{"Authorization": "Bearer " + testToken, "Sec-Fetch-Site": "cross-site"}, want: http.StatusForbidden, wantType: problem.TypeCrossSite},
		{name: "RetryOtherOrigin", path: "/v1/transactions/csrf-1/retry", header: map[string]string{"Authorization": "Bearer " + testToken, "Origin": "http://evil.example"}, want: http.StatusForbidden, wantType: problem.TypeCrossSite},
		{name: "AbortTextPlain", path: "/v1/transactions/csrf-1/abort", body: func() string { return `{"reason":"x"}` }, header: map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "text/plain"}, want: http.StatusUnsupportedMediaType},
		{name: "RetrySameOriginNoBody", path: "/v1/transactions/nope/retry", header: map[string]string{"Authorization": "Bearer " + testToken, "Sec-Fetch-Site": "same-origin", "Origin": "http://" + host}, want: http.StatusNotFound, wantType: problem.TypeTransactionNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/v1/sagas"
			}
			var rd io.Reader
			if tc.body != nil {
				rd = strings.NewReader(tc.body())
			}
			req, err := http.NewRequest(http.MethodPost, e.api.URL+path, rd)
			require.NoError(t, err)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := e.api.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			data, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tc.want, resp.StatusCode, "body: %s", data)
			if tc.want >= 400 {
				require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
				var p problem.Details
				require.NoError(t, json.Unmarshal(data, &p), "body: %s", data)
				require.Equal(t, tc.want, p.Status)
				require.NotEmpty(t, p.Detail)
				if tc.wantType != "" {
					require.Equal(t, tc.wantType, p.Type)
				}
			}
		})
	}
	// Nothing refused reached the coordinator: only the accepted
	// submissions exist.
	list := e.do(t, "GET", "/v1/transactions", nil)
	require.Equal(t, http.StatusOK, list.code)
	var l struct {
		Transactions []json.RawMessage `json:"transactions"`
	}
	require.NoError(t, json.Unmarshal(list.body, &l), "body: %s", list.body)
	require.Len(t, l.Transactions, 5, "body: %s", list.body)
}
