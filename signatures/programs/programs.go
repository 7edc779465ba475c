package programs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/kowai/kowai/signatures"
)

// ErrUnknownProgram means no program is registered under a name.
var ErrUnknownProgram = errors.New("programs: unknown program")

// ErrDuplicate means a name is registered twice.
var ErrDuplicate = errors.New("programs: program already registered")

// Entry describes a registered program.
type Entry struct {
	// Name is the registry key ("boolqa").
	Name string
	// Description says what the program does.
	Description string
	// Signature is the program's overall signature in string form, as shown
	// to API clients (agent types).
	Signature string
	// New constructs a fresh, uncompiled program; saved state loads onto it.
	New func() signatures.Module
	// Metric scores the program on a labeled example, for evaluation and
	// optimization; nil when the program has none.
	Metric signatures.Metric
}

// Registry maps names to programs. It is built by the caller (NewRegistry,
// Builtin) and is safe for concurrent reads once filled.
type Registry struct {
	entries map[string]Entry
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{entries: map[string]Entry{}} }

// Builtin returns a new registry holding the example programs of this
// package: "boolqa" and "sentiment". The chat programs are agent types
// (agents.Registry.Programs adds them under the types' names).
func Builtin() *Registry {
	r := NewRegistry()
	for _, e := range []Entry{
		{
			Name:        "boolqa",
			Description: "Answers a yes/no question with True or False.",
			Signature:   BoolQASignature,
			New:         func() signatures.Module { return NewBoolQA() },
			Metric:      signatures.ExactMatch("answer"),
		},
		{
			Name:        "sentiment",
			Description: "Classifies the sentiment of a text as positive, negative or neutral.",
			Signature:   SentimentSignature,
			New:         func() signatures.Module { return NewSentiment() },
			Metric:      signatures.ExactMatch("sentiment"),
		},
	} {
		if err := r.Register(e); err != nil {
			panic(err) // the built-in names are distinct constants
		}
	}
	return r
}

// Register adds e; names must be unique and New set.
func (r *Registry) Register(e Entry) error {
	if e.Name == "" || e.New == nil {
		return fmt.Errorf("programs: entry %q needs a name and a constructor", e.Name)
	}
	if _, ok := r.entries[e.Name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicate, e.Name)
	}
	r.entries[e.Name] = e
	return nil
}

// Get returns the entry registered under name.
func (r *Registry) Get(name string) (Entry, error) {
	e, ok := r.entries[name]
	if !ok {
		return Entry{}, fmt.Errorf("%w %q (registered: %v)", ErrUnknownProgram, name, r.Names())
	}
	return e, nil
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.entries))
	for n := range r.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Entries returns the entries sorted by name.
func (r *Registry) Entries() []Entry {
	out := make([]Entry, 0, len(r.entries))
	for _, n := range r.Names() {
		out = append(out, r.entries[n])
	}
	return slices.Clip(out)
}

// MultiStageChat is the chat program of kowai's original design: a context
// analysis, a response written with step-by-step reasoning from that
// analysis, and a quality check that scores the response in [0, 1].
type MultiStageChat struct {
	Analyze *signatures.Predict
	Respond *signatures.ChainOfThought
	Check   *signatures.Predict
}

// MultiStageOptions tune NewMultiStageChatWith.
type MultiStageOptions struct {
	// Instructions, when set, replace the response stage's instructions (an
	// agent's own instructions).
	Instructions string
	// Predict carries the model options (model, temperature, max tokens,
	// retries) of every stage; its Name is ignored.
	Predict signatures.PredictOptions
}

// NewMultiStageChat returns an uncompiled MultiStageChat.
func NewMultiStageChat() *MultiStageChat { return NewMultiStageChatWith(MultiStageOptions{}) }

