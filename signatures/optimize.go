package signatures

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"reflect"
	"slices"

	"github.com/kowai/kowai/signatures/lm"
)

// ErrNoPredictors means an optimizer was given a program without predictors.
var ErrNoPredictors = errors.New("signatures: program has no predictors")

// newRand returns the optimizers' seeded generator: the same seed gives the
// same demos.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x6b6f776169)) }

// sample returns k distinct elements of xs in random order, like Python's
// random.sample.
func sample[T any](rng *rand.Rand, xs []T, k int) []T {
	xs = slices.Clone(xs)
	k = min(max(k, 0), len(xs))
	for i := range k {
		j := i + rng.IntN(len(xs)-i)
		xs[i], xs[j] = xs[j], xs[i]
	}
	return xs[:k]
}

// LabeledFewShot installs k labeled training examples as demos on every
// predictor: a seeded random sample, drawn in turn for each predictor.
type LabeledFewShot struct {
	// K is the number of demos per predictor; zero means DSPy's default,
	// 16, and a negative value none.
	K int
	// Seed makes the sample reproducible.
	Seed uint64
}

// Compile sets the demos of program's predictors.
func (o LabeledFewShot) Compile(program any, trainset []Example) error {
	preds := Predictors(program)
	if len(preds) == 0 {
		return ErrNoPredictors
	}
	k := o.K
	if k == 0 {
		k = 16
	}
	rng := newRand(o.Seed)
	for _, np := range preds {
		np.Predict.SetDemos(sample(rng, trainset, k))
	}
	return nil
}

// BootstrapFewShot follows DSPy's algorithm: a teacher (the program itself
// with up to MaxLabeled labeled demos, unless Teacher is set) runs on the
// training examples in order; when the metric accepts a prediction, every
// step of that run's trace becomes a demo of the predictor that made it.
// It stops after MaxBootstrapped examples succeed. Each student predictor
// then gets its bootstrapped demos (at most MaxBootstrapped) topped up to
// MaxLabeled with a seeded sample of the examples that were not
// bootstrapped.
type BootstrapFewShot struct {
	// Metric judges the teacher's predictions; nil accepts every run.
	Metric Metric
	// Threshold, when positive, is the score a prediction needs; otherwise
	// any score above 0 passes (DSPy's truthiness).
	Threshold float64
	// MaxBootstrapped (default 4), MaxLabeled (default 16) and MaxRounds
	// (default 1) bound the demos and the attempts per example. A negative
	// MaxBootstrapped or MaxLabeled means none.
	MaxBootstrapped, MaxLabeled, MaxRounds int
	// Teacher, when set, is a program with the same predictor names that
	// produces the traces instead of the student. Its demos are restored
	// afterwards.
	Teacher any
	// TeacherLM, when set, is the teacher's model instead of the student's.
	TeacherLM lm.LM
	// Seed makes the sampling reproducible.
	Seed uint64
	// MaxErrors, when positive, bounds the failed teacher runs: the one that
	// reaches it ends Compile with its error wrapped in ErrTooManyErrors
	// (DSPy's max_errors). Zero tolerates any number, a failed run simply
	// not becoming demos; DSPy's default is 10.
	MaxErrors int
}

// BootstrapReport says what a compilation did.
type BootstrapReport struct {
	// Attempts counts teacher runs; Bootstrapped the examples whose trace
	// became demos; Errors the teacher runs that failed.
	Attempts, Bootstrapped, Errors int
	// Demos maps each predictor name to its demo count (bootstrapped first,
	// then labeled).
	Demos map[string]int
}

func (o BootstrapFewShot) defaults() BootstrapFewShot {
	if o.MaxBootstrapped == 0 {
		o.MaxBootstrapped = 4
	}
	if o.MaxLabeled == 0 {
		o.MaxLabeled = 16
	}
	o.MaxLabeled = max(o.MaxLabeled, 0)
	o.MaxBootstrapped = max(o.MaxBootstrapped, 0)
	if o.MaxRounds <= 0 {
		o.MaxRounds = 1
	}
	return o
}

