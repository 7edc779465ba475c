package signatures

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/kowai/kowai/signatures/lm"
)

// ErrNoLM means a predictor was called with no model: neither its own
// (PredictOptions.LM) nor one from the Run in its context.
var ErrNoLM = errors.New("signatures: no language model (set one on the Run or the predictor)")

// TraceStep is one predictor call of a run.
type TraceStep struct {
	// Predictor is the predictor's name (its signature string when unnamed).
	Predictor string `json:"predictor"`
	// Predict is the predictor itself, so optimizers can map steps back.
	Predict *Predict `json:"-"`
	// Inputs and Outputs are the call's values; Outputs is nil on failure.
	Inputs  Values `json:"inputs"`
	Outputs Values `json:"outputs,omitempty"`
	// Usage sums every model call the step made (retries included).
	Usage lm.Usage `json:"usage"`
	// Latency is the wall time of the step.
	Latency time.Duration `json:"latency"`
	// Err is the step's failure, if any.
	Err error `json:"-"`
}

// StreamListener receives the text of one output field as the model writes
// it, markers stripped.
type StreamListener struct {
	// Field is the output field to stream.
	Field string
	// Predictor, when set, restricts the listener to the predictor of that
	// name; otherwise every predictor with an output Field streams.
	Predictor string
	// OnChunk receives successive pieces of the field's text. An error
	// aborts the model call.
	OnChunk func(ctx context.Context, chunk string) error
}

// Run carries what one execution of a program shares: the model, stream
// listeners, and the trace and usage it accumulates. Attach it to a context
// with WithRun; every predictor called under that context records into it.
// A Run is safe for concurrent use by the predictors of one program.
type Run struct {
	model     lm.LM
	listeners []StreamListener

	mu    sync.Mutex
	steps []TraceStep
	usage lm.Usage
	// first holds the first step in the Run's own allocation: most runs of a
	// single predictor record exactly one.
	first [1]TraceStep
}

// RunOption configures a Run.
type RunOption func(*Run)

// WithListener streams an output field to l.OnChunk.
func WithListener(l StreamListener) RunOption {
	return func(r *Run) { r.listeners = append(r.listeners, l) }
}

// NewRun returns a Run that calls model.
func NewRun(model lm.LM, opts ...RunOption) *Run {
	r := &Run{model: model}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Trace returns a copy of the steps recorded so far, in completion order.
func (r *Run) Trace() []TraceStep {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]TraceStep(nil), r.steps...)
}

// Usage returns the usage summed over every model call of the run.
func (r *Run) Usage() lm.Usage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.usage
}

// LM returns the run's model.
func (r *Run) LM() lm.LM { return r.model }

func (r *Run) record(step TraceStep) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.steps == nil {
		r.steps = r.first[:0]
	}
	r.steps = append(r.steps, step)
	r.usage = r.usage.Add(step.Usage)
}

// child returns a Run with the same model and listeners and an empty trace,
// for attempts whose traces may be discarded (BestOfN).
func (r *Run) child() *Run { return &Run{model: r.model, listeners: r.listeners} }

// absorb adds c's usage to r, and c's steps when keepTrace is set.
func (r *Run) absorb(c *Run, keepTrace bool) {
	steps, usage := c.Trace(), c.Usage()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.usage = r.usage.Add(usage)
	if keepTrace {
		r.steps = append(r.steps, steps...)
	}
}

type runKey struct{}
type rolloutKey struct{}
type hintKey struct{}

// WithRun returns a context whose predictor calls use and record into r.
func WithRun(ctx context.Context, r *Run) context.Context {
	return context.WithValue(ctx, runKey{}, r)
}

// RunFrom returns the Run attached to ctx, or nil.
func RunFrom(ctx context.Context) *Run {
	r, _ := ctx.Value(runKey{}).(*Run)
	return r
}

// rollout is a per-attempt sampling setting (BestOfN, Refine, bootstrap
// rounds): a distinct rollout id and temperature 1.0 make the model sample
// afresh instead of returning a cached reply.
type rollout struct {
	id string
}

func withRollout(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, rolloutKey{}, rollout{id: id})
}

func rolloutFrom(ctx context.Context) (rollout, bool) {
	r, ok := ctx.Value(rolloutKey{}).(rollout)
	return r, ok
}

// withHint makes every predictor under ctx receive hint as an extra input
// (Refine's advice from a failed attempt).
func withHint(ctx context.Context, hint string) context.Context {
	return context.WithValue(ctx, hintKey{}, hint)
}

func hintFrom(ctx context.Context) string {
	h, _ := ctx.Value(hintKey{}).(string)
	return h
}

// Result is the outcome of Execute.
type Result struct {
	// Outputs are the program's outputs.
	Outputs Values
	// Trace holds every predictor call.
	Trace []TraceStep
	// Usage sums the run's model calls.
	Usage lm.Usage
}

// Execute runs m on in under a fresh Run with model and returns its outputs,
// trace and usage. The trace and usage are returned even on error.
func Execute(ctx context.Context, model lm.LM, m Module, in Values, opts ...RunOption) (Result, error) {
	run := NewRun(model, opts...)
	out, err := m.Forward(WithRun(ctx, run), in)
	return Result{Outputs: out, Trace: run.Trace(), Usage: run.Usage()}, err
}
