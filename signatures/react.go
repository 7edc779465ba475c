package signatures

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/tmc/langchaingo/llms"
)

// Tool is a function a ReAct agent may call.
type Tool struct {
	// Name identifies the tool; "finish" is reserved.
	Name string
	// Desc tells the model what the tool does.
	Desc string
	// Parameters is the JSON schema of the arguments object; nil means no
	// arguments.
	Parameters map[string]any
	// Call runs the tool. Its error becomes the observation, so the agent
	// can recover.
	Call func(ctx context.Context, args map[string]any) (string, error)
}

// ErrReservedTool means a tool is named "finish".
var ErrReservedTool = errors.New("signatures: the tool name \"finish\" is reserved")

const finishTool = "finish"

// ReAct is DSPy's reasoning-and-acting agent. Each iteration its react
// predictor sees the inputs and the trajectory so far and picks
// next_thought, next_tool_name and next_tool_args; the tool's result (or
// error) is appended to the trajectory as an observation. The loop ends on
// "finish" or after MaxIters, and the extract ChainOfThought produces the
// signature's outputs from the trajectory.
//
// Tools are also offered to the model for native tool calling: when it
// answers with tool calls instead of markers, those calls are executed and
// the reply text is taken as the thought.
type ReAct struct {
	// React picks the next step; Extract produces the final outputs.
	React   *Predict
	Extract *ChainOfThought
	// MaxIters bounds the tool-calling iterations.
	MaxIters int
	// NoNativeTools stops offering the tools to the model natively (for
	// providers that reject tool definitions).
	NoNativeTools bool

	tools map[string]Tool
	defs  []llms.Tool
}

// NewReAct builds a ReAct agent for sig with tools; maxIters <= 0 means 20.
func NewReAct(sig Signature, tools []Tool, maxIters int) (*ReAct, error) {
	return NewReActWith(sig, tools, maxIters, PredictOptions{})
}

// NewReActWith is NewReAct with the model options (temperature, max tokens,
// retries, model) of both predictors; their names are "react" and "extract".
func NewReActWith(sig Signature, tools []Tool, maxIters int, opts PredictOptions) (*ReAct, error) {
	if maxIters <= 0 {
		maxIters = 20
	}
	byName := map[string]Tool{}
	var names []string
	for _, t := range tools {
		if t.Name == finishTool {
			return nil, ErrReservedTool
		}
		if _, dup := byName[t.Name]; dup || !validName(t.Name) {
			return nil, fmt.Errorf("%w: tool name %q is duplicate or not an identifier", ErrInvalidSignature, t.Name)
		}
		byName[t.Name] = t
		names = append(names, t.Name)
	}
	outputs := make([]string, len(sig.outputs))
	for i, f := range sig.outputs {
		outputs[i] = "`" + f.Name + "`"
	}
	inputs := make([]string, len(sig.inputs))
	for i, f := range sig.inputs {
		inputs[i] = "`" + f.Name + "`"
	}
	all := append(slices.Clone(tools), Tool{Name: finishTool,
		Desc: "Marks the task as complete. That is, signals that all information for producing the outputs, i.e. " +
			strings.Join(outputs, ", ") + ", are now available to be extracted."})
	var instr []string
	if sig.instructions != "" {
		instr = append(instr, sig.instructions+"\n")
	}
	instr = append(instr,
		"You are an Agent. In each episode, you will be given the fields "+strings.Join(inputs, ", ")+" as input. And you can see your past trajectory so far.",
		"Your goal is to use one or more of the supplied tools to collect any necessary information for producing "+strings.Join(outputs, ", ")+".\n",
		"To do this, you will interleave next_thought, next_tool_name, and next_tool_args in each turn, and also when finishing the task.",
		"After each tool call, you receive a resulting observation, which gets appended to your trajectory.\n",
		"When writing next_thought, you may reason about the current situation and plan for future steps.",
		"When selecting the next_tool_name and its next_tool_args, the tool must be one of:\n")
	var defs []llms.Tool
	for i, t := range all {
		params := t.Parameters
		if params == nil {
			params = map[string]any{"type": "object", "properties": map[string]any{}}
		}
		instr = append(instr, fmt.Sprintf("(%d) %s, whose description is <desc>%s</desc>. It takes arguments %s.", i+1, t.Name, t.Desc, compactJSON(params["properties"])))
		defs = append(defs, llms.Tool{Type: "function", Function: &llms.FunctionDefinition{Name: t.Name, Description: t.Desc, Parameters: params}})
	}
	instr = append(instr, "When providing `next_tool_args`, the value inside the field must be in JSON format")

	reactSig, err := New(append(sig.Inputs(), Field{Name: "trajectory"}), []Field{
		{Name: "next_thought"},
		{Name: "next_tool_name", Type: Enum(append(names, finishTool)...)},
		{Name: "next_tool_args", Type: Dict},
	}, strings.Join(instr, "\n"))
	if err != nil {
		return nil, err
	}
	extractSig, err := New(append(sig.Inputs(), Field{Name: "trajectory"}), sig.Outputs(), sig.instructions)
	if err != nil {
		return nil, err
	}
	reactOpts, extractOpts := opts, opts
	reactOpts.Name, extractOpts.Name = "react", "extract"
	extract, err := NewChainOfThought(extractSig, extractOpts)
	if err != nil {
		return nil, err
	}
	return &ReAct{React: NewPredict(reactSig, reactOpts), Extract: extract, MaxIters: maxIters, tools: byName, defs: defs}, nil
}

