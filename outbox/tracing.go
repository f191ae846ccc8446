package outbox

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx/broker"
)

// TracerName is the instrumentation scope of the outbox's spans.
const TracerName = "github.com/dtxhq/dtx/outbox"

// HeaderTraceParent is the message header that carries the W3C trace
// context of the span that added a message, to the consumers that continue
// its trace (package inbox).
const HeaderTraceParent = "traceparent"

// headerCarrier adapts message headers to OpenTelemetry's propagators.
type headerCarrier map[string]string

func (h headerCarrier) Get(key string) string { return h[key] }
func (h headerCarrier) Set(key, value string) { h[key] = value }
func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// traced returns msgs, each with the trace context of a producer span of
// its own started under ctx's span, and ends those spans; msgs is not
// modified. A message that already carries a traceparent keeps it. With a
// no-op tracer provider and no span in ctx nothing changes (and nothing is
// copied).
func (o Outbox) traced(ctx context.Context, msgs []broker.Message) []broker.Message {
	tp := o.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	tr := tp.Tracer(TracerName)
	var out []broker.Message
	for i, m := range msgs {
		if m.Headers[HeaderTraceParent] != "" {
			continue
		}
		sctx, span := tr.Start(ctx, "dtx.outbox "+m.Topic, trace.WithSpanKind(trace.SpanKindProducer))
		if span.IsRecording() {
			span.SetAttributes(attribute.String("messaging.destination.name", m.Topic),
				attribute.String("messaging.message.id", m.ID))
		}
		if span.SpanContext().IsValid() {
			if out == nil {
				out = append([]broker.Message(nil), msgs...)
			}
			h := make(headerCarrier, len(m.Headers)+1)
			for k, v := range m.Headers {
				h[k] = v
			}
			propagation.TraceContext{}.Inject(sctx, h)
			out[i].Headers = h
		}
		span.End()
	}
	if out == nil {
		return msgs
	}
	return out
}
