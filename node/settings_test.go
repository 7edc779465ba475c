package node

import (
	"errors"
	"flag"
	"maps"
	"testing"

	"github.com/kowai/kowai/internal/config"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/workflows"
)

// testConfig is serve's configuration over an embedded database in a temporary
// directory, listening on free ports, without metrics.
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	env := map[string]string{"KOWAI_DATA_DIR": t.TempDir(), "KOWAI_HTTP_ADDR": "127.0.0.1:0", "KOWAI_METRICS_ADDR": "off"}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	load := config.Flags(fs, func(k string) string { return env[k] })
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

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
	cfg := testConfig(t)
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
	_, err = New(t.Context(), testConfig(t), Options{Workflows: func(*workflows.Registry) error { return refused }})
	if !errors.Is(err, refused) {
		t.Errorf("New with a failing Workflows: %v, want %v", err, refused)
	}
}
