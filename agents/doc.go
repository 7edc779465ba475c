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
// every node (BuiltinID); the actors runtime creates the missing ones at startup, and
// DefaultAgentID is the agent of a conversation that names none.
//
// # Configuration
//
// An agent's config is a JSON object. Every type understands busy_policy (enqueue,
// reject or interrupt: what the session does with a message that arrives while a reply
// runs), history_window, temperature, max_tokens and max_concurrency; a type adds its
// own keys with Type.Config (a struct). Unknown keys, ill-typed values and values out
// of their bounds are rejected (ErrInvalidConfig). Registry.List publishes each type's
// full JSON schema for GET /api/v1/agents/types.
//
// An agent's own instructions replace its type's in every built-in type. Its own
// signature is honoured by chat (and by types built with SignatureProgram); advanced-chat,
// analysis and react run signatures of their own (FixedSignature), so an agent of those
// types that sets another signature is refused (CheckSignature) rather than silently run
// with the type's.
//
// # Adding a type
//
// A type is one function, in any package, returning a Type. TypeOf builds one from a
// typed configuration struct, whose JSON schema (json names, doc, minimum, maximum, enum
// and default tags) is the one source of the type's keys, and SignatureProgram answers
// with the agent's own signature and instructions; examples/translator is a complete
// type in about 15 lines. Register it with the built-ins,
// NewRegistry(append(Builtins(time.Now), translator.Type())...), and pass the registry
// to the runtime (cmd/kowai does, through node.Options.Types). Programs must be safe for concurrent use and should
// stream their reply text to Input.Stream when they can.
package agents
