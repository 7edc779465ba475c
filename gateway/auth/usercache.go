package auth

import (
	"context"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults of the user cache behind Service.Me.
const (
	// DefaultUserCacheTTL is how long Me reuses a user read; it equals the
	// revocation cache's default TTL so neither widens the other's staleness.
	DefaultUserCacheTTL = time.Second
	// DefaultUserCacheEntries bounds the user cache.
	DefaultUserCacheEntries = 10_000
)

// userCache keeps recent UserByID answers for Me, so a client polling its
// own profile does not cost a database read per request.
//
// Staleness: an answer is cached until lookupStart + ttl, where lookupStart
// precedes the store read, so a change committed at time T by any node is
// seen by every Me call that starts after T + ttl. forget drops a user at
// once and also discards the reads in flight when it runs, so a change made
// through this process's Service is seen by the very next call.
type userCache struct {
	store   UserStore
	ttl     time.Duration
	clock   func() time.Time
	entries *expiringMap[User]
	group   singleflight.Group

	mu  sync.Mutex
	gen uint64 // bumped by forget; a read started under an older gen is not cached
}

func newUserCache(store UserStore, ttl time.Duration, maxEntries int, clock func() time.Time) *userCache {
	return &userCache{store: store, ttl: ttl, clock: clock, entries: newExpiringMap[User](maxEntries, ttl)}
}

// userByID answers from the cache when it can, from the store otherwise.
// Store errors, ErrNotFound included, are returned and not cached.
func (c *userCache) userByID(ctx context.Context, id string) (User, error) {
	if u, ok := c.entries.get(id, c.clock()); ok {
		return cloneUser(u), nil
	}
	u, err := shared(ctx, &c.group, id, func(ctx context.Context) (User, error) {
		c.mu.Lock()
		gen := c.gen
		c.mu.Unlock()
		lookupStart := c.clock()
		u, err := c.store.UserByID(ctx, id)
		if err != nil {
			return User{}, err
		}
		c.mu.Lock()
		if gen == c.gen {
			c.entries.put(id, u, lookupStart.Add(c.ttl), c.clock())
		}
		c.mu.Unlock()
		return u, nil
	})
	if err != nil {
		return User{}, err
	}
	return cloneUser(u), nil
}

// forget drops userID's entry and invalidates the reads in flight: their
// answers are not cached, and later calls do not join them.
func (c *userCache) forget(userID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.entries.delete(userID)
	c.group.Forget(userID)
}

// cloneUser keeps callers from sharing the cached Roles slice.
func cloneUser(u User) User {
	u.Roles = slices.Clone(u.Roles)
	return u
}
