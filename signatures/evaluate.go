package signatures

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"

	"github.com/kowai/kowai/signatures/lm"
)

// Metric scores a prediction against an example's expected outputs, from 0
// (wrong) to 1 (right). trace is the run's trace, for metrics that judge
// intermediate steps; optimizers pass it, evaluation does too.
type Metric func(ex Example, pred Values, trace []TraceStep) float64

// ExampleResult is the outcome of one example in Evaluate.
type ExampleResult struct {
	// Example is the evaluated example; Prediction the program's outputs.
	Example    Example
	Prediction Values
	// Score is the metric's value (0 when the run failed).
	Score float64
	// Trace and Usage are the run's.
	Trace []TraceStep
	Usage lm.Usage
	// Err is the program's error; the example then scores 0.
	Err error
}

// ErrTooManyErrors means a run stopped because MaxErrors examples (or
// teacher runs) failed, as DSPy's max_errors stops it.
var ErrTooManyErrors = errors.New("signatures: too many failed runs")

// EvalResult is the outcome of Evaluate.
type EvalResult struct {
	// Score is 100 times the mean metric value rounded to 2 decimals, as
	// DSPy reports it.
	Score float64
	// Results holds one entry per example, in devset order.
	Results []ExampleResult
	// Usage sums every model call.
	Usage lm.Usage
	// Errors counts examples whose program run failed.
	Errors int
}

// EvalOptions configures Evaluate.
type EvalOptions struct {
	// Parallel bounds the examples run at once (default 4).
	Parallel int
	// Progress, when set, is called after each example with the number done.
	// Calls are serialized.
	Progress func(done, total int)
	// MaxErrors, when positive, stops the evaluation once that many
	// examples have failed: no further example starts and Evaluate returns
	// the partial result with an error wrapping ErrTooManyErrors and the
	// last failure (DSPy's max_errors). Zero lets every example run, a
	// failure scoring 0; DSPy's default is 10.
	MaxErrors int
}

// Evaluate runs program on every example of devset with model, at most
// opts.Parallel at a time, and scores each prediction with metric. A failed
// run scores 0 and is reported in its ExampleResult; only a cancelled ctx or
// opts.MaxErrors failures make Evaluate itself fail.
func Evaluate(ctx context.Context, model lm.LM, program Module, devset []Example, metric Metric, opts EvalOptions) (EvalResult, error) {
	par := opts.Parallel
	if par <= 0 {
		par = 4
	}
	res := EvalResult{Results: make([]ExampleResult, len(devset))}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		done    int
		failed  int
		lastErr error
		sem     = make(chan struct{}, par)
	)
	tooMany := func() error {
		mu.Lock()
		defer mu.Unlock()
		if opts.MaxErrors > 0 && failed >= opts.MaxErrors {
			return fmt.Errorf("evaluate: %w (%d): the last: %w", ErrTooManyErrors, failed, lastErr)
		}
		return nil
	}
	for i, ex := range devset {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return res, fmt.Errorf("evaluate: %w", ctx.Err())
		}
		if err := tooMany(); err != nil {
			<-sem
			wg.Wait()
			res.sum()
			return res, err
		}
		wg.Go(func() {
			defer func() { <-sem }()
			r, err := Execute(ctx, model, program, ex.Inputs)
			er := ExampleResult{Example: ex, Prediction: r.Outputs, Trace: r.Trace, Usage: r.Usage, Err: err}
			if err == nil {
				er.Score = metric(ex, r.Outputs, r.Trace)
			}
			mu.Lock()
			defer mu.Unlock()
			res.Results[i] = er
			if err != nil {
				failed++
				lastErr = err
			}
			done++
			if opts.Progress != nil {
				opts.Progress(done, len(devset))
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("evaluate: %w", err)
	}
	res.sum()
	if err := tooMany(); err != nil {
		return res, err
	}
	return res, nil
}

// sum totals the results: score (over every example of the set, as DSPy
// divides by the set's size), usage and errors.
func (res *EvalResult) sum() {
	var sum float64
	res.Usage, res.Errors = lm.Usage{}, 0
	for _, r := range res.Results {
		sum += r.Score
		res.Usage = res.Usage.Add(r.Usage)
		if r.Err != nil {
			res.Errors++
		}
	}
	if len(res.Results) > 0 {
		res.Score = round2(100 * sum / float64(len(res.Results)))
	}
}

// round2 rounds to 2 decimals, as DSPy's round(100 * ncorrect / ntotal, 2).
func round2(x float64) float64 { return math.Round(x*100) / 100 }

var (
	articlesRE = regexp.MustCompile(`\b(a|an|the)\b`)
	punctRE    = regexp.MustCompile(`[^\p{L}\p{N}\s]`)
)

// normalizeAnswer follows DSPy's (SQuAD's) normalisation: lower case, no
// punctuation, no articles, single spaces.
func normalizeAnswer(s string) string {
	s = strings.ToLower(s)
	s = punctRE.ReplaceAllString(s, "")
	s = articlesRE.ReplaceAllString(s, " ")
	return strings.Join(strings.Fields(s), " ")
}

// acceptable lists the expected answers: a list value holds several
// acceptable ones, as DSPy's answer_exact_match takes a list of answers.
// A list prediction (for a list field) is compared whole.
func acceptable(want, got any) []any {
	if _, gotList := got.([]any); gotList {
		return []any{want}
	}
	switch w := want.(type) {
	case []any:
		return w
	case []string:
		out := make([]any, len(w))
		for i, s := range w {
			out[i] = s
		}
		return out
	}
	return []any{want}
}

// ExactMatch scores 1 when the normalised prediction of field equals the
// normalised expected value, or one of them when the expected value is a
// list of acceptable answers (dspy/evaluate/metrics.py,
// answer_exact_match), else 0.
func ExactMatch(field string) Metric {
	return func(ex Example, pred Values, _ []TraceStep) float64 {
		want, ok := ex.Outputs[field]
		got, ok2 := pred[field]
		if !ok || !ok2 {
			return 0
		}
		g := normalizeAnswer(formatValue(got))
		for _, w := range acceptable(want, got) {
			if normalizeAnswer(formatValue(w)) == g {
				return 1
			}
		}
		return 0
	}
}

// F1 scores the token-level F1 overlap between the normalised prediction of
// field and the expected value, the best over a list of acceptable answers
// (DSPy's F1(prediction, answers)).
func F1(field string) Metric {
	return func(ex Example, pred Values, _ []TraceStep) float64 {
		want, ok := ex.Outputs[field]
		got, ok2 := pred[field]
		if !ok || !ok2 {
			return 0
		}
		g := normalizeAnswer(formatValue(got))
		best := 0.0
		for _, w := range acceptable(want, got) {
			best = max(best, tokenF1(g, normalizeAnswer(formatValue(w))))
		}
		return best
	}
}

// tokenF1 is DSPy's f1_score: two empty answers score 0, not 1 (DSPy
// notes SQuAD-2.0 gives 1 and chooses 0 for uniformity).
func tokenF1(pred, gold string) float64 {
	pt, gt := strings.Fields(pred), strings.Fields(gold)
	if len(pt) == 0 || len(gt) == 0 {
		return 0
	}
	counts := map[string]int{}
	for _, t := range gt {
		counts[t]++
	}
	common := 0
	for _, t := range pt {
		if counts[t] > 0 {
			counts[t]--
			common++
		}
	}
	if common == 0 {
		return 0
	}
	p, r := float64(common)/float64(len(pt)), float64(common)/float64(len(gt))
	return 2 * p * r / (p + r)
}
