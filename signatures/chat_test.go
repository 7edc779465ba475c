package signatures

import (
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// A Chat renders exactly as the History of its answered turns, for signatures whose
// fields are plain text, typed, or absent; and it encodes as that History.
func TestChatRendersAsItsHistory(t *testing.T) {
	conv := Messages{
		{Role: RoleUser, Content: "hi"}, {Role: RoleAssistant, Content: "hello"},
		{Role: RoleUser, Content: "lost"}, {Role: "system", Content: "No reply: the model failed"},
		{Role: RoleUser, Content: "retry"}, {Role: RoleAssistant, Content: ""}, {Role: "system", Content: "x"},
		{Role: RoleAssistant, Content: "late answer"},
		{Role: RoleAssistant, Content: "second answer, no question"},
		{Role: RoleUser, Content: " padded\n\t\u00a0"}, {Role: RoleAssistant, Content: "reply \n"},
		{Role: RoleUser, Content: " \n "}, {Role: RoleAssistant, Content: "to white space"},
		{Role: RoleUser, Content: "unanswered"},
	}
	want := []Values{{"message": "hi", "response": "hello"}, {"message": "retry", "response": "late answer"},
		{"message": " padded\n\t\u00a0", "response": "reply \n"}, {"message": " \n ", "response": "to white space"}}
	for _, tc := range []struct {
		name          string
		sig           string
		input, output string
	}{
		{"chat", "message, history -> response", "message", "response"},
		{"typed reply", "question, history -> reasoning, response: int", "question", "response"},
		{"fields the signature lacks", "message, history -> answer", "message", "response"},
		{"list input", "message: list[str], history -> response", "message", "response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig := MustParse(tc.sig)
			chat := Chat{Messages: conv, Input: tc.input, Output: tc.output}
			h := History{Messages: make([]Values, len(want))}
			for i, v := range want {
				h.Messages[i] = Values{tc.input: v["message"], tc.output: v["response"]}
			}
			in := sig.Inputs()[0].Name
			got, err := Render(sig, nil, Values{in: "now?", "history": chat})
			if err != nil {
				t.Fatal(err)
			}
			ref, err := Render(sig, nil, Values{in: "now?", "history": h})
			if err != nil {
				t.Fatal(err)
			}
			if g, w := dumpMessages(got), dumpMessages(ref); g != w {
				t.Fatalf("Chat renders\n%s\nwant (its History)\n%s", g, w)
			}
			if len(got) != 2+2*len(want) {
				t.Fatalf("%d messages, want %d", len(got), 2+2*len(want))
			}
			byPointer, err := Render(sig, nil, Values{in: "now?", "history": &chat})
			if err != nil || dumpMessages(byPointer) != dumpMessages(got) {
				t.Fatalf("*Chat renders otherwise (%v)", err)
			}
			// With a cache, filled by the first call and reused by the second.
			cached := chat
			cached.Cache = &ChatCache{}
			for range 2 {
				withCache, err := Render(sig, nil, Values{in: "now?", "history": cached})
				if err != nil || dumpMessages(withCache) != dumpMessages(ref) {
					t.Fatalf("a Chat with a cache renders otherwise (%v):\n%s", err, dumpMessages(withCache))
				}
			}
			a, err := json.Marshal(chat)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			if string(a) != string(b) {
				t.Fatalf("Chat encodes as %s, want %s", a, b)
			}
		})
	}
}

// A Chat without messages adds no turns.
func TestChatEmpty(t *testing.T) {
	sig := MustParse("message, history -> response")
	for _, c := range []Chat{{}, {Messages: Messages{}}, {Messages: Messages{{Role: RoleUser, Content: "q"}}}} {
		msgs, err := Render(sig, nil, Values{"message": "m", "history": c})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 2 {
			t.Errorf("%+v: %d messages, want 2", c, len(msgs))
		}
	}
}

