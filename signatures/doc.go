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
// written as Literal['a', 'b'], tuple[A, B], Optional[T] (also T | None),
// Union[A, B] (also A | B), and History (an untyped input named "history"
// is one). A missing optional output parses as nil; Field.Default fills a
// missing input or output. Signatures are immutable: WithInstructions,
// AppendInstructions, Prepend, Append, Insert, WithUpdatedField and Delete
// return new values. Default instructions and field prefixes follow DSPy:
// "Given the fields `question`, `context`, produce the fields `answer`.",
// "URLAddress" -> "URL Address:".
//
// # Prompts and parsing
//
// Render produces DSPy's ChatAdapter messages: a system message describing
// the fields with [[ ## name ## ]] markers and type notes, demos and history
// turns as user/assistant pairs, and a final user message with the inputs.
// The bytes follow DSPy 3.3.1's ChatAdapter as its tests pin them: the
// field list's "(str): ", type notes with json.dumps schemas (", " and ": ",
// "type" first), list values of str inputs as "[1] «alpha»", floats as
// Python writes them (1.0), Literal options quoted as DSPy quotes them.
// ParseReply finds markers anywhere in the reply (the first occurrence of a
// field wins) and coerces each value by type, reading JSON or Python
// literals (single quotes, True/False/None, tuples, 123_456.789) as DSPy's
// json_repair and ast.literal_eval fallbacks do; a reply without markers
// that is one object keyed by the outputs is read too. A missing or
// ill-typed field is a *ParseError that keeps the raw reply. Predict
// retries a bounded number of times, sending the bad reply back with a
// correction, and can fall back to JSON mode.
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
// extracts the outputs from the trajectory, which the model sees as DSPy
// renders it ([[ ## thought_0 ## ]] blocks) and the caller gets as a
// Trajectory. When the model reports an exceeded context window
// (lm.ErrContextWindow), the oldest steps are dropped, up to 3 times per
// call, as DSPy does. Tools are also offered natively: a reply with tool
// calls is executed instead of parsed. Tool errors become observations.
// BestOfN samples a module several times (distinct rollout ids, temperature
// 1.0) and keeps the best by a Reward, tolerating FailCount failures;
// Refine adds advice from a feedback predictor between attempts, passed as
// a `hint_` input. Predict.Completions gives n samples,
// MultiChainComparison compares M attempts, and Parallel runs modules over
// a batch with bounded concurrency and MaxErrors.
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
// MIPROv2 and COPRO optimize instructions: COPRO by breadth × depth
// proposals scored on the train set, MIPROv2 by proposing instructions and
// bootstrapping demo sets, then searching their combinations with a seeded
// TPE over minibatch scores. Evaluate and BootstrapFewShot stop after
// MaxErrors failures; scores are rounded to 2 decimals; ExactMatch and F1
// accept a list of acceptable answers.
//
// # Saved state
//
// SaveState / WriteState capture each predictor's instructions, fields and
// demos as versioned JSON; LoadState installs them onto a freshly
// constructed program with the same predictors. The state's content hash
// (Version) is the program's version. ReadDSPyState maps the file DSPy's
// Module.save writes onto such a program (see its doc for the mapping).
// ReadExamples reads JSONL data sets of {"inputs": {...}, "outputs":
// {...}} lines.
//
// # Deliberate differences from DSPy
//
//   - Markers count anywhere in a reply, not only at line starts: models
//     glue them to the previous value.
//   - A parse failure is retried with the bad reply and a correction before
//     any JSON-mode fallback; DSPy retries once in JSON mode, blind.
//   - Truncated JSON is not repaired (json_repair invents brackets and
//     quotes); the corrected retry asks again.
//   - A missing required input is an error (DSPy warns and calls anyway).
//   - Optional types are written Optional[T] in prompts, not Python's
//     Union[T, NoneType], which reads worse for a model.
//   - An untyped input named "history" stays a History, as kowai's chat
//     programs (and agents saved with "message, history -> response")
//     rely on it; DSPy makes it a str. A string given to it is rendered as
//     the text block a str input would get.
//   - A History input also takes a Chat: a conversation's messages as their
//     owner keeps them (any Conversation), read in place and rendered as the
//     History of its answered turns would be, so a chat turn's history is not
//     copied into per-turn maps on its way to the prompt. A Chat with a
//     ChatCache renders only the turns its previous call did not, reusing
//     the rest byte for byte.
//   - MaxErrors is off unless set (DSPy's default is 10), so a program that
//     fails is scored 0 rather than stopping a long evaluation.
//   - n completions are n calls with distinct rollout ids: lm.Response
//     carries one choice.
//   - MIPROv2's proposer sees the module's instructions, demos and a tip,
//     not DSPy's data-set and program summaries (extra calls).
//   - A backslash in a Literal option is doubled in the type name, so it
//     parses back to the same option.
package signatures
