package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"
)

// RevocationStore records revoked sessions where every node can see them.
type RevocationStore interface {
	// Revoke marks the session revoked for at least ttl (the longest any of
	// its access tokens can still be valid).
	Revoke(ctx context.Context, sessionID string, ttl time.Duration) error
	// IsRevoked reports whether the session has been revoked.
	IsRevoked(ctx context.Context, sessionID string) (bool, error)
}

// DefaultRedisCacheTTL is how long RedisRevocations keeps an answer it read
// from the database.
const DefaultRedisCacheTTL = 30 * time.Second

// Values of a session's Redis key.
const (
	redisRevoked = "1"
	redisActive  = "0"
)

// RedisRevocations is a Redis cache, shared by every node, in front of the
// database's record of sessions (normally StoreRevocations). Redis keeps
// nothing of its own: losing its keys (a restart, a flush, an eviction) only
// sends the next lookups to the database, which refuses revoked and unknown
// sessions.
//
// Each session has one key, prefix+sessionID, holding "1" (revoked) or "0"
// (live). Revoke sets "1", overwriting a cached "0", so a revocation reaches
// every node through the key at once. A lookup that finds no key asks the
// database and stores its answer with SET NX for CacheTTL: a revocation
// written meanwhile is never overwritten, and one that lands just after the
// SET NX overwrites it.
//
// Revoke only publishes: the caller records the revocation in the database
// first (Service does), so that it outlives the key.
type RedisRevocations struct {
	client redis.Cmdable
	prefix string
	truth  RevocationStore
	ttl    time.Duration
}

var _ RevocationStore = (*RedisRevocations)(nil)

// RedisRevocationsOptions configures NewRedisRevocations.
type RedisRevocationsOptions struct {
	// Prefix starts every key, e.g. "kowai:session:".
	Prefix string
	// Truth answers lookups Redis cannot; required. Normally
	// NewStoreRevocations over the SessionStore.
	Truth RevocationStore
	// CacheTTL is how long an answer read from Truth stays in Redis; default
	// DefaultRedisCacheTTL. It bounds how long a revocation recorded in the
	// database without a Revoke (say Redis failed just then) can go unseen.
	CacheTTL time.Duration
}

// NewRedisRevocations returns a RevocationStore over client and
// opts.Truth. It does not own client.
func NewRedisRevocations(client redis.Cmdable, opts RedisRevocationsOptions) (*RedisRevocations, error) {
	if client == nil || opts.Truth == nil {
		return nil, fmt.Errorf("%w: RedisRevocations needs a client and a Truth store", ErrConfig)
	}
	if opts.CacheTTL < 0 {
		return nil, fmt.Errorf("%w: redis revocation cache TTL %s must not be negative", ErrConfig, opts.CacheTTL)
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultRedisCacheTTL
	}
	return &RedisRevocations{client: client, prefix: opts.Prefix, truth: opts.Truth, ttl: opts.CacheTTL}, nil
}

// Revoke implements RevocationStore with SET key 1 PX ttl.
func (r *RedisRevocations) Revoke(ctx context.Context, sessionID string, ttl time.Duration) error {
	if err := r.client.Set(ctx, r.prefix+sessionID, redisRevoked, ttl).Err(); err != nil {
		return fmt.Errorf("auth: revoking session %s in redis: %w", sessionID, err)
	}
	return nil
}

// IsRevoked implements RevocationStore: the key's value when there is one,
// else the database's answer, which is then cached. A Redis failure is
// returned, never taken for "live".
func (r *RedisRevocations) IsRevoked(ctx context.Context, sessionID string) (bool, error) {
	key := r.prefix + sessionID
	v, err := r.client.Get(ctx, key).Result()
	switch {
	case err == nil:
		return v != redisActive, nil
	case !errors.Is(err, redis.Nil):
		return false, fmt.Errorf("auth: checking session %s in redis: %w", sessionID, err)
	}
	revoked, err := r.truth.IsRevoked(ctx, sessionID)
	if err != nil {
		return false, err
	}
	v = redisActive
	if revoked {
		v = redisRevoked
	}
	if err := r.client.SetNX(ctx, key, v, r.ttl).Err(); err != nil {
		return false, fmt.Errorf("auth: caching session %s in redis: %w", sessionID, err)
	}
	return revoked, nil
}

// RevocationsOptions configures NewRevocations.
type RevocationsOptions struct {
	// Redis, when set, is the shared cache between the local cache and the
	// database; nil means the local cache asks the database directly.
	Redis redis.Cmdable
	// RedisPrefix starts the Redis keys; default "kowai:session:".
	RedisPrefix string
	// RedisCacheTTL is RedisRevocationsOptions.CacheTTL.
	RedisCacheTTL time.Duration
	// Local configures the in-process RevocationCache in front.
	Local CacheOptions
}

