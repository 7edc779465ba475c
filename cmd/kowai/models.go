package main

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/internal/config"
	"github.com/kowai/kowai/signatures/lm"
)

// newModel builds the language-model stack the configuration describes:
// provider, retries, circuit breaker, fallback chain, cache and accounting.
// A configuration error (such as a malformed KOWAI_LLM_PRICES) is a usage
// error. reg may be nil (commands that expose no metrics).
func newModel(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, extra ...lm.Option) (*lm.Stack, error) {
	prices, err := lm.ParsePrices(cfg.LLMPrices)
	if err != nil {
		return nil, usagef("%v", err)
	}
	opts := append([]lm.Option{lm.WithLogger(log.With("component", "llm"))}, extra...)
	if reg != nil {
		m, err := lm.NewMetrics(reg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, lm.WithMetrics(m))
	}
	model, err := lm.New(lm.Config{
		Provider:        cfg.LLMProvider,
		Model:           cfg.LLMModel,
		BaseURL:         cfg.LLMBaseURL,
		APIKey:          cfg.LLMAPIKey,
		OpenAIAPIKey:    cfg.OpenAIAPIKey,
		AnthropicAPIKey: cfg.AnthropicAPIKey,
		Fallback:        cfg.LLMFallback,
		Prices:          prices,
		CacheDisabled:   !cfg.LLMCache,
		CacheRedisURL:   cfg.RedisURL,
	}, opts...)
	if errors.Is(err, lm.ErrConfig) {
		return nil, usagef("%v", err)
	}
	if err != nil {
		return nil, err
	}
	return model, nil
}
