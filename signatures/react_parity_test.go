package signatures

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
)

func echoTool() []Tool {
	return []Tool{{Name: "echo", Desc: "Echoes text.", Call: func(_ context.Context, args map[string]any) (string, error) {
		return "Echoed: " + args["text"].(string), nil
	}}}
}

func stepReply(thought, tool, args string) string {
	return reply("next_thought", thought, "next_tool_name", tool, "next_tool_args", args)
}

// TestReActTrajectoryTruncation mirrors tests/predict/test_react.py,
// test_trajectory_truncation: two echo steps, then the model reports an
// exceeded context window; the oldest step is dropped and the run goes on.
func TestReActTrajectoryTruncation(t *testing.T) {
	agent, err := NewReAct(MustParse("input_text -> output_text"), echoTool(), 5)
	if err != nil {
		t.Fatal(err)
	}
	agent.NoNativeTools = true
	model := lmtest.NewScripted([]lmtest.Output{
		{Text: stepReply("Thought 1", "echo", `{"text": "Text 1"}`)},
		{Text: stepReply("Thought 2", "echo", `{"text": "Text 2"}`)},
		{Err: &lm.ProviderError{Model: "m", Kind: lm.ErrContextWindow, Err: errors.New("maximum context length is 10 tokens")}},
		{Text: stepReply("Final thought", "finish", `{}`)},
		{Text: reply("reasoning", "r", "output_text", "Final output")},
	})
	res, err := Execute(t.Context(), model, agent, Values{"input_text": "test input"})
	if err != nil {
		t.Fatal(err)
	}
	traj := res.Outputs["trajectory"].(Trajectory)
	if res.Outputs["output_text"] != "Final output" || len(traj) != 2 || traj[0].Index != 1 || traj[1].Index != 2 || traj[1].ToolName != "finish" {
		t.Fatalf("outputs %v, trajectory %+v", res.Outputs, traj)
	}
	retried := text(model.Requests()[3].Messages[1])
	if strings.Contains(retried, "thought_0") || !strings.Contains(retried, "[[ ## thought_1 ## ]]\nThought 2") {
		t.Errorf("the retry after truncation still shows step 0 or lacks step 1:\n%s", retried)
	}
}

// TestReActContextWindowExhausted mirrors tests/predict/test_react.py,
// test_context_window_exceeded_after_retries: a react step that never fits
// ends the loop, and the outputs are extracted from an empty trajectory.
func TestReActContextWindowExhausted(t *testing.T) {
	agent, err := NewReAct(MustParse("input_text -> output_text"), echoTool(), 5)
	if err != nil {
		t.Fatal(err)
	}
	model := lmtest.NewScripted([]lmtest.Output{
		{Err: lm.ErrContextWindow},
		{Text: reply("reasoning", "r", "output_text", "Fallback output")},
	})
	res, err := Execute(t.Context(), model, agent, Values{"input_text": "test input"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outputs["output_text"] != "Fallback output" || len(res.Outputs["trajectory"].(Trajectory)) != 0 || model.Calls() != 2 {
		t.Errorf("outputs %v after %d calls", res.Outputs, model.Calls())
	}
}

// TestCallTruncating mirrors tests/predict/test_react.py,
// test_truncation_exhausted_raises_context_window_exceeded_error and
// test_truncate_trajectory_raises_on_single_tool_call.
func TestCallTruncating(t *testing.T) {
	tr := Trajectory{{Index: 0}, {Index: 1}, {Index: 2}, {Index: 3}}
	var seen []int
	_, _, err := callTruncating(tr, func(tr Trajectory) (int, error) {
		seen = append(seen, len(tr))
		return 0, lm.ErrContextWindow
	})
	if !errors.Is(err, lm.ErrContextWindow) || !strings.Contains(err.Error(), "even after 3 attempts") || !reflect.DeepEqual(seen, []int{4, 3, 2}) {
		t.Errorf("exhausted: %v after lengths %v", err, seen)
	}
	_, _, err = callTruncating(Trajectory{{Index: 0}}, func(Trajectory) (int, error) { return 0, lm.ErrContextWindow })
	if !errors.Is(err, lm.ErrContextWindow) || !strings.Contains(err.Error(), "cannot be truncated") {
		t.Errorf("single step: %v", err)
	}
	other := errors.New("other")
	if _, _, err := callTruncating(tr, func(Trajectory) (int, error) { return 0, other }); err != other {
		t.Errorf("another error is returned as is: %v", err)
	}
}

// TestTrajectoryRendering mirrors DSPy's ReAct._format_trajectory
// (dspy/predict/react.py) as the saved program in tests/primitives/
// resources/saved_program.json shows it: ChatAdapter blocks per key.
func TestTrajectoryRendering(t *testing.T) {
	tr := Trajectory{
		{Index: 0, Thought: "I need to search.", ToolName: "search_wikipedia", ToolArgs: map[string]any{"query": "studio"},
			Observation: "Walt Disney"},
		{Index: 1, Thought: "Done.", ToolName: "finish", Observation: "Completed."},
	}
	want := "[[ ## thought_0 ## ]]\nI need to search.\n\n[[ ## tool_name_0 ## ]]\nsearch_wikipedia\n\n" +
		"[[ ## tool_args_0 ## ]]\n{\"query\": \"studio\"}\n\n[[ ## observation_0 ## ]]\nWalt Disney\n\n" +
		"[[ ## thought_1 ## ]]\nDone.\n\n[[ ## tool_name_1 ## ]]\nfinish\n\n[[ ## tool_args_1 ## ]]\n{}\n\n" +
		"[[ ## observation_1 ## ]]\nCompleted."
	if got := tr.String(); got != want {
		t.Errorf("got:\n%q\nwant:\n%q", got, want)
	}
	if (Trajectory{}).String() != "" {
		t.Error("an empty trajectory renders as text")
	}
}
