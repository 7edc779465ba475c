package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// memoryShards spreads keys over independent locks so concurrent requests for
// different keys rarely contend.
const memoryShards = 64

// MemoryOptions configures NewMemory. The zero value is usable.
type MemoryOptions struct {
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// MaxKeys bounds the number of tracked keys (default 1,000,000, roughly
	// 100 MB in the worst case). When a shard is full even after dropping
	// expired keys, an arbitrary live key is evicted: under a flood of
	// distinct keys some limits restart early rather than memory growing
	// without bound.
	MaxKeys int
	// SweepInterval is how often each shard drops keys whose bucket is full
	// again (default one minute). Such keys carry no information, so dropping
	// them never changes a decision.
	SweepInterval time.Duration
}

// Memory is an in-process GCRA Limiter with microsecond resolution, giving
// the same results as Redis for the same clock. Its state is local to the process, so
// each node of a cluster enforces the limit on its own; use Redis to share it.
type Memory struct {
	clock       func() time.Time
	seed        maphash.Seed
	maxPerShard int
	sweepEvery  int64
	shards      [memoryShards]memoryShard
}

type memoryShard struct {
	mu sync.Mutex
	// tat is each key's theoretical arrival time, Unix microseconds. It is
	// boxed so that a known key's time is updated without storing the key
	// again: a key given as bytes is looked up without a string.
	tat       map[string]*int64
	lastSweep int64
}

var _ Limiter = (*Memory)(nil)

// NewMemory returns an in-process limiter. It starts no goroutine: expired
// keys are swept by the requests themselves, so there is nothing to close.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = 1_000_000
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = time.Minute
	}
	m := &Memory{
		clock:       opts.Clock,
		seed:        maphash.MakeSeed(),
		maxPerShard: max(1, opts.MaxKeys/memoryShards),
		sweepEvery:  opts.SweepInterval.Microseconds(),
	}
	now := opts.Clock().UnixMicro()
	for i := range m.shards {
		m.shards[i].tat = make(map[string]*int64)
		m.shards[i].lastSweep = now
	}
	return m
}

// Allow implements Limiter. It never returns an error other than for an
// invalid limit.
func (m *Memory) Allow(_ context.Context, key string, limit Limit) (Result, error) {
	return m.allow(maphash.String(m.seed, key), key, nil, limit)
}

// allowBytes is Allow for a key given as bytes, which may be reused after
// it returns (see bytesLimiter).
func (m *Memory) allowBytes(_ context.Context, key []byte, limit Limit) (Result, error) {
	return m.allow(maphash.Bytes(m.seed, key), "", key, limit)
}

// allow is Allow's work for key, or for keyBytes when they are not nil;
// hash is the key's.
func (m *Memory) allow(hash uint64, key string, keyBytes []byte, limit Limit) (Result, error) {
	if err := limit.Validate(); err != nil {
		return Result{}, err
	}
	interval, burst := limit.params()
	s := &m.shards[hash%memoryShards]
	now := m.clock().UnixMicro()

	s.mu.Lock()
	defer s.mu.Unlock()
	if now-s.lastSweep >= m.sweepEvery {
		s.sweep(now)
	}
	var p *int64
	if keyBytes != nil {
		p = s.tat[string(keyBytes)] // no string is made to look up
	} else {
		p = s.tat[key]
	}
	var tat int64
	if p != nil {
		tat = *p
	}
	newTAT, allowed, remaining, resetAfter, retryAfter := gcra(tat, now, interval, burst)
	if allowed {
		switch {
		case p != nil:
			*p = newTAT
		default:
			if len(s.tat) >= m.maxPerShard {
				s.sweep(now)
				for k := range s.tat {
					if len(s.tat) < m.maxPerShard {
						break
					}
					delete(s.tat, k)
				}
			}
			if keyBytes != nil {
				key = string(keyBytes)
			}
			// A box of its own: &newTAT would move newTAT to the heap on
			// every call.
			box := new(int64)
			*box = newTAT
			s.tat[key] = box
		}
	}
	return Result{
		Allowed:    allowed,
		Limit:      int(burst),
		Remaining:  int(remaining),
		ResetAfter: time.Duration(resetAfter) * time.Microsecond,
		RetryAfter: time.Duration(retryAfter) * time.Microsecond,
	}, nil
}

// Len returns the number of keys currently tracked, expired ones included
// until their shard is swept.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}

// sweep drops keys whose bucket has refilled completely. The caller holds mu.
func (s *memoryShard) sweep(now int64) {
	for k, tat := range s.tat {
		if *tat <= now {
			delete(s.tat, k)
		}
	}
	s.lastSweep = now
}
