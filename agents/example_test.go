package agents_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/offline"
)

// Translator is the README's worked example of a new agent type: it
// translates each message into the language its agent's config names.
func Translator() agents.Type {
	const sig = "text, target_language -> translation"
	return agents.Type{
		Name:        "translator",
		Description: "Translates each message into the agent's target language.",
		Signature:   sig,
		ConfigKeys: map[string]any{
			"target_language": map[string]any{"type": "string", "description": "Language to translate into."},
		},
		New: func(def agents.Definition) (agents.Program, error) {
			var own struct {
				TargetLanguage string `json:"target_language"`
			}
			if err := json.Unmarshal(def.Config.Raw, &own); err != nil {
				return nil, err
			}
			if own.TargetLanguage == "" {
				own.TargetLanguage = "French"
			}
			s, err := signatures.Parse(sig)
			if err != nil {
				return nil, err
			}
			if def.Instructions != "" {
				s = s.WithInstructions(def.Instructions)
			}
			p := signatures.NewPredict(s, signatures.PredictOptions{Temperature: def.Config.Temperature})
			return agents.ProgramFunc(func(ctx context.Context, model lm.LM, in agents.Input) (agents.Output, error) {
				res, err := signatures.Execute(ctx, model, p, signatures.Values{"text": in.Message, "target_language": own.TargetLanguage})
				if err != nil {
					return agents.Output{Usage: res.Usage}, err
				}
				return agents.Output{Text: fmt.Sprint(res.Outputs["translation"]), Usage: res.Usage, Model: model.Name()}, nil
			}), nil
		},
	}
}

func Example_newAgentType() {
	// Register the type next to the built-ins (cmd/kowai passes the registry
	// to actors.Deps.Types; or add Translator() to agents.Builtins).
	reg, err := agents.NewRegistry(append(agents.Builtins(time.Now), Translator())...)
	if err != nil {
		panic(err)
	}
	// The gateway validates an agent's config against the type's schema.
	if _, err := reg.ParseConfig("translator", json.RawMessage(`{"target_language": 42}`)); err != nil {
		fmt.Println("bad config refused")
	}
	// An agent grain compiles its definition once, then answers with it.
	_, program, err := reg.Compile(agents.Spec{ID: "a1", Name: "To German", Type: "translator",
		Config: json.RawMessage(`{"target_language": "German"}`)})
	if err != nil {
		panic(err)
	}
	model := lm.NewProvider("offline", "kowai-offline", offline.New())
	out, err := program.Reply(context.Background(), model, agents.Input{Message: "Good morning"})
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.Contains(out.Text, "offline"), out.Model)
	// Output:
	// bad config refused
	// true offline:kowai-offline
}