// Predictors returns "react" and "extract.predict".
func (r *ReAct) Predictors() []NamedPredictor {
	return []NamedPredictor{{Name: "react", Predict: r.React}, {Name: "extract.predict", Predict: r.Extract.Predict}}
}

// TrajectoryStep is one step of a ReAct trajectory, as DSPy keys it:
// thought_i, tool_name_i, tool_args_i, observation_i.
type TrajectoryStep struct {
	// Index is i, kept when older steps are truncated away.
	Index int `json:"index"`
	// Thought, ToolName, ToolArgs and Observation are the step's parts.
	Thought     string         `json:"thought"`
	ToolName    string         `json:"tool_name"`
	ToolArgs    map[string]any `json:"tool_args"`
	Observation string         `json:"observation"`
}

// Trajectory is a ReAct run's steps, oldest first. ReAct returns it under
// "trajectory" in its outputs; String renders it as the model sees it.
type Trajectory []TrajectoryStep

// String renders the trajectory as DSPy's ReAct._format_trajectory does:
// the ChatAdapter's input blocks over the keys thought_i, tool_name_i,
// tool_args_i and observation_i.
func (tr Trajectory) String() string {
	vals := make([]namedValue, 0, 4*len(tr))
	for _, s := range tr {
		args := s.ToolArgs
		if args == nil {
			args = map[string]any{}
		}
		i := strconv.Itoa(s.Index)
		vals = append(vals,
			namedValue{name: "thought_" + i, value: s.Thought, text: true},
			namedValue{name: "tool_name_" + i, value: s.ToolName, text: true},
			namedValue{name: "tool_args_" + i, value: args, text: true},
			namedValue{name: "observation_" + i, value: s.Observation, text: true})
	}
	return userBlocks(vals, "", "", "")
}

// maxTruncations is how many times a step is retried with a shorter
// trajectory when the prompt exceeds the context window (DSPy's 3).
const maxTruncations = 3

// callTruncating runs call on the trajectory, dropping its oldest step and
// trying again when the model reports an exceeded context window, at most
// maxTruncations times, as DSPy's _call_with_potential_trajectory_truncation.
// It returns the trajectory that fitted.
func callTruncating[T any](tr Trajectory, call func(Trajectory) (T, error)) (T, Trajectory, error) {
	var zero T
	var last error
	for range maxTruncations {
		out, err := call(tr)
		if err == nil || !errors.Is(err, lm.ErrContextWindow) {
			return out, tr, err
		}
		last = err
		if len(tr) <= 1 {
			// As DSPy's truncate_trajectory: one step cannot be cut.
			return zero, tr, fmt.Errorf("react: the trajectory cannot be truncated below one step: %w", err)
		}
		tr = tr[1:]
	}
	return zero, tr, fmt.Errorf("react: the context window was exceeded even after %d attempts to truncate the trajectory: %w", maxTruncations, last)
}

