// Package tracing sets up the OpenTelemetry tracer provider of the dtx
// binary's long-running commands (dtx server, dtx shop): an OTLP/HTTP
// exporter when an endpoint is given by flag or by the standard
// OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// variables, and otherwise the no-op tracer provider, which costs nothing
// on the hot path.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Environment variables read by Setup (the OpenTelemetry SDK's own).
const (
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvSDKDisabled    = "OTEL_SDK_DISABLED"
)

// Config says where spans go.
type Config struct {
	// Endpoint is the OTLP/HTTP collector's base URL, such as
	// http://127.0.0.1:4318 (spans are posted to <Endpoint>/v1/traces; a
	// URL with a path is used as it is). Empty: the environment decides.
	Endpoint string
	// ServiceName is the service.name resource attribute, unless
	// OTEL_SERVICE_NAME says otherwise.
	ServiceName string
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
}

// Tracing is a configured tracer provider.
type Tracing struct {
	// Provider is the SDK's provider exporting over OTLP, or the no-op
	// provider when tracing is off.
	Provider trace.TracerProvider
	// Endpoint is where spans go ("" when off; "$OTEL_EXPORTER_OTLP_…"
	// when the environment names it).
	Endpoint string
	sdk      *sdktrace.TracerProvider
}

// Enabled reports whether spans are exported.
func (t *Tracing) Enabled() bool { return t.sdk != nil }

// Shutdown exports the spans still buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	return t.sdk.Shutdown(ctx)
}

// CheckEndpoint refuses an endpoint that is not an http(s) URL with a host.
func CheckEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("OTLP endpoint %q: want an http(s) URL such as http://127.0.0.1:4318", endpoint)
	}
	return nil
}

// Setup returns the tracer provider cfg asks for and installs it, with the
// W3C Trace Context propagator, as OpenTelemetry's global one (so that the
// participant SDK, outbox and inbox, which default to the global provider,
// use it too). With no endpoint in cfg or the environment, or with
// OTEL_SDK_DISABLED=true, it returns the no-op provider and installs
// nothing.
func Setup(ctx context.Context, cfg Config) (*Tracing, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	off := &Tracing{Provider: noop.NewTracerProvider()}
	if strings.EqualFold(strings.TrimSpace(getenv(EnvSDKDisabled)), "true") {
		return off, nil
	}
	var opts []otlptracehttp.Option
	where := cfg.Endpoint
	switch {
	case cfg.Endpoint != "":
		if err := CheckEndpoint(cfg.Endpoint); err != nil {
			return nil, err
		}
		u, _ := url.Parse(cfg.Endpoint)
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
	case getenv(EnvTracesEndpoint) != "":
		where = "$" + EnvTracesEndpoint
	case getenv(EnvEndpoint) != "":
		where = "$" + EnvEndpoint
	default:
		return off, nil
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	res, err := resource.Merge(
		resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName)),
		resource.Environment())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTLP resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return &Tracing{Provider: tp, Endpoint: where, sdk: tp}, nil
}