// NewRevocations assembles the revocation checks of a node: a short
// in-process RevocationCache, then Redis when configured, then the
// database's sessions, which are the truth (StoreRevocations).
func NewRevocations(sessions SessionStore, opts RevocationsOptions) (*RevocationCache, error) {
	var backend RevocationStore = NewStoreRevocations(sessions, opts.Local.Clock)
	if opts.Redis != nil {
		if opts.RedisPrefix == "" {
			opts.RedisPrefix = "kowai:session:"
		}
		r, err := NewRedisRevocations(opts.Redis, RedisRevocationsOptions{Prefix: opts.RedisPrefix, Truth: backend, CacheTTL: opts.RedisCacheTTL})
		if err != nil {
			return nil, err
		}
		backend = r
	}
	return NewRevocationCache(backend, opts.Local), nil
}

// StoreRevocations answers from the SessionStore: a session is revoked when
// its RevokedAt is set or it no longer exists (its user was deleted). Revoke
// writes RevokedAt, so revocation lives in the database when there is no
// Redis.
type StoreRevocations struct {
	sessions SessionStore
	clock    func() time.Time
}

var _ RevocationStore = (*StoreRevocations)(nil)

// NewStoreRevocations returns a RevocationStore over sessions; clock nil
// means time.Now.
func NewStoreRevocations(sessions SessionStore, clock func() time.Time) *StoreRevocations {
	if clock == nil {
		clock = time.Now
	}
	return &StoreRevocations{sessions: sessions, clock: clock}
}

// Revoke implements RevocationStore; a missing session counts as revoked.
func (s *StoreRevocations) Revoke(ctx context.Context, sessionID string, _ time.Duration) error {
	if err := s.sessions.RevokeSession(ctx, sessionID, s.clock()); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("auth: revoking session %s: %w", sessionID, err)
	}
	return nil
}

// IsRevoked implements RevocationStore.
func (s *StoreRevocations) IsRevoked(ctx context.Context, sessionID string) (bool, error) {
	sess, err := s.sessions.SessionByID(ctx, sessionID)
	if errors.Is(err, ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("auth: loading session %s: %w", sessionID, err)
	}
	return sess.RevokedAt != nil, nil
}

// CacheOptions configures NewRevocationCache.
type CacheOptions struct {
	// TTL is how long a "not revoked" answer is reused; default 1 second.
	// It is the staleness bound: see RevocationCache.
	TTL time.Duration
	// MaxEntries bounds the cache; default 100,000. When full, expired
	// entries are dropped, and if none expired new answers are not cached.
	MaxEntries int
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
}

// RevocationCache puts a short local cache in front of a RevocationStore so
// the hot path of every authenticated request rarely leaves the process.
//
// Staleness bound: a session revoked at time T (the moment the backend write
// completes) is rejected by every node for every check that starts after
// T + TTL. A "not revoked" answer is cached until lookupStart + TTL, where
// lookupStart precedes the backend read that produced it, so no answer read
// before T survives past T + TTL. On the node that revokes, the cache is
// updated at once and the revocation is kept for the ttl given to Revoke. A
// revocation is never undone, so a cached "revoked" is never replaced by a
// later "not revoked". Concurrent misses for one session share one backend
// call.
type RevocationCache struct {
	backend RevocationStore
	ttl     time.Duration
	clock   func() time.Time
	group   singleflight.Group
	// entries holds whether each session is revoked. A full map is swept at
	// most once per TTL.
	entries *expiringMap[bool]
}

var _ RevocationStore = (*RevocationCache)(nil)

// NewRevocationCache wraps backend.
func NewRevocationCache(backend RevocationStore, opts CacheOptions) *RevocationCache {
	if opts.TTL <= 0 {
		opts.TTL = time.Second
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 100_000
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &RevocationCache{
		backend: backend,
		ttl:     opts.TTL,
		clock:   opts.Clock,
		entries: newExpiringMap[bool](opts.MaxEntries, opts.TTL),
	}
}

// Revoke writes through to the backend, then caches the revocation for ttl.
func (c *RevocationCache) Revoke(ctx context.Context, sessionID string, ttl time.Duration) error {
	if err := c.backend.Revoke(ctx, sessionID, ttl); err != nil {
		return err
	}
	now := c.clock()
	c.entries.put(sessionID, true, now.Add(ttl), now)
	return nil
}

// IsRevoked answers from the cache when it can, from the backend otherwise.
// Backend errors are returned and not cached.
func (c *RevocationCache) IsRevoked(ctx context.Context, sessionID string) (bool, error) {
	if revoked, ok := c.entries.get(sessionID, c.clock()); ok {
		return revoked, nil
	}
	return shared(ctx, &c.group, sessionID, func(ctx context.Context) (bool, error) {
		lookupStart := c.clock()
		revoked, err := c.backend.IsRevoked(ctx, sessionID)
		if err != nil {
			return false, err
		}
		// A revocation is never undone: a "not revoked" read that raced
		// with Revoke must not replace its answer.
		c.entries.putUnless(sessionID, revoked, lookupStart.Add(c.ttl), c.clock(), isRevoked)
		return revoked, nil
	})
}

// isRevoked keeps a cached revocation in place.
func isRevoked(revoked bool) bool { return revoked }

// Len returns the number of cached answers, expired ones included until the
// next sweep.
func (c *RevocationCache) Len() int { return c.entries.len() }