// Compile bootstraps demos for student's predictors from trainset, calling
// model (or TeacherLM) for the teacher runs. It replaces the student's
// demos.
func (o BootstrapFewShot) Compile(ctx context.Context, model lm.LM, student Module, trainset []Example) (BootstrapReport, error) {
	o = o.defaults()
	studentPreds := Predictors(student)
	if len(studentPreds) == 0 {
		return BootstrapReport{}, ErrNoPredictors
	}
	teacher, teacherModel := student, model
	if o.Teacher != nil {
		t, ok := o.Teacher.(Module)
		if !ok {
			return BootstrapReport{}, fmt.Errorf("bootstrap: teacher %T is not a Module", o.Teacher)
		}
		teacher = t
	}
	if o.TeacherLM != nil {
		teacherModel = o.TeacherLM
	}
	teacherPreds := Predictors(teacher)
	names := map[*Predict]string{}
	for _, np := range teacherPreds {
		names[np.Predict] = np.Name
	}
	for _, np := range studentPreds {
		names[np.Predict] = np.Name
	}
	saved := make([][]Example, len(teacherPreds))
	for i, np := range teacherPreds {
		saved[i] = np.Predict.Demos()
	}
	defer func() {
		if o.Teacher != nil {
			for i, np := range teacherPreds {
				np.Predict.SetDemos(saved[i])
			}
		}
	}()
	if o.MaxLabeled > 0 {
		if err := (LabeledFewShot{K: o.MaxLabeled, Seed: o.Seed}).Compile(teacher, trainset); err != nil {
			return BootstrapReport{}, fmt.Errorf("bootstrap: label teacher: %w", err)
		}
	}

	rep := BootstrapReport{Demos: map[string]int{}}
	traces := map[string][]Example{}
	bootstrapped := map[int]bool{}
	for i, ex := range trainset {
		if len(bootstrapped) >= o.MaxBootstrapped {
			break
		}
		for round := range o.MaxRounds {
			rep.Attempts++
			ok, runErr, err := o.bootstrapOne(ctx, teacherModel, teacher, teacherPreds, names, ex, round, traces)
			if err != nil {
				return rep, err
			}
			if runErr != nil {
				rep.Errors++
				if o.MaxErrors > 0 && rep.Errors >= o.MaxErrors {
					return rep, fmt.Errorf("bootstrap: %w (%d teacher runs failed): %w", ErrTooManyErrors, rep.Errors, runErr)
				}
			}
			if ok {
				bootstrapped[i] = true
				break
			}
		}
	}
	rep.Bootstrapped = len(bootstrapped)

	var validation []Example
	for i, ex := range trainset {
		if !bootstrapped[i] {
			validation = append(validation, ex)
		}
	}
	newRand(o.Seed).Shuffle(len(validation), func(i, j int) { validation[i], validation[j] = validation[j], validation[i] })

	rng := newRand(o.Seed)
	raw := validation
	for _, np := range studentPreds {
		aug := traces[np.Name]
		aug = aug[:min(len(aug), o.MaxBootstrapped)]
		raw = sample(rng, raw, min(o.MaxLabeled-len(aug), len(raw)))
		demos := append(slices.Clone(aug), raw...)
		np.Predict.SetDemos(demos)
		rep.Demos[np.Name] = len(demos)
	}
	return rep, nil
}

// bootstrapOne runs the teacher on one example, without that example among
// its demos, and collects the trace as demos when the metric accepts it.
// Program errors are a failed attempt, returned as runErr; only a cancelled
// ctx is an error.
func (o BootstrapFewShot) bootstrapOne(ctx context.Context, model lm.LM, teacher Module, preds []NamedPredictor,
	names map[*Predict]string, ex Example, round int, traces map[string][]Example) (ok bool, runErr, err error) {
	cache := make([][]Example, len(preds))
	for i, np := range preds {
		cache[i] = np.Predict.Demos()
		np.Predict.SetDemos(slices.DeleteFunc(slices.Clone(cache[i]), func(d Example) bool { return sameExample(d, ex) }))
	}
	runCtx := ctx
	if round > 0 {
		runCtx = withRollout(ctx, fmt.Sprintf("bootstrap-round-%d", round))
	}
	res, err := Execute(runCtx, model, teacher, ex.Inputs)
	for i, np := range preds {
		np.Predict.SetDemos(cache[i])
	}
	if ctx.Err() != nil {
		return false, nil, fmt.Errorf("bootstrap: %w", ctx.Err())
	}
	if err != nil {
		return false, err, nil
	}
	if o.Metric != nil {
		score := o.Metric(ex, res.Outputs, res.Trace)
		if (o.Threshold > 0 && score < o.Threshold) || (o.Threshold <= 0 && score <= 0) {
			return false, nil, nil
		}
	}
	perPred := map[string][]Example{}
	var order []string
	for _, step := range res.Trace {
		name, ok := names[step.Predict]
		if !ok || step.Err != nil {
			continue
		}
		if _, seen := perPred[name]; !seen {
			order = append(order, name)
		}
		in := withoutKey(step.Inputs, hintField.Name)
		perPred[name] = append(perPred[name], Example{Inputs: in, Outputs: step.Outputs, Augmented: true})
	}
	for _, name := range order {
		demos := perPred[name]
		if len(demos) > 1 {
			// As DSPy: one of the earlier calls or the last one, 50/50,
			// seeded by the demos themselves.
			rng := newRand(o.Seed ^ hashJSON(demos))
			if rng.Float64() < 0.5 {
				demos = []Example{demos[rng.IntN(len(demos)-1)]}
			} else {
				demos = demos[len(demos)-1:]
			}
		}
		traces[name] = append(traces[name], demos...)
	}
	return true, nil, nil
}

// withoutKey copies m without key.
func withoutKey(m Values, key string) Values {
	out := make(Values, len(m))
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// sameExample compares two examples by their JSON form, so values decoded
// from a file equal the same values built in code.
func sameExample(a, b Example) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		return reflect.DeepEqual(a, b)
	}
	return string(ja) == string(jb)
}

func hashJSON(v any) uint64 {
	h := fnv.New64a()
	if err := json.NewEncoder(h).Encode(v); err != nil {
		fmt.Fprint(h, v)
	}
	return h.Sum64()
}
