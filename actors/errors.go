package actors

import (
	"context"
	"errors"
	"fmt"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/supervisors"
)

// errorReply returns an ErrorReply with a formatted message.
func errorReply(code actorpb.Code, correlationID, format string, args ...any) *actorpb.ErrorReply {
	return actorpb.NewError(code, correlationID, fmt.Sprintf(format, args...))
}

// codeOf chooses the reply code for a failed model call or write. Context errors come
// first: a cancelled turn is not a model failure even if the model reported one.
func codeOf(err error) actorpb.Code {
	var ae *actorpb.Error
	switch {
	case errors.As(err, &ae):
		return ae.Code
	case errors.Is(err, context.Canceled):
		return actorpb.Code_CODE_CANCELED
	case errors.Is(err, persistence.ErrNotFound):
		return actorpb.Code_CODE_NOT_FOUND
	case errors.Is(err, persistence.ErrUnavailable), errors.Is(err, persistence.ErrClosed), persistence.IsRetryable(err):
		return actorpb.Code_CODE_UNAVAILABLE
	}
	switch supervisors.Classify(err, failureClassifiers...) {
	case supervisors.KindTimeout:
		return actorpb.Code_CODE_TIMEOUT
	case supervisors.KindBudgetExceeded:
		return actorpb.Code_CODE_BUDGET_EXCEEDED
	case supervisors.KindModelError:
		return actorpb.Code_CODE_MODEL_FAILURE
	case supervisors.KindConflict:
		return actorpb.Code_CODE_UNAVAILABLE
	}
	return actorpb.Code_CODE_INTERNAL
}

// isFencing reports whether a write failed because another activation of the same
// identity got there first.
func isFencing(err error) bool {
	return errors.Is(err, persistence.ErrConflict) || errors.Is(err, persistence.ErrDuplicate)
}

// errFenced marks a turn that lost a write to another activation.
var errFenced = errors.New("actors: fenced out by another activation")
