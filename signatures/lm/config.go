package lm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kowai/kowai/signatures/lm/offline"
	"github.com/redis/go-redis/v9"
	"github.com/tmc/langchaingo/llms"
	"github.com/tmc/langchaingo/llms/anthropic"
	"github.com/tmc/langchaingo/llms/ollama"
	"github.com/tmc/langchaingo/llms/openai"
)

// Providers New knows, in the spelling of KOWAI_LLM_PROVIDER.
var providerNames = []string{"offline", "openai", "anthropic", "ollama"}

// defaultModels is each provider's model when none is configured.
var defaultModels = map[string]string{
	"offline":   offline.DefaultModelName,
	"openai":    "gpt-4o-mini",
	"anthropic": "claude-3-5-haiku-latest",
	"ollama":    "llama3.2",
}

const defaultOpenAIBaseURL = "https://api.openai.com/v1"

// placeholderKey stands in for the API key of OpenAI-compatible servers that
// need none (vLLM, llama.cpp, Ollama): langchaingo refuses an empty token.
const placeholderKey = "kowai-no-key"

// Config selects and tunes the model stack. It mirrors the KOWAI_LLM_*
// settings; the caller reads the environment and fills it in (this package
// never reads environment variables).
type Config struct {
	// Provider is KOWAI_LLM_PROVIDER: offline (default), openai, anthropic
	// or ollama.
	Provider string
	// Model is KOWAI_LLM_MODEL; empty means the provider's default.
	Model string
	// BaseURL is KOWAI_LLM_BASE_URL, for the primary provider only: any
	// OpenAI-compatible server for openai, the server URL for ollama.
	BaseURL string
	// APIKey is KOWAI_LLM_API_KEY, for the primary provider. When empty,
	// OpenAIAPIKey or AnthropicAPIKey is used according to the provider.
	APIKey string
	// OpenAIAPIKey and AnthropicAPIKey are OPENAI_API_KEY and
	// ANTHROPIC_API_KEY: fallbacks for APIKey, and the keys of fallback
	// models of those providers.
	OpenAIAPIKey    string
	AnthropicAPIKey string
	// Fallback is KOWAI_LLM_FALLBACK: "provider:model,provider:model",
	// tried in order when the primary fails.
	Fallback string
	// FallbackBaseURLs gives the base URL of fallback models by provider
	// (e.g. "ollama" -> "http://gpu-box:11434"); providers missing here use
	// their public endpoint.
	FallbackBaseURLs map[string]string
	// Prices override entries of DefaultPrices (see ParsePrices).
	Prices Prices
	// BudgetUSD and BudgetTokens cap the stack's total spending; zero means
	// no cap.
	BudgetUSD    float64
	BudgetTokens int
	// Timeout bounds one HTTP attempt (default 2 minutes); a timed-out
	// attempt is retried.
	Timeout time.Duration
	// Retry and Breaker tune those layers; zero values take the defaults.
	Retry   RetryPolicy
	Breaker BreakerPolicy
	// CacheDisabled turns the response cache off.
	CacheDisabled bool
	// CacheSize bounds the in-process LRU (default 1024 entries).
	CacheSize int
	// CacheRedisURL (redis://...) puts the cache in Redis instead, with keys
	// CachePrefix + SHA-256 (default prefix "kowai:llm:") living CacheTTL
	// (default 24h).
	CacheRedisURL string
	CachePrefix   string
	CacheTTL      time.Duration
}

// ModelSpec names one model of a provider.
type ModelSpec struct {
	Provider string
	Model    string
}

// String returns "provider:model".
func (s ModelSpec) String() string { return s.Provider + ":" + s.Model }

