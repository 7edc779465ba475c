package clusterpb

import (
	"context"

	"github.com/kowai/kowai/internal/logging"
	"github.com/kowai/kowai/internal/tracing"
)

// Message-header keys the grain client sets on every request. A grain reads them with
// ctx.MessageHeader().Get(HeaderCorrelationID); headers cross nodes with the message.
const (
	HeaderCorrelationID  = "kowai-correlation-id"
	HeaderIdempotencyKey = "kowai-idempotency-key"
	// HeaderTraceParent and HeaderTraceState carry the caller's W3C trace context
	// (https://www.w3.org/TR/trace-context/) when tracing is on, so that the grain's
	// spans join the caller's trace on whichever node the grain lives.
	HeaderTraceParent = tracing.HeaderTraceParent
	HeaderTraceState  = tracing.HeaderTraceState
)

// InjectTrace writes the W3C trace context of ctx's span into header (traceparent,
// and tracestate when set). It writes nothing when ctx carries no valid span context,
// which is always the case with tracing off.
func InjectTrace(ctx context.Context, header map[string]string) { tracing.Inject(ctx, header) }

// TraceFromHeader returns ctx carrying, as its remote parent, the span context in h's
// trace headers; ctx unchanged when h has none or they do not parse.
func TraceFromHeader(ctx context.Context, h Header) context.Context {
	if h == nil {
		return ctx
	}
	return tracing.Extract(ctx, h)
}

type metaKey int

const idempotencyKey metaKey = 0

// WithCorrelationID returns a context whose grain calls carry id as their correlation ID.
// It is the same correlation ID kowai's loggers add to every line (package logging), so
// a request's ID set once at the gateway follows it into every grain it reaches.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return logging.WithCorrelationID(ctx, id)
}

// CorrelationID returns the context's correlation ID, or "".
func CorrelationID(ctx context.Context) string { return logging.CorrelationID(ctx) }

// WithIdempotencyKey returns a context whose grain calls carry key as their idempotency
// key. Set it for every request with side effects: the client never re-sends, but the
// end user's client may, and the grain deduplicates on this key.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKey, key)
}

// IdempotencyKey returns the idempotency key set with WithIdempotencyKey, or "".
func IdempotencyKey(ctx context.Context) string {
	key, _ := ctx.Value(idempotencyKey).(string)
	return key
}

// Header is the read side of an actor message header (protoactor's
// actor.ReadonlyMessageHeader satisfies it).
type Header interface {
	Get(key string) string
}

// ContextFromHeader returns ctx carrying the correlation ID and the trace context of
// the message whose header is h, so that a grain's onward calls, logs and spans are
// joined to the request that caused them. The idempotency key is deliberately not
// carried: it names one request, not its children.
func ContextFromHeader(ctx context.Context, h Header) context.Context {
	if h == nil {
		return ctx
	}
	if id := h.Get(HeaderCorrelationID); id != "" {
		ctx = WithCorrelationID(ctx, id)
	}
	return TraceFromHeader(ctx, h)
}
