package node

import (
	"errors"
	"maps"
	"testing"

	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/workflows"
)

// Each endpoint's key is read from the variable it names, and only that.
func TestEndpointKeys(t *testing.T) {
	env := map[string]string{"A_KEY": "sk-a", "OTHER": "x"}
	eps, err := lm.ParseEndpoints(`[{"name":"openai:a","api_key_env":"A_KEY"},{"name":"ollama:b"}]`)
	if err != nil {
		t.Fatal(err)
	}
	got := endpointKeys(eps, func(k string) string { return env[k] })
	if want := map[string]string{"A_KEY": "sk-a"}; !maps.Equal(got, want) {
		t.Fatalf("keys = %v, want %v", got, want)
	}
}

// Options.Workflows registers next to the built-ins; its error fails New.
func TestOptionsWorkflows(t *testing.T) {
	cfg := testenv.NodeConfig(t, nil)
	n, err := New(t.Context(), cfg, Options{Workflows: func(reg *workflows.Registry) error {
		return workflows.Register(reg, "echo", func(_ *workflows.Context, p struct{ Text string }) (string, error) { return p.Text, nil })
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	}()
	if _, err := n.wf.Registry().Lookup("echo"); err != nil {
		t.Errorf("echo: %v", err)
	}
	if _, err := n.wf.Registry().Lookup("research"); err != nil {
		t.Errorf("built-in research: %v", err)
	}
	refused := errors.New("refused")
	_, err = New(t.Context(), testenv.NodeConfig(t, nil), Options{Workflows: func(*workflows.Registry) error { return refused }})
	if !errors.Is(err, refused) {
		t.Errorf("New with a failing Workflows: %v, want %v", err, refused)
	}
}
