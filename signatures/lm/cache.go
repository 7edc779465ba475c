package lm

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	"sync"
	"time"
	"unsafe"

	"github.com/kowai/kowai/signatures/lm/internal/textchunk"
	"github.com/redis/go-redis/v9"
	"github.com/tmc/langchaingo/llms"
)

// CacheStore keeps cached replies by key. Get reports a miss with ok=false
// and a nil error.
type CacheStore interface {
	Get(ctx context.Context, key string) (val []byte, ok bool, err error)
	Set(ctx context.Context, key string, val []byte) error
}

// CacheKey is the hex SHA-256 of the canonical form of req sent to model:
// model name, messages, sampling parameters, tools and rollout id. Streaming
// and NoCache do not change the key, and credentials are never part of it.
//
// The canonical form is hashed as it is written: every string goes in with its
// length, so no two requests share a form, and the text of a message, the bulk
// of a chat request, is hashed as it is, without being encoded. Only
// parts other than text (images, tool calls) and tools are JSON-encoded. A
// request used to be JSON-encoded whole first, which on a chat turn with a
// long history cost more than the rest of the turn's model layers together.
func CacheKey(model string, req *Request) (string, error) {
	h := keyHasher{h: sha256.New()}
	h.str("kowai.cachekey.v2")
	h.str(model)
	h.int(len(req.Messages))
	for _, m := range req.Messages {
		h.str(string(m.Role))
		h.int(len(m.Parts))
		for _, p := range m.Parts {
			if err := h.part(p); err != nil {
				return "", fmt.Errorf("lm: cache key: %w", err)
			}
		}
	}
	h.int(int(math.Float64bits(req.Temperature)))
	h.int(req.MaxTokens)
	h.int(len(req.Stop))
	for _, s := range req.Stop {
		h.str(s)
	}
	h.bool(req.JSONMode)
	h.int(len(req.Tools))
	if len(req.Tools) > 0 {
		if err := h.json(req.Tools); err != nil {
			return "", fmt.Errorf("lm: cache key: %w", err)
		}
	}
	h.str(req.RolloutID)
	h.bool(req.Seed != nil)
	if req.Seed != nil {
		h.int(*req.Seed)
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.h.Sum(sum[:0])), nil
}

// keyHasher writes CacheKey's canonical form into a hash.
type keyHasher struct {
	h hash.Hash
	// buf holds the varint of a length or number on its way into the hash.
	buf [binary.MaxVarintLen64]byte
}

func (k *keyHasher) int(n int) {
	k.h.Write(binary.AppendVarint(k.buf[:0], int64(n)))
}

func (k *keyHasher) bool(b bool) {
	if b {
		k.int(1)
	} else {
		k.int(0)
	}
}

// str writes s with its length. The hash reads s's bytes where they are: a
// hash.Hash is an io.Writer, which must neither modify nor retain what it is
// given, and sha256's digest has no WriteString. Copying the text into a buffer
// first, a piece at a time, cost twice as much as hashing it (pprof of
// continuing turns: memmove 0.09 s against sha256 0.04 s inside CacheKey).
func (k *keyHasher) str(s string) {
	k.int(len(s))
	if len(s) > 0 {
		k.h.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
	}
}

func (k *keyHasher) json(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	k.int(len(b))
	k.h.Write(b)
	return nil
}

// part writes one message part: text as it is, anything else as its type and JSON.
func (k *keyHasher) part(p llms.ContentPart) error {
	if t, ok := p.(llms.TextContent); ok {
		k.str("text")
		k.str(t.Text)
		return nil
	}
	k.str(fmt.Sprintf("%T", p))
	return k.json(p)
}

// cachedReply is what the cache stores: the reply, never usage.
type cachedReply struct {
	Text       string          `json:"text"`
	ToolCalls  []llms.ToolCall `json:"tool_calls,omitempty"`
	StopReason string          `json:"stop_reason,omitempty"`
	Model      string          `json:"model"`
}

// Cache answers repeated requests from a CacheStore. A hit costs nothing:
// zero tokens, Usage.CacheHits = 1, Response.CacheHit = true, and a
// streaming caller receives the cached text in chunks. Request.NoCache
// skips both lookup and store. A failing store is logged and treated as a
// miss: the cache must never fail a call that the model could answer.
type Cache struct {
	next  LM
	store CacheStore
	opts  options
}

// NewCache wraps next; it uses WithLogger, WithMetrics and WithClock.
func NewCache(next LM, store CacheStore, opts ...Option) *Cache {
	return &Cache{next: next, store: store, opts: buildOptions(opts)}
}

