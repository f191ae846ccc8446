package inbox

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/broker"
)

// TracerName is the instrumentation scope of the inbox's spans.
const TracerName = "github.com/dtxhq/dtx/inbox"

// Outcomes of a delivery, recorded as the dtx.outcome attribute of its span.
const (
	outcomeProcessed    = "processed" // took effect, or was a duplicate
	outcomeFailed       = "failed"    // returned to the broker for redelivery
	outcomeDeadLettered = "dead-lettered"
)

// headerCarrier adapts message headers to OpenTelemetry's propagators
// (read only: Set is never called by extraction).
type headerCarrier map[string]string

func (h headerCarrier) Get(key string) string { return h[key] }
func (h headerCarrier) Set(key, value string) {}
func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// ContextFrom returns ctx with the trace context d carries in its
// traceparent header (W3C Trace Context, as package outbox writes it) as
// the remote parent: for consumers that call Inbox.Handle themselves and
// want their spans to continue the producer's trace. Consumer.Handle does
// this for its own span.
func ContextFrom(ctx context.Context, d broker.Delivery) context.Context {
	if len(d.Headers) == 0 {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, headerCarrier(d.Headers))
}

// startSpan starts the consumer span of one delivery.
func (c Consumer) startSpan(ctx context.Context, d broker.Delivery) (context.Context, trace.Span) {
	tp := c.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	ctx, span := tp.Tracer(TracerName).Start(ContextFrom(ctx, d), "dtx.inbox "+d.Topic, trace.WithSpanKind(trace.SpanKindConsumer))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.destination.name", d.Topic),
			attribute.String("messaging.message.id", d.ID),
			attribute.String("messaging.consumer.group.name", c.Group),
			attribute.Int("messaging.delivery.attempt", d.Attempt))
	}
	return ctx, span
}

// endSpan records how a delivery ended and ends its span.
func endSpan(span trace.Span, outcome string, err error) {
	if span.IsRecording() {
		span.SetAttributes(attribute.String(dtx.AttrOutcome, outcome))
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}