// BenchmarkRenderChat renders a chat prompt with 10 answered turns given as a
// Chat over the conversation's messages against the same turns given as a History
// (the per-turn maps a caller had to build before; their building counted), in
// alternating rounds, and reports bytes and time per render of each and their
// ratios. Goal: x-bytes-chat-vs-history < 1 (the Chat saves the maps).
func BenchmarkRenderChat(b *testing.B) {
	sig := MustParse("message, history -> response")
	conv := make(Messages, 0, 20)
	for i := range 10 {
		conv = append(conv, Message{Role: RoleUser, Content: fmt.Sprintf("question %d about the weather tomorrow?", i)},
			Message{Role: RoleAssistant, Content: fmt.Sprintf("answer %d: sunny, with a light breeze from the west.", i)})
	}
	chat := func() any { return Chat{Messages: conv, Input: "message", Output: "response"} }
	history := func() any {
		h := History{Messages: make([]Values, 0, len(conv)/2)}
		for i := 0; i+1 < len(conv); i += 2 {
			h.Messages = append(h.Messages, Values{"message": conv[i].Content, "response": conv[i+1].Content})
		}
		return h
	}
	const per = 200
	type side struct {
		d     time.Duration
		bytes uint64
		n     int
	}
	measure := func(hist func() any, into *side) {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		start := time.Now()
		for range per {
			if _, err := Render(sig, nil, Values{"message": "and the day after?", "history": hist()}); err != nil {
				b.Fatal(err)
			}
		}
		into.d += time.Since(start)
		runtime.ReadMemStats(&m1)
		into.bytes += m1.TotalAlloc - m0.TotalAlloc
		into.n += per
	}
	var c, h side
	round := 0
	for b.Loop() {
		if round%2 == 0 {
			measure(chat, &c)
			measure(history, &h)
		} else {
			measure(history, &h)
			measure(chat, &c)
		}
		round++
	}
	b.ReportMetric(float64(c.bytes)/float64(c.n), "B/render-chat")
	b.ReportMetric(float64(h.bytes)/float64(h.n), "B/render-history")
	b.ReportMetric((float64(c.bytes)/float64(c.n))/(float64(h.bytes)/float64(h.n)), "x-bytes-chat-vs-history")
	b.ReportMetric((float64(c.d)/float64(c.n))/(float64(h.d)/float64(h.n)), "x-time-chat-vs-history")
}

// A Chat with a cache renders byte for byte as without one, whatever the calls
// before it rendered: a window moving forward, backward, shrinking or growing,
// messages edited in place (same length, other bytes), other fields, and a
// cache in use by another call.
func TestChatCacheRendersAsWithout(t *testing.T) {
	var conv Messages
	for i := range 40 {
		reply := fmt.Sprintf("answer %02d: sunny", i)
		switch i % 7 {
		case 3:
			reply = ""
		case 5:
			conv = append(conv, Message{Role: "system", Content: "No reply: the model failed"})
		}
		conv = append(conv, Message{Role: RoleUser, Content: fmt.Sprintf(" question %02d?\n", i)}, Message{Role: RoleAssistant, Content: reply})
	}
	edited := slices.Clone(conv)
	// A reply in the middle of the window, of the same length and other bytes.
	k := 12
	for edited[k].Role != RoleAssistant || edited[k].Content == "" {
		k++
	}
	edited[k].Content = strings.ToUpper(edited[k].Content)
	chatSig, otherSig := MustParse("message, history -> response"), MustParse("question, history -> reasoning, response: int")
	var cache ChatCache
	for i, call := range []struct {
		sig           Signature
		conv          Messages
		from, to      int
		input, output string
		busy          bool
	}{
		{chatSig, conv, 0, 20, "message", "response", false},
		{chatSig, conv, 2, 22, "message", "response", false},
		{chatSig, conv, 2, 22, "message", "response", false},
		{chatSig, conv, 3, 23, "message", "response", false},
		{chatSig, edited, 3, 23, "message", "response", false},
		{chatSig, conv, 10, 40, "message", "response", false},
		{chatSig, conv, 0, 12, "message", "response", false},
		{chatSig, conv, 1, 13, "message", "response", true},
		{otherSig, conv, 1, 13, "question", "response", false},
		{otherSig, conv, 1, 13, "message", "response", false},
		{chatSig, conv, 1, 13, "message", "answer", false},
		{chatSig, conv, 1, 13, "message", "response", false},
		{chatSig, conv, 30, 30, "message", "response", false},
		{chatSig, conv, 28, len(conv), "message", "response", false},
	} {
		in := call.sig.Inputs()[0].Name
		window := call.conv[call.from:call.to]
		ref, err := Render(call.sig, nil, Values{in: "now?", "history": Chat{Messages: window, Input: call.input, Output: call.output}})
		if err != nil {
			t.Fatal(err)
		}
		if call.busy {
			cache.mu.Lock()
		}
		got, err := Render(call.sig, nil, Values{in: "now?", "history": Chat{Messages: window, Input: call.input, Output: call.output, Cache: &cache}})
		if call.busy {
			cache.mu.Unlock()
		}
		if err != nil {
			t.Fatal(err)
		}
		if g, w := dumpMessages(got), dumpMessages(ref); g != w {
			t.Fatalf("call %d: with the cache\n%s\nwant\n%s", i, g, w)
		}
		if turns := (len(ref) - 2) / 2; !call.busy && len(cache.turns) != turns {
			t.Fatalf("call %d: the cache keeps %d turns, want the call's %d", i, len(cache.turns), turns)
		}
	}
}

