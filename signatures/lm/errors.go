package lm

import "errors"

// Errors returned by models and the layers that wrap them. Providers wrap the
// underlying error with one of these so callers and the retry layer can
// decide with errors.Is.
var (
	// ErrRateLimited means the provider refused the call for too many
	// requests (HTTP 429); it is retried.
	ErrRateLimited = errors.New("lm: rate limited")
	// ErrUnavailable means the provider failed on its side (HTTP 5xx, a
	// connection failure); it is retried.
	ErrUnavailable = errors.New("lm: provider unavailable")
	// ErrTimeout means the call ran past its deadline; it is retried while
	// the caller's context is still live.
	ErrTimeout = errors.New("lm: timeout")
	// ErrBadRequest means the provider rejected the request itself (HTTP
	// 400, 404, 422, context too long); retrying will not help.
	ErrBadRequest = errors.New("lm: bad request")
	// ErrContextWindow means the prompt does not fit the model's context
	// window. It is a kind of ErrBadRequest (errors.Is matches both) and is
	// not retried as is; callers that can shorten the prompt do (ReAct
	// drops its oldest steps, as DSPy does on ContextWindowExceededError).
	ErrContextWindow error = &subKind{msg: "lm: context window exceeded", parent: ErrBadRequest}
	// ErrAuth means the credentials were missing or refused (HTTP 401, 403).
	ErrAuth = errors.New("lm: authentication failed")
	// ErrContentFiltered means the provider's safety filter blocked the reply.
	ErrContentFiltered = errors.New("lm: content filtered")
	// ErrBudgetExceeded means a configured token or cost budget is used up;
	// no further calls are made through that budget.
	ErrBudgetExceeded = errors.New("lm: budget exceeded")
	// ErrCircuitOpen means the circuit breaker for the provider is open and
	// the call was not attempted.
	ErrCircuitOpen = errors.New("lm: circuit open")
	// ErrProvider is the catch-all for provider failures that fit no other
	// class; it is not retried.
	ErrProvider = errors.New("lm: provider error")
	// ErrConfig means a Config value is invalid.
	ErrConfig = errors.New("lm: invalid configuration")
)

// subKind is a sentinel that is also a kind of a broader one.
type subKind struct {
	msg    string
	parent error
}

func (e *subKind) Error() string { return e.msg }

func (e *subKind) Unwrap() error { return e.parent }
