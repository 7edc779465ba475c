// Package optimize is the logic of `kowai optimize`: it compiles a
// registered signature program on a training set and reports the evaluation
// score before and after.
//
// # Running
//
// The command wires flags into Options and calls Run with the configured
// model:
//
//	err := optimize.Run(ctx, optimize.Options{
//		Program:  "boolqa",
//		Trainset: "examples/boolqa-train.jsonl",
//		Devset:   "examples/boolqa-dev.jsonl",
//		Out:      "boolqa.json",
//	}, model, os.Stdout, os.Stderr)
//
// Errors wrapping ErrUsage are bad flags (exit status 2); others are runtime
// failures. The output file holds the program's state (instructions, fields
// and demos per predictor) with its content-hash version; load it onto a
// fresh program with signatures.ReadState and signatures.LoadState.
//
// # Data sets
//
// Training and evaluation sets are JSONL files, one example per line:
//
//	{"inputs": {"question": "Is the sky blue?"}, "outputs": {"answer": true}}
package optimize
