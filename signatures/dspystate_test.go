package signatures

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/kowai/kowai/signatures/lm/lmtest"
)

// TestReadDSPyState loads a file in the layout DSPy's Module.save writes
// for a ReAct program (dspy/predict/predict.py dump_state; the layout of
// tests/primitives/resources/saved_program.json) and runs the program with
// its instructions and demos.
func TestReadDSPyState(t *testing.T) {
	f, err := os.Open("testdata/dspy_react.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	agent, err := NewReAct(MustParse("question -> answer"), []Tool{{Name: "search", Desc: "Searches."}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ReadDSPyState(f, agent)
	if err != nil {
		t.Fatal(err)
	}
	if err := LoadState(agent, st); err != nil {
		t.Fatal(err)
	}
	ex := agent.Extract.Predict
	if got := ex.Signature().Instructions(); got != "Given the very verbose fields `question`, produce the fields `answer`." {
		t.Errorf("extract instructions %q", got)
	}
	if f, _, _ := ex.Signature().Field("answer"); f.Desc != "often between 1 and 5 words" || f.Prefix != "Answer:" {
		t.Errorf("answer field %+v", f)
	}
	if f, _, _ := ex.Signature().Field("question"); f.Desc != "" {
		t.Errorf("the ${question} placeholder became a description: %q", f.Desc)
	}
	demos := agent.React.Demos()
	if len(demos) != 1 || !demos[0].Augmented || demos[0].Inputs["question"] != "Which studio made both films?" ||
		demos[0].Outputs["next_tool_name"] != "search" || demos[0].Outputs["next_tool_args"].(map[string]any)["query"] != "studio of both films" {
		t.Errorf("react demos %+v", demos)
	}
	if d := ex.Demos(); len(d) != 1 || d[0].Outputs["answer"] != "yes" || d[0].Augmented {
		t.Errorf("extract demos %+v", d)
	}
	// The loaded program runs, its demos in the prompt.
	model := lmtest.Texts(
		reply("next_thought", "done", "next_tool_name", "finish", "next_tool_args", "{}"),
		reply("reasoning", "r", "answer", "Disney"),
	)
	res, err := Execute(t.Context(), model, agent, Values{"question": "q"})
	if err != nil || res.Outputs["answer"] != "Disney" {
		t.Fatalf("%v %v", res.Outputs, err)
	}
	if sys := text(model.Requests()[0].Messages[0]); !strings.Contains(sys, "Answer questions with short factoid answers, using the tools.") {
		t.Errorf("react system message lacks the loaded instructions:\n%s", sys)
	}
	// Written as kowai state, it loads again with the same version.
	var buf bytes.Buffer
	saved, err := WriteState(&buf, agent, "")
	if err != nil || saved.Version != st.Version {
		t.Errorf("re-saved version %s, loaded %s (%v)", saved.Version, st.Version, err)
	}
}

// TestReadDSPyStateFlatAndMismatch: a bare dspy.Predict saves its state at
// the top level; a file that does not fit the program changes nothing.
func TestReadDSPyStateFlatAndMismatch(t *testing.T) {
	flat := `{"traces": [], "train": [], "demos": [{"question": "2+2?", "answer": 4}],
		"signature": {"instructions": "Add.", "fields": [{"prefix": "Question:", "description": "${question}"},
		{"prefix": "Answer:", "description": "a number"}]}, "lm": null, "metadata": {}}`
	p := NewPredict(MustParse("question -> answer: int"), PredictOptions{})
	st, err := ReadDSPyState(strings.NewReader(flat), p)
	if err != nil {
		t.Fatal(err)
	}
	if err := LoadState(p, st); err != nil {
		t.Fatal(err)
	}
	if p.Signature().Instructions() != "Add." || p.Demos()[0].Outputs["answer"] != 4 {
		t.Errorf("loaded %q, demos %+v", p.Signature().Instructions(), p.Demos())
	}
	for name, bad := range map[string]string{
		"field count":   `{"signature": {"instructions": "x", "fields": [{"prefix": "Q:", "description": ""}]}, "demos": []}`,
		"predictor":     `{"other": {"signature": {"instructions": "x", "fields": []}, "demos": []}}`,
		"not an object": `[1, 2]`,
	} {
		q := NewPredict(MustParse("question -> answer: int"), PredictOptions{})
		if _, err := ReadDSPyState(strings.NewReader(bad), q); err == nil {
			t.Errorf("%s: no error", name)
		} else if name != "not an object" && !errors.Is(err, ErrStateMismatch) {
			t.Errorf("%s: %v, want ErrStateMismatch", name, err)
		}
		if q.Signature().Instructions() == "x" {
			t.Errorf("%s: the program changed", name)
		}
	}
}
