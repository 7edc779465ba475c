// Package programs holds kowai's ready-made signature programs and the
// Registry through which commands (kowai optimize) and agent types find
// them by name.
//
// # Programs
//
//   - chat: "message, history -> response", one predictor.
//   - chat-multistage: the original design's chat pipeline: a context
//     analysis (intent, relevant context, tone), a response written with
//     step-by-step reasoning, and a quality check scoring it in [0, 1].
//   - boolqa: "question -> answer: bool", with the example data set in the
//     repository's examples/ directory.
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
//	entry, err := reg.Get("chat")
//	prog := entry.New()
//	res, err := signatures.Execute(ctx, model, prog, signatures.Values{"message": "hi"})
package programs
