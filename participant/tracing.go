package participant

import (
	"context"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx"
)

// TracerName is the instrumentation scope of the participant SDK's spans.
const TracerName = "github.com/dtxhq/dtx/participant"

// WithTracerProvider makes Handler record a server span per branch call
// with tp, a child of the coordinator's branch-call span (read from the
// W3C traceparent header the call carries); fn runs with the span in its
// context, so the participant's own spans (database, outbox) join the
// transaction's trace. Without the option Handler uses
// otel.GetTracerProvider(), a no-op until the application installs one.
//
// The span is named "dtx.participant <op>" and carries the attributes
// dtx.gid, dtx.branch, dtx.op, dtx.attempt and dtx.outcome (success for
// 200, failure for a permanent error's 409, unknown for any other error).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *handlerConfig) { c.tracerProvider = tp }
}

func (c *handlerConfig) tracer() trace.Tracer {
	tp := c.tracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(TracerName)
}

// startServerSpan starts the span of one branch call served over HTTP.
func startServerSpan(tr trace.Tracer, r *http.Request) (context.Context, trace.Span) {
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	return tr.Start(ctx, "dtx.participant", trace.WithSpanKind(trace.SpanKindServer))
}

// describeSpan names span after the branch operation and records its
// identity.
func describeSpan(span trace.Span, br Branch, attempt string) {
	if !span.IsRecording() {
		return
	}
	span.SetName("dtx.participant " + string(br.Op))
	attrs := []attribute.KeyValue{
		attribute.String(dtx.AttrGID, br.GID),
		attribute.Int(dtx.AttrBranch, br.Index),
		attribute.String(dtx.AttrOp, string(br.Op)),
	}
	if n, err := strconv.Atoi(attempt); err == nil {
		attrs = append(attrs, attribute.Int(dtx.AttrAttempt, n))
	}
	span.SetAttributes(attrs...)
}

// endServerSpan records how the call was answered and ends span.
func endServerSpan(span trace.Span, status int, err error) {
	if span.IsRecording() {
		class := dtx.Unknown
		switch {
		case status == http.StatusOK:
			class = dtx.Success
		case status == http.StatusConflict:
			class = dtx.Failure
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status), attribute.String(dtx.AttrOutcome, class.String()))
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}