// NewMultiStageChatWith returns an uncompiled MultiStageChat with o applied.
// Its stages' predictors are named "analyze", "respond" and "check".
func NewMultiStageChatWith(o MultiStageOptions) *MultiStageChat {
	analyze := signatures.MustParse("message, history -> intent, relevant_context, tone: Literal['neutral', 'friendly', 'formal', 'empathetic']").
		WithInstructions("Analyse the conversation before anyone answers it: what does the user want with their latest message, " +
			"which parts of the history matter for the answer, and which tone fits.")
	instructions := o.Instructions
	if instructions == "" {
		instructions = "Reply to the user's latest message. Serve the intent found in the analysis, use the relevant context, and keep to the tone."
	}
	respond := signatures.MustParse("message, history, intent, relevant_context, tone -> response").WithInstructions(instructions)
	check := signatures.MustParse("message, response -> quality: float, issues").
		WithInstructions("Rate how well the response answers the message, from 0.0 (useless or harmful) to 1.0 (complete, correct and well phrased), and list its issues.")
	named := func(name string) signatures.PredictOptions {
		opts := o.Predict
		opts.Name = name
		return opts
	}
	cot, err := signatures.NewChainOfThought(respond, named("respond"))
	if err != nil {
		panic(err) // respond has no reasoning field
	}
	return &MultiStageChat{
		Analyze: signatures.NewPredict(analyze, named("analyze")),
		Respond: cot,
		Check:   signatures.NewPredict(check, named("check")),
	}
}

// Forward runs the three stages. The outputs are response, quality
// (clamped to [0, 1]), issues, reasoning, and the analysis fields.
func (m *MultiStageChat) Forward(ctx context.Context, in signatures.Values) (signatures.Values, error) {
	analysis, err := m.Analyze.Forward(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("context analysis: %w", err)
	}
	respIn := signatures.Values{"message": in["message"], "history": in["history"]}
	for _, k := range []string{"intent", "relevant_context", "tone"} {
		respIn[k] = analysis[k]
	}
	resp, err := m.Respond.Forward(ctx, respIn)
	if err != nil {
		return nil, fmt.Errorf("response: %w", err)
	}
	check, err := m.Check.Forward(ctx, signatures.Values{"message": in["message"], "response": resp["response"]})
	if err != nil {
		return nil, fmt.Errorf("quality check: %w", err)
	}
	q, _ := check["quality"].(float64)
	out := signatures.Values{
		"response":  resp["response"],
		"reasoning": resp["reasoning"],
		"quality":   math.Min(1, math.Max(0, q)),
		"issues":    check["issues"],
	}
	for _, k := range []string{"intent", "relevant_context", "tone"} {
		out[k] = analysis[k]
	}
	return out, nil
}

// BoolQASignature is the yes/no question program's signature.
const BoolQASignature = "question -> answer: bool"

// BoolQA answers yes/no questions; its examples ship in the repository's
// examples/ directory.
type BoolQA struct {
	Answer *signatures.Predict
}

// NewBoolQA returns an uncompiled BoolQA.
func NewBoolQA() *BoolQA {
	sig := signatures.MustParse(BoolQASignature).WithInstructions("Answer the yes/no question with True or False.")
	return &BoolQA{Answer: signatures.NewPredict(sig, signatures.PredictOptions{Name: "answer"})}
}

// Forward answers in["question"].
func (b *BoolQA) Forward(ctx context.Context, in signatures.Values) (signatures.Values, error) {
	return b.Answer.Forward(ctx, in)
}

// SentimentSignature is the sentiment program's signature.
const SentimentSignature = "text -> sentiment: Literal['positive', 'negative', 'neutral']"

// Sentiment classifies a text's sentiment; its examples ship in the
// repository's examples/ directory.
type Sentiment struct {
	Classify *signatures.Predict
}

// NewSentiment returns an uncompiled Sentiment.
func NewSentiment() *Sentiment {
	sig := signatures.MustParse(SentimentSignature).WithInstructions("Classify the sentiment of the text.")
	return &Sentiment{Classify: signatures.NewPredict(sig, signatures.PredictOptions{Name: "classify"})}
}

// Forward classifies in["text"].
func (s *Sentiment) Forward(ctx context.Context, in signatures.Values) (signatures.Values, error) {
	return s.Classify.Forward(ctx, in)
}
