package optimize

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/programs"
)

// ErrUsage means the options are invalid (a missing flag, an unknown
// optimizer or program); the command should exit with status 2.
//
// The errors of Run carry no "optimize:" prefix: the command that prints them
// names itself already.
var ErrUsage = errors.New("invalid options")

// ErrAllFailed means every evaluation example failed (a model that cannot be
// reached, a wrong key or model name): there is no score to report and no
// state worth writing.
var ErrAllFailed = errors.New("every evaluation example failed")

// Options are the inputs of `kowai optimize`.
type Options struct {
	// Program is the registered program's name (--program).
	Program string
	// Trainset and Devset are JSONL files of {"inputs": {...}, "outputs":
	// {...}} lines (--trainset, --devset). Without a devset the trainset is
	// evaluated.
	Trainset, Devset string
	// Out is where the compiled state is written as JSON (--out).
	Out string
	// Optimizer is "bootstrap" (BootstrapFewShot, the default), "labeled"
	// (LabeledFewShot), "mipro" (MIPROv2; "miprov2" too) or "copro" (COPRO).
	Optimizer string
	// MaxBootstrapped, MaxLabeled and MaxRounds tune the optimizer; zero
	// means DSPy's defaults (4, 16, 1).
	MaxBootstrapped, MaxLabeled, MaxRounds int
	// Seed makes the optimizer reproducible.
	Seed uint64
	// Parallel bounds concurrent evaluations (default 4).
	Parallel int
	// Registry finds Program; nil means programs.Builtin().
	Registry *programs.Registry
}

// Run compiles the program on the trainset with model, printing the
// evaluation score before and after to stdout, and writes the compiled state
// to opts.Out. A progress bar goes to stderr only when stderr is a terminal.
func Run(ctx context.Context, opts Options, model lm.LM, stdout, stderr io.Writer) error {
	if opts.Program == "" || opts.Trainset == "" || opts.Out == "" {
		return fmt.Errorf("%w: --program, --trainset and --out are required", ErrUsage)
	}
	if opts.Optimizer == "" {
		opts.Optimizer = "bootstrap"
	}
	if opts.Optimizer == "miprov2" {
		opts.Optimizer = "mipro"
	}
	switch opts.Optimizer {
	case "bootstrap", "labeled", "mipro", "copro":
	default:
		return fmt.Errorf("%w: --optimizer %q: want bootstrap, labeled, mipro or copro", ErrUsage, opts.Optimizer)
	}
	reg := opts.Registry
	if reg == nil {
		reg = programs.Builtin()
	}
	entry, err := reg.Get(opts.Program)
	if err != nil {
		return fmt.Errorf("%w: --program: %w", ErrUsage, err)
	}
	if entry.Metric == nil {
		return fmt.Errorf("%w: program %q has no metric to optimize", ErrUsage, entry.Name)
	}
	train, err := readExamples(opts.Trainset)
	if err != nil {
		return err
	}
	dev, devName := train, opts.Trainset
	if opts.Devset != "" {
		if dev, err = readExamples(opts.Devset); err != nil {
			return err
		}
		devName = opts.Devset
	}
	prog := entry.New()
	fmt.Fprintf(stdout, "program %s, model %s: %d training examples (%s), %d evaluation examples (%s)\n",
		entry.Name, model.Name(), len(train), opts.Trainset, len(dev), devName)

	bar := newProgressBar(stderr)
	evalOpts := signatures.EvalOptions{Parallel: opts.Parallel}
	evaluate := func(label string) (signatures.EvalResult, error) {
		evalOpts.Progress = bar.update(label)
		res, err := signatures.Evaluate(ctx, model, prog, dev, entry.Metric, evalOpts)
		bar.done()
		if err != nil {
			return res, fmt.Errorf("evaluate %s: %w", label, err)
		}
		if res.Errors == len(dev) {
			var first error
			for _, r := range res.Results {
				if first = r.Err; first != nil {
					break
				}
			}
			return res, fmt.Errorf("%w (%d of %d, %s compiling); the first: %w", ErrAllFailed, res.Errors, len(dev), label, first)
		}
		return res, nil
	}
	before, err := evaluate("before")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "score before: %.1f (%d errors)\n", before.Score, before.Errors)

	switch opts.Optimizer {
	case "mipro":
		rep, err := signatures.MIPROv2{
			Metric: entry.Metric, MaxBootstrapped: opts.MaxBootstrapped, MaxLabeled: opts.MaxLabeled,
			Parallel: opts.Parallel, Seed: opts.Seed,
		}.Compile(ctx, model, prog, train)
		if err != nil {
			return fmt.Errorf("compile: %w", err)
		}
		fmt.Fprintf(stdout, "mipro v2: %d trials, %d evaluations; validation score %.1f -> %.1f; %s\n",
			rep.Trials, rep.Evaluations, rep.Baseline, rep.Best, describeInstruct(prog, rep))
	case "copro":
		rep, err := signatures.COPRO{Metric: entry.Metric, Parallel: opts.Parallel, Seed: opts.Seed}.Compile(ctx, model, prog, train)
		if err != nil {
			return fmt.Errorf("compile: %w", err)
		}
		fmt.Fprintf(stdout, "copro: %d evaluations; training score %.1f -> %.1f; %s\n",
			rep.Evaluations, rep.Baseline, rep.Best, describeInstruct(prog, rep))
	case "labeled":
		k := opts.MaxLabeled
		if k == 0 {
			k = 16
		}
		if err := (signatures.LabeledFewShot{K: k, Seed: opts.Seed}).Compile(prog, train); err != nil {
			return fmt.Errorf("compile: %w", err)
		}
		fmt.Fprintf(stdout, "labeled few-shot: %d demos per predictor\n", min(k, len(train)))
	default:
		rep, err := signatures.BootstrapFewShot{
			Metric: entry.Metric, MaxBootstrapped: opts.MaxBootstrapped, MaxLabeled: opts.MaxLabeled,
			MaxRounds: opts.MaxRounds, Seed: opts.Seed,
		}.Compile(ctx, model, prog, train)
		if err != nil {
			return fmt.Errorf("compile: %w", err)
		}
		var demos []string
		for _, np := range signatures.Predictors(prog) {
			demos = append(demos, fmt.Sprintf("%s=%d", np.Name, rep.Demos[np.Name]))
		}
		fmt.Fprintf(stdout, "bootstrap few-shot: %d of %d teacher runs accepted; demos: %s\n",
			rep.Bootstrapped, rep.Attempts, strings.Join(demos, ", "))
	}

	after, err := evaluate("after")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "score after: %.1f (%+.1f, %d errors)\n", after.Score, after.Score-before.Score, after.Errors)
	usage := before.Usage.Add(after.Usage)
	fmt.Fprintf(stdout, "evaluation usage: %d calls, %d tokens, $%.4f\n", usage.Calls, usage.TotalTokens(), usage.CostUSD)

	st, err := writeState(opts.Out, prog, entry.Name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (version %s)\n", opts.Out, st.Version)
	return nil
}

