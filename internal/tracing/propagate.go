package tracing

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The W3C trace-context keys, as HTTP headers and as grain message headers.
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// traceContext is the only propagation format kowai speaks.
var traceContext propagation.TraceContext

// Getter reads one header value; actor message headers, HTTP request headers and
// maps satisfy it with a small adapter or as they are.
type Getter interface {
	Get(key string) string
}

// Inject writes the W3C trace context of ctx's span into header (traceparent, and
// tracestate when set). It writes nothing when ctx carries no valid span context,
// which is always the case with tracing off.
func Inject(ctx context.Context, header map[string]string) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	traceContext.Inject(ctx, propagation.MapCarrier(header))
}

// Extract returns ctx carrying, as its remote parent, the span context in h's trace
// headers; ctx unchanged when h has none or they do not parse.
func Extract(ctx context.Context, h Getter) context.Context {
	if h == nil || h.Get(HeaderTraceParent) == "" {
		return ctx
	}
	return traceContext.Extract(ctx, getterCarrier{h})
}

// getterCarrier adapts a Getter for the propagator, which only reads it.
type getterCarrier struct{ h Getter }

func (c getterCarrier) Get(key string) string { return c.h.Get(key) }
func (c getterCarrier) Set(string, string)    {}
func (c getterCarrier) Keys() []string        { return []string{HeaderTraceParent, HeaderTraceState} }
