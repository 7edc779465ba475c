package signatures

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/tmc/langchaingo/llms"
)

// Module is a callable unit of a program: Predict, ChainOfThought, ReAct,
// BestOfN, Refine, or a user-defined program composing them.
type Module interface {
	// Forward runs the module on inputs. The model and the trace come from
	// the Run in ctx (see WithRun and Execute).
	Forward(ctx context.Context, in Values) (Values, error)
}

// ModuleFunc adapts a function to Module.
type ModuleFunc func(ctx context.Context, in Values) (Values, error)

// Forward calls f.
func (f ModuleFunc) Forward(ctx context.Context, in Values) (Values, error) { return f(ctx, in) }

// DefaultRetries is how many corrected retries a predictor makes after an
// unparsable reply when PredictOptions.Retries is zero.
const DefaultRetries = 2

// hintField is the input Refine adds to carry advice into a new attempt.
var hintField = Field{Name: "hint_", Desc: "A hint to the module from an earlier run"}

// PredictOptions configures a Predict.
type PredictOptions struct {
	// Name identifies the predictor in traces and saved state. Programs
	// usually leave it empty and let Predictors name it by field path.
	Name string
	// LM overrides the Run's model for this predictor.
	LM lm.LM
	// Temperature and MaxTokens are sent with every call (zero: provider
	// default).
	Temperature float64
	MaxTokens   int
	// Retries bounds the corrected retries after an unparsable reply: the
	// bad reply is sent back with a message naming the problem. Zero means
	// DefaultRetries, a negative value none.
	Retries int
	// JSONFallback makes one last JSON-mode call when the retries are spent.
	JSONFallback bool
}

// Predict is the basic module: one signature, its demos and its model
// settings. Its signature and demos are what optimizers change and what
// SaveState writes; they may be replaced while calls are in flight.
type Predict struct {
	opts PredictOptions

	// state is replaced, never changed: a call loads it once, without a
	// lock, and uses one consistent signature and set of demos throughout.
	state atomic.Pointer[predictState]
	// mu serialises the setters, which each build on the current state.
	mu sync.Mutex
}

type predictState struct {
	prompt   *prompt
	demos    []Example
	demoMsgs []llms.MessageContent // prompt.demoMessages(demos)
}

// NewPredict returns a predictor for sig.
func NewPredict(sig Signature, opts PredictOptions) *Predict {
	p := &Predict{opts: opts}
	p.state.Store(&predictState{prompt: newPrompt(sig)})
	return p
}

// Name returns the configured name, or the signature string.
func (p *Predict) Name() string {
	return p.name(p.state.Load().prompt)
}

func (p *Predict) name(pr *prompt) string {
	if p.opts.Name != "" {
		return p.opts.Name
	}
	return pr.name
}

// Signature returns the current signature.
func (p *Predict) Signature() Signature {
	return p.state.Load().prompt.sig
}

// SetSignature replaces the signature (instructions, descriptions).
func (p *Predict) SetSignature(sig Signature) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := *p.state.Load()
	st.prompt = newPrompt(sig)
	st.demoMsgs = st.prompt.demoMessages(st.demos)
	p.state.Store(&st)
}

// Demos returns a copy of the demos.
func (p *Predict) Demos() []Example {
	return slices.Clone(p.state.Load().demos)
}

// SetDemos replaces the demos. They are rendered here, once, rather than on
// every call: later changes to the values they hold are not seen.
func (p *Predict) SetDemos(demos []Example) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := *p.state.Load()
	st.demos = slices.Clone(demos)
	st.demoMsgs = st.prompt.demoMessages(st.demos)
	p.state.Store(&st)
}

// Predictors returns p itself, so a Predict is a program of one predictor.
func (p *Predict) Predictors() []NamedPredictor {
	return []NamedPredictor{{Name: p.opts.Name, Predict: p}}
}

// Forward renders the prompt, calls the model, parses and coerces the reply,
// retrying with a correction on a parse failure, and records a trace step
// in the Run of ctx.
func (p *Predict) Forward(ctx context.Context, in Values) (Values, error) {
	out, _, err := p.call(ctx, in, nil, nil)
	return out, err
}

