package cluster

import (
	"errors"
	"fmt"

	"github.com/kowai/kowai/cluster/clusterpb"
)

// Errors of the grain client. A grain's own failures arrive as a *GrainError, which
// unwraps to one of the code sentinels below, so callers test with errors.Is.
var (
	// ErrTimeout means no reply arrived within the call's timeout or the caller's deadline.
	// The grain may still have acted on the request: retry only with the same idempotency key.
	ErrTimeout = errors.New("cluster: grain call timed out")
	// ErrUnavailable means the request could not be delivered: no member hosts the kind,
	// the owner node is gone, or the node is not started.
	ErrUnavailable = errors.New("cluster: grain unavailable")
	// ErrNotProtobuf means the request is not a registered, generated protobuf message and
	// was rejected before sending, because it would be silently dropped on a remote node.
	ErrNotProtobuf = errors.New("cluster: message is not a registered protobuf message")
	// ErrUnexpectedReply means the grain answered with a message of another type than the
	// caller expected.
	ErrUnexpectedReply = errors.New("cluster: unexpected reply type")

	// ErrNotFound relays clusterpb.Code_CODE_NOT_FOUND.
	ErrNotFound = errors.New("cluster: not found")
	// ErrForbidden relays clusterpb.Code_CODE_FORBIDDEN.
	ErrForbidden = errors.New("cluster: forbidden")
	// ErrConflict relays clusterpb.Code_CODE_CONFLICT.
	ErrConflict = errors.New("cluster: conflict")
	// ErrInvalidArgument relays clusterpb.Code_CODE_INVALID_ARGUMENT.
	ErrInvalidArgument = errors.New("cluster: invalid argument")
	// ErrResourceExhausted relays clusterpb.Code_CODE_RESOURCE_EXHAUSTED.
	ErrResourceExhausted = errors.New("cluster: resource exhausted")
	// ErrInternal relays clusterpb.Code_CODE_INTERNAL and unset codes.
	ErrInternal = errors.New("cluster: internal grain error")

	// ErrBlocked is returned by Node.Run when the cluster has blocked this node's member ID.
	// A blocked ID never rejoins: the process must exit and start again with a new one.
	ErrBlocked = errors.New("cluster: this node is blocked by the cluster")
	// ErrNotMember is returned by Node.Run when this node has been missing from its own
	// member list for longer than the grace period.
	ErrNotMember = errors.New("cluster: this node is not in the member list")
	// ErrConfig means the node's configuration is invalid; the message names the field.
	ErrConfig = errors.New("cluster: invalid configuration")
)

// GrainError is a failure a grain reported with a clusterpb.ErrorReply.
type GrainError struct {
	Kind, Identity string
	Code           clusterpb.Code
	Message        string
	CorrelationID  string
}

// Error implements error.
func (e *GrainError) Error() string {
	return fmt.Sprintf("grain %s/%s: %s: %s", e.Kind, e.Identity, e.Code, e.Message)
}

// Unwrap returns the sentinel for the error's code.
func (e *GrainError) Unwrap() error {
	return codeError(e.Code)
}

func codeError(code clusterpb.Code) error {
	switch code {
	case clusterpb.Code_CODE_NOT_FOUND:
		return ErrNotFound
	case clusterpb.Code_CODE_FORBIDDEN:
		return ErrForbidden
	case clusterpb.Code_CODE_CONFLICT:
		return ErrConflict
	case clusterpb.Code_CODE_INVALID_ARGUMENT:
		return ErrInvalidArgument
	case clusterpb.Code_CODE_UNAVAILABLE:
		return ErrUnavailable
	case clusterpb.Code_CODE_DEADLINE_EXCEEDED:
		return ErrTimeout
	case clusterpb.Code_CODE_RESOURCE_EXHAUSTED:
		return ErrResourceExhausted
	default:
		return ErrInternal
	}
}
