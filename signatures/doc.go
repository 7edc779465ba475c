// Package signatures is DSPy's programming model in Go: a model call is
// described by a typed signature, not a hand-written prompt, and programs of
// such calls are evaluated and optimized from data.
//
// # Signatures
//
// A Signature holds ordered input and output fields (name, type,
// description) and instructions. Build one from DSPy's string form, or from
// two Go structs:
//
//	sig := signatures.MustParse("question, context: list[str] -> answer: int")
//	sig, err := signatures.SignatureFor[QuestionIn, AnswerOut]()
//
// Types are str (the default), int, float, bool, list[T], dict, enums
// written as Literal['a', 'b'], and History (an untyped input named
// "history" is one). Signatures are immutable: WithInstructions, Prepend,
// Append and Delete return new values. Default instructions follow DSPy:
// "Given the fields `question`, `context`, produce the fields `answer`."
//
// # Prompts and parsing
//
// Render produces DSPy's ChatAdapter messages: a system message describing
// the fields with [[ ## name ## ]] markers and type notes, demos and history
// turns as user/assistant pairs, and a final user message with the inputs.
// ParseReply finds markers anywhere in the reply (the first occurrence of a
// field wins) and coerces each value by type; a missing or ill-typed field
// is a *ParseError that keeps the raw reply. Predict retries a bounded number
// of times, sending the bad reply back with a correction, and can fall back
// to JSON mode.
//
// # Modules, runs and traces
//
// A Module maps input Values to output Values. Predict is the basic one;
// ChainOfThought adds a `reasoning` output. Modules take their model from a
// Run carried by the context, which also records a TraceStep per predictor
// call (inputs, outputs, usage, latency) and sums usage:
//
//	p := signatures.NewPredict(sig, signatures.PredictOptions{})
//	res, err := signatures.Execute(ctx, model, p, signatures.Values{"question": "Why?", "context": []string{}})
//	// res.Outputs["answer"], res.Trace, res.Usage
//
// Typed wraps a module so callers pass and receive Go structs. A
// StreamListener on the Run receives one output field's text as it is
// generated, markers stripped, while the full reply is still parsed.
//
// # Programs
//
// A program is a struct of modules. Predictors lists its predictors, by the
// PredictorLister interface when the program implements it, otherwise by
// reflection over exported fields, named by field path ("respond.predict").
// Those names key the saved state.
package signatures
