// Package programs holds kowai's ready-made signature programs and the
// Registry through which kowai optimize finds a program by name.
//
// # Programs
//
//   - MultiStageChat: the original design's chat pipeline: a context
//     analysis (intent, relevant context, tone), a response written with
//     step-by-step reasoning, and a quality check scoring it in [0, 1]. It
//     is what the advanced-chat agent type runs, and is registered under
//     that name by the agent catalog (agents.Registry.Programs), not here:
//     one program has one name.
//   - boolqa: "question -> answer: bool", and sentiment, with the example
//     data sets in the repository's examples/ directory (Builtin).
//
// Each program is a struct of modules, so signatures.Predictors finds its
// predictors by field path ("respond.predict") and saved state loads onto a
// fresh instance.
//
// # Registry
//
// A Registry is built by its owner, never global:
//
//	reg := programs.Builtin()
//	entry, err := reg.Get("boolqa")
//	prog := entry.New()
//	res, err := signatures.Execute(ctx, model, prog, signatures.Values{"question": "Is water wet?"})
package programs
