package optimize

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
	"github.com/kowai/kowai/signatures/lm/offline"
)

// task is a shipped example set and a model that rewards better
// instructions on it.
type task struct {
	program, train, dev string
	model               *lmtest.InstructionSensitive
}

func goldOf(t *testing.T, field string, files ...string) map[string]string {
	t.Helper()
	gold := map[string]string{}
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		exs, err := signatures.ReadExamples(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range exs {
			for _, v := range ex.Inputs {
				gold[fmt.Sprint(v)] = fmtValue(ex.Outputs[field])
			}
		}
	}
	return gold
}

func fmtValue(v any) string {
	if b, ok := v.(bool); ok {
		if b {
			return "True"
		}
		return "False"
	}
	return fmt.Sprint(v)
}

func tasks(t *testing.T) []task {
	sentTrain, sentDev := "../../examples/sentiment-train.jsonl", "../../examples/sentiment-dev.jsonl"
	return []task{
		{"boolqa", trainFile, devFile, &lmtest.InstructionSensitive{
			Gold: goldOf(t, "answer", trainFile, devFile),
			Wrong: func(g string) string {
				if g == "True" {
					return "False"
				}
				return "True"
			},
			Keywords: []string{"step by step", "fact", "careful"},
			Base:     0.4, Step: 0.15, DemoBonus: 0.1,
			Proposals: []string{
				"Answer quickly.",
				"Think step by step, then answer True or False.",
				"Recall the relevant fact, think step by step and answer True or False.",
				"Be careful: recall the relevant fact, reason step by step, then answer True or False.",
				"You are a careful quiz champion; answer True or False.",
			},
		}},
		{"sentiment", sentTrain, sentDev, &lmtest.InstructionSensitive{
			Gold: goldOf(t, "sentiment", sentTrain, sentDev),
			Wrong: func(g string) string {
				return map[string]string{"positive": "negative", "negative": "neutral", "neutral": "positive"}[g]
			},
			Keywords: []string{"tone", "neutral", "evidence"},
			Base:     0.4, Step: 0.15, DemoBonus: 0.1,
			Proposals: []string{
				"Say how the text feels.",
				"Judge the tone of the text.",
				"Judge the tone of the text; plain statements of fact are neutral.",
				"Weigh the evidence for the writer's tone; factual statements without feeling are neutral.",
				"You are a critic; label the review.",
			},
		}},
	}
}

var scoreAfterRE = regexp.MustCompile(`score after: ([0-9.]+)`)

// TestInstructionOptimizersBeatBootstrap runs BootstrapFewShot, MIPROv2
// and COPRO through `kowai optimize`'s Run on both shipped example sets,
// against a model whose accuracy depends on the instructions, prints the
// score table and checks that each instruction optimizer beats
// BootstrapFewShot alone on the dev set.
func TestInstructionOptimizersBeatBootstrap(t *testing.T) {
	var table strings.Builder
	fmt.Fprintf(&table, "\n| %-9s | %-6s | %-9s | %-5s | %-5s |\n|---|---|---|---|---|\n", "program", "before", "bootstrap", "mipro", "copro")
	for _, tk := range tasks(t) {
		scores := map[string]float64{}
		var before float64
		for _, opt := range []string{"bootstrap", "mipro", "copro"} {
			out := filepath.Join(t.TempDir(), opt+".json")
			var stdout bytes.Buffer
			err := Run(t.Context(), Options{Program: tk.program, Trainset: tk.train, Devset: tk.dev, Out: out, Optimizer: opt, Seed: 7},
				tk.model, &stdout, &bytes.Buffer{})
			if err != nil {
				t.Fatalf("%s %s: %v\n%s", tk.program, opt, err, stdout.String())
			}
			m := scoreAfterRE.FindStringSubmatch(stdout.String())
			if m == nil {
				t.Fatalf("%s %s: no score in\n%s", tk.program, opt, stdout.String())
			}
			scores[opt], _ = strconv.ParseFloat(m[1], 64)
			if b := regexp.MustCompile(`score before: ([0-9.]+)`).FindStringSubmatch(stdout.String()); b != nil {
				before, _ = strconv.ParseFloat(b[1], 64)
			}
			t.Logf("%s %s:\n%s", tk.program, opt, stdout.String())
		}
		fmt.Fprintf(&table, "| %-9s | %6.1f | %9.1f | %5.1f | %5.1f |\n", tk.program, before, scores["bootstrap"], scores["mipro"], scores["copro"])
		for _, opt := range []string{"mipro", "copro"} {
			if scores[opt] <= scores["bootstrap"] {
				t.Errorf("%s: %s scores %.1f, not above BootstrapFewShot's %.1f", tk.program, opt, scores[opt], scores["bootstrap"])
			}
		}
	}
	t.Log(table.String())
}

// TestInstructionOptimizersDeterministic: the same seed gives the same
// compiled state, byte for byte.
func TestInstructionOptimizersDeterministic(t *testing.T) {
	tk := tasks(t)[0]
	for _, opt := range []string{"mipro", "copro"} {
		var versions []string
		for range 2 {
			out := filepath.Join(t.TempDir(), "state.json")
			if err := Run(t.Context(), Options{Program: tk.program, Trainset: tk.train, Devset: tk.dev, Out: out, Optimizer: opt, Seed: 3},
				tk.model, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			versions = append(versions, string(b))
		}
		if versions[0] != versions[1] {
			t.Errorf("%s: two runs with one seed differ:\n%s\n%s", opt, versions[0], versions[1])
		}
	}
}

// TestInstructionOptimizersOnOfflineModel: both run end to end on the
// default offline model and write loadable state.
func TestInstructionOptimizersOnOfflineModel(t *testing.T) {
	model := lm.NewProvider("offline", offline.DefaultModelName, offline.New())
	for _, opt := range []string{"miprov2", "copro"} {
		out := filepath.Join(t.TempDir(), opt+".json")
		var stdout bytes.Buffer
		if err := Run(t.Context(), Options{Program: "boolqa", Trainset: trainFile, Devset: devFile, Out: out, Optimizer: opt}, model, &stdout, &bytes.Buffer{}); err != nil {
			t.Fatalf("%s: %v\n%s", opt, err, stdout.String())
		}
		if !strings.Contains(stdout.String(), "wrote "+out) {
			t.Errorf("%s:\n%s", opt, stdout.String())
		}
	}
}
