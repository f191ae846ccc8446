package main

import (
	"context"
	"log/slog"

	"github.com/dtxhq/dtx/internal/tracing"
)

// startTracing sets up the OpenTelemetry exporter of a long-running
// command (--otlp-endpoint, or the OTEL_EXPORTER_OTLP_* environment) and
// says where spans go.
func startTracing(ctx context.Context, endpoint, service string, log *slog.Logger) (*tracing.Tracing, error) {
	tr, err := tracing.Setup(ctx, tracing.Config{Endpoint: endpoint, ServiceName: service})
	if err != nil {
		return nil, usageError{err.Error()}
	}
	if tr.Enabled() {
		log.Info("exporting OpenTelemetry spans over OTLP/HTTP", "endpoint", tr.Endpoint)
	}
	return tr, nil
}
