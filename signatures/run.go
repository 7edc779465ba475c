package signatures

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kowai/kowai/signatures/lm"
)

// ErrNoLM means a predictor was called with no model: neither its own
// (PredictOptions.LM) nor one from the Run in its context.
var ErrNoLM = errors.New("signatures: no language model (set one on the Run or the predictor)")

// TraceStep is one predictor call of a run. A Run keeps a snapshot of the
// call's values and builds a TraceStep from it for each reader (Run.Trace,
// Execute), so neither the caller of the predictor, who keeps its input and
// output maps, nor a reader of the trace can change what a Run has recorded.
// Values that are themselves lists or objects are shared, not deep-copied.
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
	// noValues: steps are recorded without their inputs and outputs
	// (WithoutTraceValues).
	noValues bool

	// node is the context the first WithRun of the Run returns, in the
	// Run's own allocation: most Runs are attached to one context.
	node     runContext
	nodeUsed atomic.Bool

	mu    sync.Mutex
	steps []recordedStep
	usage lm.Usage
	// first holds the first step in the Run's own allocation: most runs of a
	// single predictor record exactly one.
	first [1]recordedStep
}

// recordedStep is a TraceStep as a Run keeps it: the values of the call as
// name/value pairs, inputs then outputs, which is one allocation where a
// copied map would be two, each sized for eight entries. Nothing changes
// vals once the step is recorded.
type recordedStep struct {
	predictor string
	predict   *Predict
	usage     lm.Usage
	latency   time.Duration
	err       error
	vals      []namedValue
	nIn       int  // vals[:nIn] are the inputs
	ok        bool // vals[nIn:] are outputs (the step did not fail)
}

type namedValue struct {
	name  string
	value any
	// text marks an input typed exactly str, whose list values DSPy
	// renders as numbered «blobs».
	text bool
}

// traceStep builds the TraceStep, with maps of its own.
func (s *recordedStep) traceStep() TraceStep {
	t := TraceStep{Predictor: s.predictor, Predict: s.predict, Inputs: valuesOf(s.vals[:s.nIn]),
		Usage: s.usage, Latency: s.latency, Err: s.err}
	if s.ok {
		t.Outputs = valuesOf(s.vals[s.nIn:])
	}
	return t
}

func valuesOf(vals []namedValue) Values {
	m := make(Values, len(vals))
	for _, v := range vals {
		m[v.name] = v.value
	}
	return m
}

// RunOption configures a Run.
type RunOption func(*Run)

// WithListener streams an output field to l.OnChunk.
func WithListener(l StreamListener) RunOption {
	return func(r *Run) { r.listeners = append(r.listeners, l) }
}

// WithoutTraceValues records the Run's steps without their input and output
// values, for a caller that reads only the Run's usage: a predictor then does
// not copy its inputs for the trace. Trace returns the steps with empty
// Inputs and Outputs.
func WithoutTraceValues(r *Run) { r.noValues = true }

// NewRun returns a Run that calls model.
func NewRun(model lm.LM, opts ...RunOption) *Run {
	r := &Run{model: model}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Trace returns the steps recorded so far, in completion order. Each call
// builds new steps, with maps of their own.
func (r *Run) Trace() []TraceStep {
	r.mu.Lock()
	defer r.mu.Unlock()
	steps := make([]TraceStep, len(r.steps))
	for i := range r.steps {
		steps[i] = r.steps[i].traceStep()
	}
	return steps
}

// Usage returns the usage summed over every model call of the run.
func (r *Run) Usage() lm.Usage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.usage
}

// LM returns the run's model.
func (r *Run) LM() lm.LM { return r.model }

func (r *Run) record(step recordedStep) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.steps == nil {
		r.steps = r.first[:0]
	}
	r.steps = append(r.steps, step)
	r.usage = r.usage.Add(step.usage)
}

// child returns a Run with the same model and listeners and an empty trace,
// for attempts whose traces may be discarded (BestOfN).
func (r *Run) child() *Run { return &Run{model: r.model, listeners: r.listeners, noValues: r.noValues} }

// absorb adds c's usage to r, and c's steps when keepTrace is set.
func (r *Run) absorb(c *Run, keepTrace bool) {
	c.mu.Lock()
	steps, usage := c.steps, c.usage
	c.mu.Unlock()
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
	if r != nil && r.nodeUsed.CompareAndSwap(false, true) {
		r.node = runContext{Context: ctx, run: r}
		return &r.node
	}
	return &runContext{Context: ctx, run: r}
}

// RunFrom returns the Run attached to ctx, or nil.
func RunFrom(ctx context.Context) *Run {
	if c, ok := ctx.(*runContext); ok {
		return c.run
	}
	r, _ := ctx.Value(runKey{}).(*Run)
	return r
}

// runContext is the context WithRun returns: context.WithValue's, but one
// that a Run can hold.
type runContext struct {
	context.Context
	run *Run
}

func (c *runContext) Value(key any) any {
	if key == (runKey{}) {
		return c.run
	}
	return c.Context.Value(key)
}

func (c *runContext) String() string { return fmt.Sprint(c.Context) + ".WithRun" }

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
