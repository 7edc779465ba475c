package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/node"
	"github.com/kowai/kowai/signatures"
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
	fs := flagSet("optimize", "optimize (--program NAME --out FILE.json | --agent ID [--out FILE.json]) --trainset FILE.jsonl [--devset FILE.jsonl] [flags]", io)
	var o optimize.Options
	var seed uint
	var d deployFlags
	defURL := getenv("KOWAI_URL")
	if defURL == "" {
		defURL = "http://127.0.0.1:8080"
	}
	fs.StringVar(&d.agent, "agent", "", "compile the program the agent with this ID runs (its type, signature and current program, read over HTTP) "+
		"and deploy the result to it as a canary (POST /api/v1/agents/{id}/programs); needs KOWAI_TOKEN")
	fs.StringVar(&d.url, "url", defURL, "with --agent: the node's base URL (env KOWAI_URL)")
	fs.IntVar(&d.percent, "percent", 0, "with --agent: the canary's share of conversations, 1 to 100 (default: the node's, 10)")
	fs.IntVar(&d.minTurns, "min-turns", 0, "with --agent: canary turns before it is promoted or rolled back (default: the node's, 100)")
	fs.IntVar(&d.minRatings, "min-ratings", -1, "with --agent: ratings promotion waits for (default: the node's, 10)")
	fs.Float64Var(&d.maxErrorRateIncrease, "max-error-rate-increase", -1, "with --agent: roll back above the current error rate plus this (default: the node's, 0.05)")
	fs.Float64Var(&d.maxFeedbackDrop, "max-feedback-drop", -1, "with --agent: roll back below the current mean rating minus this (default: the node's, 0.2)")
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
	var (
		cl *apiClient
		ag deployAgent
	)
	if d.agent != "" {
		if o.Program != "" {
			return usagef("--program and --agent exclude each other: --agent compiles the program its agent runs")
		}
		if cl, err = newAPIClient(d.url, getenv("KOWAI_TOKEN")); err != nil {
			return err
		}
		if err := cl.do(ctx, http.MethodGet, "/api/v1/agents/"+url.PathEscape(d.agent), nil, &ag); err != nil {
			return err
		}
		if o.Registry, err = agentProgram(types, ag); err != nil {
			return err
		}
		o.Program = ag.Type
		if o.Out == "" {
			tmp, err := os.MkdirTemp("", "kowai-optimize-")
			if err != nil {
				return fmt.Errorf("temporary state file: %w", err)
			}
			defer os.RemoveAll(tmp)
			o.Out = filepath.Join(tmp, "state.json")
		}
	}
	model, err := node.NewModel(cfg, log, nil)
	if err != nil {
		return err
	}
	defer model.Close()
	err = optimize.Run(ctx, o, model, io.out, io.err)
	if errors.Is(err, optimize.ErrUsage) {
		return usagef("%v", err)
	}
	if err != nil || cl == nil {
		return err
	}
	return d.deploy(ctx, cl, o.Out, io)
}

// deployFlags are the flags of optimize --agent.
type deployFlags struct {
	agent, url                            string
	percent, minTurns, minRatings         int
	maxErrorRateIncrease, maxFeedbackDrop float64
}

// deployAgent is what optimize --agent reads of the agent.
type deployAgent struct {
	ID           string          `json:"id"`
	Type         string          `json:"type"`
	Instructions string          `json:"instructions"`
	Signature    string          `json:"signature"`
	Config       json.RawMessage `json:"config"`
	Program      json.RawMessage `json:"program"`
	Version      int64           `json:"version"`
}

// agentProgram is a registry of the one program ag runs, under its type's name,
// with the type's metric: built from its type, signature, instructions and
// config, with its current compiled program loaded.
func agentProgram(types *agents.Registry, ag deployAgent) (*programs.Registry, error) {
	t, ok := types.Lookup(ag.Type)
	if !ok {
		return nil, fmt.Errorf("agent %s has type %q, which this binary does not know", ag.ID, ag.Type)
	}
	if t.Metric == nil {
		return nil, usagef("agent %s has type %s, which has no metric to optimize", ag.ID, ag.Type)
	}
	spec := agents.Spec{ID: ag.ID, Type: ag.Type, Instructions: ag.Instructions, Signature: ag.Signature, Config: ag.Config}
	if len(ag.Program) > 0 && string(ag.Program) != "null" {
		spec.Program = ag.Program
	}
	if _, prog, err := types.Compile(spec); err != nil {
		return nil, fmt.Errorf("agent %s: %w", ag.ID, err)
	} else if _, ok := prog.(agents.ModuleProgram); !ok {
		return nil, fmt.Errorf("agent %s: type %s runs no single module to compile", ag.ID, ag.Type)
	}
	reg := programs.NewRegistry()
	err := reg.Register(programs.Entry{Name: t.Name, Description: t.Description, Signature: t.Signature, Metric: t.Metric,
		New: func() signatures.Module {
			// Compiled once above with the same spec; it cannot fail now.
			_, prog, err := types.Compile(spec)
			if err != nil {
				panic(err)
			}
			return prog.(agents.ModuleProgram).Module()
		}})
	return reg, err
}

// deploy posts the compiled state in file to the agent as a canary.
func (d deployFlags) deploy(ctx context.Context, cl *apiClient, file string, io stdio) error {
	state, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read the compiled state: %w", err)
	}
	body := map[string]any{"state": json.RawMessage(state)}
	if d.percent != 0 {
		body["percent"] = d.percent
	}
	if d.minTurns != 0 {
		body["min_turns"] = d.minTurns
	}
	if d.minRatings >= 0 {
		body["min_ratings"] = d.minRatings
	}
	if d.maxErrorRateIncrease >= 0 {
		body["max_error_rate_increase"] = d.maxErrorRateIncrease
	}
	if d.maxFeedbackDrop >= 0 {
		body["max_feedback_drop"] = d.maxFeedbackDrop
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("deploy body: %w", err)
	}
	var out struct {
		Variants []struct {
			Name   string `json:"name"`
			Canary *struct {
				Percent int    `json:"percent"`
				Version string `json:"version"`
			} `json:"canary"`
		} `json:"variants"`
	}
	if err := cl.do(ctx, http.MethodPost, "/api/v1/agents/"+url.PathEscape(d.agent)+"/programs", raw, &out); err != nil {
		return err
	}
	for _, v := range out.Variants {
		if v.Canary != nil {
			fmt.Fprintf(io.out, "deployed %s to agent %s as canary %s at %d%%\n", v.Canary.Version, d.agent, v.Name, v.Canary.Percent)
			return nil
		}
	}
	return fmt.Errorf("agent %s answered the deploy without a canary", d.agent)
}
