package actorpb

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Errors a grain reports with an ErrorReply, one per Code. A *Error unwraps to one of
// them, so callers test with errors.Is.
var (
	// ErrForbidden relays CODE_FORBIDDEN: the caller does not own the conversation.
	ErrForbidden = errors.New("actors: forbidden")
	// ErrNotFound relays CODE_NOT_FOUND.
	ErrNotFound = errors.New("actors: not found")
	// ErrConflict relays CODE_CONFLICT.
	ErrConflict = errors.New("actors: conflict")
	// ErrUnavailable relays CODE_UNAVAILABLE; retrying with the same idempotency key is safe.
	ErrUnavailable = errors.New("actors: unavailable")
	// ErrModelFailure relays CODE_MODEL_FAILURE.
	ErrModelFailure = errors.New("actors: model failure")
	// ErrTimeout relays CODE_TIMEOUT.
	ErrTimeout = errors.New("actors: model timeout")
	// ErrBudgetExceeded relays CODE_BUDGET_EXCEEDED.
	ErrBudgetExceeded = errors.New("actors: budget exceeded")
	// ErrBusy relays CODE_BUSY.
	ErrBusy = errors.New("actors: busy")
	// ErrCanceled relays CODE_CANCELED.
	ErrCanceled = errors.New("actors: canceled")
	// ErrInvalidArgument relays CODE_INVALID_ARGUMENT.
	ErrInvalidArgument = errors.New("actors: invalid argument")
	// ErrIdempotencyMismatch relays CODE_IDEMPOTENCY_MISMATCH: the idempotency key was
	// used before with another request.
	ErrIdempotencyMismatch = errors.New("actors: idempotency key reused with another request")
	// ErrInternal relays CODE_INTERNAL and unset codes.
	ErrInternal = errors.New("actors: internal error")
	// ErrUnexpectedReply means a grain answered with another message type than expected.
	ErrUnexpectedReply = errors.New("actors: unexpected reply type")
)

var codeErrors = map[Code]error{
	Code_CODE_FORBIDDEN:        ErrForbidden,
	Code_CODE_NOT_FOUND:        ErrNotFound,
	Code_CODE_CONFLICT:         ErrConflict,
	Code_CODE_UNAVAILABLE:      ErrUnavailable,
	Code_CODE_MODEL_FAILURE:    ErrModelFailure,
	Code_CODE_TIMEOUT:          ErrTimeout,
	Code_CODE_BUDGET_EXCEEDED:  ErrBudgetExceeded,
	Code_CODE_BUSY:             ErrBusy,
	Code_CODE_CANCELED:         ErrCanceled,
	Code_CODE_INVALID_ARGUMENT: ErrInvalidArgument,
	Code_CODE_INTERNAL:         ErrInternal,

	Code_CODE_IDEMPOTENCY_MISMATCH: ErrIdempotencyMismatch,
}

// Error is an ErrorReply as a Go error.
type Error struct {
	Code          Code
	Message       string
	CorrelationID string
	// Variant is the agent variant whose reply failed, if any.
	Variant string
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Unwrap(), e.Message)
}

// Unwrap returns the sentinel of the error's code.
func (e *Error) Unwrap() error {
	if err, ok := codeErrors[e.Code]; ok {
		return err
	}
	return ErrInternal
}

// Err returns r as an *Error.
func (r *ErrorReply) Err() error {
	return &Error{Code: r.GetCode(), Message: r.GetMessage(), CorrelationID: r.GetCorrelationId(), Variant: r.GetVariant()}
}

// NewError returns the ErrorReply a grain answers with when a request fails.
func NewError(code Code, correlationID, message string) *ErrorReply {
	return &ErrorReply{Code: code, Message: message, CorrelationId: correlationID}
}

// CodeOf returns the code for err: the code of an *Error in its chain, or the code whose
// sentinel it wraps, or CODE_INTERNAL.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	for code, sentinel := range codeErrors {
		if errors.Is(err, sentinel) {
			return code
		}
	}
	return Code_CODE_INTERNAL
}

// As turns a grain's answer into the reply type the caller expects: an ErrorReply
// becomes its *Error, any other type than Resp is ErrUnexpectedReply, and a transport
// error passes through. It fits directly around a grain call:
//
//	res, err := actorpb.As[*actorpb.TurnResult](client.Call(ctx, "session", id, req))
func As[Resp proto.Message](reply proto.Message, err error) (Resp, error) {
	var zero Resp
	if err != nil {
		return zero, err
	}
	if e, ok := reply.(*ErrorReply); ok {
		return zero, e.Err()
	}
	typed, ok := reply.(Resp)
	if !ok {
		return zero, fmt.Errorf("%w: got %T, want %T", ErrUnexpectedReply, reply, zero)
	}
	return typed, nil
}
