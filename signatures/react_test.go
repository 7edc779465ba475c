package signatures

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
	"github.com/tmc/langchaingo/llms"
)

func weatherTools(calls *[]string) []Tool {
	return []Tool{
		{
			Name: "weather", Desc: "Current weather in a city.",
			Parameters: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
			Call: func(_ context.Context, args map[string]any) (string, error) {
				*calls = append(*calls, fmt.Sprint("weather:", args["city"]))
				if args["city"] == "Atlantis" {
					return "", errors.New("no such city")
				}
				return "sunny in " + fmt.Sprint(args["city"]), nil
			},
		},
	}
}

func TestReActMarkerProtocol(t *testing.T) {
	var calls []string
	agent, err := NewReAct(MustParse("question -> answer"), weatherTools(&calls), 5)
	if err != nil {
		t.Fatal(err)
	}
	model := lmtest.Texts(
		reply("next_thought", "check Atlantis", "next_tool_name", "weather", "next_tool_args", `{"city": "Atlantis"}`),
		reply("next_thought", "try Paris", "next_tool_name", "Weather", "next_tool_args", `{"city": "Paris"}`),
		reply("next_thought", "done", "next_tool_name", "finish", "next_tool_args", `{}`),
		reply("reasoning", "it is sunny", "answer", "sunny"),
	)
	res, err := Execute(t.Context(), model, agent, Values{"question": "weather?"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outputs["answer"] != "sunny" || strings.Join(calls, ",") != "weather:Atlantis,weather:Paris" {
		t.Errorf("outputs %v, tool calls %v", res.Outputs, calls)
	}
	traj := res.Outputs["trajectory"].(Trajectory).String()
	for _, want := range []string{"[[ ## observation_0 ## ]]\nExecution error in weather: no such city", "[[ ## observation_1 ## ]]\nsunny in Paris", "[[ ## tool_name_2 ## ]]\nfinish"} {
		if !strings.Contains(traj, want) {
			t.Errorf("trajectory lacks %q:\n%s", want, traj)
		}
	}
	reqs := model.Requests()
	sys := text(reqs[0].Messages[0])
	for _, want := range []string{"(1) weather, whose description is <desc>Current weather in a city.</desc>", "(2) finish", "Literal['weather', 'finish']"} {
		if !strings.Contains(sys, want) {
			t.Errorf("react system message lacks %q", want)
		}
	}
	if len(reqs[0].Tools) != 2 || reqs[0].Tools[0].Function.Name != "weather" {
		t.Errorf("native tools offered = %+v", reqs[0].Tools)
	}
	if !strings.Contains(text(reqs[3].Messages[1]), "[[ ## observation_1 ## ]]\nsunny in Paris") || len(reqs[3].Tools) != 0 {
		t.Error("extract step did not get the trajectory, or was offered tools")
	}
	if len(res.Trace) != 4 || res.Trace[3].Predict != agent.Extract.Predict {
		t.Errorf("trace = %d steps", len(res.Trace))
	}
}

func TestReActNativeToolCalls(t *testing.T) {
	var calls []string
	agent, err := NewReAct(MustParse("question -> answer"), weatherTools(&calls), 5)
	if err != nil {
		t.Fatal(err)
	}
	call := func(name, args string) llms.ToolCall {
		return llms.ToolCall{ID: name, Type: "function", FunctionCall: &llms.FunctionCall{Name: name, Arguments: args}}
	}
	model := lmtest.NewScripted([]lmtest.Output{
		{ToolCalls: []llms.ToolCall{call("weather", `{"city":"Oslo"}`), call("weather", `not json`)}},
		{ToolCalls: []llms.ToolCall{call("finish", "")}},
		{Text: reply("reasoning", "r", "answer", "cold")},
	})
	res, err := Execute(t.Context(), model, agent, Values{"question": "q"})
	if err != nil {
		t.Fatal(err)
	}
	second := model.Requests()[1].Messages
	if n := len(second); n != 5 || second[2].Role != llms.ChatMessageTypeAI || second[3].Role != llms.ChatMessageTypeTool ||
		second[3].Parts[0].(llms.ToolCallResponse).Content != "sunny in Oslo" || second[3].Parts[0].(llms.ToolCallResponse).ToolCallID != "weather" {
		t.Errorf("second request does not carry the tool calls and results: %+v", second[2:])
	}
	traj := res.Outputs["trajectory"].(Trajectory).String()
	if res.Outputs["answer"] != "cold" || strings.Join(calls, ",") != "weather:Oslo" ||
		!strings.Contains(traj, "sunny in Oslo") || !strings.Contains(traj, "arguments are not a JSON object") {
		t.Errorf("outputs %v, calls %v", res.Outputs, calls)
	}
}

func TestReActIterationBoundAndParseFailure(t *testing.T) {
	var calls []string
	agent, err := NewReAct(MustParse("question -> answer"), weatherTools(&calls), 2)
	if err != nil {
		t.Fatal(err)
	}
	step := reply("next_thought", "again", "next_tool_name", "weather", "next_tool_args", `{"city": "Rome"}`)
	model := lmtest.Texts(step, step, reply("reasoning", "r", "answer", "a"))
	if _, err := Execute(t.Context(), model, agent, Values{"question": "q"}); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 || model.Calls() != 3 {
		t.Errorf("%d tool calls, %d model calls; want 2 and 3", len(calls), model.Calls())
	}

	agent.React.opts.Retries = -1
	model = lmtest.Texts("garbage", reply("reasoning", "r", "answer", "from nothing"))
	res, err := Execute(t.Context(), model, agent, Values{"question": "q"})
	if err != nil || res.Outputs["answer"] != "from nothing" {
		t.Errorf("unparsable step: %v, %v", res.Outputs, err)
	}

	if _, err := NewReAct(MustParse("q -> a"), []Tool{{Name: "finish"}}, 1); !errors.Is(err, ErrReservedTool) {
		t.Errorf("finish tool: %v", err)
	}
}

func TestBestOfN(t *testing.T) {
	model := lmtest.NewScripted(nil, lmtest.WithRespond(func(req *lm.Request) lmtest.Output {
		if req.RolloutID == "attempt-1" {
			return lmtest.Output{Err: lm.ErrUnavailable}
		}
		return lmtest.Output{Text: reply("answer", req.RolloutID), Usage: lm.Usage{CompletionTokens: 1}}
	}))
	p := NewPredict(MustParse("question -> answer"), PredictOptions{})
	scores := map[string]float64{"attempt-0": 0.2, "attempt-2": 0.9, "attempt-3": 0.5}
	reward := func(_, out Values) float64 { return scores[out["answer"].(string)] }

	best := &BestOfN{Module: p, N: 4, Reward: reward, Threshold: 1}
	res, err := Execute(t.Context(), model, best, Values{"question": "q"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outputs["answer"] != "attempt-2" || model.Calls() != 4 {
		t.Errorf("best = %v after %d calls", res.Outputs, model.Calls())
	}
	if len(res.Trace) != 1 || res.Trace[0].Outputs["answer"] != "attempt-2" || res.Usage.Calls != 3 {
		t.Errorf("trace %+v, usage %+v", res.Trace, res.Usage)
	}
	for _, req := range model.Requests() {
		if req.Temperature != 1 {
			t.Errorf("attempt %s at temperature %v", req.RolloutID, req.Temperature)
		}
	}

	early := &BestOfN{Module: p, N: 4, Reward: reward, Threshold: 0.1}
	res, err = Execute(t.Context(), model, early, Values{"question": "q"})
	if err != nil || res.Outputs["answer"] != "attempt-0" {
		t.Errorf("threshold met first: %v, %v", res.Outputs, err)
	}

	failing := lmtest.NewScripted(nil, lmtest.WithRespond(func(*lm.Request) lmtest.Output { return lmtest.Output{Err: lm.ErrUnavailable} }))
	if _, err := Execute(t.Context(), failing, best, Values{"question": "q"}); !errors.Is(err, ErrAllAttemptsFailed) || !errors.Is(err, lm.ErrUnavailable) {
		t.Errorf("all failed: %v", err)
	}
}

func TestRefineSendsAdvice(t *testing.T) {
	model := lmtest.NewScripted(nil, lmtest.WithRespond(func(req *lm.Request) lmtest.Output {
		last := text(req.Messages[len(req.Messages)-1])
		switch {
		case strings.Contains(last, "[[ ## program_inputs ## ]]"):
			return lmtest.Output{Text: reply("advice", "be longer")}
		case strings.Contains(last, "[[ ## hint_ ## ]]\nbe longer"):
			return lmtest.Output{Text: reply("answer", "a much longer answer")}
		}
		return lmtest.Output{Text: reply("answer", "short")}
	}))
	r := NewRefine(NewPredict(MustParse("question -> answer"), PredictOptions{}), 3,
		func(_, out Values) float64 { return float64(len(out["answer"].(string))) / 20 }, 0.9)
	res, err := Execute(t.Context(), model, r, Values{"question": "q"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outputs["answer"] != "a much longer answer" || model.Calls() != 3 {
		t.Errorf("outputs %v after %d calls", res.Outputs, model.Calls())
	}
	if ps := Predictors(r); len(ps) != 1 {
		t.Errorf("refine predictors = %+v", ps)
	}
}
