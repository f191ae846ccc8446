package coordinator

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/dtxhq/dtx"
	"github.com/dtxhq/dtx/saga"
)

// TracerName is the instrumentation scope of the coordinator's spans.
const TracerName = "github.com/dtxhq/dtx/coordinator"

// Span attribute keys (names in package dtx).
var (
	attrGID       = attribute.Key(dtx.AttrGID)
	attrPattern   = attribute.Key(dtx.AttrPattern)
	attrStatus    = attribute.Key(dtx.AttrStatus)
	attrRecovered = attribute.Key(dtx.AttrRecovered)
	attrBranch    = attribute.Key(dtx.AttrBranch)
	attrOp        = attribute.Key(dtx.AttrOp)
	attrAttempt   = attribute.Key(dtx.AttrAttempt)
	attrOutcome   = attribute.Key(dtx.AttrOutcome)
	attrRetry     = attribute.Key(dtx.AttrRetry)
)

// Span names.
const (
	spanTransaction = "dtx.transaction"
	spanBranch      = "dtx.branch "
)

// traceparentCarrier is a propagation.TextMapCarrier holding only the
// traceparent header: a transaction stores its submitter's trace context
// as that one string (saga.Spec.TraceParent).
type traceparentCarrier struct{ value string }

func (c *traceparentCarrier) Get(key string) string {
	if key == "traceparent" {
		return c.value
	}
	return ""
}

func (c *traceparentCarrier) Set(key, value string) {
	if key == "traceparent" {
		c.value = value
	}
}

func (c *traceparentCarrier) Keys() []string { return []string{"traceparent"} }

// traceParentOf returns the W3C traceparent of ctx's span context, or "" if
// it has none.
func traceParentOf(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	var c traceparentCarrier
	propagation.TraceContext{}.Inject(ctx, &c)
	return c.value
}

// startTxSpan starts the span of one run of a transaction: a child of the
// submitter's span when the spec carries its traceparent (W3C Trace
// Context, read by OpenTelemetry's propagator), else a new trace. A
// recovered run starts a new span under the same parent.
func (c *Coordinator) startTxSpan(ctx context.Context, tx *dtx.Tx, spec *saga.Spec, recovered bool) (context.Context, trace.Span) {
	if spec.TraceParent != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, &traceparentCarrier{spec.TraceParent})
	}
	ctx, span := c.tracer.Start(ctx, spanTransaction, trace.WithSpanKind(trace.SpanKindInternal))
	if span.IsRecording() {
		span.SetAttributes(attrGID.String(tx.GID), attrPattern.String(string(tx.Pattern)), attrRecovered.Bool(recovered))
	}
	return ctx, span
}

// endTxSpan ends a transaction span with the status the run left the
// transaction in (a run that hands the transaction over leaves it
// unfinished).
func endTxSpan(span trace.Span, status dtx.Status) {
	if span.IsRecording() {
		span.SetAttributes(attrStatus.String(string(status)))
		if status == dtx.StatusFailed {
			span.SetStatus(codes.Error, "transaction failed")
		}
	}
	span.End()
}

// branchSpanName names the span of a call of op without allocating for
// the common operations.
func branchSpanName(op dtx.Op) string {
	switch op {
	case dtx.OpAction:
		return spanBranch + "action"
	case dtx.OpCompensate:
		return spanBranch + "compensate"
	case dtx.OpTry:
		return spanBranch + "try"
	case dtx.OpConfirm:
		return spanBranch + "confirm"
	case dtx.OpCancel:
		return spanBranch + "cancel"
	}
	return spanBranch + string(op)
}

// startBranchSpan starts the client span of one branch call under the
// transaction's span and returns the call's traceparent ("" when the span
// context is invalid: no trace at all).
func (r *run) startBranchSpan(req *dtx.Call) (context.Context, trace.Span) {
	ctx, span := r.c.tracer.Start(r.ctx, branchSpanName(req.Op), trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(attrGID.String(req.GID), attrBranch.Int(req.Branch), attrOp.String(string(req.Op)),
			attrAttempt.Int(req.Attempt))
	}
	req.TraceParent = traceParentOf(ctx)
	return ctx, span
}

// endBranchSpan ends a branch call's span at the call's end (it is ended by
// the driver, which decides the outcome class and whether it retries).
func endBranchSpan(span trace.Span, end time.Time, class dtx.Class, retry bool, out dtx.Outcome) {
	if span.IsRecording() {
		span.SetAttributes(attrOutcome.String(class.String()), attrRetry.Bool(retry))
		if class != dtx.Success {
			span.SetStatus(codes.Error, out.Reason())
		}
	}
	span.End(trace.WithTimestamp(end))
}
