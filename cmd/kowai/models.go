package main

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/kowai/kowai/budgets"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/internal/config"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/signatures/lm"
)

// newModel builds the language-model stack the configuration describes:
// provider, retries, circuit breaker, fallback chain, cache and accounting.
// A configuration error (such as a malformed KOWAI_LLM_PRICES) is a usage
// error. reg may be nil (commands that expose no metrics).
func newModel(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, extra ...lm.Option) (*lm.Stack, error) {
	opts, err := modelOptions(log, reg, extra...)
	if err != nil {
		return nil, err
	}
	return newModelWith(cfg, opts)
}

// modelOptions are the options every model stack of a node shares: its
// logger, extra (such as its tracer provider) and, with reg, its metrics
// (registered once).
func modelOptions(log *slog.Logger, reg prometheus.Registerer, extra ...lm.Option) ([]lm.Option, error) {
	opts := append([]lm.Option{lm.WithLogger(log.With("component", "llm"))}, extra...)
	if reg != nil {
		m, err := lm.NewMetrics(reg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, lm.WithMetrics(m))
	}
	return opts, nil
}

// newModelWith is newModel with the stack's options given.
func newModelWith(cfg *config.Config, opts []lm.Option) (*lm.Stack, error) {
	prices, err := lm.ParsePrices(cfg.LLMPrices)
	if err != nil {
		return nil, usagef("%v", err)
	}
	model, err := lm.New(llmConfig(cfg, prices), opts...)
	if errors.Is(err, lm.ErrConfig) {
		return nil, usagef("%v", err)
	}
	if err != nil {
		return nil, err
	}
	return model, nil
}

// llmConfig is the model stack's configuration from the node's settings.
func llmConfig(cfg *config.Config, prices lm.Prices) lm.Config {
	return lm.Config{
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
	}
}

// newCatalog builds the catalog of the models agents may name: def (the
// node's default stack) and the endpoints of KOWAI_LLM_MODELS, each built on
// first use with the default's layers and its own key, price and cache.
// The stacks it builds are closed by the returned function.
func newCatalog(cfg *config.Config, def *lm.Stack, opts []lm.Option) (*lm.Catalog, func() error, error) {
	eps, err := lm.ParseEndpoints(cfg.LLMModels)
	if err != nil {
		return nil, nil, usagef("%v", err)
	}
	prices, err := lm.ParsePrices(cfg.LLMPrices)
	if err != nil {
		return nil, nil, usagef("%v", err)
	}
	base := llmConfig(cfg, prices)
	var (
		mu     sync.Mutex
		stacks []*lm.Stack
	)
	build := func(e lm.Endpoint) (lm.LM, error) {
		s, err := lm.New(base.ForEndpoint(e, cfg.LLMModelKeys[e.APIKeyEnv]), opts...)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		stacks = append(stacks, s)
		mu.Unlock()
		return s, nil
	}
	price, _ := lm.DefaultPrices().With(prices).Lookup(def.Name())
	info := lm.ModelInfo{InputPer1K: price.Input / 1000, OutputPer1K: price.Output / 1000}
	for _, e := range eps {
		if e.Name == def.Name() {
			info.Premium, info.InputPer1K, info.OutputPer1K = e.Premium, e.InputPer1K, e.OutputPer1K
		}
	}
	closeAll := func() error {
		mu.Lock()
		defer mu.Unlock()
		var errs []error
		for _, s := range stacks {
			errs = append(errs, s.Close())
		}
		return errors.Join(errs...)
	}
	return lm.NewCatalog(def, info, eps, build), closeAll, nil
}

// roleBudgets reads KOWAI_BUDGETS and checks its role names.
func roleBudgets(cfg *config.Config) (map[string]budgets.Limits, error) {
	roles, err := budgets.ParseRoleLimits(cfg.Budgets)
	if err != nil {
		return nil, usagef("%v", err)
	}
	for r := range roles {
		if _, err := auth.ParseRole(r); err != nil {
			return nil, usagef("KOWAI_BUDGETS: %v", err)
		}
	}
	return roles, nil
}

// newBudgets builds the per-user budgets: limits by role (roleBudgets),
// counters in Redis when it is configured, ledger rows through the
// group-commit writer.
func newBudgets(roles map[string]budgets.Limits, db *persistence.DB, users persistence.Users, rdb *redis.Client, writer *persistence.Writer,
	log *slog.Logger, reg prometheus.Registerer) (*budgets.Enforcer, error) {
	ledger := persistence.NewUsageStore(db)
	bc := budgets.Config{Roles: roles, Users: users, Ledger: ledger, Writer: writer, Metrics: reg, Logger: log}
	if rdb != nil {
		bc.Counter = budgets.NewRedis(rdb, ledger, "")
	}
	return budgets.New(bc)
}
