package adversarial_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

// Finding 3: a page on another origin must not make the coordinator submit
// (and so call the attacker's URLs), neither with a form post nor with a
// no-cors fetch of JSON.
func TestCSRF_CrossOriginSubmissionsRefused(t *testing.T) {
	s := startServer(t, serverOpts{})
	spec := `{"gid":"csrf-1","steps":[{"action":"http://127.0.0.1:9/a","compensate":"http://127.0.0.1:9/c"}]}`

	// A classic HTML form: text/plain, no preflight.
	form := do(t, http.MethodPost, s.URL+"/v1/sagas", "text/plain", []byte(spec), nil)
	requireProblem(t, form, http.StatusUnsupportedMediaType)
	urlenc := do(t, http.MethodPost, s.URL+"/v1/sagas", "application/x-www-form-urlencoded",
		[]byte(url.Values{"x": {spec}}.Encode()), nil)
	requireProblem(t, urlenc, http.StatusUnsupportedMediaType)

	// A fetch from another site that claims JSON: the browser says where
	// it comes from.
	for _, h := range []map[string]string{
		{"Origin": "http://evil.example"},
		{"Sec-Fetch-Site": "cross-site"},
	} {
		r := do(t, http.MethodPost, s.URL+"/v1/sagas", "application/json", []byte(spec), h)
		requireProblem(t, r, http.StatusForbidden)
		require.Equal(t, "urn:dtx:problem:cross-site", r.JSON(t)["type"])
	}

	// Nothing was stored.
	got := do(t, http.MethodGet, s.URL+"/v1/transactions/csrf-1", "", nil, nil)
	require.Equal(t, http.StatusNotFound, got.Status, "body: %s", got.Body)
	require.True(t, s.Healthy())
}