// describeInstruct names each predictor's demo count and chosen instructions.
func describeInstruct(prog signatures.Module, rep signatures.InstructReport) string {
	var parts []string
	for _, np := range signatures.Predictors(prog) {
		parts = append(parts, fmt.Sprintf("%s: %d demos, instructions %q", np.Name, rep.Demos[np.Name], rep.Instructions[np.Name]))
	}
	return strings.Join(parts, "; ")
}

func readExamples(path string) ([]signatures.Example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	defer f.Close()
	exs, err := signatures.ReadExamples(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUsage, path, err)
	}
	if len(exs) == 0 {
		return nil, fmt.Errorf("%w: %s holds no examples", ErrUsage, path)
	}
	return exs, nil
}

// writeState writes through a temporary file and a rename, so a failed run
// never leaves a truncated state file behind.
func writeState(path string, prog signatures.Module, name string) (signatures.State, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return signatures.State{}, fmt.Errorf("write state: %w", err)
	}
	defer os.Remove(tmp.Name())
	st, err := signatures.WriteState(tmp, prog, name)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return signatures.State{}, fmt.Errorf("write state: %w", err)
	}
	return st, nil
}

// progressBar draws "label [#####.....] 5/10" on a terminal and nothing
// elsewhere.
type progressBar struct {
	w  io.Writer
	on bool
}

func newProgressBar(w io.Writer) *progressBar {
	f, ok := w.(*os.File)
	if !ok {
		return &progressBar{w: w}
	}
	fi, err := f.Stat()
	return &progressBar{w: w, on: err == nil && fi.Mode()&os.ModeCharDevice != 0}
}

func (b *progressBar) update(label string) func(done, total int) {
	if !b.on {
		return nil
	}
	return func(done, total int) {
		const width = 30
		n := width * done / max(total, 1)
		fmt.Fprintf(b.w, "\r%-6s [%s%s] %d/%d", label, strings.Repeat("#", n), strings.Repeat(".", width-n), done, total)
	}
}

func (b *progressBar) done() {
	if b.on {
		fmt.Fprint(b.w, "\r\033[K")
	}
}
