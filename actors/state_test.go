package actors

import (
	"fmt"
	"math/rand/v2"
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
	a.summaryBuf, b.summaryBuf = nil, nil
	if !reflect.DeepEqual(a, b) || len(ta) != len(tb) {
		return false
	}
	for i := range ta {
		x, y := ta[i], tb[i]
		if !proto.Equal(x.HistoryEntry, y.HistoryEntry) || !proto.Equal(x.Usage(), y.Usage()) ||
			x.ID != y.ID || x.Seq != y.Seq || x.Key() != y.Key() || x.ReplyTo() != y.ReplyTo() || x.Hash() != y.Hash() {
			return false
		}
	}
	return true
}

func TestStateEncoding(t *testing.T) {
	for _, st := range []sessionState{
		{},
		{OwnerID: "u", AgentID: "a", Title: "t", BusyPolicy: "reject", Summary: "user: hi\n", Turns: 1, LastSeq: 2, Tail: []tailEntry{
			newEntry(&actorpb.HistoryEntry{Role: roleUser, Content: "hi"}, "m1", 1, "k", "", "h1", nil),
			newEntry(&actorpb.HistoryEntry{Role: roleAssistant, Content: "hello"}, "m2", 2, "k:reply", "m1", "h1",
				&actorpb.Usage{PromptTokens: 3, CompletionTokens: 4, CostUsd: 0.5, CacheHit: true}),
			newEntry(&actorpb.HistoryEntry{Role: roleUser, Content: "plain"}, "m3", 3, "", "", "", nil),
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

// summarizeReference is summarize as it was before it allocated its result once:
// the running summary and the new lines joined, then whole lines dropped from the
// front until it fits.
func summarizeReference(summary string, old []tailEntry) string {
	var b strings.Builder
	b.WriteString(summary)
	for _, e := range old {
		if e.Role == roleSystem {
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", e.Role, truncate(strings.Join(strings.Fields(e.Content), " "), summaryLine))
	}
	out := b.String()
	for len(out) > maxSummary {
		i := strings.IndexByte(out, '\n')
		if i < 0 {
			return truncate(out, maxSummary)
		}
		out = out[i+1:]
	}
	return out
}

// TestSummarizeMatchesReference folds conversations of varied message lengths, one and
// several messages at a time, and checks that summarize and with give what the
// reference gives.
func TestSummarizeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	roles := []string{roleUser, roleAssistant, roleSystem}
	for conv := range 20 {
		got, want := "", ""
		var buf []byte
		for turn := range 300 {
			batch := make([]tailEntry, 1+rng.IntN(3))
			for i := range batch {
				// Words of one- to four-byte characters, between runs of mixed white
				// space, so that lines are cut inside and between characters.
				word := []string{fmt.Sprintf("w%d ", turn), "é€ \t", "\n\u00a0ü😀x  "}[rng.IntN(3)]
				batch[i] = tailEntry{HistoryEntry: &actorpb.HistoryEntry{Role: roles[rng.IntN(3)], Content: strings.Repeat(word, rng.IntN(80))}}
			}
			// Extending in place must leave the summaries already handed out as they are.
			prev, prevCopy := got, strings.Clone(got)
			got, buf = summarize(got, buf, batch)
			want = summarizeReference(want, batch)
			if prev != prevCopy {
				t.Fatalf("conversation %d, turn %d: the earlier summary changed to %q", conv, turn, prev)
			}
			if got != want {
				t.Fatalf("conversation %d, turn %d:\ngot  %q\nwant %q", conv, turn, got, want)
			}
			if len(got) > maxSummary {
				t.Fatalf("summary of %d bytes", len(got))
			}
		}
	}
	st := sessionState{}
	ref := sessionState{}
	for i := range 100 {
		e := tailEntry{ID: fmt.Sprint(i), Seq: int64(i + 1), HistoryEntry: &actorpb.HistoryEntry{Role: roles[i%2], Content: strings.Repeat("x", i)}}
		st = st.with(20, e)
		all := append(append([]tailEntry(nil), ref.Tail...), e)
		if drop := len(all) - 20; drop > 0 {
			ref.Summary = summarizeReference(ref.Summary, all[:drop])
			all = all[drop:]
		}
		ref.Tail, ref.LastSeq = all, e.Seq
		if st.Summary != ref.Summary || len(st.Tail) != len(ref.Tail) || st.Tail[0].ID != ref.Tail[0].ID || st.LastSeq != ref.LastSeq {
			t.Fatalf("with, message %d: tail %d from %s, want %d from %s", i, len(st.Tail), st.Tail[0].ID, len(ref.Tail), ref.Tail[0].ID)
		}
	}
}
