// Package clusterpb is the wire protocol between kowai's grain client and grains:
// ErrorReply with its Code, and the message headers that carry a request's correlation
// ID and idempotency key. It depends only on protobuf, so grain packages import it
// without importing package cluster.
//
// # Errors
//
// A grain that refuses or fails a request answers with an ErrorReply instead of its
// normal reply; the client turns it into an error matching one of package cluster's
// sentinels:
//
//	if !owner {
//		ctx.Respond(clusterpb.NewError(clusterpb.Code_CODE_FORBIDDEN, "not your conversation"))
//		return
//	}
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
// # Generation
//
// cluster.proto is compiled by `go tool protogen` (see proto/protogen); the generated
// cluster.pb.go is committed.
package clusterpb