// call is Forward with tools offered for native tool calling: when the
// model answers with tool calls, they are returned instead of parsed
// outputs. conv (earlier tool calls and their results) follows the rendered
// prompt.
func (p *Predict) call(ctx context.Context, in Values, tools []llms.Tool, conv []llms.MessageContent) (Values, []llms.ToolCall, error) {
	st := p.state.Load()
	pr, demoMsgs := st.prompt, st.demoMsgs
	name := p.name(pr)
	run := RunFrom(ctx)
	var start time.Time
	if run != nil {
		start = time.Now()
	}
	model := p.opts.LM
	if model == nil && run != nil {
		model = run.model
	}
	if model == nil {
		return nil, nil, fmt.Errorf("predictor %s: %w", name, ErrNoLM)
	}
	if hint := hintFrom(ctx); hint != "" {
		if sig, err := pr.sig.Append(Input, hintField); err == nil {
			// The hint must not reach the caller's map.
			in = maps.Clone(in)
			in[hintField.Name] = hint
			// The hint is one more input, which the demos lack: they are
			// rendered again, as incomplete examples.
			pr = newPrompt(sig)
			demoMsgs = pr.demoMessages(st.demos)
		}
	}
	// The inputs are looked up once. A run's trace keeps them, taken
	// before the call as the model sees them, since the caller may change
	// its map once Forward returns; without a run, or a run that keeps no
	// values, they stay on the stack.
	var buf [8]namedValue
	var snap, found []namedValue
	keep := run != nil && !run.noValues
	if keep {
		snap = collect(pr.sig.inputs, in, make([]namedValue, 0, len(in)+len(pr.sig.outputs)))
		found = snap
		if len(snap) < len(in) {
			// in holds values the signature does not name: the trace keeps
			// them too, as the caller passed them.
			for k, v := range in {
				if _, role, ok := pr.sig.Field(k); !ok || role != Input {
					snap = append(snap, namedValue{name: k, value: v})
				}
			}
		}
	} else {
		found = collect(pr.sig.inputs, in, buf[:0])
	}
	var usage lm.Usage
	out, calls, err := p.generate(ctx, run, model, pr, demoMsgs, in, found, tools, conv, &usage)
	if run != nil {
		step := recordedStep{predictor: name, predict: p, usage: usage, latency: time.Since(start), err: err, nIn: len(snap)}
		switch {
		case !keep:
		case calls != nil:
			snap = append(snap, namedValue{name: "tool_calls", value: calls})
		case out != nil:
			for _, f := range pr.sig.outputs {
				snap = append(snap, namedValue{name: f.Name, value: out[f.Name]})
			}
		}
		step.vals, step.ok = snap, err == nil
		run.record(step)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("predictor %s: %w", name, err)
	}
	return out, calls, nil
}

