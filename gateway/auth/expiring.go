package auth

import (
	"context"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// expiringMap is a bounded map of answers that expire, shared by the caches
// on the authentication hot path. When it is full, expired entries are swept
// (at most once per sweepEvery, since a sweep is O(entries)); if none has
// expired, new entries are not stored and callers simply do the work again.
type expiringMap[V any] struct {
	maxEntries int
	sweepEvery time.Duration

	// Every authenticated request reads three of these maps and almost never
	// writes: reads share the lock (an exclusive one was a third of the
	// process's mutex wait on GET /auth/me).
	mu        sync.RWMutex
	entries   map[string]expiringEntry[V]
	nextSweep time.Time
}

type expiringEntry[V any] struct {
	value   V
	expires time.Time
}

func newExpiringMap[V any](maxEntries int, sweepEvery time.Duration) *expiringMap[V] {
	return &expiringMap[V]{maxEntries: maxEntries, sweepEvery: sweepEvery, entries: make(map[string]expiringEntry[V])}
}

// get returns key's value when it has not expired at now.
func (m *expiringMap[V]) get(key string, now time.Time) (V, bool) {
	m.mu.RLock()
	e, ok := m.entries[key]
	m.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.value, true
}

// put stores v under key until expires, unless the map is full of live
// entries. The key is cloned: callers may pass strings that alias a reused
// request buffer.
func (m *expiringMap[V]) put(key string, v V, expires, now time.Time) {
	m.putUnless(key, v, expires, now, nil)
}

// putUnless is put, except that a value already under key (expired or not)
// for which keep reports true stays. keep may be nil.
func (m *expiringMap[V]) putUnless(key string, v V, expires, now time.Time, keep func(old V) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, found := m.entries[key]
	if found && keep != nil && keep(old.value) {
		return
	}
	if !found && len(m.entries) >= m.maxEntries {
		if now.Before(m.nextSweep) {
			return
		}
		m.nextSweep = now.Add(m.sweepEvery)
		for k, e := range m.entries {
			if !now.Before(e.expires) {
				delete(m.entries, k)
			}
		}
		if len(m.entries) >= m.maxEntries {
			return
		}
	}
	m.entries[strings.Clone(key)] = expiringEntry[V]{value: v, expires: expires}
}

// len returns the number of entries, expired ones included until a sweep.
func (m *expiringMap[V]) len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.entries)
}

// delete drops key.
func (m *expiringMap[V]) delete(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, key)
}

// deleteIf drops every entry whose value drop reports true. It is
// O(entries): for rare events such as a revocation, not the hot path.
func (m *expiringMap[V]) deleteIf(drop func(V) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, e := range m.entries {
		if drop(e.value) {
			delete(m.entries, k)
		}
	}
}

// sharedLookupTimeout bounds a store lookup shared by concurrent callers.
const sharedLookupTimeout = 5 * time.Second

// shared runs fn once for the concurrent callers of key. fn's context keeps
// the first caller's values but not its cancellation (bounded by
// sharedLookupTimeout instead), so one aborted request cannot fail the others
// waiting on the same lookup; each caller still stops waiting when its own
// ctx ends.
func shared[T any](ctx context.Context, g *singleflight.Group, key string, fn func(context.Context) (T, error)) (T, error) {
	ch := g.DoChan(key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedLookupTimeout)
		defer cancel()
		return fn(lctx)
	})
	var zero T
	select {
	case r := <-ch:
		if r.Err != nil {
			return zero, r.Err
		}
		return r.Val.(T), nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}
