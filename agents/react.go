package agents

import (
	"context"
	"encoding/json"
	"fmt"
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
	t := TypeOf("react", "A reasoning agent that calls tools (calculator, clock) step by step before it answers.",
		"message, history -> response", func(def Definition, cfg ReactConfig) (Program, error) {
			return newReact(def, tools, max(cfg.MaxSteps, 0))
		})
	t.Tools, t.Metric, t.FixedSignature = tools, signatures.F1("response"), true
	return t
}

// ReactConfig is the react type's own configuration.
type ReactConfig struct {
	MaxSteps int `json:"max_steps,omitempty" minimum:"1" maximum:"20" default:"5" doc:"Tool calls allowed per reply."`
}

// newReact builds the agent's program on signatures.ReAct, with the kowai tools
// offered both through the marker protocol and natively.
func newReact(def Definition, tools []Tool, maxSteps int) (Program, error) {
	if maxSteps == 0 {
		maxSteps = DefaultMaxSteps
	}
	sig, err := signatures.Parse("message, history -> response")
	if err != nil {
		return nil, err
	}
	task := def.Instructions
	if task == "" {
		task = "Answer the user's message."
	}
	sigTools := make([]signatures.Tool, len(tools))
	for i, t := range tools {
		var params map[string]any
		if err := json.Unmarshal(t.Args, &params); err != nil {
			return nil, fmt.Errorf("tool %s: arguments schema: %w", t.Name, err)
		}
		sigTools[i] = signatures.Tool{Name: t.Name, Desc: t.Description, Parameters: params, Call: t.Call}
	}
	agent, err := signatures.NewReActWith(sig.WithInstructions(task), sigTools, maxSteps,
		signatures.PredictOptions{Temperature: def.Config.Temperature, MaxTokens: def.Config.MaxTokens})
	if err != nil {
		return nil, err
	}
	return moduleProgram{module: agent, reply: func(ctx context.Context, model lm.LM, in Input) (Output, error) {
		vals := signatures.Values{"message": in.Message, "history": signatures.Chat{Messages: in.History, Input: "message", Output: "response", Cache: in.HistoryCache}}
		outs, usage, err := execute(ctx, model, agent, vals, streamTo("response", "extract", in.Stream)...)
		if err != nil {
			return Output{Usage: usage}, err
		}
		return textOutput(outs, usage, model, "response"), nil
	}}, nil
}
