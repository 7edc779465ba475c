package signatures

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
)

// A typical typed reply: a text field, a list, an object and a float, with
// the structured fields in JSON (strict) or as Python literals (lenient).
var (
	parseBenchSig = MustParse("question -> answer, tags: list[str], meta: dict, score: float")
	strictReply   = reply("answer", "Paris is the capital of France.", "tags", `["geography", "europe", "capitals"]`,
		"meta", `{"source": "atlas", "confidence": 0.93, "verified": true, "pages": [12, 13]}`, "score", "0.93")
	lenientReply = reply("answer", "Paris is the capital of France.", "tags", `['geography', 'europe', 'capitals']`,
		"meta", `{'source': 'atlas', 'confidence': 0.93, 'verified': True, 'pages': (12, 13)}`, "score", "0.93")
)

// BenchmarkParseReply measures ParseReply on a typical reply: strict (JSON
// fields) and lenient (the same fields as Python literals, read after the
// JSON attempt fails), and reports lenient/strict as x-vs-baseline.
//
// Goals (issue 14): at least 200k replies/s on one core, and the lenient
// path no slower than 2x the strict one.
func BenchmarkParseReply(b *testing.B) {
	parse := func(b *testing.B, text string) {
		if _, err := ParseReply(parseBenchSig, text); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct{ name, text string }{{"strict", strictReply}, {"lenient", lenientReply}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			start := time.Now()
			n := 0
			for b.Loop() {
				parse(b, c.text)
				n++
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "replies/s")
		})
	}
	b.Run("ratio", func(b *testing.B) {
		var strictT, lenientT time.Duration
		for b.Loop() {
			t0 := time.Now()
			parse(b, strictReply)
			t1 := time.Now()
			parse(b, lenientReply)
			strictT += t1.Sub(t0)
			lenientT += time.Since(t1)
		}
		b.ReportMetric(float64(lenientT)/float64(strictT), "x-vs-baseline")
	})
}

// benchSet is n labeled boolqa-like examples and the gold answers.
func benchSet(n int) ([]Example, map[string]string) {
	gold := map[string]string{}
	var set []Example
	for i := range n {
		q := fmt.Sprintf("Is %d an even number?", i)
		a := i%2 == 0
		gold[q] = formatValue(a)
		set = append(set, Example{Inputs: Values{"question": q}, Outputs: Values{"answer": a}})
	}
	return set, gold
}

// BenchmarkBootstrapCompile measures BootstrapFewShot's compile time per
// training example with an in-memory model (the signature layer's own
// cost: rendering, parsing, traces, demo selection), reported as
// ns/example.
func BenchmarkBootstrapCompile(b *testing.B) {
	train, gold := benchSet(32)
	model := &lmtest.InstructionSensitive{Gold: gold, Wrong: func(g string) string {
		if g == "True" {
			return "False"
		}
		return "True"
	}, Base: 0.5}
	ctx := context.Background()
	var total time.Duration
	examples := 0
	for b.Loop() {
		p := NewPredict(MustParse("question -> answer: bool"), PredictOptions{})
		start := time.Now()
		if _, err := (BootstrapFewShot{Metric: ExactMatch("answer"), MaxBootstrapped: 8}).Compile(ctx, model, p, train); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		examples += len(train)
	}
	b.ReportMetric(float64(total)/float64(examples), "ns/example")
}

// BenchmarkMIPROv2Trial measures MIPROv2's cost per search trial (demo
// sets, proposals and full evaluations included, divided by the trials)
// with an in-memory model over 40 examples, reported as ns/trial.
func BenchmarkMIPROv2Trial(b *testing.B) {
	train, gold := benchSet(40)
	var model lm.LM = &lmtest.InstructionSensitive{Gold: gold, Wrong: func(string) string { return "False" },
		Keywords: []string{"even"}, Base: 0.5, Step: 0.4, DemoBonus: 0.05, Proposals: []string{"Check whether the number is even.", "Answer."}}
	ctx := context.Background()
	var total time.Duration
	trials := 0
	for b.Loop() {
		p := NewPredict(MustParse("question -> answer: bool"), PredictOptions{})
		start := time.Now()
		rep, err := MIPROv2{Metric: ExactMatch("answer"), NumCandidates: 4, NumTrials: 8, Seed: 1}.Compile(ctx, model, p, train)
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		trials += rep.Trials
	}
	b.ReportMetric(float64(total)/float64(trials), "ns/trial")
}
