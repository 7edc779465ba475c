package signatures

import (
	"context"
	"strings"
	"testing"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/offline"
)

// TestOfflineModelContract runs modules against the offline model, which
// answers by reading the rendered prompt format: every type must come back
// parsable, deterministically.
func TestOfflineModelContract(t *testing.T) {
	model := lm.NewProvider("offline", offline.DefaultModelName, offline.New())
	sig := MustParse("question, context: list[str], history -> answer: int, score: float, ok: bool, " +
		"label: Literal['low', 'high'], tags: list[str], meta: dict, note")
	in := Values{"question": "q", "context": []string{"c"}, "history": History{Messages: []Values{{"question": "a", "answer": 1}}}}
	first, err := Execute(t.Context(), model, NewPredict(sig, PredictOptions{Retries: -1}), in)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Execute(t.Context(), model, NewPredict(sig, PredictOptions{Retries: -1}), in)
	if err != nil {
		t.Fatal(err)
	}
	out := first.Outputs
	if out["ok"] != true || out["label"] != "low" || compactJSON(out) != compactJSON(again.Outputs) {
		t.Errorf("outputs = %v / %v", out, again.Outputs)
	}
	if !strings.Contains(strings.ToLower(out["note"].(string)), "offline") {
		t.Errorf("note %q does not say it is offline", out["note"])
	}

	searches := 0
	agent, err := NewReAct(MustParse("question -> answer"), []Tool{{Name: "search", Desc: "search", Call: func(context.Context, map[string]any) (string, error) {
		searches++
		return "found", nil
	}}}, 5)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Execute(t.Context(), model, agent, Values{"question": "q"})
	// The offline model calls the first offered tool natively once, then
	// answers in markers, choosing finish.
	if err != nil || res.Outputs["answer"] == "" || len(res.Trace) != 3 || searches != 1 ||
		!strings.Contains(res.Outputs["trajectory"].(Trajectory).String(), "[[ ## tool_name_1 ## ]]\nfinish") {
		t.Errorf("ReAct on offline: %v, %d steps, %d searches, %v", res.Outputs, len(res.Trace), searches, err)
	}

	var streamed strings.Builder
	cot, err := NewChainOfThought(MustParse("message -> response"), PredictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err = Execute(t.Context(), model, cot, Values{"message": "hello"}, WithListener(StreamListener{
		Field: "response", OnChunk: func(_ context.Context, c string) error { streamed.WriteString(c); return nil },
	}))
	if err != nil || streamed.String() != res.Outputs["response"] {
		t.Errorf("streamed %q, parsed %q (%v)", streamed.String(), res.Outputs["response"], err)
	}
}
