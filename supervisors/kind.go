package supervisors

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
)

// Kind classifies why an actor failed. The supervisor decides what to do
// from the kind alone, so every failure reason is reduced to one of these.
// The zero value is KindUnknown.
type Kind int

// The failure kinds a Decider distinguishes.
const (
	// KindUnknown is an error that nothing recognised.
	KindUnknown Kind = iota
	// KindPanic is a programming error: a runtime error (nil dereference,
	// index out of range) or a panic with a value that is not an error.
	KindPanic
	// KindModelError is a failed language-model call.
	KindModelError
	// KindTimeout is work that ran past its deadline.
	KindTimeout
	// KindConflict is a persistence conflict: another activation of the same
	// identity won a fenced write, so this one holds stale state.
	KindConflict
	// KindBudgetExceeded is a spending budget (tokens, cost, calls) used up.
	// It is unrelated to the RestartBudget.
	KindBudgetExceeded
)

// String returns the kind's name as used in logs and in the "reason" metric
// label.
func (k Kind) String() string {
	switch k {
	case KindUnknown:
		return "unknown"
	case KindPanic:
		return "panic"
	case KindModelError:
		return "model_error"
	case KindTimeout:
		return "timeout"
	case KindConflict:
		return "conflict"
	case KindBudgetExceeded:
		return "budget_exceeded"
	default:
		return "kind(" + strconv.Itoa(int(k)) + ")"
	}
}

// Kinded is implemented by failure reasons that know their own kind. Failure
// implements it; so may a caller's own error types.
type Kinded interface {
	FailureKind() Kind
}

// Failure is an error that carries its Kind. An actor panics with one to tell
// its supervisor exactly what went wrong:
//
//	panic(supervisors.NewFailure(supervisors.KindConflict, err))
//
// It may also be wrapped inside other errors; Classify finds it with
// errors.As.
type Failure struct {
	// Kind is what the supervisor decides on.
	Kind Kind
	// Err is the underlying cause; it may be nil.
	Err error
}

// NewFailure returns a Failure of the given kind wrapping err.
func NewFailure(kind Kind, err error) *Failure {
	return &Failure{Kind: kind, Err: err}
}

// Error describes the failure with its kind.
func (f *Failure) Error() string {
	if f.Err == nil {
		return "supervisors: " + f.Kind.String() + " failure"
	}
	return f.Kind.String() + " failure: " + f.Err.Error()
}

// Unwrap returns the cause, so errors.Is sees through a Failure.
func (f *Failure) Unwrap() error { return f.Err }

// FailureKind returns f.Kind.
func (f *Failure) FailureKind() Kind { return f.Kind }

// A Classifier recognises some failure reasons. It returns ok=false for a
// reason it does not know, so the next classifier can try. The reason is the
// raw value the actor panicked with. Classifiers must be safe for concurrent
// use.
type Classifier func(reason any) (kind Kind, ok bool)

// Match returns a Classifier that reports kind for any error that matches
// one of targets under errors.Is. It lets a caller map sentinels of packages
// this one must not import:
//
//	supervisors.Match(supervisors.KindConflict, persistence.ErrConflict)
func Match(kind Kind, targets ...error) Classifier {
	return func(reason any) (Kind, bool) {
		err, ok := reason.(error)
		if !ok {
			return KindUnknown, false
		}
		for _, target := range targets {
			if errors.Is(err, target) {
				return kind, true
			}
		}
		return KindUnknown, false
	}
}

// Classify reduces a failure reason to a Kind, trying in order:
//  1. a Kinded reason, or an error wrapping one (such as a Failure);
//  2. the classifiers, first match wins;
//  3. an error with a Timeout() method that reports true (which includes
//     context.DeadlineExceeded and os.ErrDeadlineExceeded): KindTimeout;
//  4. a runtime error or a reason that is not an error: KindPanic;
//  5. anything else: KindUnknown.
func Classify(reason any, classifiers ...Classifier) Kind {
	if k, ok := reason.(Kinded); ok {
		return k.FailureKind()
	}
	err, isErr := reason.(error)
	var kinded Kinded
	if isErr && errors.As(err, &kinded) {
		return kinded.FailureKind()
	}
	for _, classify := range classifiers {
		if kind, ok := classify(reason); ok {
			return kind
		}
	}
	if !isErr {
		return KindPanic
	}
	var timeout interface{ Timeout() bool }
	if errors.As(err, &timeout) && timeout.Timeout() {
		return KindTimeout
	}
	var runtimeErr runtime.Error
	if errors.As(err, &runtimeErr) {
		return KindPanic
	}
	return KindUnknown
}

// asError turns a panic value into an error so it can be wrapped with %w.
func asError(reason any) error {
	if err, ok := reason.(error); ok {
		return err
	}
	return fmt.Errorf("panic: %v", reason)
}
