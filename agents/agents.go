package agents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kowai/kowai/internal/jsonschema"
	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
)

// ErrUnknownType means no registered type has the requested name.
var ErrUnknownType = errors.New("agents: unknown agent type")

// ErrInvalidConfig means an agent's configuration does not fit its type's schema.
var ErrInvalidConfig = errors.New("agents: invalid agent configuration")

// ErrInvalidProgram means compiled program state cannot run as an agent's program:
// it does not parse, is of another format or program, or does not fit the
// program's predictors and fields.
var ErrInvalidProgram = errors.New("agents: invalid compiled program state")

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
	// Config is a zero value of the type's own configuration struct (nil: none). Its
	// JSON schema, derived from the struct (json names, and doc, minimum, maximum, enum
	// and default tags), is the one source of the type's keys: the registry adds the
	// common keys of Config, publishes the whole schema and validates agents against
	// it. TypeOf sets it and decodes the config for New.
	Config any
	// FixedSignature: the type's program runs signatures of its own, so an agent may not
	// set another (CheckSignature refuses it).
	FixedSignature bool
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
	// History holds the conversation's earlier messages, oldest first, as the
	// session keeps them (nil: none). A program hands it to a History input as a
	// signatures.Chat, which reads it in place.
	History signatures.Conversation
	// HistoryCache, when set, keeps History's rendered turns between the replies
	// of one conversation (nil: none); a program passes it on with History.
	HistoryCache *signatures.ChatCache
	// Summary summarises what is older than History.
	Summary string
	// Stream, when set, receives the reply's text as the model writes it. An error
	// aborts the call.
	Stream func(ctx context.Context, chunk string) error
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
	BusyPolicy string `json:"busy_policy,omitempty" enum:"enqueue,reject,interrupt" default:"enqueue" doc:"What to do with a message that arrives while a reply is running."`
	// HistoryWindow is how many earlier messages are given to the model.
	HistoryWindow int `json:"history_window,omitempty" minimum:"0" maximum:"200" default:"20" doc:"Earlier messages given to the model."`
	// Temperature and MaxTokens tune the model calls (zero: provider default).
	Temperature float64 `json:"temperature,omitempty" minimum:"0" maximum:"2"`
	MaxTokens   int     `json:"max_tokens,omitempty" minimum:"0"`
	// MaxConcurrency bounds the replies the agent generates at once (zero: the
	// runtime's default).
	MaxConcurrency int `json:"max_concurrency,omitempty" minimum:"0" maximum:"64" doc:"Replies generated at once."`
	// Raw is the whole configuration object, for type-specific keys.
	Raw json.RawMessage `json:"-"`
}

// DefaultHistoryWindow is the history window of an agent that sets none.
const DefaultHistoryWindow = 20

// commonSchema describes the keys of Config, from its fields.
var commonSchema = jsonschema.For[Config]()["properties"].(map[string]any)

// parseConfig validates raw against schema (the common keys and the type's own) and
// returns the Config.
func parseConfig(raw json.RawMessage, schema map[string]any) (Config, error) {
	cfg := Config{Raw: raw}
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		cfg.Raw = json.RawMessage("{}")
		raw = cfg.Raw
	}
	if errs := jsonschema.Validate(schema, raw); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = strings.TrimPrefix(e.Field+": "+e.Message, ": ")
		}
		return Config{}, fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(msgs, "; "))
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if cfg.BusyPolicy == "" {
		cfg.BusyPolicy = BusyEnqueue
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if _, set := fields["history_window"]; !set {
		cfg.HistoryWindow = DefaultHistoryWindow
	}
	return cfg, nil
}

// TypeOf makes a Type whose own configuration is the struct C: the keys and their JSON
// schema come from C's fields (see Type.Config), and newProgram gets the agent's
// configuration decoded into a C, checked against that schema, with the default tag's
// value for each key the agent leaves out. The program's common settings are in
// def.Config.
func TypeOf[C any](name, description, signature string, newProgram func(def Definition, cfg C) (Program, error)) Type {
	var zero C
	// A key the agent leaves out takes its default tag's value.
	defaults := map[string]any{}
	props, _ := jsonschema.For[C]()["properties"].(map[string]any)
	for k, p := range props {
		if d, ok := p.(map[string]any)["default"]; ok {
			defaults[k] = d
		}
	}
	initial, err := json.Marshal(defaults)
	if err != nil {
		// Defaults are strings, numbers and booleans parsed from tags.
		panic(fmt.Sprintf("agents: defaults of %s: %v", name, err))
	}
	return Type{Name: name, Description: description, Signature: signature, Config: zero,
		New: func(def Definition) (Program, error) {
			var cfg C
			if err := json.Unmarshal(initial, &cfg); err != nil {
				return nil, fmt.Errorf("%w: defaults: %w", ErrInvalidConfig, err)
			}
			if err := json.Unmarshal(def.Config.Raw, &cfg); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
			}
			return newProgram(def, cfg)
		}}
}
