package workflows

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kowai/kowai/signatures/lm"
)

// TestEventAppendJSONIsJSONMarshal checks that AppendJSON writes exactly what
// json.Marshal writes, for every field set and unset and for values that need
// escaping or that encoding/json refuses.
func TestEventAppendJSONIsJSONMarshal(t *testing.T) {
	at := time.Date(2026, 12, 8, 0, 20, 55, 43887626, time.UTC)
	cases := []struct {
		name string
		ev   Event
	}{
		{"empty", Event{}},
		{"run", Event{RunID: "01a25306-5a71-714a-9fb5-4edc615f671a", Status: StatusRunning, Time: at}},
		{"task", Event{RunID: "r", Seq: 3, Name: "noop[2]", Kind: KindTask, Status: StatusCompleted, Attempt: 2, Time: at}},
		{"whole seconds", Event{RunID: "r", Status: StatusRunning, Time: at.Truncate(time.Second)}},
		{"usage", Event{RunID: "r", Seq: 1, Kind: KindAgent, Status: StatusCompleted, Usage: lm.Usage{PromptTokens: 12,
			CompletionTokens: 5, Calls: 1, CostUSD: 0.00012}, Time: at}},
		{"error quoted", Event{RunID: "r", Seq: 1, Status: StatusFailed, Error: `task "x" failed: a\b <html> & co`, Time: at}},
		{"error control", Event{RunID: "r", Status: StatusFailed, Error: "line\nnext\ttab\x01", Time: at}},
		{"error unicode", Event{RunID: "r", Status: StatusFailed, Error: "café \u2028 \xff bad", Time: at}},
		{"name unicode", Event{RunID: "r", Seq: 2, Name: "étape", Status: StatusRunning, Time: at}},
		{"continued", Event{RunID: "r", Status: StatusCompleted, ContinuedAs: "r2", Time: at}},
		{"sleep", Event{RunID: "r", Seq: 4, Name: "nap", Kind: KindSleep, Status: StatusPaused, WakeAt: at.Add(time.Hour), Time: at}},
		{"retry", Event{RunID: "r", Seq: 1, Status: StatusRetrying, Attempt: 1, RetryIn: 1500 * time.Millisecond, Error: "timeout", Time: at}},
		{"negative", Event{RunID: "r", Seq: -1, Attempt: -2, RetryIn: -time.Second, Status: "x", Time: at}},
		{"zone", Event{RunID: "r", Status: StatusRunning, Time: at.In(time.FixedZone("CEST", 2*3600))}},
		{"zone seconds", Event{RunID: "r", Status: StatusRunning, Time: at.In(time.FixedZone("LMT", -(4*3600 + 56*60 + 2)))}},
		{"local", Event{RunID: "r", Status: StatusRunning, Time: at.Local()}},
	}
	for _, c := range cases {
		want, err := json.Marshal(c.ev)
		if err != nil {
			t.Fatalf("%s: json.Marshal: %v", c.name, err)
		}
		got, err := c.ev.AppendJSON([]byte("prefix"))
		if err != nil {
			t.Fatalf("%s: AppendJSON: %v", c.name, err)
		}
		if string(got) != "prefix"+string(want) {
			t.Errorf("%s:\n got %s\nwant prefix%s", c.name, got, want)
		}
	}
}

// TestEventAppendJSONRefusesWhatJSONMarshalRefuses checks that a time encoding/json
// cannot encode fails AppendJSON too, rather than writing something else.
func TestEventAppendJSONRefusesWhatJSONMarshalRefuses(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("far", 24*3600)),
	} {
		ev := Event{RunID: "r", Status: StatusRunning, Time: at}
		if _, err := json.Marshal(ev); err == nil {
			t.Fatalf("json.Marshal accepted %v", at)
		}
		if b, err := ev.AppendJSON(nil); err == nil {
			t.Errorf("AppendJSON(%v) = %s, want an error", at, b)
		}
	}
}