// ParseFallback reads KOWAI_LLM_FALLBACK: a comma-separated list of
// provider:model. An empty string is an empty chain.
func ParseFallback(s string) ([]ModelSpec, error) {
	var out []ModelSpec
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			if strings.TrimSpace(s) == "" {
				return nil, nil
			}
			return nil, fmt.Errorf("%w: KOWAI_LLM_FALLBACK entry %d is empty: want a comma-separated list of provider:model, e.g. \"openai:gpt-4o-mini,anthropic:claude-3-5-haiku-latest\"", ErrConfig, i+1)
		}
		provider, model, ok := strings.Cut(item, ":")
		provider, model = strings.TrimSpace(provider), strings.TrimSpace(model)
		if !ok || model == "" || !slices.Contains(providerNames, provider) {
			return nil, fmt.Errorf("%w: KOWAI_LLM_FALLBACK entry %d %q: want provider:model with provider one of %s, e.g. \"openai:gpt-4o-mini\"", ErrConfig, i+1, item, strings.Join(providerNames, ", "))
		}
		out = append(out, ModelSpec{Provider: provider, Model: model})
	}
	return out, nil
}

// ProviderConfig is everything OpenProvider needs for one model.
type ProviderConfig struct {
	ModelSpec
	BaseURL string
	APIKey  string
	Prices  Prices
	// Timeout bounds one HTTP attempt (0: none beyond the caller's context).
	Timeout time.Duration
}

// OpenProvider builds the langchaingo model for pc and wraps it in a
// Provider. Its HTTP client (WithHTTPClient, default http.DefaultClient)
// gets a transport that records status codes and Retry-After headers, which
// langchaingo's errors do not carry. It uses WithHTTPClient and WithClock.
func OpenProvider(pc ProviderConfig, opts ...Option) (*Provider, error) {
	o := buildOptions(opts)
	if pc.Model == "" {
		pc.Model = defaultModels[pc.Provider]
	}
	client := recordingClient(o.httpClient)
	if pc.Timeout > 0 {
		client.Timeout = pc.Timeout
	}
	var (
		llm llms.Model
		err error
	)
	switch pc.Provider {
	case "offline":
		llm = offline.New(offline.WithModelName(pc.Model))
	case "openai":
		baseURL, key := pc.BaseURL, pc.APIKey
		if baseURL == "" {
			baseURL = defaultOpenAIBaseURL
		}
		if key == "" {
			if baseURL == defaultOpenAIBaseURL {
				return nil, fmt.Errorf("%w: provider openai needs an API key: set KOWAI_LLM_API_KEY or OPENAI_API_KEY, or KOWAI_LLM_BASE_URL for a server that needs none", ErrConfig)
			}
			key = placeholderKey
		}
		llm, err = openai.New(openai.WithModel(pc.Model), openai.WithBaseURL(baseURL), openai.WithToken(key), openai.WithHTTPClient(client))
	case "anthropic":
		if pc.APIKey == "" {
			return nil, fmt.Errorf("%w: provider anthropic needs an API key: set KOWAI_LLM_API_KEY or ANTHROPIC_API_KEY", ErrConfig)
		}
		aopts := []anthropic.Option{anthropic.WithModel(pc.Model), anthropic.WithToken(pc.APIKey), anthropic.WithHTTPClient(client)}
		if pc.BaseURL != "" {
			aopts = append(aopts, anthropic.WithBaseURL(pc.BaseURL))
		}
		llm, err = anthropic.New(aopts...)
	case "ollama":
		oopts := []ollama.Option{ollama.WithModel(pc.Model), ollama.WithHTTPClient(client)}
		if pc.BaseURL != "" {
			oopts = append(oopts, ollama.WithServerURL(pc.BaseURL))
		}
		llm, err = ollama.New(oopts...)
	default:
		return nil, fmt.Errorf("%w: KOWAI_LLM_PROVIDER %q: want one of %s", ErrConfig, pc.Provider, strings.Join(providerNames, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("lm: open %s: %w", pc.ModelSpec, err)
	}
	prices := pc.Prices
	if prices == nil {
		prices = DefaultPrices()
	}
	popts := []ProviderOption{WithPrices(prices), WithProviderClock(o.now)}
	if pc.Provider != "offline" {
		popts = append(popts, withHTTPRecording())
	}
	return NewProvider(pc.Provider, pc.Model, llm, popts...), nil
}

// Stack is the LM that New returns: the full chain of layers plus access to
// its meter and budget. Close releases what New opened (a Redis client).
type Stack struct {
	*Accounting
	closers []func() error
}

// Close releases the stack's resources; it is safe to call more than once.
func (s *Stack) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c())
	}
	s.closers = nil
	return errors.Join(errs...)
}