// Name returns the wrapped model's name.
func (c *Cache) Name() string { return c.next.Name() }

// Generate answers from the cache or calls the wrapped model and stores its
// reply.
func (c *Cache) Generate(ctx context.Context, req *Request) (*Response, error) {
	if req.NoCache {
		return c.next.Generate(ctx, req)
	}
	key, err := CacheKey(c.Name(), req)
	if err != nil {
		return nil, err
	}
	start := c.opts.now()
	if resp, ok := c.lookup(ctx, key); ok {
		c.opts.metrics.cacheResult(c.Name(), true)
		if req.Stream != nil {
			if err := textchunk.Stream(ctx, req.Stream, resp.Text, 16); err != nil {
				return nil, fmt.Errorf("%s: replay cached reply: %w", c.Name(), err)
			}
		}
		resp.Latency = c.opts.now().Sub(start)
		return resp, nil
	}
	c.opts.metrics.cacheResult(c.Name(), false)
	resp, err := c.next.Generate(ctx, req)
	if err != nil {
		return nil, err
	}
	val, err := json.Marshal(cachedReply{Text: resp.Text, ToolCalls: resp.ToolCalls, StopReason: resp.StopReason, Model: resp.Model})
	if err == nil {
		err = c.store.Set(ctx, key, val)
	}
	if err != nil {
		c.opts.logger.Warn("llm cache store failed", "model", c.Name(), "error", err)
	}
	return resp, nil
}

func (c *Cache) lookup(ctx context.Context, key string) (*Response, bool) {
	val, ok, err := c.store.Get(ctx, key)
	if err != nil {
		c.opts.logger.Warn("llm cache lookup failed", "model", c.Name(), "error", err)
		return nil, false
	}
	if !ok {
		return nil, false
	}
	var r cachedReply
	if err := json.Unmarshal(val, &r); err != nil {
		c.opts.logger.Warn("llm cache entry unreadable", "model", c.Name(), "error", err)
		return nil, false
	}
	return &Response{
		Text:       r.Text,
		ToolCalls:  r.ToolCalls,
		StopReason: r.StopReason,
		Model:      r.Model,
		Usage:      Usage{CacheHits: 1},
		CacheHit:   true,
	}, true
}

// LRU is an in-process CacheStore holding at most a fixed number of
// entries, evicting the least recently used. It is safe for concurrent use.
type LRU struct {
	max   int
	mu    sync.Mutex
	order *list.List // front = most recent; values are *lruEntry
	items map[string]*list.Element
}

type lruEntry struct {
	key string
	val []byte
}

// NewLRU returns an LRU holding up to maxEntries (at least 1).
func NewLRU(maxEntries int) *LRU {
	return &LRU{max: max(maxEntries, 1), order: list.New(), items: map[string]*list.Element{}}
}

// Get returns the entry for key and marks it recently used.
func (l *LRU) Get(_ context.Context, key string) ([]byte, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.items[key]
	if !ok {
		return nil, false, nil
	}
	l.order.MoveToFront(el)
	return el.Value.(*lruEntry).val, true, nil
}

// Set stores val under key, evicting the least recently used entry when
// full.
func (l *LRU) Set(_ context.Context, key string, val []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.items[key]; ok {
		el.Value.(*lruEntry).val = val
		l.order.MoveToFront(el)
		return nil
	}
	l.items[key] = l.order.PushFront(&lruEntry{key: key, val: val})
	if l.order.Len() > l.max {
		oldest := l.order.Back()
		l.order.Remove(oldest)
		delete(l.items, oldest.Value.(*lruEntry).key)
	}
	return nil
}

// Len returns the number of entries.
func (l *LRU) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order.Len()
}

// RedisStore is a CacheStore in Redis, shared by every process using the
// same prefix. Entries expire after the TTL.
type RedisStore struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// NewRedisStore stores entries under prefix+key with the given TTL (0
// keeps them until evicted by Redis).
func NewRedisStore(client redis.UniversalClient, prefix string, ttl time.Duration) *RedisStore {
	return &RedisStore{client: client, prefix: prefix, ttl: ttl}
}

// Get reads prefix+key.
func (r *RedisStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	val, err := r.client.Get(ctx, r.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("lm: redis cache get: %w", err)
	}
	return val, true, nil
}

// Set writes prefix+key with the TTL.
func (r *RedisStore) Set(ctx context.Context, key string, val []byte) error {
	if err := r.client.Set(ctx, r.prefix+key, val, r.ttl).Err(); err != nil {
		return fmt.Errorf("lm: redis cache set: %w", err)
	}
	return nil
}