// generate runs the call of Predict.call; found holds the inputs present in
// in, collected from pr.sig.inputs.
func (p *Predict) generate(ctx context.Context, run *Run, model lm.LM, pr *prompt, demoMsgs []llms.MessageContent, in Values, found []namedValue,
	tools []llms.Tool, conv []llms.MessageContent, usage *lm.Usage) (Values, []llms.ToolCall, error) {
	sig := pr.sig
	if len(found) < len(sig.inputs) {
		var filled Values
		for _, f := range sig.inputs {
			if _, ok := in[f.Name]; ok {
				continue
			}
			switch {
			case f.Default != nil:
				// As DSPy's Predict: a missing input takes its default.
				if filled == nil {
					filled = maps.Clone(in)
				}
				filled[f.Name] = f.Default
			case f.Type.Kind == KindHistory || f.Type.Optional:
				// Left out of the prompt, as DSPy renders only present inputs.
			default:
				return nil, nil, fmt.Errorf("%w %q", ErrMissingInput, f.Name)
			}
		}
		if filled != nil {
			in, found = filled, collect(sig.inputs, filled, nil)
		}
	}
	// A prompt with demos or a history input outgrows the frame's two messages:
	// its request goes alone.
	var (
		req *lm.Request
		dst []llms.MessageContent
	)
	if len(demoMsgs) == 0 && pr.hist == "" {
		f := new(callFrame)
		req, dst = &f.req, f.msgs[:0]
	} else {
		req = new(lm.Request)
	}
	msgs, err := pr.render(dst, demoMsgs, found)
	if err != nil {
		return nil, nil, err
	}
	*req = lm.Request{Messages: append(slices.Clip(msgs), conv...), Temperature: p.opts.Temperature, MaxTokens: p.opts.MaxTokens, Tools: tools}
	if len(msgs) > 2+len(demoMsgs) && carriesChat(found, pr.hist) {
		// A live conversation's history, with a turn in it, makes the prompt that
		// conversation's own: the cache key covers the whole history, so the reply
		// could only be found again by a conversation with the very same history
		// (a continuing chat turn never hit it), and storing it cost every turn a
		// key over the history and an entry. A History value, as a dataset holds,
		// is still cached: evaluating a program again asks the same prompts.
		req.NoCache = true
	}
	if r, ok := rolloutFrom(ctx); ok {
		// A rollout samples: at 1.0 unless the predictor asks for its own
		// (non-zero) temperature, as COPRO's 1.4 for its proposals.
		req.RolloutID = r.id
		if req.Temperature == 0 {
			req.Temperature = 1.0
		}
	}
	streamer := p.streamer(run, sig)
	if streamer != nil {
		req.Stream = streamer.write
	}
	retries := p.opts.Retries
	if retries == 0 {
		retries = DefaultRetries
	}
	var perr *ParseError
	for attempt := 0; attempt <= max(retries, 0); attempt++ {
		resp, err := model.Generate(ctx, req)
		if err != nil {
			return nil, nil, fmt.Errorf("model %s: %w", model.Name(), err)
		}
		*usage = usage.Add(resp.Usage)
		if len(resp.ToolCalls) > 0 && len(tools) > 0 {
			return nil, resp.ToolCalls, nil
		}
		out, err := ParseReply(sig, resp.Text)
		if err == nil {
			return out, nil, streamer.finish(ctx, out)
		}
		var ok bool
		if perr, ok = errors.AsType[*ParseError](err); !ok {
			return nil, nil, err
		}
		// A retried reply is not streamed: the listener has already seen
		// the first attempt's text and would get it twice.
		req.Stream = nil
		req.Messages = append(slices.Clip(req.Messages),
			llms.TextParts(llms.ChatMessageTypeAI, resp.Text),
			llms.TextParts(llms.ChatMessageTypeHuman, correction(pr, perr)))
	}
	if !p.opts.JSONFallback {
		return nil, nil, perr
	}
	jreq := *req
	jreq.Stream, jreq.JSONMode = nil, true
	jreq.Messages = append(slices.Clip(msgs[:len(msgs)-1]),
		llms.TextParts(llms.ChatMessageTypeHuman, userBlocks(found, pr.hist, "", "")+"\n\n"+jsonRequirements(sig)))
	resp, err := model.Generate(ctx, &jreq)
	if err != nil {
		return nil, nil, fmt.Errorf("model %s (JSON mode): %w", model.Name(), err)
	}
	*usage = usage.Add(resp.Usage)
	out, err := parseJSONReply(sig, resp.Text)
	if err != nil {
		return nil, nil, err
	}
	return out, nil, streamer.finish(ctx, out)
}

// callFrame is a call's request with room for the messages of a prompt
// without demos or history input (a system and a user message), so that the
// two take one allocation.
type callFrame struct {
	req  lm.Request
	msgs [2]llms.MessageContent
}

// streamer returns a field streamer when a listener of run wants one of
// this predictor's outputs.
func (p *Predict) streamer(run *Run, sig Signature) *fieldStreamer {
	if run == nil {
		return nil
	}
	for _, l := range run.listeners {
		if l.Predictor != "" && l.Predictor != p.opts.Name {
			continue
		}
		if _, role, ok := sig.Field(l.Field); ok && role == Output {
			return &fieldStreamer{field: l.Field, emit: l.OnChunk}
		}
	}
	return nil
}

// finish gives the listener the parsed value in one piece when nothing of it
// was streamed (the model does not stream, or the field came from a retry).
func (s *fieldStreamer) finish(ctx context.Context, out Values) error {
	if s == nil {
		return nil
	}
	if err := s.flush(ctx); err != nil || s.emitted {
		return err
	}
	if v := formatValue(out[s.field]); v != "" {
		return s.emit(ctx, v)
	}
	return nil
}

// carriesChat reports whether the history input hist, among the inputs in, is a
// Chat: a live conversation's messages.
func carriesChat(in []namedValue, hist string) bool {
	if hist == "" {
		return false
	}
	for _, v := range in {
		if v.name != hist {
			continue
		}
		switch x := v.value.(type) {
		case Chat:
			return true
		case *Chat:
			return x != nil
		}
	}
	return false
}
