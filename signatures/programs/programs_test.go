package programs

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
	"github.com/kowai/kowai/signatures/lm/offline"
)

func offlineModel() lm.LM { return lm.NewProvider("offline", offline.DefaultModelName, offline.New()) }

// TestProgramsOnOfflineModel runs every built-in program on the offline
// model, which reads the rendered prompt format to answer.
func TestProgramsOnOfflineModel(t *testing.T) {
	reg := Builtin()
	inputs := map[string]signatures.Values{
		"boolqa":    {"question": "Is water wet?"},
		"sentiment": {"text": "What a lovely day."},
	}
	if !slices.Equal(reg.Names(), []string{"boolqa", "sentiment"}) {
		t.Fatalf("names = %v", reg.Names())
	}
	for _, e := range reg.Entries() {
		t.Run(e.Name, func(t *testing.T) {
			res, err := signatures.Execute(t.Context(), offlineModel(), e.New(), inputs[e.Name])
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Trace) == 0 || res.Usage.Calls != len(res.Trace) {
				t.Errorf("trace %d steps, usage %+v", len(res.Trace), res.Usage)
			}
			if sig := signatures.MustParse(e.Signature); len(sig.Outputs()) == 0 {
				t.Error("no outputs")
			}
			for _, f := range signatures.MustParse(e.Signature).Outputs() {
				if _, ok := res.Outputs[f.Name]; !ok {
					t.Errorf("output %q missing from %v", f.Name, res.Outputs)
				}
			}
		})
	}
	if _, err := reg.Get("nope"); !errors.Is(err, ErrUnknownProgram) || !strings.Contains(err.Error(), "boolqa") {
		t.Errorf("unknown program: %v", err)
	}
	if err := reg.Register(Entry{Name: "boolqa", New: func() signatures.Module { return NewBoolQA() }}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate: %v", err)
	}
}

func reply(kv ...string) string {
	var b strings.Builder
	for i := 0; i < len(kv); i += 2 {
		b.WriteString("[[ ## " + kv[i] + " ## ]]\n" + kv[i+1] + "\n\n")
	}
	return b.String() + "[[ ## completed ## ]]"
}

func TestMultiStageChat(t *testing.T) {
	model := lmtest.Texts(
		reply("intent", "greet", "relevant_context", "none", "tone", "Friendly"),
		reply("reasoning", "be nice", "response", "Hello there!"),
		reply("quality", "1.7", "issues", "none"),
	)
	prog := NewMultiStageChat()
	var streamed strings.Builder
	res, err := signatures.Execute(t.Context(), model, prog, signatures.Values{"message": "hi"},
		signatures.WithListener(signatures.StreamListener{Field: "response", OnChunk: func(_ context.Context, c string) error {
			streamed.WriteString(c)
			return nil
		}}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Outputs["response"] != "Hello there!" || res.Outputs["quality"] != 1.0 || res.Outputs["tone"] != "friendly" {
		t.Errorf("outputs = %v", res.Outputs)
	}
	if streamed.String() != "Hello there!" {
		t.Errorf("streamed %q", streamed.String())
	}
	var names []string
	for _, s := range res.Trace {
		names = append(names, s.Predictor)
	}
	if len(names) != 3 || names[0] != "analyze" || names[2] != "check" {
		t.Errorf("trace = %v", names)
	}
	respondIn := model.Requests()[1].Messages
	if !strings.Contains(respondIn[len(respondIn)-1].Parts[0].(interface{ String() string }).String(), "[[ ## intent ## ]]\ngreet") {
		t.Error("response stage did not get the analysis")
	}
	var pnames []string
	for _, np := range signatures.Predictors(prog) {
		pnames = append(pnames, np.Name)
	}
	if !slices.Equal(pnames, []string{"analyze", "respond.predict", "check"}) {
		t.Errorf("predictors = %v", pnames)
	}

	bad := lmtest.Texts(reply("intent", "x", "relevant_context", "y", "tone", "angry"))
	if _, err := signatures.Execute(t.Context(), bad, NewMultiStageChat(), signatures.Values{"message": "hi"}); !errors.Is(err, signatures.ErrParse) && !errors.Is(err, lmtest.ErrScriptExhausted) {
		t.Errorf("bad tone: %v", err)
	}
}
