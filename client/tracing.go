package client

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
)

// setTraceContext gives a request to the coordinator the caller's trace
// context, so that the transaction it submits joins the caller's trace: the
// traceparent set with WithTraceParent if any, else the span context of
// ctx (an OpenTelemetry span of the caller's), in W3C Trace Context
// headers.
func setTraceContext(ctx context.Context, h http.Header) {
	if tp := traceparentFrom(ctx); tp != "" {
		h.Set("traceparent", tp)
		return
	}
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
}
