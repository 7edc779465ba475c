package translator_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/examples/translator"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
)

// The README's "Adding an agent type" shows translator.go whole.
func TestREADMEShowsThisFile(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile("translator.go")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Adding an agent type\n")
	if !ok {
		t.Fatal(`README.md has no "## Adding an agent type" section`)
	}
	_, block, ok := strings.Cut(section, "```go\n")
	block, _, closed := strings.Cut(block, "```\n")
	if !ok || !closed {
		t.Fatal("the section has no Go block")
	}
	if block != string(file) {
		t.Fatalf("the README's block differs from translator.go:\n%s", block)
	}
}

// The type registers next to the built-ins, its schema comes from Config (the float
// bound is checked), and an agent of it answers with its config in the prompt.
func TestTranslator(t *testing.T) {
	reg, err := agents.NewRegistry(append(agents.Builtins(time.Now), translator.Type())...)
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]map[string]any `json:"properties"`
	}
	for _, info := range reg.List() {
		if info.Name == "translator" {
			if err := json.Unmarshal(info.ConfigSchema, &schema); err != nil {
				t.Fatal(err)
			}
		}
	}
	if f := schema.Properties["formality"]; f["type"] != "number" || f["maximum"] != 1.0 || schema.Properties["history_window"] == nil {
		t.Fatalf("schema properties %v", schema.Properties)
	}
	for _, bad := range []string{`{"formality":1.5}`, `{"formality":-0.5}`, `{"language":42}`, `{"dialect":"x"}`} {
		if _, err := reg.ParseConfig("translator", json.RawMessage(bad)); !errors.Is(err, agents.ErrInvalidConfig) {
			t.Errorf("config %s: %v, want ErrInvalidConfig", bad, err)
		}
	}
	model := lmtest.NewScripted([]lmtest.Output{
		{Text: "[[ ## translation ## ]]\nGuten Morgen\n\n[[ ## completed ## ]]"},
		{Text: "[[ ## translation ## ]]\nBonjour\n\n[[ ## completed ## ]]"},
	})
	for _, tc := range []struct{ config, want, reply string }{
		{`{"language":"German","formality":0.5}`, "German", "Guten Morgen"},
		{`{}`, "French", "Bonjour"},
	} {
		_, program, err := reg.Compile(agents.Spec{ID: "a1", Name: "To " + tc.want, Type: "translator", Config: json.RawMessage(tc.config)})
		if err != nil {
			t.Fatal(err)
		}
		out, err := program.Reply(context.Background(), model, agents.Input{Message: "Good morning"})
		if err != nil {
			t.Fatal(err)
		}
		reqs := model.Requests()
		if prompt := lm.MessagesText(reqs[len(reqs)-1].Messages); out.Text != tc.reply || !strings.Contains(prompt, tc.want) {
			t.Fatalf("config %s: reply %q, prompt %s", tc.config, out.Text, prompt)
		}
	}
}
