package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/internal/config"
	"github.com/kowai/kowai/persistence"
)

// openRedis connects to KOWAI_REDIS_URL, or returns nil when it is empty.
func openRedis(ctx context.Context, cfg *config.Config) (*redis.Client, error) {
	if cfg.RedisURL == "" {
		return nil, nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, usagef("KOWAI_REDIS_URL: want redis://[:PASS@]HOST:PORT/DB: %v", err)
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

// newLimiter returns the rate limiter shared by the gateway and the login
// throttle: Redis when configured, so every node counts together.
func newLimiter(rdb *redis.Client) ratelimit.Limiter {
	if rdb != nil {
		return ratelimit.NewRedis(rdb, ratelimit.RedisOptions{Prefix: "kowai:rl:"})
	}
	return ratelimit.NewMemory(ratelimit.MemoryOptions{})
}

// newAuth builds the authentication service over the database: argon2id
// passwords, HS256 tokens, refresh-token rotation, revocation (behind a
// one-second local cache and, with Redis, a shared one), login
// throttling, the audit log and, when configured, Appwrite sign-in.
// Revocation is recorded in the database; Redis, when configured, is a
// shared cache in front of it.
func newAuth(cfg *config.Config, db *persistence.DB, rdb *redis.Client, limiter ratelimit.Limiter, log *slog.Logger) (*auth.Service, error) {
	secret, err := cfg.EnsureJWTSecret()
	if err != nil {
		return nil, err
	}
	tokens, err := auth.NewTokens(auth.TokenConfig{Secret: []byte(secret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, AccessTTL: cfg.AccessTokenTTL})
	if err != nil {
		return nil, usagef("KOWAI_JWT_SECRET: %v", err)
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
			return nil, usagef("KOWAI_APPWRITE_ENDPOINT: %v", err)
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
