// Package actorpb is the protocol of kowai's session and agent grains: the protobuf
// messages in actors.proto (generated code in actors.pb.go, reproduced by
// `go tool protogen` from the module root) and the Go errors for their ErrorReply.
// It is the one package of actors that the gateway may import.
//
// # Requests and replies
//
// A chat turn is a SendMessage to the session grain whose identity is the conversation
// ID; it answers with a TurnResult once the user's message and the reply are durable.
// CancelTurn stops a running reply, RenameConversation and DeleteConversation change
// the conversation; history and conversation metadata are read from the stores, not
// from the grain. The session asks the agent grain (identity = agent ID) for replies with
// GenerateReply / ReplyResult. While a reply is generated the agent's worker sends
// TokenDelta messages and a final StreamEnd to the StreamTarget of the request, a PID
// that may live on another node.
//
// Every request carries a correlation ID; requests with side effects carry an
// idempotency key: a SendMessage repeated with the same key returns the stored
// TurnResult (Replayed set) without calling the model again.
//
// # Errors
//
// A grain answers a failed request with an ErrorReply whose Code the gateway maps to an
// HTTP status. It is the one error protocol of kowai's grains: the cluster's grain
// client hands it back as the reply (counting the call as refused in
// kowai_grain_requests_total), and every caller turns it into an error here. As converts a grain call's answer into the expected type or an *Error that
// unwraps to a sentinel:
//
//	res, err := actorpb.As[*actorpb.TurnResult](client.Call(ctx, "session", convID, req))
//	switch {
//	case errors.Is(err, actorpb.ErrForbidden): // 403
//	case errors.Is(err, actorpb.ErrUnavailable): // 503, retry with the same key
//	}
package actorpb
