package signatures

import (
	"encoding/json"
	"fmt"
	"runtime"
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
