package signatures

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/kowai/kowai/signatures/lm"
)

// InstructReport says what an instruction optimizer (COPRO, MIPROv2) did.
type InstructReport struct {
	// Baseline is the program's score before, Best the chosen program's, on
	// the set the optimizer scores with (COPRO: the train set; MIPROv2: its
	// validation set, fully evaluated).
	Baseline, Best float64
	// Evaluations counts program evaluations (each over a set or a
	// minibatch); Trials counts MIPROv2's search trials.
	Evaluations, Trials int
	// Instructions maps each predictor to its chosen instructions.
	Instructions map[string]string
	// Demos maps each predictor to its chosen demo count.
	Demos map[string]int
	// Candidates maps each predictor to the instructions it considered, the
	// original first.
	Candidates map[string][]string
	// DemoSets maps each predictor to the number of demo sets MIPROv2
	// searched (none, labeled, bootstrapped ones).
	DemoSets map[string]int
}

// predictorSnapshot is a predictor's optimizable state.
type predictorSnapshot struct {
	sig   Signature
	demos []Example
}

func snapshot(preds []NamedPredictor) []predictorSnapshot {
	out := make([]predictorSnapshot, len(preds))
	for i, np := range preds {
		out[i] = predictorSnapshot{sig: np.Predict.Signature(), demos: np.Predict.Demos()}
	}
	return out
}

func restore(preds []NamedPredictor, snap []predictorSnapshot) {
	for i, np := range preds {
		np.Predict.SetSignature(snap[i].sig)
		np.Predict.SetDemos(snap[i].demos)
	}
}

// withOutputPrefix returns sig with instructions and its last output's
// prefix replaced (COPRO's candidate).
func withOutputPrefix(sig Signature, instructions, prefix string) Signature {
	sig = sig.WithInstructions(instructions)
	if prefix == "" {
		return sig
	}
	last := sig.outputs[len(sig.outputs)-1].Name
	if n, err := sig.WithUpdatedField(last, FieldUpdate{Prefix: &prefix}); err == nil {
		return n
	}
	return sig
}

// scoreOn evaluates program on set and returns its score (0 to 100).
func scoreOn(ctx context.Context, model lm.LM, program Module, set []Example, metric Metric, parallel int) (float64, error) {
	res, err := Evaluate(ctx, model, program, set, metric, EvalOptions{Parallel: parallel})
	if err != nil {
		return 0, err
	}
	return res.Score, nil
}

// COPRO is DSPy's coordinate-ascent instruction optimizer
// (dspy/teleprompt/copro_optimizer.py): for each predictor, a prompt model
// proposes Breadth-1 instructions (and output prefixes) from the current
// one; every candidate is scored on the train set and the best kept; then,
// Depth-1 more times, the prompt model sees the best attempts with their
// scores and proposes Breadth more. The program ends with the best
// instructions found. It changes no demos.
type COPRO struct {
	// Metric scores the candidates.
	Metric Metric
	// Breadth (default 10, at least 2) and Depth (default 3) bound the
	// search.
	Breadth, Depth int
	// InitTemperature is the proposals' temperature (default 1.4).
	InitTemperature float64
	// PromptModel proposes the instructions; nil means the task model.
	PromptModel lm.LM
	// Parallel bounds concurrent evaluations (default 4).
	Parallel int
	// Seed makes the proposals reproducible (their rollout ids).
	Seed uint64
}

// The instructions of DSPy's COPRO proposer signatures.
const (
	coproBasicInstructions = "You are an instruction optimizer for large language models. I will give you a ``signature`` of fields " +
		"(inputs and outputs) in English. Your task is to propose an instruction that will lead a good language model to perform " +
		"the task well. Don't be afraid to be creative."
	coproAttemptsInstructions = "You are an instruction optimizer for large language models. I will give some task instructions " +
		"I've tried, along with their corresponding validation scores. The instructions are arranged in increasing order based on " +
		"their scores, where higher scores indicate better quality.\n\nYour task is to propose a new instruction that will lead a " +
		"good language model to perform the task even better. Don't be afraid to be creative."
)

var coproOutputs = []Field{
	{Name: "proposed_instruction", Desc: "The improved instructions for the language model"},
	{Name: "proposed_prefix_for_output_field", Desc: "The string at the end of the prompt, which will help the model start solving the task"},
}

