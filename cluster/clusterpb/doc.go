// Package clusterpb is what a request carries besides its message: the message headers
// with the request's correlation ID, idempotency key and W3C trace context, and the
// context helpers that set and read them. It depends only on the standard library,
// internal/logging and internal/tracing, so grain packages import it without
// importing package cluster.
//
// The messages themselves, and the ErrorReply a grain answers with when it refuses or
// fails a request, are the actors' protocol (package actors/actorpb).
//
// # Headers
//
// The caller puts the IDs on its context; the grain reads them from the message header:
//
//	ctx = clusterpb.WithCorrelationID(ctx, requestID)  // caller
//	ctx = clusterpb.WithIdempotencyKey(ctx, key)
//
//	key := actorCtx.MessageHeader().Get(clusterpb.HeaderIdempotencyKey)  // grain
//	callCtx := clusterpb.ContextFromHeader(context.Background(), actorCtx.MessageHeader())
//
// The grain client injects the trace context of its call's span (InjectTrace); the
// node's receive middleware starts the grain's server span from it and hands the grain
// a header whose traceparent names that server span, so ContextFromHeader makes the
// grain's onward work a child of it.
package clusterpb
