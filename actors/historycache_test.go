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
	if h.get("") != nil {
		t.Fatal("a request without a conversation gets a cache")
	}
	a := h.get("a")
	fill(a, 10)
	h.settle(a, 1<<20)
	one := a.counted
	if one <= 0 || h.bytes != one {
		t.Fatalf("counted %d bytes of %d", h.bytes, one)
	}
	if h.get("a") != a {
		t.Fatal("a conversation's second reply gets another cache")
	}
	b := h.get("b")
	fill(b, 10)
	h.settle(b, 1<<20)
	c := h.get("c")
	// a is used again: b is now the least recently used.
	h.get("a")
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
