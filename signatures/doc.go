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
//
//	type QA struct{ Answer *signatures.ChainOfThought } // predictor "answer.predict"
//
//	func (q *QA) Forward(ctx context.Context, in signatures.Values) (signatures.Values, error) {
//		return q.Answer.Forward(ctx, in)
//	}
//
// # Agents and sampling
//
// ReAct loops over a react predictor (next_thought, next_tool_name,
// next_tool_args) and Tools until "finish" or an iteration bound, then
// extracts the outputs from the trajectory. Tools are also offered natively:
// a reply with tool calls is executed instead of parsed. Tool errors become
// observations. BestOfN samples a module several times (distinct rollout
// ids, temperature 1.0) and keeps the best by a Reward; Refine adds advice
// from a feedback predictor between attempts, passed as a `hint_` input.
//
// # Evaluation and optimization
//
// Evaluate runs a program over a data set with bounded parallelism and
// scores it with a Metric (ExactMatch, F1 or your own): 100 times the mean,
// with per-example results. LabeledFewShot installs labeled examples as
// demos; BootstrapFewShot follows DSPy: a teacher runs on the training
// examples and the traces the metric accepts become demos, seeded and
// reproducible:
//
//	rep, err := signatures.BootstrapFewShot{Metric: signatures.ExactMatch("answer")}.Compile(ctx, model, prog, train)
//
// # Saved state
//
// SaveState / WriteState capture each predictor's instructions, fields and
// demos as versioned JSON; LoadState installs them onto a freshly
// constructed program with the same predictors. The state's content hash
// (Version) is the program's version. ReadExamples reads JSONL data sets of
// {"inputs": {...}, "outputs": {...}} lines.
package signatures
