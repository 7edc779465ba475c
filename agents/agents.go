package agents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
)

// ErrUnknownType means no registered type has the requested name.
var ErrUnknownType = errors.New("agents: unknown agent type")

// ErrInvalidConfig means an agent's configuration does not fit its type's schema.
var ErrInvalidConfig = errors.New("agents: invalid agent configuration")

// ErrInvalidType means a Type cannot be registered (no name, no constructor, a
// duplicate name).
var ErrInvalidType = errors.New("agents: invalid agent type")

// Type is a kind of agent: everything needed to list it, to validate an agent's
// configuration and to build the program that answers for an agent of this type.
type Type struct {
	// Name is the value of an agent's "type" field, e.g. "chat".
	Name string
	// Description says in one sentence what agents of this type do.
	Description string
	// Signature is the DSPy string form of the type's main signature, shown to users and
	// used when an agent does not set its own.
	Signature string
	// ConfigKeys are the JSON schema properties of the type's own configuration keys
	// (type, enum, minimum, maximum, description); the common keys of Config are added
	// by the registry, which publishes the whole schema.
	ConfigKeys map[string]any
	// Tools are the tools the type's program may call, listed for users.
	Tools []Tool
	// New builds the program of one agent. It runs when an agent grain activates or its
	// definition changes, never per message. A program that runs one signatures.Module
	// should say which (ModuleProgram), so kowai optimize can compile it.
	New func(def Definition) (Program, error)
	// Metric scores the type's program on a labeled example, for kowai optimize; nil
	// when the type is not optimized.
	Metric signatures.Metric
}

// ModuleProgram is a Program that runs one signatures.Module: the module is what kowai
// optimize compiles under the type's name (Registry.Programs), and the compiled state
// loads onto the same module.
type ModuleProgram interface {
	Program
	Module() signatures.Module
}

// moduleProgram is a ModuleProgram made of a module and the function that replies with
// it.
type moduleProgram struct {
	module signatures.Module
	reply  ProgramFunc
}

// Reply implements Program.
func (p moduleProgram) Reply(ctx context.Context, model lm.LM, in Input) (Output, error) {
	return p.reply(ctx, model, in)
}

// Module implements ModuleProgram.
func (p moduleProgram) Module() signatures.Module { return p.module }

// Definition is an agent as its program sees it.
type Definition struct {
	ID, Name, Type string
	// Instructions replace the type's default instructions when set.
	Instructions string
	// Signature is the agent's own signature string, or the type's.
	Signature string
	// Model is the agent's preferred model name, informational for now.
	Model  string
	Config Config
}

// Program answers one message of a conversation. Implementations must be safe for
// concurrent use: an agent runs several replies at once.
type Program interface {
	Reply(ctx context.Context, model lm.LM, in Input) (Output, error)
}

// ProgramFunc adapts a function to Program.
type ProgramFunc func(ctx context.Context, model lm.LM, in Input) (Output, error)

// Reply calls f.
func (f ProgramFunc) Reply(ctx context.Context, model lm.LM, in Input) (Output, error) {
	return f(ctx, model, in)
}

// Input is one message to answer, with its context.
type Input struct {
	Message string
	// History holds earlier turns, oldest first.
	History []Turn
	// Summary summarises what is older than History.
	Summary string
	// Stream, when set, receives the reply's text as the model writes it. An error
	// aborts the call.
	Stream func(ctx context.Context, chunk string) error
}

// Turn is one earlier exchange. A turn whose reply failed has an empty Assistant.
type Turn struct {
	User, Assistant string
}

// Output is a program's reply.
type Output struct {
	// Text is the reply shown to the user and stored in the log.
	Text string
	// Usage sums the model calls of the reply.
	Usage lm.Usage
	// Model is the "provider:model" that answered.
	Model string
	// Details holds structured outputs (analysis fields, a tool trajectory), stored with
	// the message as JSON; nil for none.
	Details map[string]any
}

// Tool is a function a tool-using program may call.
type Tool struct {
	Name        string
	Description string
	// Args is the JSON schema of the tool's arguments.
	Args json.RawMessage
	// Call runs the tool. Its error is shown to the model as the observation, so it must
	// be safe to show.
	Call func(ctx context.Context, args map[string]any) (string, error)
}

