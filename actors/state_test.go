package actors

import (
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/persistence"
)

// sameState compares states, their protobuf parts with proto.Equal.
func sameState(a, b sessionState) bool {
	ta, tb := a.Tail, b.Tail
	a.Tail, b.Tail = nil, nil
	if !reflect.DeepEqual(a, b) || len(ta) != len(tb) {
		return false
	}
	for i := range ta {
		x, y := ta[i], tb[i]
		if !proto.Equal(x.HistoryEntry, y.HistoryEntry) || !proto.Equal(x.Usage, y.Usage) {
			return false
		}
		x.HistoryEntry, y.HistoryEntry, x.Usage, y.Usage = nil, nil, nil, nil
		if x != y {
			return false
		}
	}
	return true
}

func TestStateEncoding(t *testing.T) {
	for _, st := range []sessionState{
		{},
		{OwnerID: "u", AgentID: "a", Title: "t", BusyPolicy: "reject", Summary: "user: hi\n", Turns: 1, LastSeq: 2, Tail: []tailEntry{
			{ID: "m1", Seq: 1, HistoryEntry: &actorpb.HistoryEntry{Role: roleUser, Content: "hi"}, Key: "k"},
			{ID: "m2", Seq: 2, HistoryEntry: &actorpb.HistoryEntry{Role: roleAssistant, Content: "hello"}, Key: "k:reply", ReplyTo: "m1",
				Usage: &actorpb.Usage{PromptTokens: 3, CompletionTokens: 4, CostUsd: 0.5, CacheHit: true}},
		}},
	} {
		b, err := encodeState(st)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeState(b)
		if err != nil || !sameState(got, st) {
			t.Fatalf("decodeState(encodeState(%+v)) = %+v, %v", st, got, err)
		}
	}
	if _, err := decodeState([]byte(`{"owner_id":"u"}`)); err == nil {
		t.Fatal("decodeState accepted JSON")
	}
}

// catchUp applies the messages a snapshot lacks, and rebuilds the tail from the log
// when the log does not continue the snapshot.
func TestCatchUp(t *testing.T) {
	logOf := func(from, to int64) []persistence.Message {
		var out []persistence.Message
		for seq := from; seq <= to; seq++ {
			role := roleUser
			if seq%2 == 0 {
				role = roleAssistant
			}
			out = append(out, persistence.Message{ID: string(rune('a' + seq)), Seq: seq, Role: role})
		}
		return out
	}
	snapshot := sessionState{Turns: 1}.with(4, entries(logOf(1, 2))...)
	for _, tc := range []struct {
		name                string
		log                 []persistence.Message
		lastSeq, turns      int64
		tailFrom, tailTo    int64
		unsaved, summarized int
	}{
		{name: "empty log", log: nil, lastSeq: 2, turns: 1, tailFrom: 1, tailTo: 2},
		{name: "current", log: logOf(1, 2), lastSeq: 2, turns: 1, tailFrom: 1, tailTo: 2},
		{name: "lagging", log: logOf(1, 5), lastSeq: 5, turns: 2, tailFrom: 2, tailTo: 5, unsaved: 3, summarized: 1},
		{name: "tail read short of the snapshot", log: logOf(5, 8), lastSeq: 8, turns: 3, tailFrom: 5, tailTo: 8, unsaved: 4},
		{name: "log behind the snapshot", log: logOf(1, 1), lastSeq: 1, turns: 1, tailFrom: 1, tailTo: 1, unsaved: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, unsaved := snapshot.catchUp(4, tc.log)
			if st.LastSeq != tc.lastSeq || st.Turns != tc.turns || unsaved != tc.unsaved ||
				st.Tail[0].Seq != tc.tailFrom || st.Tail[len(st.Tail)-1].Seq != tc.tailTo {
				t.Fatalf("catchUp = %+v, %d", st, unsaved)
			}
			if lines := strings.Count(st.Summary, "\n"); lines != tc.summarized {
				t.Fatalf("summary %q has %d lines, want %d", st.Summary, lines, tc.summarized)
			}
		})
	}
}

func entries(msgs []persistence.Message) []tailEntry {
	out := make([]tailEntry, len(msgs))
	for i, m := range msgs {
		out[i] = entryOf(m)
	}
	return out
}

// TestTurnOutcomeLabels: every label of kowai_chat_turns_total is lower case,
// without the protobuf enum's prefix, and the set is closed.
func TestTurnOutcomeLabels(t *testing.T) {
	for _, tc := range []struct {
		code actorpb.Code
		want string
	}{
		{actorpb.Code_CODE_FORBIDDEN, "forbidden"},
		{actorpb.Code_CODE_NOT_FOUND, "not_found"},
		{actorpb.Code_CODE_MODEL_FAILURE, "model_failure"},
		{actorpb.Code_CODE_BUDGET_EXCEEDED, "budget_exceeded"},
		{actorpb.Code_CODE_INVALID_ARGUMENT, "invalid_argument"},
		{actorpb.Code_CODE_INTERNAL, "internal"},
		{actorpb.Code_CODE_UNSPECIFIED, "internal"},
		{actorpb.Code(99), "internal"},
	} {
		if got := outcome(actorpb.NewError(tc.code, "corr", "x")); got != tc.want {
			t.Errorf("%v: label %q, want %q", tc.code, got, tc.want)
		}
	}
	for n := range actorpb.Code_name {
		got := outcome(actorpb.NewError(actorpb.Code(n), "corr", "x"))
		if got != strings.ToLower(got) || strings.Contains(got, "code") {
			t.Errorf("code %d: label %q is not in the vocabulary", n, got)
		}
	}
}
