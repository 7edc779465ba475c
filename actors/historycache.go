package actors

import (
	"container/list"

	"github.com/kowai/kowai/signatures"
)

// historyCacheBytes bounds, about, the rendered histories an agent grain keeps
// (signatures.ChatCache.Size summed over its conversations): a few hundred busy
// conversations' windows, dropped least recently used first, and all of them when
// the grain passivates.
const historyCacheBytes = 4 << 20

// historyCacheEntry is about what a conversation's entry costs besides its cache's
// Size (the entry, its list element and map slot), counted so that the limit bounds
// the entries too.
const historyCacheEntry = 256

// historyCaches keeps the rendered history of the conversations an agent answered
// last, one signatures.ChatCache each, so that a turn renders only the history
// messages that are new since the conversation's previous turn. It is the agent
// grain's and used on its goroutine only; the caches themselves are used by the
// workers.
type historyCaches struct {
	// order holds *historyCache, the most recently used first.
	order  list.List
	byConv map[string]*list.Element
	// bytes sums the entries' counted sizes.
	bytes int64
}

// historyCache is one conversation's rendered history.
type historyCache struct {
	conv  string
	cache signatures.ChatCache
	// counted is the cache's size as last counted in historyCaches.bytes.
	counted int64
}

// get returns the cache of conversation conv, made the most recently used; nil for
// a request that names no conversation or has no history to render (a
// conversation's first turn: most conversations have only a few).
func (h *historyCaches) get(conv string, history int) *historyCache {
	if conv == "" || history == 0 {
		return nil
	}
	if e, ok := h.byConv[conv]; ok {
		h.order.MoveToFront(e)
		return e.Value.(*historyCache)
	}
	if h.byConv == nil {
		h.byConv = map[string]*list.Element{}
	}
	c := &historyCache{conv: conv}
	h.byConv[conv] = h.order.PushFront(c)
	return c
}

// settle counts c's size again once a reply has used it, and drops the least
// recently used caches while the sizes exceed limit. A dropped cache still serves
// a reply that holds it.
func (h *historyCaches) settle(c *historyCache, limit int64) {
	if c == nil {
		return
	}
	if e, ok := h.byConv[c.conv]; ok && e.Value == c {
		n := c.cache.Size() + historyCacheEntry
		h.bytes += n - c.counted
		c.counted = n
	}
	for h.bytes > limit && h.order.Len() > 0 {
		old := h.order.Remove(h.order.Back()).(*historyCache)
		delete(h.byConv, old.conv)
		h.bytes -= old.counted
	}
}
