package clusterpb

import (
	"context"

	"github.com/kowai/kowai/internal/logging"
)

// Message-header keys the grain client sets on every request. A grain reads them with
// ctx.MessageHeader().Get(HeaderCorrelationID); headers cross nodes with the message.
const (
	HeaderCorrelationID  = "kowai-correlation-id"
	HeaderIdempotencyKey = "kowai-idempotency-key"
)

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

// ContextFromHeader returns ctx carrying the correlation ID of the message whose header
// is h, so that a grain's onward calls are joined to the request that caused them. The
// idempotency key is deliberately not carried: it names one request, not its children.
func ContextFromHeader(ctx context.Context, h Header) context.Context {
	if h == nil {
		return ctx
	}
	if id := h.Get(HeaderCorrelationID); id != "" {
		return WithCorrelationID(ctx, id)
	}
	return ctx
}
