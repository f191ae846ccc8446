package dashboard_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx/dashboard"
)

func get(t *testing.T, h http.Handler, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	return string(b)
}

func TestHandler_ServesTheEmbeddedFiles(t *testing.T) {
	h := dashboard.Handler(dashboard.Prefix)
	r := get(t, h, "/ui/")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Contains(t, r.Header.Get("Content-Type"), "text/html")
	require.Equal(t, "no-cache", r.Header.Get("Cache-Control"))
	require.Contains(t, r.Header.Get("Content-Security-Policy"), "default-src 'self'")
	index := body(t, r)
	require.Contains(t, index, "<title>dtx dashboard</title>")

	// Every script and stylesheet index.html names is served, with its type.
	refs := regexp.MustCompile(`(?:src|href)="([a-z]+\.(js|css))"`).FindAllStringSubmatch(index, -1)
	require.Len(t, refs, 3, "app.css, diagram.js, app.js")
	for _, m := range refs {
		r := get(t, h, "/ui/"+m[1])
		require.Equal(t, http.StatusOK, r.StatusCode, m[1])
		want := map[string]string{"js": "text/javascript", "css": "text/css"}[m[2]]
		require.Contains(t, r.Header.Get("Content-Type"), want, m[1])
		require.NotEmpty(t, body(t, r))
	}
	require.Equal(t, http.StatusNotFound, get(t, h, "/ui/missing.js").StatusCode)
}

func TestHandler_UnderAnotherPrefix(t *testing.T) {
	h := http.NewServeMux()
	h.Handle("/admin/dtx/ui/", dashboard.Handler("/admin/dtx/ui/"))
	r := get(t, h, "/admin/dtx/ui/app.js")
	require.Equal(t, http.StatusOK, r.StatusCode)
	// The API is addressed relative to the page, so the prefix carries over.
	require.Contains(t, body(t, r), "const API = '../v1'")
}

// The dashboard works offline: no file loads anything from another origin.
func TestFiles_LoadNothingFromElsewhere(t *testing.T) {
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	n := 0
	err := fs.WalkDir(dashboard.Files(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := fs.ReadFile(dashboard.Files(), path)
		if err != nil {
			return err
		}
		for _, u := range url.FindAllString(string(b), -1) {
			if strings.HasSuffix(u, "//www.w3.org") { // the SVG namespace name, never fetched
				continue
			}
			t.Errorf("%s refers to %s", path, u)
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 4, n, "index.html, app.css, app.js, diagram.js")
}