// Busy policies: what a session does with a message that arrives while a reply runs.
const (
	// BusyEnqueue answers it after the running reply (the default).
	BusyEnqueue = "enqueue"
	// BusyReject refuses it with a busy error.
	BusyReject = "reject"
	// BusyInterrupt cancels the running reply and answers the new message.
	BusyInterrupt = "interrupt"
)

// Config holds the configuration keys every agent type understands, plus the raw JSON
// for the type's own keys.
type Config struct {
	// BusyPolicy is BusyEnqueue, BusyReject or BusyInterrupt.
	BusyPolicy string `json:"busy_policy,omitempty"`
	// HistoryWindow is how many earlier messages are given to the model.
	HistoryWindow int `json:"history_window,omitempty"`
	// Temperature and MaxTokens tune the model calls (zero: provider default).
	Temperature float64 `json:"temperature,omitempty"`
	MaxTokens   int     `json:"max_tokens,omitempty"`
	// MaxConcurrency bounds the replies the agent generates at once (zero: the
	// runtime's default).
	MaxConcurrency int `json:"max_concurrency,omitempty"`
	// Raw is the whole configuration object, for type-specific keys.
	Raw json.RawMessage `json:"-"`
}

// DefaultHistoryWindow is the history window of an agent that sets none.
const DefaultHistoryWindow = 20

// commonSchema describes the keys of Config.
var commonSchema = map[string]any{
	"busy_policy": map[string]any{"type": "string", "enum": []string{BusyEnqueue, BusyReject, BusyInterrupt}, "default": BusyEnqueue,
		"description": "What to do with a message that arrives while a reply is running."},
	"history_window":  map[string]any{"type": "integer", "minimum": 0, "maximum": 200, "default": DefaultHistoryWindow, "description": "Earlier messages given to the model."},
	"temperature":     map[string]any{"type": "number", "minimum": 0, "maximum": 2},
	"max_tokens":      map[string]any{"type": "integer", "minimum": 0},
	"max_concurrency": map[string]any{"type": "integer", "minimum": 0, "maximum": 64, "description": "Replies generated at once."},
}

// parseConfig validates raw against the common keys and the type's own schema
// properties (type and enum of each, no unknown keys) and returns the Config.
func parseConfig(raw json.RawMessage, own map[string]any) (Config, error) {
	cfg := Config{Raw: raw}
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		cfg.Raw = json.RawMessage("{}")
		raw = cfg.Raw
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return Config{}, fmt.Errorf("%w: not a JSON object: %w", ErrInvalidConfig, err)
	}
	for name, v := range fields {
		prop, ok := commonSchema[name]
		if !ok {
			prop, ok = own[name]
		}
		if !ok {
			return Config{}, fmt.Errorf("%w: unknown key %q", ErrInvalidConfig, name)
		}
		if err := checkValue(name, prop.(map[string]any), v); err != nil {
			return Config{}, err
		}
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if cfg.BusyPolicy == "" {
		cfg.BusyPolicy = BusyEnqueue
	}
	if _, set := fields["history_window"]; !set {
		cfg.HistoryWindow = DefaultHistoryWindow
	}
	return cfg, nil
}

// checkValue checks the JSON type, enum and numeric bounds of one configuration value:
// the subset of JSON schema that configuration schemas use.
func checkValue(name string, prop map[string]any, v json.RawMessage) error {
	var val any
	if err := json.Unmarshal(v, &val); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidConfig, name, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, name, fmt.Sprintf(format, args...))
	}
	switch prop["type"] {
	case "string":
		s, ok := val.(string)
		if !ok {
			return bad("want a string")
		}
		if enum, ok := prop["enum"].([]string); ok && !slices.Contains(enum, s) {
			return bad("want one of %s", strings.Join(enum, ", "))
		}
	case "integer", "number":
		f, ok := val.(float64)
		if !ok || prop["type"] == "integer" && f != float64(int64(f)) {
			return bad("want a %s", prop["type"])
		}
		if lo, ok := prop["minimum"].(int); ok && f < float64(lo) {
			return bad("must be at least %d", lo)
		}
		if hi, ok := prop["maximum"].(int); ok && f > float64(hi) {
			return bad("must be at most %d", hi)
		}
	case "boolean":
		if _, ok := val.(bool); !ok {
			return bad("want true or false")
		}
	}
	return nil
}
