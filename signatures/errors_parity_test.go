package signatures

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kowai/kowai/signatures/lm/lmtest"
)

var errDeliberate = errors.New("deliberately failing")

// TestEvaluateMaxErrors mirrors DSPy's max_errors (dspy/evaluate/
// evaluate.py through dspy/utils/parallelizer.py): once that many examples
// fail, evaluation stops and raises instead of scoring 0 forever.
func TestEvaluateMaxErrors(t *testing.T) {
	var calls atomic.Int32
	failing := ModuleFunc(func(context.Context, Values) (Values, error) {
		calls.Add(1)
		return nil, errDeliberate
	})
	dev := make([]Example, 20)
	for i := range dev {
		dev[i] = Example{Inputs: Values{"q": i}, Outputs: Values{"a": "x"}}
	}
	res, err := Evaluate(t.Context(), lmtest.Texts(), failing, dev, ExactMatch("a"), EvalOptions{Parallel: 1, MaxErrors: 3})
	if !errors.Is(err, ErrTooManyErrors) || !errors.Is(err, errDeliberate) {
		t.Fatalf("err = %v, want ErrTooManyErrors wrapping the failure", err)
	}
	if calls.Load() != 3 || res.Errors != 3 {
		t.Errorf("%d calls, %d errors; want 3 and 3", calls.Load(), res.Errors)
	}
	// Without MaxErrors every example runs and scores 0.
	calls.Store(0)
	res, err = Evaluate(t.Context(), lmtest.Texts(), failing, dev, ExactMatch("a"), EvalOptions{})
	if err != nil || calls.Load() != 20 || res.Score != 0 {
		t.Errorf("no limit: %v, %d calls, score %v", err, calls.Load(), res.Score)
	}
}

// TestEvaluateScoreRounded mirrors dspy/evaluate/evaluate.py,
// score=round(100 * ncorrect / ntotal, 2).
func TestEvaluateScoreRounded(t *testing.T) {
	echo := ModuleFunc(func(_ context.Context, in Values) (Values, error) { return Values{"a": in["q"]}, nil })
	dev := []Example{
		{Inputs: Values{"q": "x"}, Outputs: Values{"a": "x"}},
		{Inputs: Values{"q": "y"}, Outputs: Values{"a": "no"}},
		{Inputs: Values{"q": "z"}, Outputs: Values{"a": "no"}},
	}
	res, err := Evaluate(t.Context(), lmtest.Texts(), echo, dev, ExactMatch("a"), EvalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Score != 33.33 {
		t.Errorf("score = %v, want 33.33", res.Score)
	}
}

// TestBootstrapMaxErrors mirrors tests/teleprompt/test_bootstrap.py,
// test_error_handling_during_bootstrap: a teacher that raises ends
// compilation once max_errors is reached.
func TestBootstrapMaxErrors(t *testing.T) {
	student := NewPredict(MustParse("input -> output"), PredictOptions{})
	teacher := &buggyModule{Predict: NewPredict(MustParse("input -> output"), PredictOptions{})}
	train := []Example{
		{Inputs: Values{"input": "What is the color of the sky?"}, Outputs: Values{"output": "blue"}},
		{Inputs: Values{"input": "What does the fox say?"}, Outputs: Values{"output": "Ring-ding-ding"}},
	}
	_, err := BootstrapFewShot{Metric: ExactMatch("output"), MaxBootstrapped: 1, MaxLabeled: 1, MaxErrors: 1, Teacher: teacher}.
		Compile(t.Context(), lmtest.Texts(), student, train)
	if !errors.Is(err, ErrTooManyErrors) || !errors.Is(err, errDeliberate) {
		t.Fatalf("err = %v, want ErrTooManyErrors wrapping the teacher's error", err)
	}
	rep, err := BootstrapFewShot{Metric: ExactMatch("output"), MaxBootstrapped: 1, MaxLabeled: 1, Teacher: teacher}.
		Compile(t.Context(), lmtest.Texts(), student, train)
	if err != nil || rep.Errors != 2 {
		t.Errorf("no limit: %v, %d errors", err, rep.Errors)
	}
}

type buggyModule struct{ Predict *Predict }

func (b *buggyModule) Forward(context.Context, Values) (Values, error) { return nil, errDeliberate }

// TestLabeledFewShotDefaultK mirrors dspy/teleprompt/vanilla.py,
// LabeledFewShot(k=16).
func TestLabeledFewShotDefaultK(t *testing.T) {
	train := make([]Example, 20)
	for i := range train {
		train[i] = Example{Inputs: Values{"q": i}, Outputs: Values{"a": i}}
	}
	p := NewPredict(MustParse("q -> a"), PredictOptions{})
	if err := (LabeledFewShot{}).Compile(p, train); err != nil {
		t.Fatal(err)
	}
	if n := len(p.Demos()); n != 16 {
		t.Errorf("%d demos, want 16", n)
	}
	if err := (LabeledFewShot{K: -1}).Compile(p, train); err != nil || len(p.Demos()) != 0 {
		t.Errorf("K -1: %v, %d demos", err, len(p.Demos()))
	}
}

// TestBestOfNFailCount mirrors tests/predict/test_best_of_n.py,
// test_refine_module_default_fail_count and
// test_refine_module_custom_fail_count (and the same in test_refine.py).
func TestBestOfNFailCount(t *testing.T) {
	var calls int
	failTwice := ModuleFunc(func(context.Context, Values) (Values, error) {
		calls++
		if calls <= 2 {
			return nil, errDeliberate
		}
		return Values{"answer": "Brussels"}, nil
	})
	always := func(Values, Values) float64 { return 1 }
	b := &BestOfN{Module: failTwice, N: 3, Reward: always, Threshold: 0, FailCount: 1}
	if _, err := b.Forward(t.Context(), Values{"question": "capital of Belgium?"}); !errors.Is(err, errDeliberate) {
		t.Errorf("FailCount 1: %v", err)
	}
	if calls != 2 {
		t.Errorf("FailCount 1: %d calls, want 2", calls)
	}
	calls = 0
	b.FailCount = 0
	out, err := b.Forward(t.Context(), Values{"question": "capital of Belgium?"})
	if err != nil || out["answer"] != "Brussels" || calls != 3 {
		t.Errorf("default fail count: %v, %v after %d calls", out, err, calls)
	}
	alwaysFail := ModuleFunc(func(context.Context, Values) (Values, error) { return nil, errDeliberate })
	r := NewRefine(alwaysFail, 3, always, 0)
	if _, err := r.Forward(t.Context(), Values{}); !errors.Is(err, ErrAllAttemptsFailed) || !strings.Contains(err.Error(), "deliberately") {
		t.Errorf("Refine, every attempt failing: %v", err)
	}
}

// TestBootstrapNegativeBounds: a negative MaxBootstrapped means no teacher
// runs (it used to slice with a negative bound and panic).
func TestBootstrapNegativeBounds(t *testing.T) {
	train := []Example{{Inputs: Values{"q": "a"}, Outputs: Values{"a": "1"}}, {Inputs: Values{"q": "b"}, Outputs: Values{"a": "2"}}}
	p := NewPredict(MustParse("q -> a"), PredictOptions{})
	model := lmtest.Texts()
	rep, err := BootstrapFewShot{MaxBootstrapped: -1, MaxLabeled: 1}.Compile(t.Context(), model, p, train)
	if err != nil || rep.Attempts != 0 || model.Calls() != 0 || len(p.Demos()) != 1 {
		t.Errorf("%+v, %v, %d calls, %d demos", rep, err, model.Calls(), len(p.Demos()))
	}
}
