package signatures

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
)

var coproTrain = []Example{
	{Inputs: Values{"input": "Question: What is the color of the sky?"}, Outputs: Values{"output": "blue"}},
	{Inputs: Values{"input": "Question: What does the fox say?"}, Outputs: Values{"output": "Ring-ding-ding-ding-dingeringeding!"}},
}

// TestCOPROOptimizationProcess mirrors tests/teleprompt/
// test_copro_optimizer.py, test_signature_optimizer_initialization and
// test_signature_optimizer_optimization_process: breadth 2, depth 1, a
// ChainOfThought student; the proposal request is DSPy's
// BasicGenerateInstruction, at the initial temperature, and a candidate that
// scores better replaces the instructions and the last output's prefix.
func TestCOPROOptimizationProcess(t *testing.T) {
	if _, err := (COPRO{Metric: ExactMatch("output"), Breadth: 1}).Compile(t.Context(), lmtest.Texts(), NewPredict(MustParse("a -> b"), PredictOptions{}), coproTrain); err == nil {
		t.Error("breadth 1 accepted (DSPy: must be greater than 1)")
	}
	student, err := NewChainOfThought(MustParse("input -> output"), PredictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	model := lmtest.NewScripted(nil, lmtest.WithRespond(func(req *lm.Request) lmtest.Output {
		sys := lm.MessagesText(req.Messages[:1])
		if strings.Contains(sys, "proposed_instruction") {
			return lmtest.Output{Text: reply("proposed_instruction", "Optimized instruction 1", "proposed_prefix_for_output_field", "Optimized instruction 2")}
		}
		// The task model answers right only under the optimized instructions.
		answer := "wrong"
		if strings.Contains(sys, "Optimized instruction 1") {
			q := lm.MessagesText(req.Messages[len(req.Messages)-1:])
			answer = map[bool]string{true: "blue", false: "Ring-ding-ding-ding-dingeringeding!"}[strings.Contains(q, "sky")]
		}
		return lmtest.Output{Text: reply("reasoning", "r", "output", answer)}
	}))
	rep, err := COPRO{Metric: ExactMatch("output"), Breadth: 2, Depth: 1, InitTemperature: 1.4, Parallel: 1}.Compile(t.Context(), model, student, coproTrain)
	if err != nil {
		t.Fatal(err)
	}
	sig := student.Predict.Signature()
	if sig.Instructions() != "Optimized instruction 1" || sig.Outputs()[1].Prefix != "Optimized instruction 2" || rep.Baseline != 0 || rep.Best != 100 {
		t.Errorf("instructions %q, prefix %q, report %+v", sig.Instructions(), sig.Outputs()[1].Prefix, rep)
	}
	var proposal *lm.Request
	for _, r := range model.Requests() {
		if strings.Contains(lm.MessagesText(r.Messages[:1]), "You are an instruction optimizer for large language models.") {
			proposal = &r
			break
		}
	}
	if proposal == nil || proposal.Temperature != 1.4 || !strings.Contains(lm.MessagesText(proposal.Messages), "[[ ## basic_instruction ## ]]\nGiven the fields `input`, produce the fields `output`.") {
		t.Errorf("proposal request %+v", proposal)
	}
}

// TestTPEPrefersTheBestValue: after its random start, the estimator
// (Optuna's TPE, which DSPy's MIPROv2 drives) samples the value that scored
// best far more often than the others, and the same seed gives the same
// sequence.
func TestTPEPrefersTheBestValue(t *testing.T) {
	run := func(seed uint64) [][]int {
		s := newTPE([]int{5, 3}, seed)
		var xs [][]int
		for range 40 {
			x := s.suggest()
			y := 0.0
			if x[0] == 3 {
				y = 1
			}
			s.observe(x, y)
			xs = append(xs, x)
		}
		return xs
	}
	xs := run(9)
	hits := 0
	for _, x := range xs[20:] {
		if x[0] == 3 {
			hits++
		}
	}
	if hits < 15 {
		t.Errorf("the best value was sampled %d of the last 20 times", hits)
	}
	if !reflect.DeepEqual(xs, run(9)) {
		t.Error("one seed, two sequences")
	}
}

// TestMIPROv2ZeroShot: without demos (both bounds negative) MIPROv2 searches
// instructions only, starting from the original, and keeps a better one.
func TestMIPROv2ZeroShot(t *testing.T) {
	gold := map[string]string{}
	var train []Example
	for i := range 20 {
		q := "q" + string(rune('a'+i))
		gold[q] = "yes"
		train = append(train, Example{Inputs: Values{"question": q}, Outputs: Values{"answer": "yes"}})
	}
	model := &lmtest.InstructionSensitive{Gold: gold, Wrong: func(string) string { return "no" }, Keywords: []string{"precise"},
		Base: 0.2, Step: 0.8, Proposals: []string{"Be precise.", "Answer."}}
	p := NewPredict(MustParse("question -> answer"), PredictOptions{})
	rep, err := MIPROv2{Metric: ExactMatch("answer"), MaxBootstrapped: -1, MaxLabeled: -1, NumCandidates: 4, Seed: 1}.Compile(t.Context(), model, p, train)
	if err != nil {
		t.Fatal(err)
	}
	if p.Signature().Instructions() != "Be precise." || len(p.Demos()) != 0 || rep.Best != 100 || rep.Candidates["self"][0] != "Given the fields `question`, produce the fields `answer`." {
		t.Errorf("instructions %q, %d demos, report %+v", p.Signature().Instructions(), len(p.Demos()), rep)
	}
}

// TestMIPROv2LabeledOnly: with bootstrapping off (MaxBootstrapped < 0) the
// demo sets are none and labeled only.
func TestMIPROv2LabeledOnly(t *testing.T) {
	gold := map[string]string{}
	var train []Example
	for i := range 10 {
		q := "question " + string(rune('a'+i))
		gold[q] = "yes"
		train = append(train, Example{Inputs: Values{"question": q}, Outputs: Values{"answer": "yes"}})
	}
	model := &lmtest.InstructionSensitive{Gold: gold, Wrong: func(string) string { return "no" }, Base: 0.3, DemoBonus: 0.7}
	p := NewPredict(MustParse("question -> answer"), PredictOptions{})
	rep, err := MIPROv2{Metric: ExactMatch("answer"), MaxBootstrapped: -1, MaxLabeled: 2, NumCandidates: 3, NumTrials: 6, Seed: 2}.Compile(t.Context(), model, p, train)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Demos()) != 2 || rep.Best != 100 || rep.DemoSets["self"] != 2 {
		t.Errorf("%d demos, report %+v", len(p.Demos()), rep)
	}
}