type coproCandidate struct{ instruction, prefix string }

// Compile optimizes student's instructions on trainset with model.
func (o COPRO) Compile(ctx context.Context, model lm.LM, student Module, trainset []Example) (InstructReport, error) {
	if o.Breadth == 0 {
		o.Breadth = 10
	}
	if o.Breadth <= 1 {
		return InstructReport{}, fmt.Errorf("copro: breadth must be greater than 1, got %d", o.Breadth)
	}
	if o.Depth <= 0 {
		o.Depth = 3
	}
	if o.InitTemperature == 0 {
		o.InitTemperature = 1.4
	}
	if o.Metric == nil {
		return InstructReport{}, fmt.Errorf("copro: a metric is required")
	}
	preds := Predictors(student)
	if len(preds) == 0 {
		return InstructReport{}, ErrNoPredictors
	}
	prompter := model
	if o.PromptModel != nil {
		prompter = o.PromptModel
	}
	basic := NewPredict(mustNew([]Field{{Name: "basic_instruction", Desc: "The initial instructions before optimization"}}, coproOutputs, coproBasicInstructions),
		PredictOptions{Name: "copro.basic", Temperature: o.InitTemperature})
	given := NewPredict(mustNew([]Field{{Name: "attempted_instructions"}}, coproOutputs, coproAttemptsInstructions),
		PredictOptions{Name: "copro.attempts", Temperature: o.InitTemperature})
	propose := func(p *Predict, in Values, n int, round, pred int) ([]coproCandidate, error) {
		ctx := withRollout(ctx, fmt.Sprintf("copro-%d-%d-%d", o.Seed, round, pred))
		outs, err := p.Completions(WithRun(ctx, NewRun(prompter)), in, n)
		if err != nil {
			return nil, fmt.Errorf("copro: propose: %w", err)
		}
		cs := make([]coproCandidate, len(outs))
		for i, out := range outs {
			cs[i] = coproCandidate{cleanProposal(out["proposed_instruction"]), cleanProposal(out["proposed_prefix_for_output_field"])}
		}
		return cs, nil
	}

	rep := InstructReport{Instructions: map[string]string{}, Demos: map[string]int{}, Candidates: map[string][]string{}}
	cache := map[string]float64{}
	evaluate := func() (float64, error) {
		key := programKey(preds)
		if s, ok := cache[key]; ok {
			return s, nil
		}
		s, err := scoreOn(ctx, model, student, trainset, o.Metric, o.Parallel)
		if err != nil {
			return 0, fmt.Errorf("copro: %w", err)
		}
		rep.Evaluations++
		cache[key] = s
		return s, nil
	}
	base, err := evaluate()
	if err != nil {
		return rep, err
	}
	rep.Baseline = base

	latest := make([][]coproCandidate, len(preds))
	all := make([][]coproCandidate, len(preds))
	origs := make([]coproCandidate, len(preds))
	for i, np := range preds {
		sig := np.Predict.Signature()
		orig := coproCandidate{sig.instructions, sig.outputs[len(sig.outputs)-1].Prefix}
		origs[i] = orig
		cs, err := propose(basic, Values{"basic_instruction": sig.instructions}, o.Breadth-1, 0, i)
		if err != nil {
			return rep, err
		}
		latest[i] = append(cs, orig)
		all[i] = slices.Clone(latest[i])
	}
	evaluated := make([]map[coproCandidate]coproScored, len(preds))
	for i := range evaluated {
		evaluated[i] = map[coproCandidate]coproScored{}
	}
	best := coproScored{score: base, snap: snapshot(preds)}
	for d := range o.Depth {
		for i, np := range preds {
			cands := latest[i]
			if len(preds) > 1 {
				cands = all[i]
			}
			for _, c := range cands {
				cur := np.Predict.Signature()
				np.Predict.SetSignature(withOutputPrefix(cur, c.instruction, c.prefix))
				s, err := evaluate()
				if err != nil {
					return rep, err
				}
				if prev, ok := evaluated[i][c]; !ok || prev.score < s {
					evaluated[i][c] = coproScored{c, s, snapshot(preds)}
				}
				if s > best.score {
					best = coproScored{c, s, snapshot(preds)}
				}
				np.Predict.SetSignature(cur)
			}
			top := sortedCandidates(evaluated[i])[0]
			np.Predict.SetSignature(withOutputPrefix(np.Predict.Signature(), top.instruction, top.prefix))
		}
		if d == o.Depth-1 {
			break
		}
		for i := range preds {
			ranked := sortedCandidates(evaluated[i])
			n := min(len(ranked), o.Breadth)
			var attempts []string
			// Increasing order of score, the best last, as DSPy lists them.
			for j := n - 1; j >= 0; j-- {
				k := n - j
				attempts = append(attempts,
					fmt.Sprintf("Instruction #%d: %s", k, ranked[j].instruction),
					fmt.Sprintf("Prefix #%d: %s", k, ranked[j].prefix),
					fmt.Sprintf("Resulting Score #%d: %s", k, pyFloat(ranked[j].score)))
			}
			cs, err := propose(given, Values{"attempted_instructions": attempts}, o.Breadth, d+1, i)
			if err != nil {
				return rep, err
			}
			latest[i] = cs
			all[i] = append(all[i], cs...)
		}
	}
	restore(preds, best.snap)
	rep.Best = best.score
	for i, np := range preds {
		rep.Instructions[np.Name] = np.Predict.Signature().instructions
		rep.Demos[np.Name] = len(np.Predict.Demos())
		seen := map[string]bool{}
		var names []string
		for _, c := range append([]coproCandidate{origs[i]}, all[i]...) {
			if !seen[c.instruction] {
				seen[c.instruction] = true
				names = append(names, c.instruction)
			}
		}
		rep.Candidates[np.Name] = names
	}
	return rep, nil
}

