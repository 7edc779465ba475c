package lm

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kowai/kowai/signatures/lm/offline"
)

func TestParseEndpoints(t *testing.T) {
	eps, err := ParseEndpoints(`[{"name":"openai:gpt-4o-mini","base_url":"http://x/v1","api_key_env":"K","input_per_1k":0.00015,"output_per_1k":0.0006},
		{"name":"ollama:llama3","premium":true}]`)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 2 || eps[0].Spec() != (ModelSpec{"openai", "gpt-4o-mini"}) || !eps[1].Premium {
		t.Fatalf("endpoints = %+v", eps)
	}
	if p := eps[0].Price(); p.Input != 0.15 || p.Output != 0.6 {
		t.Fatalf("price per million = %+v", p)
	}
	if eps, err := ParseEndpoints("  "); err != nil || eps != nil {
		t.Fatalf("empty: %v %v", eps, err)
	}
	for raw, want := range map[string]string{
		`{"name":"openai:x"}`:                       "JSON list",
		`[{"name":"gpt-4"}]`:                        "provider:model",
		`[{"name":"cohere:x"}]`:                     "provider:model",
		`[{"name":"openai:x"},{"name":"openai:x"}]`: "twice",
		`[{"name":"openai:x","input_per_1k":-1}]`:   "negative",
		`[{"name":"openai:x","api_key":"sk-1"}]`:    "unknown field",
	} {
		_, err := ParseEndpoints(raw)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", raw, err, want)
		}
	}
}

// The catalog builds each endpoint's stack once, however many callers ask at
// once, and refuses names it does not know.
func TestCatalogBuildsOnce(t *testing.T) {
	def := NewProvider("openai", "base", offline.New())
	eps := []Endpoint{{Name: "openai:a", InputPer1K: 1, OutputPer1K: 2, Premium: true}, {Name: "ollama:b"}}
	var builds atomic.Int64
	c := NewCatalog(def, ModelInfo{InputPer1K: 0.5}, eps, func(e Endpoint) (LM, error) {
		builds.Add(1)
		return NewProvider(e.Spec().Provider, e.Spec().Model, offline.New()), nil
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			m, err := c.Model("openai:a")
			if err != nil || m.Name() != "openai:a" {
				t.Errorf("Model = %v, %v", m, err)
			}
		})
	}
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Fatalf("built %d times", n)
	}
	if m, _ := c.Model(""); m != LM(def) {
		t.Fatal("\"\" is not the default")
	}
	if _, err := c.Model("openai:c"); !errors.Is(err, ErrConfig) {
		t.Fatalf("unknown model: %v", err)
	}
	if info, ok := c.Lookup("openai:a"); !ok || !info.Premium || info.InputPer1K != 1 {
		t.Fatalf("Lookup = %+v %v", info, ok)
	}
	if _, ok := c.Lookup("gpt-4"); ok {
		t.Fatal("an unconfigured name was found")
	}
	var names []string
	for _, m := range c.List() {
		names = append(names, m.Name)
	}
	if got := strings.Join(names, ","); got != "openai:base,offline,openai:a,ollama:b" {
		t.Fatalf("List = %s", got)
	}
}

func TestForEndpoint(t *testing.T) {
	base := Config{Provider: "anthropic", Model: "x", Fallback: "openai:y", BudgetUSD: 1, Retry: RetryPolicy{MaxAttempts: 5}}
	cfg := base.ForEndpoint(Endpoint{Name: "openai:gpt-4o", BaseURL: "http://h/v1", InputPer1K: 0.002, OutputPer1K: 0.004}, "sk")
	if cfg.Provider != "openai" || cfg.Model != "gpt-4o" || cfg.BaseURL != "http://h/v1" || cfg.APIKey != "sk" ||
		cfg.Fallback != "" || cfg.BudgetUSD != 0 || cfg.Retry.MaxAttempts != 5 {
		t.Fatalf("config = %+v", cfg)
	}
	if p := cfg.Prices["openai:gpt-4o"]; p.Input != 2 || p.Output != 4 {
		t.Fatalf("price = %+v", p)
	}
}
