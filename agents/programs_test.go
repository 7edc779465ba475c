package agents_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

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

// Compiled state loads onto the program an agent's type builds: CheckProgram
// returns its content hash, Compile runs it, and state that does not fit is
// refused with ErrInvalidProgram.
func TestCompiledProgramState(t *testing.T) {
	reg, err := agents.NewRegistry(agents.Builtins(time.Now)...)
	if err != nil {
		t.Fatal(err)
	}
	spec := agents.Spec{ID: "a", Type: "chat"}
	_, prog, err := reg.Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	m := prog.(agents.ModuleProgram).Module()
	st, err := signatures.SaveState(m, "chat")
	if err != nil {
		t.Fatal(err)
	}
	for name, ps := range st.Predictors {
		ps.Signature.Instructions = "Compiled instructions."
		st.Predictors[name] = ps
	}
	st.Version = ""
	if err := signatures.LoadState(m, st); err != nil {
		t.Fatal(err)
	}
	if st, err = signatures.SaveState(m, "chat"); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := reg.CheckProgram(spec, raw); err != nil || v != st.Version {
		t.Fatalf("CheckProgram = %q, %v; want %q", v, err, st.Version)
	}
	spec.Program = raw
	_, prog, err = reg.Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, np := range signatures.Predictors(prog.(agents.ModuleProgram).Module()) {
		if got := np.Predict.Signature().Instructions(); got != "Compiled instructions." {
			t.Fatalf("compiled agent's predictor %s has instructions %q", np.Name, got)
		}
	}
	tampered := strings.Replace(string(raw), "Compiled instructions.", "Other instructions.", 1)
	for _, tc := range []struct {
		name string
		spec agents.Spec
		raw  string
	}{
		{"not JSON", agents.Spec{ID: "a", Type: "chat"}, `{`},
		{"unknown key", agents.Spec{ID: "a", Type: "chat"}, strings.Replace(string(raw), `{"format"`, `{"extra":1,"format"`, 1)},
		{"no version", agents.Spec{ID: "a", Type: "chat"}, strings.Replace(string(raw), st.Version, "", 1)},
		{"content changed", agents.Spec{ID: "a", Type: "chat"}, tampered},
		{"another type", agents.Spec{ID: "a", Type: "analysis"}, string(raw)},
		{"another signature", agents.Spec{ID: "a", Type: "chat", Signature: "question -> answer"}, string(raw)},
	} {
		if _, err := reg.CheckProgram(tc.spec, json.RawMessage(tc.raw)); !errors.Is(err, agents.ErrInvalidProgram) {
			t.Errorf("%s: %v, want ErrInvalidProgram", tc.name, err)
		}
	}
}
