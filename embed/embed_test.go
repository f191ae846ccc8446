package embed_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/embed"
	"github.com/dtxhq/dtx/saga"
)

// A coordinator inside an existing service: its API and dashboard on the
// service's mux, and a client that calls it in process.
func ExampleOpen() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "dtx-embed")
	defer os.RemoveAll(dir)

	dc, err := embed.Open(ctx, embed.Config{Store: "sqlite://" + filepath.Join(dir, "dtx.db")})
	if err != nil {
		log.Fatal(err)
	}
	defer dc.Close(ctx)
	mux := http.NewServeMux()
	mux.Handle("/", dc.Handler()) // /v1/..., /ui/, /metrics, /healthz
	// ... http.ListenAndServe(addr, mux) in the service ...

	// A participant (here one that says yes to everything).
	part := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer part.Close()

	spec, err := saga.New("embedded-1").Step("only", part.URL+"/do", part.URL+"/undo").Build()
	if err != nil {
		log.Fatal(err)
	}
	if _, err := dc.Client().StartSaga(ctx, spec); err != nil {
		log.Fatal(err)
	}
	tx, err := dc.Client().Wait(ctx, "embedded-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tx.GID, tx.Status)
	// Output: embedded-1 succeeded
}

func TestConfig_ValidateNamesTheField(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		cfg  embed.Config
		want string
	}{
		{embed.Config{}, "Config.Store is empty"},
		{embed.Config{Store: "redis://h/0"}, "Config.Store"},
		{embed.Config{Store: "sqlite://x.db", URL: "localhost:80"}, "Config.URL"},
		{embed.Config{Store: "sqlite://x.db", AllowParticipants: "not a host!"}, "Config.AllowParticipants"},
	} {
		_, err := embed.Open(ctx, c.cfg)
		require.ErrorContains(t, err, c.want, "%+v", c.cfg)
	}
}

// The handler serves the API, the dashboard and the metrics as `dtx
// server` does; the client reaches it in process (Config.URL empty) or
// over the network (Config.URL set); "sqlite:path" is taken as
// "sqlite://path"; a second Open on the same store sees what the first
// stored.
func TestOpen_HandlerAndClients(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	part := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.URL.Path, "/no") {
			w.WriteHeader(http.StatusConflict)
		}
	}))
	defer part.Close()
	store := "sqlite:" + filepath.Join(t.TempDir(), "dtx.db")

	dc, err := embed.Open(ctx, embed.Config{Store: store})
	require.NoError(t, err)
	spec, err := saga.New("in-process").Step("a", part.URL+"/a", part.URL+"/undo").Step("b", part.URL+"/no", part.URL+"/undo").Build()
	require.NoError(t, err)
	_, err = dc.Client().StartSaga(ctx, spec)
	require.NoError(t, err)
	tx, err := dc.Client().Wait(ctx, "in-process")
	require.NoError(t, err)
	require.Equal(t, dtx.StatusFailed, tx.Status)

	srv := httptest.NewServer(dc.Handler())
	for path, want := range map[string]string{"/ui/": "<html", "/metrics": "dtx_", "/healthz": "", "/v1/transactions/in-process": `"status":"failed"`} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Contains(t, string(body), want, path)
	}
	srv.Close()
	require.NoError(t, dc.Close(ctx))

	// Reopened, served by the test's server, with a client over the network.
	dc, err = embed.Open(ctx, embed.Config{Store: store, URL: "http://placeholder"})
	require.NoError(t, err)
	defer dc.Close(ctx)
	srv = httptest.NewServer(dc.Handler())
	defer srv.Close()
	dc2, err := embed.Open(ctx, embed.Config{Store: "sqlite:" + filepath.Join(t.TempDir(), "other.db"), URL: srv.URL})
	require.NoError(t, err)
	defer dc2.Close(ctx)
	got, err := dc2.Client().Get(ctx, "in-process")
	require.NoError(t, err, "dc2's client calls the URL it was given, where the first store is served")
	require.Equal(t, dtx.StatusFailed, got.Status)
}
