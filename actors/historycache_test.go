package actors

import (
	"fmt"
	"testing"

	"github.com/kowai/kowai/signatures"
)

// An agent's history caches stay within their byte limit, dropping the least
// recently used conversation first; a cache in use when dropped still serves.
func TestHistoryCachesStayWithinTheirLimit(t *testing.T) {
	sig := signatures.MustParse("message, history -> response")
	fill := func(c *historyCache, turns int) {
		t.Helper()
		var conv signatures.Messages
		for i := range turns {
			conv = append(conv, signatures.Message{Role: signatures.RoleUser, Content: fmt.Sprintf("question %d", i)},
				signatures.Message{Role: signatures.RoleAssistant, Content: fmt.Sprintf("answer %d", i)})
		}
		if _, err := signatures.Render(sig, nil, signatures.Values{"message": "m", "history": signatures.Chat{Messages: conv, Input: "message", Output: "response", Cache: &c.cache}}); err != nil {
			t.Fatal(err)
		}
	}
	var h historyCaches
	if h.get("", 4) != nil {
		t.Fatal("a request without a conversation gets a cache")
	}
	if h.get("first", 0) != nil || h.order.Len() != 0 {
		t.Fatal("a first turn, without history, gets a cache")
	}
	a := h.get("a", 20)
	fill(a, 10)
	h.settle(a, 1<<20)
	one := a.counted
	if one <= historyCacheEntry || h.bytes != one {
		t.Fatalf("counted %d bytes of %d", h.bytes, one)
	}
	if h.get("a", 20) != a {
		t.Fatal("a conversation's second reply gets another cache")
	}
	b := h.get("b", 20)
	fill(b, 10)
	h.settle(b, 1<<20)
	c := h.get("c", 20)
	// a is used again: b is now the least recently used.
	h.get("a", 20)
	fill(c, 10)
	h.settle(c, 2*one+one/2)
	if _, ok := h.byConv["b"]; ok || h.order.Len() != 2 {
		t.Fatalf("over the limit, kept %d caches, b among them: %v", h.order.Len(), ok)
	}
	if h.bytes > 2*one+one/2 {
		t.Fatalf("%d bytes kept, limit %d", h.bytes, 2*one+one/2)
	}
	// b's reply ends after b was dropped: nothing is counted for it.
	before := h.bytes
	h.settle(b, 1<<20)
	if h.bytes != before {
		t.Fatalf("a dropped cache counted: %d bytes, %d before", h.bytes, before)
	}
	h.settle(a, 0)
	if h.order.Len() != 0 || h.bytes != 0 || len(h.byConv) != 0 {
		t.Fatalf("at limit 0: %d caches, %d bytes", h.order.Len(), h.bytes)
	}
}

// Entries whose histories render to nothing (every message a recorded failure, say)
// still count: the limit bounds how many there are.
func TestHistoryCachesBoundEmptyEntries(t *testing.T) {
	var h historyCaches
	for i := range 100 {
		c := h.get(fmt.Sprint("conv-", i), 1)
		h.settle(c, 10*historyCacheEntry)
	}
	if h.order.Len() != 10 || len(h.byConv) != 10 {
		t.Fatalf("%d empty entries kept under a limit of 10 entries' cost", h.order.Len())
	}
}
