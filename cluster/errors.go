package cluster

import "errors"

// Errors of the grain client and the node. A grain's own refusals are not errors of
// this package: the grain answers with an actorpb.ErrorReply, which the client hands
// back as the reply (see Client.Call).
var (
	// ErrTimeout means no reply arrived within the call's timeout or the caller's deadline.
	// The grain may still have acted on the request: retry only with the same idempotency key.
	ErrTimeout = errors.New("cluster: grain call timed out")
	// ErrUnavailable means the request could not be delivered: no member hosts the kind,
	// the owner node is gone, or the node is not started.
	ErrUnavailable = errors.New("cluster: grain unavailable")
	// ErrNotProtobuf means the request (or, never in practice, the reply) is not a
	// registered, generated protobuf message. A request is rejected before sending,
	// because it would be silently dropped on a remote node.
	ErrNotProtobuf = errors.New("cluster: message is not a registered protobuf message")

	// ErrBlocked is returned by Node.Run when the cluster has blocked this node's member ID.
	// A blocked ID never rejoins: the process must exit and start again with a new one.
	ErrBlocked = errors.New("cluster: this node is blocked by the cluster")
	// ErrNotMember is returned by Node.Run when this node has been missing from its own
	// member list for longer than the grace period.
	ErrNotMember = errors.New("cluster: this node is not in the member list")
	// ErrConfig means the node's configuration is invalid; the message names the field.
	ErrConfig = errors.New("cluster: invalid configuration")
)
