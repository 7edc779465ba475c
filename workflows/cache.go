package workflows

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"
)

// Cache stores task results by key for WithCache. Implementations may
// forget entries early; they must never return an expired one.
type Cache interface {
	Get(ctx context.Context, key string) (json.RawMessage, bool, error)
	Put(ctx context.Context, key string, v json.RawMessage, ttl time.Duration) error
}

// taskCacheKey is the task's name and the SHA-256 of its key as JSON.
func taskCacheKey(name string, key any) string {
	b, err := json.Marshal(key)
	if err != nil {
		b = []byte(err.Error()) // an unmarshalable key still gets a stable, distinct hash
	}
	sum := sha256.Sum256(b)
	return name + ":" + hex.EncodeToString(sum[:])
}

// MemoryCache is an in-process Cache.
type MemoryCache struct {
	mu sync.Mutex
	m  map[string]cached
}

type cached struct {
	v       json.RawMessage
	expires time.Time
}

var _ Cache = (*MemoryCache)(nil)

// NewMemoryCache returns an empty cache.
func NewMemoryCache() *MemoryCache { return &MemoryCache{m: map[string]cached{}} }

// Get implements Cache.
func (c *MemoryCache) Get(_ context.Context, key string) (json.RawMessage, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || !time.Now().Before(e.expires) {
		delete(c.m, key)
		return nil, false, nil
	}
	return e.v, true, nil
}

// memoryCacheMax bounds a MemoryCache: past it, Put drops expired entries,
// then arbitrary ones.
const memoryCacheMax = 10_000

// Put implements Cache.
func (c *MemoryCache) Put(_ context.Context, key string, v json.RawMessage, ttl time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if len(c.m) >= memoryCacheMax {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < memoryCacheMax {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = cached{v: v, expires: now.Add(ttl)}
	return nil
}

// Len returns how many entries the cache holds.
func (c *MemoryCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
