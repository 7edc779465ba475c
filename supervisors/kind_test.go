package supervisors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
)

// selfKinded is a caller's own failure type that is not an error.
type selfKinded struct{}

func (selfKinded) FailureKind() Kind { return KindBudgetExceeded }

// recoverPanic returns the value a real runtime panic recovers with.
func recoverPanic(f func()) (reason any) {
	defer func() { reason = recover() }()
	f()
	return nil
}

func TestKindString(t *testing.T) {
	tests := []struct {
		kind Kind
		want string
	}{
		{KindUnknown, "unknown"},
		{KindPanic, "panic"},
		{KindModelError, "model_error"},
		{KindTimeout, "timeout"},
		{KindConflict, "conflict"},
		{KindBudgetExceeded, "budget_exceeded"},
		{Kind(42), "kind(42)"},
	}
	for _, tt := range tests {
		if got := tt.kind.String(); got != tt.want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(tt.kind), got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	errFenced := errors.New("fenced")
	errModel := errors.New("model down")
	errBudget := errors.New("budget")
	classifiers := []Classifier{
		Match(KindConflict, errFenced),
		Match(KindModelError, errModel, os.ErrClosed),
		Match(KindBudgetExceeded, errBudget),
		// Shadowed by the first classifier: the first match wins.
		Match(KindTimeout, errFenced),
	}
	var nilMap map[string]int
	tests := []struct {
		name   string
		reason any
		want   Kind
	}{
		{"failure", NewFailure(KindModelError, nil), KindModelError},
		{"wrapped failure", fmt.Errorf("turn 3: %w", NewFailure(KindConflict, errors.New("v7"))), KindConflict},
		{"failure beats classifiers", NewFailure(KindTimeout, errFenced), KindTimeout},
		{"kinded non-error", selfKinded{}, KindBudgetExceeded},
		{"sentinel", errFenced, KindConflict},
		{"wrapped sentinel", fmt.Errorf("append: %w", errFenced), KindConflict},
		{"second target", fmt.Errorf("read: %w", os.ErrClosed), KindModelError},
		{"third classifier", errBudget, KindBudgetExceeded},
		{"context deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), KindTimeout},
		{"os deadline", os.ErrDeadlineExceeded, KindTimeout},
		{"canceled is not a timeout", context.Canceled, KindUnknown},
		{"runtime error", recoverPanic(func() { nilMap["x"] = 1 }), KindPanic},
		{"panic(nil)", recoverPanic(func() { panic(nil) }), KindPanic},
		{"string panic", "boom", KindPanic},
		{"int panic", 7, KindPanic},
		{"unrecognised error", errors.New("odd"), KindUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.reason, classifiers...); got != tt.want {
				t.Errorf("Classify(%v) = %s, want %s", tt.reason, got, tt.want)
			}
		})
	}
}

func TestClassifyWithoutClassifiers(t *testing.T) {
	if got := Classify(errors.New("x")); got != KindUnknown {
		t.Errorf("plain error = %s, want unknown", got)
	}
	if got := Classify(context.DeadlineExceeded); got != KindTimeout {
		t.Errorf("deadline = %s, want timeout", got)
	}
}

func TestMatchIgnoresNonErrors(t *testing.T) {
	if kind, ok := Match(KindConflict, errors.New("x"))("x"); ok {
		t.Errorf("Match on a string reason = %s, true; want no match", kind)
	}
}

func TestFailureError(t *testing.T) {
	cause := errors.New("version 7 is stale")
	f := NewFailure(KindConflict, cause)
	if got, want := f.Error(), "conflict failure: version 7 is stale"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(f, cause) {
		t.Error("errors.Is(failure, cause) = false, want true")
	}
	if got, want := NewFailure(KindTimeout, nil).Error(), "supervisors: timeout failure"; got != want {
		t.Errorf("Error() without cause = %q, want %q", got, want)
	}
}
