package lm

import (
	"fmt"
	"strconv"
	"strings"
)

// Price is the cost of one million tokens, in US dollars.
type Price struct {
	// Input is the price of prompt tokens that were not served from the
	// provider's prompt cache.
	Input float64 `json:"input"`
	// Output is the price of completion tokens.
	Output float64 `json:"output"`
	// Cached is the price of prompt tokens read from the provider's prompt
	// cache; zero means "same as Input".
	Cached float64 `json:"cached"`
}

// Prices maps "provider:model" to a price. A model missing from the table
// costs nothing (and Lookup says so).
type Prices map[string]Price

// DefaultPrices returns a fresh copy of the built-in table: list prices of a
// few well-known OpenAI and Anthropic models, and the offline model at zero.
// Prices change; override them through Config.Prices.
func DefaultPrices() Prices {
	return Prices{
		"openai:gpt-4o":                       {Input: 2.50, Output: 10.00, Cached: 1.25},
		"openai:gpt-4o-mini":                  {Input: 0.15, Output: 0.60, Cached: 0.075},
		"openai:gpt-4.1":                      {Input: 2.00, Output: 8.00, Cached: 0.50},
		"openai:gpt-4.1-mini":                 {Input: 0.40, Output: 1.60, Cached: 0.10},
		"openai:gpt-4.1-nano":                 {Input: 0.10, Output: 0.40, Cached: 0.025},
		"anthropic:claude-3-5-haiku-latest":   {Input: 0.80, Output: 4.00, Cached: 0.08},
		"anthropic:claude-3-5-sonnet-latest":  {Input: 3.00, Output: 15.00, Cached: 0.30},
		"anthropic:claude-sonnet-4-20250514":  {Input: 3.00, Output: 15.00, Cached: 0.30},
		"anthropic:claude-opus-4-20250514":    {Input: 15.00, Output: 75.00, Cached: 1.50},
		"offline:" + defaultModels["offline"]: {},
	}
}

// With returns a copy of p with overrides applied on top.
func (p Prices) With(overrides Prices) Prices {
	out := make(Prices, len(p)+len(overrides))
	for k, v := range p {
		out[k] = v
	}
	for k, v := range overrides {
		out[k] = v
	}
	return out
}

// Lookup returns the price of model ("provider:model"). Every offline model
// is free.
func (p Prices) Lookup(model string) (Price, bool) {
	if pr, ok := p[model]; ok {
		return pr, true
	}
	if strings.HasPrefix(model, "offline:") {
		return Price{}, true
	}
	return Price{}, false
}

// Cost prices u for model; unknown models cost 0.
func (p Prices) Cost(model string, u Usage) float64 {
	pr, _ := p.Lookup(model)
	return pr.Cost(u)
}

// Cost prices u at this price.
func (pr Price) Cost(u Usage) float64 {
	cached := pr.Cached
	if cached == 0 {
		cached = pr.Input
	}
	uncached := max(u.PromptTokens-u.CachedTokens, 0)
	return (float64(uncached)*pr.Input + float64(u.CachedTokens)*cached + float64(u.CompletionTokens)*pr.Output) / 1e6
}

// ParsePrices reads price overrides in the form
// "provider:model=input/output[/cached],..." (USD per million tokens), as
// given in KOWAI_LLM_PRICES.
func ParsePrices(s string) (Prices, error) {
	out := Prices{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		model, spec, ok := strings.Cut(item, "=")
		parts := strings.Split(spec, "/")
		if !ok || !strings.Contains(model, ":") || len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("%w: KOWAI_LLM_PRICES item %q: want provider:model=input/output[/cached] in USD per million tokens", ErrConfig, item)
		}
		var nums [3]float64
		for i, part := range parts {
			n, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: KOWAI_LLM_PRICES item %q: %q is not a non-negative number", ErrConfig, item, part)
			}
			nums[i] = n
		}
		out[strings.TrimSpace(model)] = Price{Input: nums[0], Output: nums[1], Cached: nums[2]}
	}
	return out, nil
}
