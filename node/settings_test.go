package node

import (
	"maps"
	"testing"

	"github.com/kowai/kowai/signatures/lm"
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
