package signatures

import (
	"context"
	"errors"
	"fmt"
	"maps"
)

// Reward scores a module's outputs for its inputs; higher is better.
type Reward func(in, out Values) float64

// BestOfN runs a module up to N times, each attempt a distinct rollout at
// temperature 1.0, and returns the first outputs whose reward reaches
// Threshold, or else the best. Only the chosen attempt's trace is kept in the
// Run (usage of every attempt is counted).
type BestOfN struct {
	// Module is sampled; N bounds the attempts (at least 1).
	Module Module
	N      int
	// Reward scores each attempt; Threshold ends the sampling early.
	Reward    Reward
	Threshold float64
	// FailCount is how many failed attempts are tolerated: the next failure
	// ends the sampling with its error (DSPy's fail_count). Zero means N,
	// so only a run whose every attempt failed is an error.
	FailCount int
}

// Predictors lists the wrapped module's predictors.
func (b *BestOfN) Predictors() []NamedPredictor { return Predictors(b.Module) }

// Forward samples until the threshold is met or N attempts are made. It
// fails when every attempt failed or when more than FailCount did.
func (b *BestOfN) Forward(ctx context.Context, in Values) (Values, error) {
	return sampleBest(ctx, in, b.Module, max(b.N, 1), b.FailCount, b.Reward, b.Threshold, nil)
}

// ErrAllAttemptsFailed is wrapped when every BestOfN/Refine attempt failed.
var ErrAllAttemptsFailed = errors.New("signatures: every attempt failed")

// sampleBest is BestOfN's loop; advise, when set, turns a failed attempt
// into a hint for the next one (Refine).
func sampleBest(ctx context.Context, in Values, m Module, n, failCount int, reward Reward, threshold float64,
	advise func(ctx context.Context, in, out Values, score float64) (string, error)) (Values, error) {
	if failCount <= 0 {
		failCount = n
	}
	failures := 0
	parent := RunFrom(ctx)
	var (
		best      Values
		bestScore float64
		bestRun   *Run
		lastErr   error
		hint      string
	)
	for i := range n {
		actx := withRollout(ctx, fmt.Sprintf("attempt-%d", i))
		if hint != "" {
			actx = withHint(actx, hint)
		}
		var child *Run
		if parent != nil {
			child = parent.child()
			actx = WithRun(actx, child)
		}
		out, err := m.Forward(actx, maps.Clone(in))
		if err != nil {
			if parent != nil {
				parent.absorb(child, false)
			}
			lastErr = err
			if ctx.Err() != nil {
				return nil, err
			}
			if failures++; failures > failCount {
				return nil, fmt.Errorf("%w (%d failed, %d tolerated): %w", ErrAllAttemptsFailed, failures, failCount, err)
			}
			continue
		}
		score := reward(in, out)
		if best == nil || score > bestScore {
			if bestRun != nil {
				parent.absorb(bestRun, false)
			}
			best, bestScore, bestRun = out, score, child
		} else if parent != nil {
			parent.absorb(child, false)
		}
		if score >= threshold {
			break
		}
		if advise != nil && i+1 < n {
			if hint, err = advise(ctx, in, out, score); err != nil {
				return nil, err
			}
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w (%d attempts): %w", ErrAllAttemptsFailed, n, lastErr)
	}
	if bestRun != nil {
		parent.absorb(bestRun, true)
	}
	return best, nil
}

// Refine is BestOfN with feedback: after an attempt that misses the
// threshold, a feedback predictor writes advice from the inputs, outputs and
// reward, and the next attempt's predictors receive it as an extra `hint_`
// input.
type Refine struct {
	// Module, N, Reward and Threshold are as in BestOfN.
	Module    Module
	N         int
	Reward    Reward
	Threshold float64
	// FailCount is as in BestOfN.
	FailCount int
	// Feedback writes the advice; NewRefine sets it.
	Feedback *Predict
}

// NewRefine returns a Refine over m.
func NewRefine(m Module, n int, reward Reward, threshold float64) *Refine {
	sig, err := New(
		[]Field{
			{Name: "program_inputs", Desc: "The inputs of the program, as JSON"},
			{Name: "program_outputs", Desc: "The outputs the program produced, as JSON"},
			{Name: "reward_value", Type: Float, Desc: "The reward the outputs received"},
			{Name: "target_threshold", Type: Float, Desc: "The reward the outputs should reach"},
		},
		[]Field{{Name: "advice", Desc: "Concrete advice for the next attempt, addressed to the program"}},
		"A program produced the outputs below for the inputs below, and a reward function scored them below the target threshold. "+
			"Diagnose what went wrong and write short, concrete advice that would help the program reach the threshold on its next attempt.")
	if err != nil {
		panic(err) // the feedback signature is a constant
	}
	return &Refine{Module: m, N: n, Reward: reward, Threshold: threshold, Feedback: NewPredict(sig, PredictOptions{Name: "feedback"})}
}

// Predictors lists the wrapped module's predictors; the feedback predictor
// is not optimized.
func (r *Refine) Predictors() []NamedPredictor { return Predictors(r.Module) }

// Forward samples with advice between attempts.
func (r *Refine) Forward(ctx context.Context, in Values) (Values, error) {
	advise := func(ctx context.Context, in, out Values, score float64) (string, error) {
		fb, err := r.Feedback.Forward(ctx, Values{
			"program_inputs": pyJSON(in), "program_outputs": pyJSON(out),
			"reward_value": score, "target_threshold": r.Threshold,
		})
		if err != nil {
			return "", fmt.Errorf("refine feedback: %w", err)
		}
		return fb["advice"].(string), nil
	}
	return sampleBest(ctx, in, r.Module, max(r.N, 1), r.FailCount, r.Reward, r.Threshold, advise)
}