// New builds the model stack cfg describes. From the inside out:
//
//	provider -> metrics -> circuit breaker -> retry   (one such chain per model)
//	-> fallback chain -> response cache -> accounting (meter and budget)
//
// Metrics sit on the provider so they count real provider calls, each
// attempt included. The breaker sits inside the retry layer so every
// attempt counts towards opening it, and an opening circuit ends the
// retries at once (ErrCircuitOpen is not retryable) and hands the call to
// the next model of the fallback chain. The cache sits outside the fallback
// so a reply is reused whichever model produced it, keyed by the primary
// model's name. Accounting is outermost so budgets see every call,
// including free cache hits, and can refuse a call before anything else
// runs.
//
// It uses every Option. Close the Stack when done.
func New(cfg Config, opts ...Option) (*Stack, error) {
	o := buildOptions(opts)
	if cfg.Provider == "" {
		cfg.Provider = "offline"
	}
	fallbacks, err := ParseFallback(cfg.Fallback)
	if err != nil {
		return nil, err
	}
	prices := DefaultPrices().With(cfg.Prices)
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	primary := ProviderConfig{ModelSpec: ModelSpec{cfg.Provider, cfg.Model}, BaseURL: cfg.BaseURL, APIKey: cfg.keyFor(cfg.Provider, true), Prices: prices, Timeout: timeout}
	pcs := []ProviderConfig{primary}
	for _, f := range fallbacks {
		pcs = append(pcs, ProviderConfig{ModelSpec: f, BaseURL: cfg.FallbackBaseURLs[f.Provider], APIKey: cfg.keyFor(f.Provider, false), Prices: prices, Timeout: timeout})
	}
	chain := make([]LM, 0, len(pcs))
	for _, pc := range pcs {
		p, err := OpenProvider(pc, opts...)
		if err != nil {
			return nil, err
		}
		var m LM = NewInstrumented(p, opts...)
		m = NewBreaker(m, cfg.Breaker, opts...)
		m = NewRetry(m, cfg.Retry, opts...)
		chain = append(chain, m)
	}
	var top LM = chain[0]
	if len(chain) > 1 {
		top = NewFallback(chain, opts...)
	}
	stack := &Stack{}
	if !cfg.CacheDisabled {
		store, closer, err := cacheStore(cfg, o)
		if err != nil {
			return nil, err
		}
		if closer != nil {
			stack.closers = append(stack.closers, closer)
		}
		top = NewCache(top, store, opts...)
	}
	top = NewTraced(top, o.tracing)
	meter := o.meter
	if meter == nil {
		meter = NewMeter()
	}
	var budget *Budget
	if cfg.BudgetUSD > 0 || cfg.BudgetTokens > 0 {
		budget = NewBudget(cfg.BudgetUSD, cfg.BudgetTokens)
	}
	stack.Accounting = NewAccounting(top, meter, budget)
	return stack, nil
}

// keyFor picks the API key of provider: KOWAI_LLM_API_KEY for the primary,
// then the provider's own variable.
func (cfg Config) keyFor(provider string, primary bool) string {
	if primary && cfg.APIKey != "" {
		return cfg.APIKey
	}
	switch provider {
	case "openai":
		return cfg.OpenAIAPIKey
	case "anthropic":
		return cfg.AnthropicAPIKey
	}
	return ""
}

func cacheStore(cfg Config, o options) (CacheStore, func() error, error) {
	prefix, ttl := cfg.CachePrefix, cfg.CacheTTL
	if prefix == "" {
		prefix = "kowai:llm:"
	}
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	if o.redis != nil {
		return NewRedisStore(o.redis, prefix, ttl), nil, nil
	}
	if cfg.CacheRedisURL != "" {
		ropts, err := redis.ParseURL(cfg.CacheRedisURL)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: Redis cache URL: %v (want redis://[:PASS@]HOST:PORT/DB)", ErrConfig, err)
		}
		client := redis.NewClient(ropts)
		return NewRedisStore(client, prefix, ttl), client.Close, nil
	}
	size := cfg.CacheSize
	if size <= 0 {
		size = 1024
	}
	return NewLRU(size), nil, nil
}
