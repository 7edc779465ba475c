package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/kowai/kowai/actors"
	"github.com/kowai/kowai/budgets"
	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/internal/config"
	"github.com/kowai/kowai/internal/netguard"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/workflows"
	"github.com/kowai/kowai/workflows/builtin"
)

// openRedis connects to KOWAI_REDIS_URL, or returns nil when it is empty.
func openRedis(ctx context.Context, cfg *config.Config) (*redis.Client, error) {
	if cfg.RedisURL == "" {
		return nil, nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, configErrorf("KOWAI_REDIS_URL: want redis://[:PASS@]HOST:PORT/DB: %v", err)
	}
	rdb := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redis at %s unreachable (check KOWAI_REDIS_URL and that Redis runs): %w", opts.Addr, err)
	}
	return rdb, nil
}

// NewLimiter returns the rate limiter shared by the gateway and the login
// throttle: Redis when configured, so every node counts together.
func NewLimiter(rdb *redis.Client) ratelimit.Limiter {
	if rdb != nil {
		return ratelimit.NewRedis(rdb, ratelimit.RedisOptions{Prefix: "kowai:rl:"})
	}
	return ratelimit.NewMemory(ratelimit.MemoryOptions{})
}

// NewAuth builds the authentication service over the database: argon2id
// passwords, HS256 tokens, refresh-token rotation, revocation (behind a
// one-second local cache and, with Redis, a shared one), login
// throttling, the audit log and, when configured, Appwrite sign-in.
// Revocation is recorded in the database; Redis, when configured, is a
// shared cache in front of it.
func NewAuth(cfg *config.Config, db *persistence.DB, rdb *redis.Client, limiter ratelimit.Limiter, log *slog.Logger) (*auth.Service, error) {
	secret, err := cfg.EnsureJWTSecret()
	if err != nil {
		return nil, err
	}
	tokens, err := auth.NewTokens(auth.TokenConfig{Secret: []byte(secret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, AccessTTL: cfg.AccessTokenTTL})
	if err != nil {
		return nil, configErrorf("KOWAI_JWT_SECRET: %v", err)
	}
	hasher, err := auth.NewHasher(auth.DefaultArgon2Params(), 0)
	if err != nil {
		return nil, err
	}
	users, sessions := gateway.NewAuthUsers(db), gateway.NewAuthSessions(db)
	opts := auth.RevocationsOptions{}
	if rdb != nil { // a nil *redis.Client in the interface would not be nil
		opts.Redis = rdb
	}
	revocations, err := auth.NewRevocations(sessions, opts)
	if err != nil {
		return nil, err
	}
	throttle, err := auth.NewThrottle(auth.ThrottleConfig{Limiter: limiter})
	if err != nil {
		return nil, err
	}
	var appwrite *auth.AppwriteVerifier
	if cfg.AppwriteEndpoint != "" {
		if appwrite, err = auth.NewAppwriteVerifier(auth.AppwriteConfig{Endpoint: cfg.AppwriteEndpoint, ProjectID: cfg.AppwriteProjectID}); err != nil {
			return nil, configErrorf("KOWAI_APPWRITE_ENDPOINT: %v", err)
		}
	}
	return auth.NewService(auth.Config{
		Users:       users,
		Sessions:    sessions,
		Tokens:      tokens,
		Hasher:      hasher,
		Revocations: revocations,
		RefreshTTL:  cfg.RefreshTokenTTL,
		// KOWAI_SESSION_MAX_AGE: no refresh renews a session past it.
		SessionMaxAge: cfg.SessionMaxAge,
		Throttle:      throttle,
		Appwrite:      appwrite,
		Audit:         gateway.NewAuthAudit(persistence.NewAuditStore(db)),
		Logger:        log,
	})
}

// NewModel builds the language-model stack the configuration describes:
// provider, retries, circuit breaker, fallback chain, cache and accounting.
// A configuration error (such as a malformed KOWAI_LLM_PRICES) matches
// ErrConfig. reg may be nil (commands that expose no metrics).
func NewModel(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, extra ...lm.Option) (*lm.Stack, error) {
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

// newModelWith is NewModel with the stack's options given.
func newModelWith(cfg *config.Config, opts []lm.Option) (*lm.Stack, error) {
	prices, err := lm.ParsePrices(cfg.LLMPrices)
	if err != nil {
		return nil, lmConfigError(err)
	}
	model, err := lm.New(llmConfig(cfg, prices), opts...)
	if errors.Is(err, lm.ErrConfig) {
		return nil, lmConfigError(err)
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
func newCatalog(cfg *config.Config, set settings, def *lm.Stack, opts []lm.Option) (*lm.Catalog, func() error) {
	prices, eps := set.prices, set.endpoints
	base := llmConfig(cfg, prices)
	var (
		mu     sync.Mutex
		stacks []*lm.Stack
	)
	build := func(e lm.Endpoint) (lm.LM, error) {
		s, err := lm.New(base.ForEndpoint(e, set.endpointKeys[e.APIKeyEnv]), opts...)
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
	return lm.NewCatalog(def, info, eps, build), closeAll
}

// settings are the values of a Config that New hands to other packages in
// their own types. They are parsed before any I/O, so that a bad value fails
// fast and names its variable: package config holds the raw values and knows
// none of these packages.
type settings struct {
	rateLimit, authRateLimit ratelimit.Limit
	budgetRoles              map[string]budgets.Limits
	prices                   lm.Prices
	endpoints                []lm.Endpoint
	// endpointKeys holds the value of each endpoint's api_key_env variable,
	// by variable name, and no other variable.
	endpointKeys map[string]string
}

// parseSettings parses cfg's values for the packages that use them, reading the
// endpoints' key variables with getenv. Its errors match ErrConfig.
func parseSettings(cfg *config.Config, getenv func(string) string) (settings, error) {
	var (
		s   settings
		err error
	)
	if s.rateLimit, err = ratelimit.ParseLimit(cfg.RateLimit); err != nil {
		return s, configErrorf("KOWAI_RATE_LIMIT: %v", err)
	}
	if s.authRateLimit, err = ratelimit.ParseLimit(cfg.AuthRateLimit); err != nil {
		return s, configErrorf("KOWAI_AUTH_RATE_LIMIT: %v", err)
	}
	if s.budgetRoles, err = roleBudgets(cfg); err != nil {
		return s, err
	}
	if s.prices, err = lm.ParsePrices(cfg.LLMPrices); err != nil {
		return s, lmConfigError(err)
	}
	if _, err := lm.ParseFallback(cfg.LLMFallback); err != nil {
		return s, lmConfigError(err)
	}
	if s.endpoints, err = lm.ParseEndpoints(cfg.LLMModels); err != nil {
		return s, lmConfigError(err)
	}
	s.endpointKeys = endpointKeys(s.endpoints, getenv)
	return s, nil
}

// endpointKeys reads the api_key_env variable of each endpoint that names one.
func endpointKeys(eps []lm.Endpoint, getenv func(string) string) map[string]string {
	keys := map[string]string{}
	for _, e := range eps {
		if e.APIKeyEnv != "" {
			keys[e.APIKeyEnv] = getenv(e.APIKeyEnv)
		}
	}
	return keys
}

// lmConfigError is a configuration error of package lm, which names its
// variable already, as an error matching ErrConfig.
func lmConfigError(err error) error {
	return &configError{errors.New(strings.TrimPrefix(err.Error(), lm.ErrConfig.Error()+": "))}
}

// roleBudgets reads KOWAI_BUDGETS and checks its role names.
func roleBudgets(cfg *config.Config) (map[string]budgets.Limits, error) {
	roles, err := budgets.ParseRoleLimits(cfg.Budgets)
	if err != nil {
		return nil, configErrorf("%v", err)
	}
	for r := range roles {
		if _, err := auth.ParseRole(r); err != nil {
			return nil, configErrorf("KOWAI_BUDGETS: %v", err)
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

// newNotifier builds the webhook notifier: its key is KOWAI_WEBHOOK_SECRET, or
// derived from the JWT secret; its client reaches only addresses the guard allows.
func newNotifier(cfg *config.Config, db *persistence.DB, webhooks *persistence.WebhookStore, guard *netguard.Guard, log *slog.Logger, reg prometheus.Registerer) (*actors.Notifier, error) {
	secret := []byte(cfg.WebhookSecret)
	if len(secret) == 0 {
		jwt, err := cfg.EnsureJWTSecret()
		if err != nil {
			return nil, err
		}
		if secret, err = actors.DeriveWebhookSecret([]byte(jwt)); err != nil {
			return nil, err
		}
	}
	return actors.NewNotifier(actors.NotifierDeps{Webhooks: webhooks, Runs: persistence.NewWorkflowStore(db),
		Client: guard.Client(actors.DefaultWebhookTimeout), Secret: secret, Logger: log, Metrics: reg})
}

// newWorkflows builds the workflow engine with the built-in workflows and
// those extra registers (when not nil).
func newWorkflows(db *persistence.DB, writer *persistence.Writer, model lm.LM, extra func(*workflows.Registry) error,
	premium actors.PremiumAccess, log *slog.Logger, reg prometheus.Registerer, tp trace.TracerProvider) (*actors.Workflows, *persistence.ProfileStore, error) {
	profiles := persistence.NewProfileStore(db)
	registry := workflows.NewRegistry()
	if err := builtin.Register(registry, builtin.Options{Profiles: profiles}); err != nil {
		return nil, nil, err
	}
	if extra != nil {
		if err := extra(registry); err != nil {
			return nil, nil, fmt.Errorf("register workflows: %w", err)
		}
	}
	wf, err := actors.NewWorkflows(actors.WorkflowDeps{Runs: persistence.NewWorkflowStore(db), Writer: writer, Registry: registry,
		Model: model, Cache: workflows.NewMemoryCache(), Premium: premium, Logger: log, Metrics: reg, Tracing: tp})
	return wf, profiles, err
}

// premiumAccess answers for the workflow runtime whether a run's owner may use
// premium-priced models now: models:premium of the user's current roles, read
// through the authentication service's user cache, which a role change through
// PUT /admin/users/{id}/roles clears on its node (other nodes follow within the
// cache's TTL).
func premiumAccess(svc *auth.Service) actors.PremiumAccess {
	return actors.PremiumAccessFunc(func(ctx context.Context, userID string) (bool, error) {
		return svc.UserCan(ctx, userID, auth.PermPremiumModels)
	})
}

// certExpiryWarning is how long before its node certificate expires a node starts
// warning at startup.
const certExpiryWarning = 30 * 24 * time.Hour

// loadClusterTLS loads the cluster's mutual TLS material from KOWAI_CLUSTER_TLS_CA,
// _CERT and _KEY. Without them it returns nil for a local cluster and refuses any other
// provider unless KOWAI_CLUSTER_INSECURE is set: grain messages carry the caller's
// identity, so unauthenticated remoting would let anyone on the network act for any user.
func loadClusterTLS(cfg *config.Config, log *slog.Logger) (*cluster.TLS, error) {
	files := []struct{ name, value string }{
		{"KOWAI_CLUSTER_TLS_CA", cfg.ClusterTLSCA},
		{"KOWAI_CLUSTER_TLS_CERT", cfg.ClusterTLSCert},
		{"KOWAI_CLUSTER_TLS_KEY", cfg.ClusterTLSKey},
	}
	var (
		missing []string
		err     error
	)
	for _, f := range files {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	switch {
	case len(missing) == len(files) && cfg.ClusterProvider != string(cluster.ProviderLocal) && !cfg.ClusterInsecure:
		return nil, configErrorf("KOWAI_CLUSTER_PROVIDER=%s needs mutual TLS between nodes: set KOWAI_CLUSTER_TLS_CA, KOWAI_CLUSTER_TLS_CERT and KOWAI_CLUSTER_TLS_KEY (kowai cert makes them), or KOWAI_CLUSTER_INSECURE=true for development only", cfg.ClusterProvider)
	case len(missing) == len(files):
		return nil, nil
	case len(missing) > 0:
		return nil, configErrorf("%s not set: KOWAI_CLUSTER_TLS_CA, KOWAI_CLUSTER_TLS_CERT and KOWAI_CLUSTER_TLS_KEY go together", strings.Join(missing, " and "))
	}
	pems := make([][]byte, len(files))
	for i, f := range files {
		if pems[i], err = os.ReadFile(f.value); err != nil {
			return nil, configErrorf("%s: %v", f.name, err)
		}
	}
	t, err := cluster.NewTLS(pems[0], pems[1], pems[2])
	if err != nil {
		return nil, configErrorf("KOWAI_CLUSTER_TLS_CA, KOWAI_CLUSTER_TLS_CERT, KOWAI_CLUSTER_TLS_KEY: %v", err)
	}
	if left := time.Until(t.NotAfter()); left < certExpiryWarning {
		log.Warn("cluster node certificate expires soon; restart with a new one signed by the same CA",
			"expires", t.NotAfter(), "cert", cfg.ClusterTLSCert)
	}
	return t, nil
}

// scheduleNodeID names this node in a schedule's claim_owner: its cluster address and a
// random suffix (two processes may reuse an address in turn), cut to the column's 64
// characters, so an operator can tell which node holds a claim.
func scheduleNodeID(clusterAddr string) string {
	id := uuid.NewString()[:8]
	if clusterAddr != "" {
		id = clusterAddr + " " + id
	}
	if len(id) > 64 {
		id = id[len(id)-64:]
	}
	return id
}

// OpenDatabase opens KOWAI_DATABASE_URL and returns it with its migrator.
func OpenDatabase(ctx context.Context, cfg *config.Config, log *slog.Logger) (*persistence.DB, *persistence.Migrator, error) {
	db, err := persistence.Open(ctx, cfg.DatabaseURL, persistence.Options{Logger: log.With("component", "database")})
	if err != nil && cfg.DatabaseURL == "sqlite://"+filepath.Join(cfg.DataDir, "kowai.db") {
		// The operator set no database URL: point at the setting that placed it.
		return nil, nil, fmt.Errorf("the embedded database in KOWAI_DATA_DIR=%s: %w", cfg.DataDir, err)
	}
	if err != nil {
		return nil, nil, err
	}
	mig, err := persistence.NewMigrator(db, persistence.MigratorOptions{Logger: log.With("component", "migrate")})
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return db, mig, nil
}