// Forward runs the loop and the extraction. The outputs include the
// Trajectory under "trajectory" besides the signature's outputs. When the
// model reports an exceeded context window, the oldest steps are dropped
// (up to 3 times per call) and the run goes on; if that is not enough the
// loop ends and the outputs are extracted from what fits.
func (r *ReAct) Forward(ctx context.Context, in Values) (Values, error) {
	var steps Trajectory
	var conv []llms.MessageContent
	var tools []llms.Tool
	if !r.NoNativeTools {
		tools = r.defs
	}
	type stepOut struct {
		out   Values
		calls []llms.ToolCall
	}
loop:
	for idx := range r.MaxIters {
		res, kept, err := callTruncating(steps, func(tr Trajectory) (stepOut, error) {
			if len(tr) < len(steps) {
				// The native conversation repeats the dropped steps.
				conv = nil
			}
			stepIn := maps.Clone(in)
			stepIn["trajectory"] = tr.String()
			out, calls, err := r.React.call(ctx, stepIn, tools, conv)
			return stepOut{out, calls}, err
		})
		steps = kept
		if err != nil {
			if errors.Is(err, ErrParse) || errors.Is(err, lm.ErrContextWindow) {
				// As DSPy: an agent that cannot produce a step stops and
				// answers from what it has.
				break
			}
			return nil, err
		}
		out, calls := res.out, res.calls
		if calls != nil {
			// The native protocol: the model's tool calls, then one tool
			// message per call with its result.
			asked := llms.MessageContent{Role: llms.ChatMessageTypeAI}
			for _, c := range calls {
				asked.Parts = append(asked.Parts, c)
			}
			conv = append(conv, asked)
			for _, c := range calls {
				if c.FunctionCall == nil {
					continue
				}
				if c.FunctionCall.Name == finishTool {
					break loop
				}
				var args map[string]any
				obs := ""
				if err := json.Unmarshal([]byte(orEmptyObject(c.FunctionCall.Arguments)), &args); err != nil {
					obs = "Execution error in " + c.FunctionCall.Name + ": arguments are not a JSON object: " + err.Error()
				} else {
					obs = r.runTool(ctx, c.FunctionCall.Name, args)
				}
				steps = append(steps, TrajectoryStep{Index: r.nextIndex(steps, idx), ToolName: c.FunctionCall.Name, ToolArgs: args, Observation: obs})
				conv = append(conv, llms.MessageContent{Role: llms.ChatMessageTypeTool, Parts: []llms.ContentPart{
					llms.ToolCallResponse{ToolCallID: c.ID, Name: c.FunctionCall.Name, Content: obs},
				}})
			}
			continue
		}
		name, _ := out["next_tool_name"].(string)
		args, _ := out["next_tool_args"].(map[string]any)
		thought, _ := out["next_thought"].(string)
		step := TrajectoryStep{Index: r.nextIndex(steps, idx), Thought: thought, ToolName: name, ToolArgs: args}
		if name == finishTool {
			step.Observation = "Completed."
			steps = append(steps, step)
			break
		}
		step.Observation = r.runTool(ctx, name, args)
		steps = append(steps, step)
	}
	out, steps, err := callTruncating(steps, func(tr Trajectory) (Values, error) {
		extractIn := maps.Clone(in)
		extractIn["trajectory"] = tr.String()
		return r.Extract.Forward(ctx, extractIn)
	})
	if err != nil {
		return nil, err
	}
	out["trajectory"] = steps
	return out, nil
}

// nextIndex numbers a new step: one past the last, which the iteration
// count idx equals unless native calls added several steps in one turn.
func (r *ReAct) nextIndex(steps Trajectory, idx int) int {
	if len(steps) == 0 {
		return idx
	}
	return max(idx, steps[len(steps)-1].Index+1)
}

func orEmptyObject(s string) string {
	if strings.TrimSpace(s) == "" {
		return "{}"
	}
	return s
}

// runTool calls a tool; unknown tools and tool errors become observations.
func (r *ReAct) runTool(ctx context.Context, name string, args map[string]any) string {
	t, ok := r.tools[name]
	if !ok {
		return "Execution error: unknown tool " + name
	}
	res, err := t.Call(ctx, args)
	if err != nil {
		return "Execution error in " + name + ": " + err.Error()
	}
	return res
}
