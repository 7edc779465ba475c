package signatures

import (
	"context"
	"fmt"
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

// EvalResult is the outcome of Evaluate.
type EvalResult struct {
	// Score is 100 times the mean metric value, as in DSPy.
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
}

// Evaluate runs program on every example of devset with model, at most
// opts.Parallel at a time, and scores each prediction with metric. A failed
// run scores 0 and is reported in its ExampleResult; only a cancelled ctx
// makes Evaluate itself fail.
func Evaluate(ctx context.Context, model lm.LM, program Module, devset []Example, metric Metric, opts EvalOptions) (EvalResult, error) {
	par := opts.Parallel
	if par <= 0 {
		par = 4
	}
	res := EvalResult{Results: make([]ExampleResult, len(devset))}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done int
		sem  = make(chan struct{}, par)
	)
	for i, ex := range devset {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return res, fmt.Errorf("evaluate: %w", ctx.Err())
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
	var sum float64
	for _, r := range res.Results {
		sum += r.Score
		res.Usage = res.Usage.Add(r.Usage)
		if r.Err != nil {
			res.Errors++
		}
	}
	if len(devset) > 0 {
		res.Score = 100 * sum / float64(len(devset))
	}
	return res, nil
}

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

// ExactMatch scores 1 when the normalised prediction of field equals the
// normalised expected value, else 0.
func ExactMatch(field string) Metric {
	return func(ex Example, pred Values, _ []TraceStep) float64 {
		want, ok := ex.Outputs[field]
		got, ok2 := pred[field]
		if !ok || !ok2 || normalizeAnswer(formatValue(want)) != normalizeAnswer(formatValue(got)) {
			return 0
		}
		return 1
	}
}

// F1 scores the token-level F1 overlap between the normalised prediction of
// field and the expected value.
func F1(field string) Metric {
	return func(ex Example, pred Values, _ []TraceStep) float64 {
		want, ok := ex.Outputs[field]
		got, ok2 := pred[field]
		if !ok || !ok2 {
			return 0
		}
		return tokenF1(normalizeAnswer(formatValue(got)), normalizeAnswer(formatValue(want)))
	}
}

func tokenF1(pred, gold string) float64 {
	pt, gt := strings.Fields(pred), strings.Fields(gold)
	if len(pt) == 0 || len(gt) == 0 {
		if len(pt) == len(gt) {
			return 1
		}
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