// coproScored is an evaluated COPRO candidate and the program it was in.
type coproScored struct {
	coproCandidate
	score float64
	snap  []predictorSnapshot
}

// sortedCandidates orders candidates best first; ties go to the one whose
// text sorts first, so the choice does not depend on map order.
func sortedCandidates(m map[coproCandidate]coproScored) []coproScored {
	out := make([]coproScored, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b coproScored) int {
		if a.score != b.score {
			if a.score > b.score {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.instruction, b.instruction); c != 0 {
			return c
		}
		return strings.Compare(a.prefix, b.prefix)
	})
	return out
}

// cleanProposal strips the quotes and space a proposal comes wrapped in, as
// DSPy's .strip('"').strip().
func cleanProposal(v any) string {
	s, _ := v.(string)
	return strings.TrimSpace(strings.Trim(s, `"`))
}

// programKey identifies the program's instructions, prefixes and demos, for
// caching scores.
func programKey(preds []NamedPredictor) string {
	var b strings.Builder
	for _, np := range preds {
		sig := np.Predict.Signature()
		b.WriteString(np.Name + "\x00" + sig.instructions + "\x00" + sig.outputs[len(sig.outputs)-1].Prefix + "\x00")
		b.WriteString(strconv.FormatUint(hashJSON(np.Predict.Demos()), 16) + "\x01")
	}
	return b.String()
}

func mustNew(in, out []Field, instructions string) Signature {
	s, err := New(in, out, instructions)
	if err != nil {
		panic(err) // the optimizers' own signatures are constants
	}
	return s
}

// MIPROv2 is DSPy's MIPROv2 (dspy/teleprompt/mipro_optimizer_v2.py): it
// bootstraps NumCandidates demo sets per predictor (none, labeled only,
// BootstrapFewShot on the train set, then on shuffled copies with random
// sizes), has a prompt model propose NumCandidates instructions per
// predictor (the original first) grounded in demos and a random tip, and
// searches the combinations with a Tree-structured Parzen Estimator over
// minibatch scores on the validation set, fully evaluating the most
// promising combination every MinibatchFullEvalSteps trials. The best fully
// evaluated program wins.
//
// kowai's proposer sees the module's instructions, demos and a tip; DSPy's
// also summarises the data set and the program's code, which costs more
// calls and is left out.
type MIPROv2 struct {
	// Metric scores the candidates.
	Metric Metric
	// NumCandidates is the number of instruction and demo-set candidates per
	// predictor (default 6, DSPy's "light").
	NumCandidates int
	// NumTrials is the number of search trials; zero means DSPy's
	// max(2 * variables * log2(candidates), 1.5 * candidates).
	NumTrials int
	// MaxBootstrapped (default 4) and MaxLabeled (default 4) bound the demos
	// of each set; both negative means zero-shot (instructions only).
	MaxBootstrapped, MaxLabeled int
	// MinibatchSize (default 35) and MinibatchFullEvalSteps (default 5) set
	// the minibatch evaluation.
	MinibatchSize, MinibatchFullEvalSteps int
	// Valset is scored; without one, the last 80% of the train set is (as
	// DSPy) and the first 20% bootstraps the demos.
	Valset []Example
	// PromptModel proposes the instructions; nil means the task model.
	PromptModel lm.LM
	// Parallel bounds concurrent evaluations (default 4).
	Parallel int
	// Seed makes demo sets, tips, minibatches and the search reproducible.
	Seed uint64
}

