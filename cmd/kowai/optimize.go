package main

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/node"
	"github.com/kowai/kowai/signatures/optimize"
	"github.com/kowai/kowai/signatures/programs"
)

// agentTypes is the agent type catalog of this binary: the built-in types. Add a type
// here (append(agents.Builtins(time.Now), mytypes.Translator())) and kowai serve runs
// it and kowai optimize compiles it.
func agentTypes() (*agents.Registry, error) {
	return agents.NewRegistry(agents.Builtins(time.Now)...)
}

// typeNames lists the names of the registered types.
func typeNames(r *agents.Registry) []string {
	var out []string
	for _, t := range r.List() {
		out = append(out, t.Name)
	}
	return out
}

func optimizeCmd(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	fs := flagSet("optimize", "optimize --program NAME --trainset FILE.jsonl [--devset FILE.jsonl] --out FILE.json [flags]", io)
	var o optimize.Options
	var seed uint
	types, err := agentTypes()
	if err != nil {
		return err
	}
	if o.Registry, err = types.Programs(programs.Builtin()); err != nil {
		return err
	}
	fs.StringVar(&o.Program, "program", "", "program to compile: an agent type ("+strings.Join(typeNames(types), ", ")+
		") as its agents run it, or an example program (boolqa, sentiment)")
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
	model, err := node.NewModel(cfg, log, nil)
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
