package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/dtxhq/dtx/internal/tracing"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestSetup_OffByDefault(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"no endpoint":  nil,
		"SDK disabled": {tracing.EnvEndpoint: "http://127.0.0.1:4318", tracing.EnvSDKDisabled: "true"},
	} {
		t.Run(name, func(t *testing.T) {
			tr, err := tracing.Setup(context.Background(), tracing.Config{Getenv: env(vars)})
			require.NoError(t, err)
			require.False(t, tr.Enabled())
			require.IsType(t, noop.TracerProvider{}, tr.Provider, "off: the no-op provider")
			_, span := tr.Provider.Tracer("t").Start(context.Background(), "x")
			require.False(t, span.IsRecording())
			require.NoError(t, tr.Shutdown(context.Background()))
		})
	}
}

func TestSetup_RefusesABadEndpoint(t *testing.T) {
	for _, e := range []string{"127.0.0.1:4318", "ftp://x", "http://", "http://h:1/?q=1", "::"} {
		_, err := tracing.Setup(context.Background(), tracing.Config{Endpoint: e, Getenv: env(nil)})
		require.ErrorContains(t, err, "want an http(s) URL", e)
		require.Error(t, tracing.CheckEndpoint(e))
	}
	require.NoError(t, tracing.CheckEndpoint("https://collector.example:4318/custom/path"))
}

// TestSetup_ExportsOverOTLP points the exporter at a collector on loopback,
// by flag and by the standard environment variable, and checks that a span
// arrives there as an OTLP/HTTP request.
func TestSetup_ExportsOverOTLP(t *testing.T) {
	defer otel.SetTracerProvider(noop.NewTracerProvider())
	type post struct {
		path, contentType string
		size              int
	}
	got := make(chan post, 10)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- post{r.URL.Path, r.Header.Get("Content-Type"), len(body)}
	}))
	defer collector.Close()

	for name, cfg := range map[string]tracing.Config{
		"flag": {Endpoint: collector.URL, ServiceName: "dtx-test", Getenv: env(nil)},
		"env":  {ServiceName: "dtx-test"},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "env" {
				t.Setenv(tracing.EnvEndpoint, collector.URL) // the exporter reads it too
			}
			tr, err := tracing.Setup(context.Background(), cfg)
			require.NoError(t, err)
			require.True(t, tr.Enabled())
			require.Same(t, tr.Provider, otel.GetTracerProvider(), "installed as the global provider")
			_, span := otel.Tracer("t").Start(context.Background(), "one span")
			require.True(t, span.IsRecording())
			span.End()
			require.NoError(t, tr.Shutdown(context.Background()), "shutdown flushes the span")
			var p post
			select {
			case p = <-got:
			case <-time.After(30 * time.Second):
				t.Fatal("no OTLP request reached the collector")
			}
			require.Equal(t, "/v1/traces", p.path)
			require.Equal(t, "application/x-protobuf", p.contentType)
			require.Positive(t, p.size)
		})
	}
}
