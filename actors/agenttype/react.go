package agenttype

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
)

// DefaultMaxSteps bounds the tool calls of one ReAct reply when an agent sets none.
const DefaultMaxSteps = 5

// React is a tool-using agent in DSPy's ReAct style: a step predictor chooses a thought,
// a tool and its arguments; the tool's observation joins the trajectory; when it chooses
// "finish" (or max_steps is reached) an extract predictor writes the response from the
// trajectory. Tools: the calculator and a clock reading now.
func React(now func() time.Time) Type {
	tools := []Tool{Calculator(), Clock(now)}
	return Type{
		Name:        "react",
		Description: "A reasoning agent that calls tools (calculator, clock) step by step before it answers.",
		Signature:   "message, history -> response",
		Tools:       tools,
		ConfigKeys: map[string]any{
			"max_steps": map[string]any{"type": "integer", "minimum": 1, "maximum": 20, "default": DefaultMaxSteps,
				"description": "Tool calls allowed per reply."},
		},
		New: func(def Definition) (Program, error) {
			var own struct {
				MaxSteps int `json:"max_steps"`
			}
			if err := json.Unmarshal(def.Config.Raw, &own); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
			}
			return newReact(def, tools, max(own.MaxSteps, 0))
		},
	}
}

type react struct {
	tools    map[string]Tool
	maxSteps int
	step     *signatures.Predict
	extract  *signatures.Predict
}

func newReact(def Definition, tools []Tool, maxSteps int) (*react, error) {
	if maxSteps == 0 {
		maxSteps = DefaultMaxSteps
	}
	names := make([]string, 0, len(tools)+1)
	var desc strings.Builder
	r := &react{tools: map[string]Tool{}, maxSteps: maxSteps}
	for i, t := range tools {
		r.tools[t.Name] = t
		names = append(names, t.Name)
		fmt.Fprintf(&desc, "(%d) %s, whose arguments are %s: %s\n", i+1, t.Name, t.Args, t.Description)
	}
	names = append(names, "finish")
	fmt.Fprintf(&desc, "(%d) finish, whose arguments are {}: marks that the trajectory holds what the response needs.\n", len(names))

	task := def.Instructions
	if task == "" {
		task = "Answer the user's message."
	}
	stepSig, err := signatures.New(
		[]signatures.Field{{Name: "message"}, {Name: "history", Type: signatures.HistoryType}, {Name: "trajectory"}},
		[]signatures.Field{{Name: "next_thought"}, {Name: "next_tool_name", Type: signatures.Enum(names...)},
			{Name: "next_tool_args", Type: signatures.Dict}},
		task+"\n\nYou are an agent. In each step, given the trajectory so far, write your next thought and "+
			"choose the next tool with its arguments in JSON. Tools:\n"+desc.String())
	if err != nil {
		return nil, err
	}
	opts := signatures.PredictOptions{Temperature: def.Config.Temperature, MaxTokens: def.Config.MaxTokens}
	r.step = signatures.NewPredict(stepSig, withName(opts, "step"))
	r.extract = signatures.NewPredict(signatures.MustParse("message, history, trajectory -> response").
		WithInstructions(task+"\n\nWrite the response to the message from the trajectory of tool calls."), withName(opts, "extract"))
	return r, nil
}

func withName(o signatures.PredictOptions, name string) signatures.PredictOptions {
	o.Name = name
	return o
}

// Forward runs the steps and the extraction; the outputs are the response and the
// trajectory.
func (r *react) Forward(ctx context.Context, in signatures.Values) (signatures.Values, error) {
	var traj strings.Builder
	for i := range r.maxSteps {
		step, err := r.step.Forward(ctx, signatures.Values{"message": in["message"], "history": in["history"], "trajectory": traj.String()})
		if err != nil {
			return nil, fmt.Errorf("react step %d: %w", i+1, err)
		}
		name, _ := step["next_tool_name"].(string)
		args, _ := step["next_tool_args"].(map[string]any)
		argsJSON, _ := json.Marshal(args)
		fmt.Fprintf(&traj, "[[ thought_%d ]] %v\n[[ tool_%d ]] %s %s\n", i+1, step["next_thought"], i+1, name, argsJSON)
		if name == "finish" {
			break
		}
		observation := r.call(ctx, name, args)
		fmt.Fprintf(&traj, "[[ observation_%d ]] %s\n", i+1, observation)
	}
	out, err := r.extract.Forward(ctx, signatures.Values{"message": in["message"], "history": in["history"], "trajectory": traj.String()})
	if err != nil {
		return nil, fmt.Errorf("react extract: %w", err)
	}
	return signatures.Values{"response": out["response"], "trajectory": traj.String()}, nil
}

// call runs one tool; a failure becomes the observation so the model can correct itself.
func (r *react) call(ctx context.Context, name string, args map[string]any) string {
	t, ok := r.tools[name]
	if !ok {
		return "error: no tool named " + name
	}
	res, err := t.Call(ctx, args)
	if err != nil {
		return "error: " + err.Error()
	}
	return res
}

// Reply implements Program.
func (r *react) Reply(ctx context.Context, model lm.LM, in Input) (Output, error) {
	vals := signatures.Values{"message": in.Message, "history": history(in.History, "message", "response")}
	res, err := signatures.Execute(ctx, model, r, vals, streamTo("response", "extract", in.Stream)...)
	if err != nil {
		return Output{Usage: res.Usage}, err
	}
	return textOutput(res, model, "response"), nil
}
