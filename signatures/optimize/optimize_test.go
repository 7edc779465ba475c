package optimize

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
	"github.com/kowai/kowai/signatures/lm/offline"
	"github.com/kowai/kowai/signatures/programs"
)

const (
	trainFile = "../../examples/boolqa-train.jsonl"
	devFile   = "../../examples/boolqa-dev.jsonl"
)

func TestRunOnShippedExamplesWithOfflineModel(t *testing.T) {
	out := filepath.Join(t.TempDir(), "boolqa.json")
	model := lm.NewProvider("offline", offline.DefaultModelName, offline.New())
	var stdout, stderr bytes.Buffer
	err := Run(t.Context(), Options{Program: "boolqa", Trainset: trainFile, Devset: devFile, Out: out}, model, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	got := stdout.String()
	// The offline model answers True to every yes/no question: 6 of the 10
	// dev answers are true.
	for _, want := range []string{
		"16 training examples", "10 evaluation examples",
		"score before: 60.0 (0 errors)",
		"bootstrap few-shot: 4 of 6 teacher runs accepted; demos: answer=16",
		"score after: 60.0 (+0.0, 0 errors)",
		"wrote " + out + " (version sha256:",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr is not a terminal but got %q", stderr.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := signatures.ReadState(f)
	if err != nil {
		t.Fatal(err)
	}
	fresh := programs.NewBoolQA()
	if err := signatures.LoadState(fresh, st); err != nil {
		t.Fatal(err)
	}
	if st.Program != "boolqa" || len(fresh.Answer.Demos()) != 16 {
		t.Errorf("state program %q, %d demos", st.Program, len(fresh.Answer.Demos()))
	}
}

func TestRunScoreGain(t *testing.T) {
	// A model that answers correctly only once it sees demos.
	model := lmtest.NewScripted(nil, lmtest.WithRespond(func(req *lm.Request) lmtest.Output {
		last := req.Messages[len(req.Messages)-1].Parts[0].(interface{ String() string }).String()
		answer := "False"
		if len(req.Messages) > 2 || strings.Contains(last, "Is water made of hydrogen") {
			answer = "True"
			if strings.Contains(last, "9 a prime") || strings.Contains(last, "flat") || strings.Contains(last, "fish") || strings.Contains(last, "ultraviolet") {
				answer = "False"
			}
		}
		return lmtest.Output{Text: "[[ ## answer ## ]]\n" + answer + "\n\n[[ ## completed ## ]]"}
	}))
	var stdout bytes.Buffer
	out := filepath.Join(t.TempDir(), "s.json")
	err := Run(t.Context(), Options{Program: "boolqa", Trainset: trainFile, Devset: devFile, Out: out, Optimizer: "labeled", MaxLabeled: 2, Seed: 1},
		model, &stdout, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"score before: 40.0", "labeled few-shot: 2 demos per predictor", "score after: 100.0 (+60.0, 0 errors)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	model := lm.NewProvider("offline", offline.DefaultModelName, offline.New())
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	noMetric := programs.NewRegistry()
	if err := noMetric.Register(programs.Entry{Name: "x", New: func() signatures.Module { return programs.NewBoolQA() }}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "o.json")
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"missing flags", Options{Program: "boolqa"}, "required"},
		{"unknown program", Options{Program: "nope", Trainset: trainFile, Out: out}, `unknown program "nope"`},
		{"bad optimizer", Options{Program: "boolqa", Trainset: trainFile, Out: out, Optimizer: "gepa"}, "--optimizer"},
		{"missing file", Options{Program: "boolqa", Trainset: filepath.Join(dir, "none.jsonl"), Out: out}, "no such file"},
		{"empty set", Options{Program: "boolqa", Trainset: empty, Out: out}, "no examples"},
		{"no metric", Options{Program: "x", Trainset: trainFile, Out: out, Registry: noMetric}, "no metric"},
	}
	for _, tt := range tests {
		err := Run(t.Context(), tt.opts, model, &bytes.Buffer{}, &bytes.Buffer{})
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error = %v, want ErrUsage containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed run left %s behind", out)
	}
}

// A model that fails every call yields no score and no state file: Run
// fails (the command exits 1) instead of writing a compiled program.
func TestRunEveryExampleFailed(t *testing.T) {
	down := errors.New("connection refused")
	model := lmtest.NewScripted(nil, lmtest.WithRespond(func(*lm.Request) lmtest.Output { return lmtest.Output{Err: down} }))
	out := filepath.Join(t.TempDir(), "s.json")
	var stdout bytes.Buffer
	err := Run(t.Context(), Options{Program: "boolqa", Trainset: trainFile, Devset: devFile, Out: out}, model, &stdout, &bytes.Buffer{})
	if !errors.Is(err, ErrAllFailed) || !errors.Is(err, down) || errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "10 of 10") {
		t.Fatalf("error = %v; want ErrAllFailed wrapping the model's error", err)
	}
	if strings.HasPrefix(err.Error(), "optimize:") {
		t.Errorf("error %q repeats the command's name", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed run wrote %s", out)
	}
	if strings.Contains(stdout.String(), "wrote") {
		t.Errorf("output claims a write:\n%s", stdout.String())
	}
}

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	off := newProgressBar(&buf)
	if off.update("x") != nil {
		t.Error("progress bar on for a non-terminal")
	}
	bar := &progressBar{w: &buf, on: true}
	bar.update("before")(5, 10)
	bar.done()
	if got := buf.String(); got != "\rbefore ["+strings.Repeat("#", 15)+strings.Repeat(".", 15)+"] 5/10\r\033[K" {
		t.Errorf("bar = %q", got)
	}
}
