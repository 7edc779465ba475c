package signatures

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
	"github.com/tmc/langchaingo/llms"
)

func text(m llms.MessageContent) string { return m.Parts[0].(llms.TextContent).Text }

func reply(kv ...string) string {
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		b.WriteString("[[ ## " + kv[i] + " ## ]]\n" + kv[i+1] + "\n\n")
	}
	return b.String() + "[[ ## completed ## ]]"
}

func TestPredictForward(t *testing.T) {
	model := lmtest.NewScripted([]lmtest.Output{{
		Text:  reply("answer", "42"),
		Usage: lm.Usage{PromptTokens: 100, CompletionTokens: 5},
	}})
	p := NewPredict(qaSignature(t), PredictOptions{Name: "qa", Temperature: 0.3, MaxTokens: 50})
	res, err := Execute(t.Context(), model, p, Values{"question": "q", "context": []string{"c"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outputs["answer"] != 42 {
		t.Errorf("outputs = %#v", res.Outputs)
	}
	if len(res.Trace) != 1 || res.Trace[0].Predictor != "qa" || res.Trace[0].Predict != p ||
		res.Trace[0].Outputs["answer"] != 42 || res.Trace[0].Inputs["question"] != "q" {
		t.Errorf("trace = %+v", res.Trace)
	}
	want := lm.Usage{PromptTokens: 100, CompletionTokens: 5, Calls: 1}
	if res.Usage != want || res.Trace[0].Usage != want {
		t.Errorf("usage = %+v / %+v, want %+v", res.Usage, res.Trace[0].Usage, want)
	}
	req := model.Requests()[0]
	if req.Temperature != 0.3 || req.MaxTokens != 50 || len(req.Messages) != 2 || req.RolloutID != "" {
		t.Errorf("request = %+v", req)
	}
}

func TestPredictRetriesWithCorrection(t *testing.T) {
	bad := "The answer is forty-two.\n[[ ## answer ## ]]\nforty-two"
	model := lmtest.Texts(bad, reply("answer", "42"))
	p := NewPredict(qaSignature(t), PredictOptions{})
	res, err := Execute(t.Context(), model, p, Values{"question": "q", "context": []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outputs["answer"] != 42 || res.Usage.Calls != 2 {
		t.Errorf("outputs = %v, usage = %+v", res.Outputs, res.Usage)
	}
	second := model.Requests()[1].Messages
	if len(second) != 4 || text(second[2]) != bad || second[2].Role != llms.ChatMessageTypeAI {
		t.Fatalf("retry messages = %d, third = %q", len(second), text(second[2]))
	}
	corr := text(second[3])
	for _, want := range []string{"could not be parsed", "`answer`", `"forty-two" is not an int`, "Respond with the corresponding output fields"} {
		if !strings.Contains(corr, want) {
			t.Errorf("correction %q lacks %q", corr, want)
		}
	}
}

func TestPredictParseFailureKeepsRaw(t *testing.T) {
	model := lmtest.Texts("nope 1", "nope 2")
	p := NewPredict(qaSignature(t), PredictOptions{Retries: 1})
	res, err := Execute(t.Context(), model, p, Values{"question": "q", "context": []string{}})
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Raw != "nope 2" || pe.Field != "answer" {
		t.Fatalf("error = %v", err)
	}
	if model.Calls() != 2 || len(res.Trace) != 1 || res.Trace[0].Err == nil || res.Usage.Calls != 2 {
		t.Errorf("calls = %d, trace = %+v, usage = %+v", model.Calls(), res.Trace, res.Usage)
	}

	none := lmtest.Texts("nope")
	_, err = Execute(t.Context(), none, NewPredict(qaSignature(t), PredictOptions{Retries: -1}), Values{"question": "q", "context": []string{}})
	if !errors.Is(err, ErrParse) || none.Calls() != 1 {
		t.Errorf("Retries -1: err = %v after %d calls", err, none.Calls())
	}
}

func TestPredictJSONFallback(t *testing.T) {
	model := lmtest.Texts("bad", `{"answer": 7}`)
	p := NewPredict(qaSignature(t), PredictOptions{Retries: -1, JSONFallback: true})
	res, err := Execute(t.Context(), model, p, Values{"question": "q", "context": []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outputs["answer"] != 7 {
		t.Errorf("outputs = %v", res.Outputs)
	}
	req := model.Requests()[1]
	last := text(req.Messages[len(req.Messages)-1])
	if !req.JSONMode || !strings.Contains(last, "Respond with a JSON object in the following order of fields: `answer` (must be formatted as a valid Python int).") {
		t.Errorf("JSON request: mode %v, last message %q", req.JSONMode, last)
	}
}

func TestPredictErrors(t *testing.T) {
	p := NewPredict(qaSignature(t), PredictOptions{})
	if _, err := p.Forward(t.Context(), Values{"question": "q"}); !errors.Is(err, ErrNoLM) {
		t.Errorf("no model: %v", err)
	}
	model := lmtest.Texts(reply("answer", "1"))
	if _, err := Execute(t.Context(), model, p, Values{"question": "q"}); !errors.Is(err, ErrMissingInput) {
		t.Errorf("missing input: %v", err)
	}
	failing := lmtest.NewScripted([]lmtest.Output{{Err: lm.ErrRateLimited}})
	if _, err := Execute(t.Context(), failing, p, Values{"question": "q", "context": []string{}}); !errors.Is(err, lm.ErrRateLimited) {
		t.Errorf("model error: %v", err)
	}
	own := lmtest.Texts(reply("answer", "5"))
	withOwn := NewPredict(qaSignature(t), PredictOptions{LM: own})
	out, err := withOwn.Forward(t.Context(), Values{"question": "q", "context": []string{}})
	if err != nil || out["answer"] != 5 {
		t.Errorf("predictor's own LM: %v, %v", out, err)
	}
}

func TestChainOfThought(t *testing.T) {
	cot, err := NewChainOfThought(MustParse("question -> answer"), PredictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cot.Predict.Signature().String() != "question -> reasoning, answer" {
		t.Errorf("signature = %s", cot.Predict.Signature())
	}
	if cot.Predict.Signature().Instructions() != "Given the fields `question`, produce the fields `answer`." {
		t.Errorf("instructions = %q", cot.Predict.Signature().Instructions())
	}
	model := lmtest.Texts(reply("reasoning", "because", "answer", "yes"))
	res, err := Execute(t.Context(), model, cot, Values{"question": "q"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outputs["reasoning"] != "because" || res.Outputs["answer"] != "yes" {
		t.Errorf("outputs = %v", res.Outputs)
	}
	if _, err := NewChainOfThought(cot.Predict.Signature(), PredictOptions{}); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("double reasoning: %v", err)
	}
}

func TestStreamingField(t *testing.T) {
	full := "[[ ## reasoning ## ]]\nthink [[ ## x ]] hard\n\n[[ ## response ## ]]\n  Hello [world],\n  streamed text.  \n\n[[ ## completed ## ]]"
	for _, size := range []int{1, 2, 3, 5, 7, 64} {
		model := lmtest.NewScripted([]lmtest.Output{{Text: full}}, lmtest.WithChunkSize(size))
		cot, err := NewChainOfThought(MustParse("message -> response"), PredictOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var got []string
		res, err := Execute(t.Context(), model, cot, Values{"message": "m"}, WithListener(StreamListener{
			Field: "response",
			OnChunk: func(_ context.Context, c string) error {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, c)
				return nil
			},
		}))
		if err != nil {
			t.Fatal(err)
		}
		want := "Hello [world],\n  streamed text."
		if strings.Join(got, "") != want || res.Outputs["response"] != want {
			t.Errorf("chunk size %d: streamed %q, parsed %q", size, strings.Join(got, ""), res.Outputs["response"])
		}
		if size == 1 && len(got) < 5 {
			t.Errorf("chunk size 1 gave only %d chunks", len(got))
		}
	}
}

func TestStreamingNonStreamingModelAndAbort(t *testing.T) {
	plain := lm.Func{ID: "plain", Fn: func(context.Context, *lm.Request) (*lm.Response, error) {
		return &lm.Response{Text: reply("response", "all at once")}, nil
	}}
	var got []string
	listen := WithListener(StreamListener{Field: "response", OnChunk: func(_ context.Context, c string) error {
		got = append(got, c)
		return nil
	}})
	if _, err := Execute(t.Context(), plain, NewPredict(MustParse("m -> response"), PredictOptions{}), Values{"m": "x"}, listen); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "all at once" {
		t.Errorf("non-streaming model: chunks %q", got)
	}

	stop := errors.New("client went away")
	model := lmtest.Texts(reply("response", "a long streamed answer"))
	_, err := Execute(t.Context(), model, NewPredict(MustParse("m -> response"), PredictOptions{}), Values{"m": "x"},
		WithListener(StreamListener{Field: "response", OnChunk: func(context.Context, string) error { return stop }}))
	if !errors.Is(err, stop) {
		t.Errorf("abort error = %v", err)
	}
}

func TestRunConcurrentRecording(t *testing.T) {
	model := lmtest.NewScripted(nil, lmtest.WithRespond(func(*lm.Request) lmtest.Output {
		return lmtest.Output{Text: reply("answer", "1"), Usage: lm.Usage{PromptTokens: 1}}
	}))
	p := NewPredict(qaSignature(t), PredictOptions{})
	run := NewRun(model)
	ctx := WithRun(t.Context(), run)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := p.Forward(ctx, Values{"question": "q", "context": []string{}}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Go(func() {
		p.SetDemos([]Example{{Inputs: Values{"question": "d", "context": []string{}}, Outputs: Values{"answer": 2}}})
	})
	wg.Wait()
	if len(run.Trace()) != 8 || run.Usage().Calls != 8 || run.Usage().PromptTokens != 8 {
		t.Errorf("trace %d steps, usage %+v", len(run.Trace()), run.Usage())
	}
}

// TestTraceIsSnapshot checks that a recorded step keeps the values of the
// call: neither the caller's input map, nor the output map Forward returned,
// nor a map taken from an earlier Trace can change it afterwards.
func TestTraceIsSnapshot(t *testing.T) {
	model := lmtest.Texts(reply("answer", "42"), reply("answer", "7"))
	p := NewPredict(qaSignature(t), PredictOptions{})
	run := NewRun(model)
	ctx := WithRun(t.Context(), run)
	in := Values{"question": "q", "context": []string{"c"}}
	out, err := p.Forward(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	in["question"], in["extra"] = "changed", 1
	delete(in, "context")
	out["answer"], out["added"] = 0, true
	// A second call records its own values beside the first, including one
	// the signature does not name.
	if _, err := p.Forward(ctx, Values{"question": "q2", "context": []string{}, "note": "kept"}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		steps := run.Trace()
		if len(steps) != 2 {
			t.Fatalf("%s: %d steps", when, len(steps))
		}
		s := steps[0]
		if len(s.Inputs) != 2 || s.Inputs["question"] != "q" || len(s.Inputs["context"].([]string)) != 1 ||
			len(s.Outputs) != 1 || s.Outputs["answer"] != 42 {
			t.Errorf("%s: first step inputs %v, outputs %v", when, s.Inputs, s.Outputs)
		}
		if s := steps[1]; len(s.Inputs) != 3 || s.Inputs["question"] != "q2" || s.Inputs["note"] != "kept" || s.Outputs["answer"] != 7 {
			t.Errorf("%s: second step inputs %v, outputs %v", when, s.Inputs, s.Outputs)
		}
		s.Inputs["question"], s.Outputs["answer"] = "reader", -1
	}
	check("after the caller's changes")
	check("after a reader's changes")
}

// TestWithRunTwice checks that the contexts of two WithRun calls with one
// Run keep their own parents, although the first shares the Run's
// allocation.
func TestWithRunTwice(t *testing.T) {
	type key struct{}
	run := NewRun(lmtest.Texts())
	a := WithRun(context.WithValue(t.Context(), key{}, "a"), run)
	b := WithRun(context.WithValue(t.Context(), key{}, "b"), run)
	inner := WithRun(a, NewRun(lmtest.Texts()))
	if RunFrom(a) != run || RunFrom(b) != run || a.Value(key{}) != "a" || b.Value(key{}) != "b" {
		t.Errorf("a: run %p value %v; b: run %p value %v; want run %p", RunFrom(a), a.Value(key{}), RunFrom(b), b.Value(key{}), run)
	}
	if RunFrom(inner) == run || RunFrom(context.WithValue(a, key{}, "c")) != run || RunFrom(t.Context()) != nil {
		t.Error("RunFrom does not find the nearest Run")
	}
}

type typedIn struct {
	Question string `desc:"the question"`
}

type typedOut struct {
	Answer int      `dspy:"output"`
	Tags   []string `json:"tags"`
	Cite   citation `json:"cite"`
}

func TestTyped(t *testing.T) {
	tp, err := NewTyped[typedIn, typedOut](func(s Signature) (Module, error) { return NewChainOfThought(s, PredictOptions{}) })
	if err != nil {
		t.Fatal(err)
	}
	model := lmtest.Texts(reply("reasoning", "r", "answer", "3", "tags", `["a"]`, "cite", `{"source": "doc", "line": 4}`))
	ctx := WithRun(t.Context(), NewRun(model))
	out, err := tp.Call(ctx, typedIn{Question: "how many?"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Answer != 3 || len(out.Tags) != 1 || out.Tags[0] != "a" || out.Cite != (citation{Source: "doc", Line: 4}) {
		t.Errorf("out = %+v", out)
	}
	if !strings.Contains(text(model.Requests()[0].Messages[1]), "[[ ## question ## ]]\nhow many?") {
		t.Error("typed input not rendered")
	}
	if ps := Predictors(tp); len(ps) != 1 || ps[0].Name != "predict" {
		t.Errorf("predictors = %+v", ps)
	}
}

// TestPredictRendersLikeRender checks that what a predictor keeps between
// calls (system message, rendered demos) yields the messages Render builds
// from scratch, after each kind of change.
func TestPredictRendersLikeRender(t *testing.T) {
	sig := MustParse("question, history -> answer: int")
	in := Values{"question": "q?", "history": History{Messages: []Values{{"question": "a?", "answer": 1}}}}
	demos := []Example{
		{Inputs: Values{"question": "d?"}, Outputs: Values{"answer": 2}},
		{Inputs: Values{"question": "e?"}, Outputs: Values{}},
	}
	hinted, err := sig.Append(Input, hintField)
	if err != nil {
		t.Fatal(err)
	}
	// The demos lack the new output, so they render as incomplete examples.
	noted := MustParse("question, history -> answer: int, note").WithInstructions("Answer briefly.")
	tests := []struct {
		name      string
		setup     func(p *Predict)
		ctx       func(context.Context) context.Context
		wantSig   Signature
		wantDemos []Example
		wantIn    Values
	}{
		{"new", func(*Predict) {}, nil, sig, nil, in},
		{"demos", func(p *Predict) { p.SetDemos(demos) }, nil, sig, demos, in},
		{"signature after demos", func(p *Predict) {
			p.SetDemos(demos)
			p.SetSignature(noted)
		}, nil, noted, demos, in},
		{"hint", func(p *Predict) { p.SetDemos(demos) }, func(ctx context.Context) context.Context { return withHint(ctx, "be brief") },
			hinted, demos, Values{"question": "q?", "history": in["history"], hintField.Name: "be brief"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			model := lmtest.Texts(reply("answer", "3", "note", "n"))
			p := NewPredict(sig, PredictOptions{})
			tt.setup(p)
			ctx := WithRun(t.Context(), NewRun(model))
			if tt.ctx != nil {
				ctx = tt.ctx(ctx)
			}
			if _, err := p.Forward(ctx, in); err != nil {
				t.Fatal(err)
			}
			want, err := Render(tt.wantSig, tt.wantDemos, tt.wantIn)
			if err != nil {
				t.Fatal(err)
			}
			got := model.Requests()[0].Messages
			if len(got) != len(want) {
				t.Fatalf("%d messages, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].Role != want[i].Role || text(got[i]) != text(want[i]) {
					t.Errorf("message %d:\n%s %q\nwant\n%s %q", i, got[i].Role, text(got[i]), want[i].Role, text(want[i]))
				}
			}
		})
	}
}

// A Run without trace values sums the usage of its steps as any Run does, records
// the steps, but keeps none of their inputs or outputs; a predictor then makes no
// copy of its inputs for it.
func TestRunWithoutTraceValues(t *testing.T) {
	out := lmtest.Output{Text: reply("answer", "42"), Usage: lm.Usage{PromptTokens: 100, CompletionTokens: 5}}
	p := NewPredict(qaSignature(t), PredictOptions{Name: "qa"})
	in := Values{"question": "q", "context": []string{"c"}}
	plain, bare := NewRun(lmtest.NewScripted([]lmtest.Output{out, out})), NewRun(lmtest.NewScripted([]lmtest.Output{out, out}), WithoutTraceValues)
	for _, run := range []*Run{plain, bare} {
		for range 2 {
			res, err := p.Forward(WithRun(t.Context(), run), in)
			if err != nil || res["answer"] != 42 {
				t.Fatalf("Forward: %v %v", res, err)
			}
		}
	}
	want := lm.Usage{PromptTokens: 200, CompletionTokens: 10, Calls: 2}
	if plain.Usage() != want || bare.Usage() != want {
		t.Fatalf("usage %+v and %+v without values, want %+v", plain.Usage(), bare.Usage(), want)
	}
	kept, steps := plain.Trace(), bare.Trace()
	if len(kept) != 2 || kept[0].Inputs["question"] != "q" || kept[0].Outputs["answer"] != 42 {
		t.Fatalf("trace %+v", kept)
	}
	if len(steps) != 2 || steps[1].Predictor != "qa" || len(steps[1].Inputs) != 0 || len(steps[1].Outputs) != 0 {
		t.Fatalf("trace without values %+v", steps)
	}
	if c := bare.child(); !c.noValues {
		t.Fatal("a child of a Run without values keeps values")
	}
}

// A prompt that carries a live conversation's history (a Chat with a turn in it)
// bypasses the model cache: its key covers the whole history, so only the same
// conversation could hit it. A first turn (an empty Chat) and a History value (as a
// dataset holds, asked again at every evaluation) are still cached.
func TestPredictLiveChatBypassesTheCache(t *testing.T) {
	sig := MustParse("message, history -> response")
	turn := Messages{{Role: RoleUser, Content: "hi"}, {Role: RoleAssistant, Content: "hello"}}
	for _, c := range []struct {
		name    string
		history any
		noCache bool
	}{
		{"continuing chat", Chat{Messages: turn, Input: "message", Output: "response"}, true},
		{"continuing chat by pointer", &Chat{Messages: turn, Input: "message", Output: "response"}, true},
		{"first turn", Chat{Messages: Messages{}, Input: "message", Output: "response"}, false},
		{"history value", History{Messages: []Values{{"message": "hi", "response": "hello"}}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			model := lmtest.Texts(reply("response", "ok"))
			if _, err := Execute(t.Context(), model, NewPredict(sig, PredictOptions{}), Values{"message": "again", "history": c.history}); err != nil {
				t.Fatal(err)
			}
			if got := model.Requests()[0].NoCache; got != c.noCache {
				t.Fatalf("NoCache = %v, want %v", got, c.noCache)
			}
		})
	}
}
