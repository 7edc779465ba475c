package signatures

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Completions runs p n times on in, each a distinct rollout (so a cache
// answers none of them from another) at temperature 1.0, and returns the n
// outputs: DSPy's Predict with n completions. DSPy asks the provider for n
// choices in one request; kowai's models return one choice per call, so it
// makes n calls. Every call is recorded in the Run; the first failure is
// returned.
func (p *Predict) Completions(ctx context.Context, in Values, n int) ([]Values, error) {
	n = max(n, 1)
	base := "completion"
	if r, ok := rolloutFrom(ctx); ok {
		base = r.id + "/completion"
	}
	out := make([]Values, 0, n)
	for i := range n {
		v, err := p.Forward(withRollout(ctx, fmt.Sprintf("%s-%d", base, i)), in)
		if err != nil {
			return out, fmt.Errorf("completion %d of %d: %w", i+1, n, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// MultiChainComparison is DSPy's module of that name: given M earlier
// attempts at a signature (completions with a rationale or reasoning and
// the last output), its predictor compares them and writes a corrected
// `rationale` and the outputs.
type MultiChainComparison struct {
	// Predict has the signature with reasoning_attempt_1..M inputs appended
	// and a leading `rationale` output.
	Predict *Predict
	// M is the number of attempts Forward expects.
	M       int
	lastKey string
}

// NewMultiChainComparison builds the module for sig and m attempts (m <= 0
// means DSPy's 3); opts.Temperature zero means DSPy's 0.7.
func NewMultiChainComparison(sig Signature, m int, opts PredictOptions) (*MultiChainComparison, error) {
	if m <= 0 {
		m = 3
	}
	if opts.Temperature == 0 {
		opts.Temperature = 0.7
	}
	last := sig.outputs[len(sig.outputs)-1].Name
	var err error
	for i := 1; i <= m; i++ {
		sig, err = sig.Append(Input, Field{Name: fmt.Sprintf("reasoning_attempt_%d", i), Prefix: fmt.Sprintf("Student Attempt #%d:", i)})
		if err != nil {
			return nil, err
		}
	}
	sig, err = sig.Prepend(Output, Field{Name: "rationale", Desc: "corrected reasoning",
		Prefix: "Accurate Reasoning: Thank you everyone. Let's now holistically"})
	if err != nil {
		return nil, err
	}
	return &MultiChainComparison{Predict: NewPredict(sig, opts), M: m, lastKey: last}, nil
}

// Predictors returns the comparison predictor as "predict".
func (c *MultiChainComparison) Predictors() []NamedPredictor {
	return []NamedPredictor{{Name: "predict", Predict: c.Predict}}
}

// Compare runs the predictor on in with the attempts, each summarised as
// DSPy does: «I'm trying to <first line of the rationale> I'm not sure but
// my prediction is <first line of the last output>». It needs exactly M
// attempts.
func (c *MultiChainComparison) Compare(ctx context.Context, attempts []Values, in Values) (Values, error) {
	if len(attempts) != c.M {
		return nil, fmt.Errorf("multi-chain comparison: %d attempts, want M = %d", len(attempts), c.M)
	}
	vals := Values{}
	for i, a := range attempts {
		r, ok := a["rationale"]
		if !ok {
			r = a["reasoning"]
		}
		vals[fmt.Sprintf("reasoning_attempt_%d", i+1)] = "«I'm trying to " + firstLine(r) +
			" I'm not sure but my prediction is " + firstLine(a[c.lastKey]) + "»"
	}
	for k, v := range in {
		vals[k] = v
	}
	return c.Predict.Forward(ctx, vals)
}

// Forward runs Compare with the attempts under in["completions"] (a
// []Values), so the module composes like any other.
func (c *MultiChainComparison) Forward(ctx context.Context, in Values) (Values, error) {
	attempts, ok := in["completions"].([]Values)
	if !ok {
		return nil, fmt.Errorf("%w \"completions\" ([]Values)", ErrMissingInput)
	}
	rest := withoutKey(in, "completions")
	return c.Compare(ctx, attempts, rest)
}

func firstLine(v any) string {
	s := strings.TrimSpace(formatValue(v))
	if v == nil {
		s = ""
	}
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// Parallel runs modules over inputs with bounded concurrency and DSPy's
// error policy (dspy/predict/parallel.py): a failed item is recorded and
// the rest go on, until MaxErrors items have failed.
type Parallel struct {
	// Threads bounds the items run at once (default 4).
	Threads int
	// MaxErrors, when positive, stops starting items once that many have
	// failed; Run then returns an error wrapping ErrTooManyErrors. Zero lets
	// every item run.
	MaxErrors int
}

// ExecPair is one item for Parallel: a module and its inputs.
type ExecPair struct {
	Module Module
	Inputs Values
}

// ParallelResult is one item's outcome, in input order.
type ParallelResult struct {
	// Outputs are the module's outputs; nil when it failed or never ran.
	Outputs Values
	// Err is the item's failure, if any.
	Err error
}

// Run runs the pairs under ctx (and its Run, which records every call) and
// returns one result per pair. The error is ctx's or ErrTooManyErrors;
// per-item failures are in the results.
func (p Parallel) Run(ctx context.Context, pairs []ExecPair) ([]ParallelResult, error) {
	threads := p.Threads
	if threads <= 0 {
		threads = 4
	}
	res := make([]ParallelResult, len(pairs))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		failed  int
		lastErr error
		sem     = make(chan struct{}, threads)
	)
	stop := func() error {
		mu.Lock()
		defer mu.Unlock()
		if p.MaxErrors > 0 && failed >= p.MaxErrors {
			return fmt.Errorf("parallel: %w (%d): the last: %w", ErrTooManyErrors, failed, lastErr)
		}
		return nil
	}
	for i, pair := range pairs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return res, fmt.Errorf("parallel: %w", ctx.Err())
		}
		if err := stop(); err != nil {
			<-sem
			wg.Wait()
			return res, err
		}
		wg.Go(func() {
			defer func() { <-sem }()
			out, err := pair.Module.Forward(ctx, pair.Inputs)
			mu.Lock()
			defer mu.Unlock()
			res[i] = ParallelResult{Outputs: out, Err: err}
			if err != nil {
				failed++
				lastErr = err
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("parallel: %w", err)
	}
	return res, stop()
}

// Batch runs m over every inputs with Parallel p: DSPy's Module.batch.
func (p Parallel) Batch(ctx context.Context, m Module, inputs []Values) ([]ParallelResult, error) {
	pairs := make([]ExecPair, len(inputs))
	for i, in := range inputs {
		pairs[i] = ExecPair{Module: m, Inputs: in}
	}
	return p.Run(ctx, pairs)
}