// A cache reuses the turns still in the window: rendering the window moved by a
// turn builds the new turn's texts and parts only, and the cache's size follows
// its turns.
func TestChatCacheReuses(t *testing.T) {
	sig := MustParse("message, history -> response")
	var conv Messages
	for i := range 12 {
		conv = append(conv, Message{Role: RoleUser, Content: fmt.Sprintf("question %d about the weather tomorrow?", i)},
			Message{Role: RoleAssistant, Content: fmt.Sprintf("answer %d: sunny, with a light breeze from the west.", i)})
	}
	var cache ChatCache
	render := func(from int, cc *ChatCache) {
		if _, err := Render(sig, nil, Values{"message": "and the day after?", "history": Chat{Messages: conv[from : from+20], Input: "message", Output: "response", Cache: cc}}); err != nil {
			t.Fatal(err)
		}
	}
	render(0, &cache)
	// Each run moves the window one turn forward or back: one turn is new.
	from := 0
	cached := testing.AllocsPerRun(20, func() {
		from = 2 - from
		render(from, &cache)
	})
	full := cache.Size()
	uncached := testing.AllocsPerRun(20, func() { render(0, nil) })
	// A turn's two texts, its parts and their boxes: 5 allocations; 10 turns.
	if cached > uncached-30 {
		t.Fatalf("a render with the cache allocates %.0f times, without %.0f: the kept turns are rendered again", cached, uncached)
	}
	if full <= 0 {
		t.Fatalf("a cache of 10 turns counts %d bytes", full)
	}
	if _, err := Render(sig, nil, Values{"message": "m", "history": Chat{Messages: conv[:4], Input: "message", Output: "response", Cache: &cache}}); err != nil {
		t.Fatal(err)
	}
	// The 8 turns that left hold more than 2,000 bytes of texts.
	if s := cache.Size(); s > full-2000 {
		t.Fatalf("a cache of 2 turns counts %d bytes, one of 10 turns %d: the turns that left are kept", s, full)
	}
}

// Calls sharing a cache at once each render their own window as without it.
func TestChatCacheConcurrentCalls(t *testing.T) {
	sig := MustParse("message, history -> response")
	var conv Messages
	for i := range 30 {
		conv = append(conv, Message{Role: RoleUser, Content: fmt.Sprintf("q%d", i)}, Message{Role: RoleAssistant, Content: fmt.Sprintf("a%d", i)})
	}
	var cache ChatCache
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				from := 2 * ((g + i) % 20)
				h := conv[from : from+20]
				got, err := Render(sig, nil, Values{"message": "m", "history": Chat{Messages: h, Input: "message", Output: "response", Cache: &cache}})
				if err != nil {
					t.Error(err)
					return
				}
				ref, err := Render(sig, nil, Values{"message": "m", "history": Chat{Messages: h, Input: "message", Output: "response"}})
				if err != nil {
					t.Error(err)
					return
				}
				if dumpMessages(got) != dumpMessages(ref) {
					t.Errorf("window %d renders otherwise with a shared cache", from)
					return
				}
			}
		})
	}
	wg.Wait()
}
