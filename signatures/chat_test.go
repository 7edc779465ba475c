package signatures

import (
	"encoding/json"
	"testing"
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
