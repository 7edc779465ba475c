// Package agents is the registry of agent types: what kinds of agent kowai can run,
// how each validates its configuration, and the program that answers for an agent of
// that type. An agent (a row of the agents table) names its type; the agent grain
// compiles the row into a Program with Registry.Compile when it activates.
//
// # Shipped types
//
//   - chat: "message, history -> response", the original design's chat module;
//   - advanced-chat: context analysis -> response -> quality check (a score in [0, 1]);
//   - analysis: a structured analysis of a text (summary, sentiment, topics, key points);
//   - react: a ReAct loop over safe tools, a calculator (a syntax-tree evaluator, never
//     eval) and a UTC clock.
//
// Every type has a built-in agent (owner empty, visible to all) whose ID is the same on
// every node (BuiltinID); EnsureBuiltins creates the missing ones at startup, and
// DefaultAgentID is the agent of a conversation that names none.
//
// # Configuration
//
// An agent's config is a JSON object. Every type understands busy_policy (enqueue,
// reject or interrupt: what the session does with a message that arrives while a reply
// runs), history_window, temperature, max_tokens and max_concurrency; a type adds its
// own keys with Type.ConfigKeys. Unknown keys and ill-typed values are rejected
// (ErrInvalidConfig). Registry.List publishes each type's full JSON schema for
// GET /api/v1/agents/types.
//
// # Adding a type
//
// A type is one Go file: a function returning a Type with a name, a description, a
// signature and a New function that builds the program. A type made of one signature
// is a few lines; this one translates:
//
//	func Translator() agents.Type {
//		return agents.Type{
//			Name:        "translator",
//			Description: "Translates each message into the configured language.",
//			Signature:   "message -> translation",
//			ConfigKeys: map[string]any{"language": map[string]any{"type": "string"}},
//			New: func(def agents.Definition) (agents.Program, error) {
//				sig := signatures.MustParse(def.Signature)
//				p := signatures.NewPredict(sig, signatures.PredictOptions{})
//				return agents.ProgramFunc(func(ctx context.Context, model lm.LM, in agents.Input) (agents.Output, error) {
//					res, err := signatures.Execute(ctx, model, p, signatures.Values{"message": in.Message})
//					if err != nil {
//						return agents.Output{Usage: res.Usage}, err
//					}
//					return agents.Output{Text: res.Outputs["translation"].(string), Usage: res.Usage, Model: model.Name()}, nil
//				}), nil
//			},
//		}
//	}
//
// Register it next to the built-ins, in Builtins or by passing
// append(agents.Builtins(now), Translator()) to NewRegistry, and agents of type
// "translator" can be created over the API. Programs must be safe for concurrent use
// and should stream their reply text to Input.Stream when they can.
package agents
