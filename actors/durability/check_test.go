package durability

import (
	"strings"
	"testing"
)

// The history check must catch every way a log can betray its clients, or the process
// tests could pass on a broken system.
func TestCheckHistory(t *testing.T) {
	acked := func(key, id, response string) *turnRecord {
		return &turnRecord{key: key, content: "durability turn " + key, acked: true, messageID: id, response: response}
	}
	user := func(seq int64, key string) historyMessage {
		return historyMessage{ID: "u-" + key, Seq: seq, Role: "user", Content: "durability turn " + key}
	}
	reply := func(seq int64, id, content string) historyMessage {
		return historyMessage{ID: id, Seq: seq, Role: "assistant", Content: content}
	}
	failure := func(seq int64) historyMessage {
		return historyMessage{ID: "f", Seq: seq, Role: "system", Content: "No reply: the agent did not answer"}
	}
	turns := []*turnRecord{acked("a", "r-a", "A"), {key: "b", content: "durability turn b"}, acked("c", "r-c", "C")}
	tests := []struct {
		name string
		hist []historyMessage
		want string // a fragment of the first problem; empty for none
	}{
		{"intact", []historyMessage{user(1, "a"), reply(2, "r-a", "A"), user(3, "c"), reply(4, "r-c", "C")}, ""},
		{"failure recorded before the retried reply", []historyMessage{user(1, "a"), failure(2), reply(3, "r-a", "A"), user(4, "c"), reply(5, "r-c", "C")}, ""},
		{"unacknowledged turn stored without reply", []historyMessage{user(1, "a"), reply(2, "r-a", "A"), user(3, "b"), user(4, "c"), reply(5, "r-c", "C")}, ""},
		{"lost reply", []historyMessage{user(1, "a"), reply(2, "r-a", "A"), user(3, "c")}, "reply r-c 0 times"},
		{"lost message", []historyMessage{user(1, "a"), reply(2, "r-a", "A"), reply(3, "r-c", "C")}, "user message 0 times"},
		{"duplicated message", []historyMessage{user(1, "a"), user(2, "a"), reply(3, "r-a", "A"), user(4, "c"), reply(5, "r-c", "C")}, "user message 2 times"},
		{"duplicated reply", []historyMessage{user(1, "a"), reply(2, "r-a", "A"), reply(3, "r-a", "A"), user(4, "c"), reply(5, "r-c", "C")}, "reply r-a 2 times"},
		{"seq gap", []historyMessage{user(1, "a"), reply(2, "r-a", "A"), user(4, "c"), reply(5, "r-c", "C")}, "gap"},
		{"reply differs from the answer", []historyMessage{user(1, "a"), reply(2, "r-a", "other"), user(3, "c"), reply(4, "r-c", "C")}, "client was told"},
		{"reply before message", []historyMessage{reply(1, "r-a", "A"), user(2, "a"), user(3, "c"), reply(4, "r-c", "C")}, "before its message"},
		{"message between a turn's message and reply", []historyMessage{user(1, "a"), user(2, "b"), reply(3, "r-a", "A"), user(4, "c"), reply(5, "r-c", "C")}, "between its message and reply"},
		{"later turn first", []historyMessage{user(1, "c"), reply(2, "r-c", "C"), user(3, "a"), reply(4, "r-a", "A")}, "before the previous turn's reply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := checkHistory(&conversation{turns: turns}, tt.hist)
			switch {
			case tt.want == "" && len(problems) > 0:
				t.Fatalf("problems in an intact log: %v", problems)
			case tt.want != "" && (len(problems) == 0 || !strings.Contains(problems[0], tt.want)):
				t.Fatalf("problems = %v, want one about %q", problems, tt.want)
			}
		})
	}
}