// miproTips are DSPy's GroundedProposer tips.
var miproTips = []string{
	"",
	"Don't be afraid to be creative when creating the new instruction!",
	"Keep the instruction clear and concise.",
	"Make sure your instruction is very informative and descriptive.",
	"The instruction should include a high stakes scenario in which the LM must solve the task!",
	`Include a persona that is relevant to the task in the instruction (ie. "You are a ...")`,
}

const miproProposerInstructions = "Use the information below to learn about a task that we are trying to solve using calls to an LM, " +
	"then generate a new instruction that will be used to prompt a Language Model to better solve the task."

// Compile optimizes student's instructions and demos with model.
func (o MIPROv2) Compile(ctx context.Context, model lm.LM, student Module, trainset []Example) (InstructReport, error) {
	if o.Metric == nil {
		return InstructReport{}, fmt.Errorf("mipro: a metric is required")
	}
	if o.NumCandidates <= 0 {
		o.NumCandidates = 6
	}
	if o.MaxBootstrapped == 0 {
		o.MaxBootstrapped = 4
	}
	if o.MaxLabeled == 0 {
		o.MaxLabeled = 4
	}
	o.MaxBootstrapped, o.MaxLabeled = max(o.MaxBootstrapped, 0), max(o.MaxLabeled, 0)
	if o.MinibatchSize <= 0 {
		o.MinibatchSize = 35
	}
	if o.MinibatchFullEvalSteps <= 0 {
		o.MinibatchFullEvalSteps = 5
	}
	preds := Predictors(student)
	if len(preds) == 0 {
		return InstructReport{}, ErrNoPredictors
	}
	train, val := trainset, o.Valset
	if len(val) == 0 {
		if len(trainset) < 2 {
			return InstructReport{}, fmt.Errorf("mipro: need at least 2 training examples without a validation set")
		}
		n := min(1000, max(1, len(trainset)*8/10))
		train, val = trainset[:len(trainset)-n], trainset[len(trainset)-n:]
	}
	prompter := model
	if o.PromptModel != nil {
		prompter = o.PromptModel
	}
	rng := newRand(o.Seed)
	orig := snapshot(preds)
	rep := InstructReport{Instructions: map[string]string{}, Demos: map[string]int{}, Candidates: map[string][]string{}, DemoSets: map[string]int{}}

	// Demo-set candidates, per predictor.
	demoSets := make([][][]Example, len(preds))
	zeroShot := o.MaxBootstrapped == 0 && o.MaxLabeled == 0
	if zeroShot {
		for i := range preds {
			demoSets[i] = [][]Example{orig[i].demos}
		}
	} else {
		for k := range o.NumCandidates {
			if k >= 2 && o.MaxBootstrapped == 0 {
				// Labeled demos only: no bootstrapped sets.
				break
			}
			restore(preds, orig)
			var err error
			switch k {
			case 0:
				for _, np := range preds {
					np.Predict.SetDemos(nil)
				}
			case 1:
				if o.MaxLabeled > 0 {
					err = LabeledFewShot{K: o.MaxLabeled, Seed: o.Seed + uint64(k)}.Compile(student, train)
				}
			default:
				set := slices.Clone(train)
				maxBoot := o.MaxBootstrapped
				if k > 2 {
					rng.Shuffle(len(set), func(a, b int) { set[a], set[b] = set[b], set[a] })
					maxBoot = 1 + rng.IntN(max(o.MaxBootstrapped, 1))
				}
				labeled := o.MaxLabeled
				if labeled == 0 {
					labeled = -1 // BootstrapFewShot's zero means 16
				}
				_, err = BootstrapFewShot{Metric: o.Metric, MaxBootstrapped: maxBoot, MaxLabeled: labeled,
					Seed: o.Seed + uint64(k)}.Compile(ctx, model, student, set)
			}
			if err != nil {
				restore(preds, orig)
				return rep, fmt.Errorf("mipro: demo set %d: %w", k, err)
			}
			for i, np := range preds {
				demoSets[i] = append(demoSets[i], np.Predict.Demos())
			}
		}
	}
	restore(preds, orig)
	for i, np := range preds {
		rep.DemoSets[np.Name] = len(demoSets[i])
	}

	// Instruction candidates, per predictor: the original, then proposals.
	proposer := NewPredict(mustNew([]Field{
		{Name: "task_demos", Desc: "Example inputs/outputs of our module."},
		{Name: "basic_instruction", Desc: "Basic instruction."},
		{Name: "tip", Desc: "A suggestion for how to go about generating the new instruction."},
	}, []Field{{Name: "proposed_instruction", Desc: "Propose an instruction that will be used to prompt a Language Model to perform this task."}},
		miproProposerInstructions), PredictOptions{Name: "mipro.proposer"})
	instrs := make([][]string, len(preds))
	for i, np := range preds {
		sig := orig[i].sig
		instrs[i] = []string{sig.instructions}
		seen := map[string]bool{sig.instructions: true}
		for k := 1; k < o.NumCandidates; k++ {
			demos := demoSets[i][k%len(demoSets[i])]
			tip := miproTips[rng.IntN(len(miproTips))]
			pctx := WithRun(withRollout(ctx, fmt.Sprintf("mipro-%d-%s-%d", o.Seed, np.Name, k)), NewRun(prompter))
			out, err := proposer.Forward(pctx, Values{"task_demos": formatDemos(sig, demos), "basic_instruction": sig.instructions, "tip": tip})
			if err != nil {
				return rep, fmt.Errorf("mipro: propose for %s: %w", np.Name, err)
			}
			if p := cleanProposal(out["proposed_instruction"]); p != "" && !seen[p] {
				seen[p] = true
				instrs[i] = append(instrs[i], p)
			}
		}
		rep.Candidates[np.Name] = instrs[i]
	}

	// The search space: per predictor, an instruction and a demo set.
	var dims []int
	for i := range preds {
		dims = append(dims, len(instrs[i]))
		if !zeroShot {
			dims = append(dims, len(demoSets[i]))
		}
	}
	apply := func(x []int) {
		j := 0
		for i, np := range preds {
			np.Predict.SetSignature(orig[i].sig.WithInstructions(instrs[i][x[j]]))
			j++
			if !zeroShot {
				np.Predict.SetDemos(demoSets[i][x[j]])
				j++
			}
		}
	}
	trials := o.NumTrials
	if trials <= 0 {
		vars := float64(len(dims))
		trials = int(math.Max(2*vars*math.Log2(float64(o.NumCandidates)), 1.5*float64(o.NumCandidates)))
	}
	fullCache := map[string]float64{}
	full := func(x []int) (float64, error) {
		key := fmt.Sprint(x)
		if s, ok := fullCache[key]; ok {
			return s, nil
		}
		apply(x)
		s, err := scoreOn(ctx, model, student, val, o.Metric, o.Parallel)
		if err != nil {
			return 0, fmt.Errorf("mipro: %w", err)
		}
		rep.Evaluations++
		fullCache[key] = s
		return s, nil
	}
	restore(preds, orig)
	base, err := scoreOn(ctx, model, student, val, o.Metric, o.Parallel)
	if err != nil {
		return rep, fmt.Errorf("mipro: %w", err)
	}
	rep.Evaluations++
	rep.Baseline = base
	bestScore, bestX := base, []int(nil)

	search := newTPE(dims, o.Seed)
	miniSum, miniN := map[string]float64{}, map[string]int{}
	configs := map[string][]int{}
	for t := range trials {
		x := search.suggest()
		apply(x)
		batch := val
		if len(val) > o.MinibatchSize {
			batch = sample(rng, val, o.MinibatchSize)
		}
		s, err := scoreOn(ctx, model, student, batch, o.Metric, o.Parallel)
		if err != nil {
			restore(preds, orig)
			return rep, fmt.Errorf("mipro: trial %d: %w", t+1, err)
		}
		rep.Evaluations++
		rep.Trials++
		search.observe(x, s)
		key := fmt.Sprint(x)
		miniSum[key] += s
		miniN[key]++
		configs[key] = x
		if (t+1)%o.MinibatchFullEvalSteps == 0 || t == trials-1 {
			// Fully evaluate the combination with the best mean minibatch
			// score (ties: the first in key order).
			keys := make([]string, 0, len(configs))
			for k := range configs {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			top := ""
			for _, k := range keys {
				if top == "" || miniSum[k]/float64(miniN[k]) > miniSum[top]/float64(miniN[top]) {
					top = k
				}
			}
			fs, err := full(configs[top])
			if err != nil {
				restore(preds, orig)
				return rep, err
			}
			if fs > bestScore {
				bestScore, bestX = fs, configs[top]
			}
		}
	}
	if bestX == nil {
		restore(preds, orig)
	} else {
		apply(bestX)
	}
	rep.Best = bestScore
	for _, np := range preds {
		rep.Instructions[np.Name] = np.Predict.Signature().instructions
		rep.Demos[np.Name] = len(np.Predict.Demos())
	}
	return rep, nil
}

// formatDemos renders demos for the proposer as DSPy's create_example_string
// does: each demo's fields as "Prefix value" lines, blank-line separated.
func formatDemos(sig Signature, demos []Example) string {
	var parts []string
	for _, d := range demos {
		var lines []string
		for _, f := range sig.Fields() {
			if v, ok := d.get(f.Name); ok {
				lines = append(lines, f.Prefix+" "+formatInput(v, f.Type.isStr()))
			}
		}
		parts = append(parts, strings.Join(lines, "\n"))
	}
	return strings.Join(parts, "\n\n")
}

// tpe is a Tree-structured Parzen Estimator over categorical dimensions, as
// Optuna's TPESampler (independent per dimension) that DSPy's MIPROv2 uses:
// after a few random trials, the observations are split into the best
// quarter and the rest, and each dimension takes the value, among samples
// drawn from the good distribution, with the highest good-to-bad density
// ratio.
type tpe struct {
	rng     *rand.Rand
	dims    []int
	startup int
	obs     []tpeObs
}

type tpeObs struct {
	x []int
	y float64
}

func newTPE(dims []int, seed uint64) *tpe {
	return &tpe{rng: newRand(seed ^ 0x7470), dims: dims, startup: 4}
}

func (t *tpe) suggest() []int {
	x := make([]int, len(t.dims))
	if len(t.obs) < t.startup {
		for i, n := range t.dims {
			x[i] = t.rng.IntN(n)
		}
		return x
	}
	sorted := slices.Clone(t.obs)
	slices.SortStableFunc(sorted, func(a, b tpeObs) int {
		switch {
		case a.y > b.y:
			return -1
		case a.y < b.y:
			return 1
		}
		return 0
	})
	nGood := max(1, int(math.Ceil(0.25*float64(len(sorted)))))
	good, bad := sorted[:nGood], sorted[nGood:]
	const candidates = 24
	for i, n := range t.dims {
		l, g := make([]float64, n), make([]float64, n)
		for k := range n {
			l[k], g[k] = 1, 1 // the prior
		}
		for _, o := range good {
			l[o.x[i]]++
		}
		for _, o := range bad {
			g[o.x[i]]++
		}
		lSum, gSum := float64(n+len(good)), float64(n+len(bad))
		best, bestRatio := 0, math.Inf(-1)
		for range candidates {
			// Draw from l.
			r := t.rng.Float64() * lSum
			k := 0
			for ; k < n-1 && r >= l[k]; k++ {
				r -= l[k]
			}
			if ratio := (l[k] / lSum) / (g[k] / gSum); ratio > bestRatio {
				best, bestRatio = k, ratio
			}
		}
		x[i] = best
	}
	return x
}

func (t *tpe) observe(x []int, y float64) {
	t.obs = append(t.obs, tpeObs{x: slices.Clone(x), y: y})
}
