package agents_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/programs"
)

// predictorNames lists the predictor paths of a module.
func predictorNames(m signatures.Module) []string {
	var out []string
	for _, p := range signatures.Predictors(m) {
		out = append(out, p.Name)
	}
	return out
}

// Every agent type is one program under its own name for kowai optimize, built as the
// type's agents run it, next to the example programs; a program is never registered
// under two names.
func TestProgramsAreTheAgentTypes(t *testing.T) {
	r := registry(t)
	progs, err := r.Programs(programs.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"advanced-chat", "analysis", "boolqa", "chat", "react", "sentiment"}; !slices.Equal(progs.Names(), want) {
		t.Fatalf("programs %v, want %v", progs.Names(), want)
	}
	for _, info := range r.List() {
		e, err := progs.Get(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		_, prog, err := r.Compile(agents.Spec{ID: agents.BuiltinID(info.Name), Type: info.Name})
		if err != nil {
			t.Fatal(err)
		}
		mp, ok := prog.(agents.ModuleProgram)
		if !ok {
			t.Fatalf("%s: the agent's program exposes no module", info.Name)
		}
		got, want := predictorNames(e.New()), predictorNames(mp.Module())
		if len(got) == 0 || !slices.Equal(got, want) {
			t.Errorf("%s: kowai optimize compiles predictors %v, the agent runs %v", info.Name, got, want)
		}
		if e.Metric == nil {
			t.Errorf("%s: no metric", info.Name)
		}
	}
	if e, _ := progs.Get("advanced-chat"); e.New() == nil {
		t.Fatal("advanced-chat builds nothing")
	} else if _, ok := e.New().(*programs.MultiStageChat); !ok {
		t.Fatalf("advanced-chat is %T, want the multi-stage chat program", e.New())
	}
	clash := programs.NewRegistry()
	if err := clash.Register(programs.Entry{Name: "chat", New: func() signatures.Module { return programs.NewBoolQA() }}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Programs(clash); !errors.Is(err, agents.ErrInvalidType) {
		t.Fatalf("a program named like a type: %v, want ErrInvalidType", err)
	}
}
