package main

import (
	"context"
	"errors"

	"github.com/kowai/kowai/signatures/optimize"
)

func optimizeCmd(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	fs := flagSet("optimize", "optimize --program NAME --trainset FILE.jsonl [--devset FILE.jsonl] --out FILE.json [flags]", io)
	var o optimize.Options
	var seed uint
	fs.StringVar(&o.Program, "program", "", "registered program to compile (chat, chat-multistage, boolqa, sentiment)")
	fs.StringVar(&o.Trainset, "trainset", "", "JSONL train set: {\"inputs\":{...},\"outputs\":{...}} per line")
	fs.StringVar(&o.Devset, "devset", "", "JSONL dev set scored before and after (default: the train set)")
	fs.StringVar(&o.Out, "out", "", "file to write the compiled program state to (JSON)")
	fs.StringVar(&o.Optimizer, "optimizer", "bootstrap", "bootstrap (BootstrapFewShot), labeled (LabeledFewShot), mipro (MIPROv2) or copro (COPRO)")
	fs.IntVar(&o.MaxBootstrapped, "max-bootstrapped", 0, "bootstrapped demos per predictor (default 4)")
	fs.IntVar(&o.MaxLabeled, "max-labeled", 0, "labeled demos per predictor (default 16)")
	fs.IntVar(&o.MaxRounds, "max-rounds", 0, "bootstrap rounds (default 1)")
	fs.UintVar(&seed, "seed", 0, "seed that makes the optimizer reproducible")
	fs.IntVar(&o.Parallel, "parallel", 0, "concurrent evaluations (default 4)")
	// The model stack and its reply cache are all optimize reads.
	cfg, log, err := withConfig(fs, args, io, getenv, "KOWAI_LLM_PROVIDER", "KOWAI_LLM_MODEL", "KOWAI_LLM_BASE_URL",
		"KOWAI_LLM_API_KEY", "KOWAI_LLM_FALLBACK", "KOWAI_LLM_PRICES", "KOWAI_LLM_CACHE", "KOWAI_REDIS_URL")
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	o.Seed = uint64(seed)
	model, err := newModel(cfg, log, nil)
	if err != nil {
		return err
	}
	defer model.Close()
	err = optimize.Run(ctx, o, model, io.out, io.err)
	if errors.Is(err, optimize.ErrUsage) {
		return usagef("%v", err)
	}
	return err
}
