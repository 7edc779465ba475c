package signatures

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kowai/kowai/signatures/lm/lmtest"
)

// TestCompletions: n completions are n distinct rollouts, so a cache keyed
// on the request answers none of them from another (DSPy's Predict with
// n, tests/predict/test_predict.py, test_multi_output).
func TestCompletions(t *testing.T) {
	model := lmtest.Texts(reply("answer", "a"), reply("answer", "b"), reply("answer", "c"))
	p := NewPredict(MustParse("question -> answer"), PredictOptions{})
	run := NewRun(model)
	outs, err := p.Completions(WithRun(t.Context(), run), Values{"question": "q"}, 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range outs {
		got = append(got, o["answer"].(string))
	}
	if !slices.Equal(got, []string{"a", "b", "c"}) || len(run.Trace()) != 3 {
		t.Errorf("completions %v, %d trace steps", got, len(run.Trace()))
	}
	ids := map[string]bool{}
	for _, r := range model.Requests() {
		ids[r.RolloutID] = true
		if r.Temperature != 1.0 {
			t.Errorf("temperature %v", r.Temperature)
		}
	}
	if len(ids) != 3 || ids[""] {
		t.Errorf("rollout ids %v", ids)
	}
}

// TestMultiChainComparison mirrors tests/predict/test_multi_chain_
// comparison.py, test_basic_example, and checks the attempts as DSPy words
// them (dspy/predict/multi_chain_comparison.py).
func TestMultiChainComparison(t *testing.T) {
	sig, err := New([]Field{{Name: "question"}}, []Field{{Name: "answer", Desc: "often between 1 and 5 words"}},
		"Answer questions with short factoid answers.")
	if err != nil {
		t.Fatal(err)
	}
	mcc, err := NewMultiChainComparison(sig, 0, PredictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	completions := []Values{
		{"rationale": "I recall that during clear days, the sky often appears this color.", "answer": "blue"},
		{"rationale": "Based on common knowledge, I believe the sky is typically seen as this color.", "answer": "green"},
		{"reasoning": "From images and depictions in media, the sky is frequently represented with this hue.", "answer": "blue"},
	}
	model := lmtest.Texts(reply("rationale", "my rationale", "answer", "blue"))
	res, err := Execute(t.Context(), model, mcc, Values{"completions": completions, "question": "What is the color of the sky?"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outputs["rationale"] != "my rationale" || res.Outputs["answer"] != "blue" {
		t.Errorf("outputs %v", res.Outputs)
	}
	req := model.Requests()[0]
	user := text(req.Messages[1])
	for _, want := range []string{
		"[[ ## reasoning_attempt_2 ## ]]\n«I'm trying to Based on common knowledge, I believe the sky is typically seen as this color. I'm not sure but my prediction is green»",
		"[[ ## reasoning_attempt_3 ## ]]\n«I'm trying to From images",
	} {
		if !strings.Contains(user, want) {
			t.Errorf("user message lacks %q:\n%s", want, user)
		}
	}
	if req.Temperature != 0.7 {
		t.Errorf("temperature %v, want DSPy's 0.7", req.Temperature)
	}
	if _, err := mcc.Compare(t.Context(), completions[:2], Values{"question": "q"}); err == nil {
		t.Error("two attempts for M = 3 accepted")
	}
}

// TestParallel mirrors tests/predict/test_parallel.py, test_parallel_module
// and test_batch_with_failed_examples.
func TestParallel(t *testing.T) {
	var texts []string
	for i := 1; i <= 5; i++ {
		texts = append(texts, reply("output", fmt.Sprintf("test output %d", i)))
	}
	model := lmtest.Texts(texts...)
	p1 := NewPredict(MustParse("input -> output"), PredictOptions{})
	p2 := NewPredict(MustParse("input -> output"), PredictOptions{})
	in := Values{"input": "test input"}
	run := NewRun(model)
	res, err := Parallel{Threads: 2}.Run(WithRun(t.Context(), run), []ExecPair{{p1, in}, {p2, in}, {p1, in}, {p2, in}, {p1, in}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res {
		got = append(got, r.Outputs["output"].(string))
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"test output 1", "test output 2", "test output 3", "test output 4", "test output 5"}) || len(run.Trace()) != 5 {
		t.Errorf("outputs %v, %d trace steps", got, len(run.Trace()))
	}

	errTest := errors.New("test error")
	failing := ModuleFunc(func(_ context.Context, in Values) (Values, error) {
		if in["value"] == 42 {
			return nil, errTest
		}
		return Values{"out": fmt.Sprintf("success-%v", in["value"])}, nil
	})
	res, err = Parallel{}.Batch(t.Context(), failing, []Values{{"value": 1}, {"value": 42}, {"value": 3}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Outputs["out"] != "success-1" || res[1].Outputs != nil || !errors.Is(res[1].Err, errTest) || res[2].Outputs["out"] != "success-3" {
		t.Errorf("results %+v", res)
	}
	// MaxErrors: DSPy's max_errors stops the batch.
	many := make([]Values, 10)
	for i := range many {
		many[i] = Values{"value": 42}
	}
	res, err = Parallel{Threads: 1, MaxErrors: 2}.Batch(t.Context(), failing, many)
	if !errors.Is(err, ErrTooManyErrors) || res[2].Err != nil || res[2].Outputs != nil {
		t.Errorf("max errors: %v, %+v", err, res[:3])
	}
}
