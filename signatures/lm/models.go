package lm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// OfflineModel is the model name an agent gives to run on the built-in
// offline model whatever the node's default is.
const OfflineModel = "offline"

// Endpoint is one named model the operator configured (an entry of
// KOWAI_LLM_MODELS). The API key is named by the environment variable that
// holds it, never stored here, so a configuration dump shows no secret.
type Endpoint struct {
	// Name is "provider:model", e.g. "openai:gpt-4o-mini"; agents name it in
	// their model field.
	Name string `json:"name"`
	// BaseURL is the provider's endpoint (any OpenAI-compatible server for
	// openai); empty means the provider's public one.
	BaseURL string `json:"base_url,omitempty"`
	// APIKeyEnv names the environment variable holding the API key.
	APIKeyEnv string `json:"api_key_env,omitempty"`
	// InputPer1K and OutputPer1K are the prices in US dollars per 1,000
	// prompt and completion tokens.
	InputPer1K  float64 `json:"input_per_1k"`
	OutputPer1K float64 `json:"output_per_1k"`
	// Premium models may be chosen only by callers with the models:premium
	// permission.
	Premium bool `json:"premium,omitempty"`
}

// Spec returns the endpoint's provider and model.
func (e Endpoint) Spec() ModelSpec {
	p, m, _ := strings.Cut(e.Name, ":")
	return ModelSpec{Provider: p, Model: m}
}

// Price returns the endpoint's price in this package's unit (per million
// tokens).
func (e Endpoint) Price() Price {
	return Price{Input: e.InputPer1K * 1000, Output: e.OutputPer1K * 1000}
}

// ParseEndpoints reads KOWAI_LLM_MODELS: a JSON list of endpoints. Names must
// be provider:model with a known provider and unique; "offline" is reserved.
// Empty input is an empty list.
func ParseEndpoints(raw string) ([]Endpoint, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	var eps []Endpoint
	if err := dec.Decode(&eps); err != nil {
		return nil, fmt.Errorf("%w: KOWAI_LLM_MODELS: %v (want a JSON list of {\"name\":\"provider:model\",\"base_url\":...,\"api_key_env\":...,\"input_per_1k\":...,\"output_per_1k\":...,\"premium\":false})", ErrConfig, err)
	}
	seen := map[string]bool{}
	for i, e := range eps {
		provider, model, ok := strings.Cut(e.Name, ":")
		switch {
		case !ok || model == "" || !slices.Contains(providerNames, provider):
			return nil, fmt.Errorf("%w: KOWAI_LLM_MODELS entry %d: name %q: want provider:model with provider one of %s", ErrConfig, i+1, e.Name, strings.Join(providerNames, ", "))
		case seen[e.Name]:
			return nil, fmt.Errorf("%w: KOWAI_LLM_MODELS entry %d: name %q appears twice", ErrConfig, i+1, e.Name)
		case e.InputPer1K < 0 || e.OutputPer1K < 0:
			return nil, fmt.Errorf("%w: KOWAI_LLM_MODELS entry %d (%s): prices must not be negative", ErrConfig, i+1, e.Name)
		}
		seen[e.Name] = true
	}
	return eps, nil
}

// ModelInfo describes one model agents may name.
type ModelInfo struct {
	// Name is what an agent's model field holds ("" is never listed: it
	// means Default).
	Name string `json:"name"`
	// Premium models need the models:premium permission.
	Premium bool `json:"premium"`
	// Default marks the node's default model, used when an agent names none.
	Default bool `json:"default"`
	// InputPer1K and OutputPer1K are US dollars per 1,000 tokens.
	InputPer1K  float64 `json:"input_per_1k"`
	OutputPer1K float64 `json:"output_per_1k"`
}

// Catalog resolves an agent's model name to the model stack that serves it.
// The default stack serves "" (and its own name); "offline" is always
// available; every configured endpoint is built the first time it is named
// and then reused. It is safe for concurrent use.
type Catalog struct {
	def     LM
	defInfo ModelInfo
	eps     map[string]Endpoint
	order   []string
	build   func(Endpoint) (LM, error)

	mu    sync.Mutex
	built map[string]LM
}

// NewCatalog returns a catalog over def (the node's default stack, with its
// price per 1k tokens in defInfo) and the configured endpoints; build makes
// the stack of one endpoint (see Config.ForEndpoint).
func NewCatalog(def LM, defInfo ModelInfo, eps []Endpoint, build func(Endpoint) (LM, error)) *Catalog {
	c := &Catalog{def: def, defInfo: defInfo, eps: map[string]Endpoint{}, build: build, built: map[string]LM{}}
	c.defInfo.Name, c.defInfo.Default = def.Name(), true
	for _, e := range eps {
		c.eps[e.Name] = e
		c.order = append(c.order, e.Name)
	}
	return c
}

// Lookup describes the model named name: "" and the default's name are the
// default, "offline" is the free offline model. ok is false for a model the
// operator did not configure.
func (c *Catalog) Lookup(name string) (ModelInfo, bool) {
	switch {
	case name == "" || name == c.defInfo.Name:
		return c.defInfo, true
	case name == OfflineModel:
		return ModelInfo{Name: OfflineModel}, true
	}
	e, ok := c.eps[name]
	if !ok {
		return ModelInfo{}, false
	}
	return ModelInfo{Name: e.Name, Premium: e.Premium, InputPer1K: e.InputPer1K, OutputPer1K: e.OutputPer1K}, true
}

// List returns every model: the default first, then "offline", then the
// endpoints in configured order.
func (c *Catalog) List() []ModelInfo {
	out := []ModelInfo{c.defInfo, {Name: OfflineModel}}
	for _, n := range c.order {
		if n == c.defInfo.Name {
			continue
		}
		info, _ := c.Lookup(n)
		out = append(out, info)
	}
	return out
}

// Model returns the stack serving name, building it on first use. An unknown
// name is an ErrConfig error.
func (c *Catalog) Model(name string) (LM, error) {
	if name == "" || name == c.defInfo.Name || name == OfflineModel && strings.HasPrefix(c.defInfo.Name, "offline:") {
		return c.def, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.built[name]; ok {
		return m, nil
	}
	e, ok := c.eps[name]
	if name == OfflineModel {
		e, ok = Endpoint{Name: "offline:" + defaultModels["offline"]}, true
	}
	if !ok {
		return nil, fmt.Errorf("%w: model %q is not configured (see KOWAI_LLM_MODELS)", ErrConfig, name)
	}
	m, err := c.build(e)
	if err != nil {
		return nil, fmt.Errorf("lm: build model %s: %w", name, err)
	}
	c.built[name] = m
	return m, nil
}

// ForEndpoint returns the configuration of one endpoint's stack: cfg's
// layers (retry, breaker, cache, timeouts) around the endpoint's provider,
// model, base URL, key and price (when it gives one; otherwise the price
// table's), without fallbacks or a process budget.
func (cfg Config) ForEndpoint(e Endpoint, apiKey string) Config {
	spec := e.Spec()
	out := cfg
	out.Provider, out.Model, out.BaseURL, out.APIKey = spec.Provider, spec.Model, e.BaseURL, apiKey
	out.Fallback, out.BudgetUSD, out.BudgetTokens = "", 0, 0
	out.Prices = Prices{}.With(cfg.Prices)
	if e.InputPer1K != 0 || e.OutputPer1K != 0 {
		out.Prices[e.Name] = e.Price()
	}
	return out
}
