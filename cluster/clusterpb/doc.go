// Package clusterpb is what a request carries besides its message: the message headers
// with the request's correlation ID and idempotency key, and the context helpers that
// set and read them. It depends only on the standard library and internal/logging, so grain packages
// import it without importing package cluster.
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
package clusterpb
