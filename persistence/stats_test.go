package persistence_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// The statistics readers return an agent's turns in the window (with their variant,
// outcome, latency and usage) and its feedback by variant, and nothing of other
// agents or older turns.
func TestAgentStats(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		ctx := t.Context()
		u := seedUser(t, db, "user")
		convs, msgs, fb := persistence.NewConversationStore(db), persistence.NewMessageStore(db), persistence.NewFeedbackStore(db)
		base := time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC)
		var replies []persistence.Message
		// turn adds a user message at start and its answer latency later.
		turn := func(conv persistence.Conversation, seq int64, start time.Time, latency time.Duration, role, variant, meta string) {
			t.Helper()
			if _, err := msgs.Insert(ctx, persistence.Message{ConversationID: conv.ID, Seq: seq, Role: "user", Content: "q", CreatedAt: start}); err != nil {
				t.Fatal(err)
			}
			m, err := msgs.Insert(ctx, persistence.Message{ConversationID: conv.ID, Seq: seq + 1, Role: role, Content: "a", Variant: variant,
				Metadata: []byte(meta), CreatedAt: start.Add(latency)})
			if err != nil {
				t.Fatal(err)
			}
			replies = append(replies, m)
		}
		newConv := func(agent string) persistence.Conversation {
			c, err := convs.Create(ctx, persistence.Conversation{OwnerID: u.ID, AgentID: agent, Title: "t", CreatedAt: base.Add(-time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		a1, a2, other := newConv("agent-a"), newConv("agent-a"), newConv("agent-b")
		turn(a1, 1, base, 100*time.Millisecond, "assistant", "blue", `{"usage":{"prompt_tokens":10,"completion_tokens":5,"cost_usd":0.5}}`)
		turn(a1, 3, base.Add(time.Minute), 300*time.Millisecond, "assistant", "blue", `{"usage":{"prompt_tokens":1,"completion_tokens":1}}`)
		turn(a2, 1, base, 2*time.Second, "system", "green", `{"error":{"code":"CODE_UNAVAILABLE","message":"x"}}`)
		turn(a2, 3, base.Add(-48*time.Hour), time.Second, "assistant", "green", `{}`) // before the window
		turn(other, 1, base, time.Second, "assistant", "blue", `{}`)                  // another agent
		for i, r := range []int{1, -1, 1} {
			rater := u
			if i > 0 {
				rater = seedUser(t, db, "user")
			}
			if _, err := fb.Create(ctx, persistence.Feedback{MessageID: replies[0].ID, UserID: rater.ID, Rating: r, CreatedAt: base.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := fb.Create(ctx, persistence.Feedback{MessageID: replies[4].ID, UserID: u.ID, Rating: 1, CreatedAt: base.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}

		stats := persistence.NewStatsStore(db)
		got, err := stats.AgentTurns(ctx, "agent-a", base.Add(-time.Hour), 100)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, tr := range got {
			lines = append(lines, fmt.Sprintf("%s failed=%v %v %d+%d $%.2f", tr.Variant, tr.Failed, tr.Latency, tr.PromptTokens, tr.CompletionTokens, tr.CostUSD))
		}
		slices.Sort(lines)
		want := []string{"blue failed=false 100ms 10+5 $0.50", "blue failed=false 300ms 1+1 $0.00", "green failed=true 2s 0+0 $0.00"}
		if strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Fatalf("turns:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
		if got, err := stats.AgentTurns(ctx, "agent-a", base.Add(-time.Hour), 1); err != nil || len(got) != 1 || got[0].Latency != 300*time.Millisecond {
			t.Fatalf("newest turn only: %+v, %v", got, err)
		}
		feedback, err := stats.AgentFeedback(ctx, "agent-a", base.Add(-time.Hour))
		if err != nil || fmt.Sprint(feedback) != "[{blue 2 1}]" {
			t.Fatalf("feedback: %v, %v", feedback, err)
		}
		if feedback, err := stats.AgentFeedback(ctx, "agent-a", base.Add(2*time.Hour)); err != nil || len(feedback) != 0 {
			t.Fatalf("feedback after the window: %v, %v", feedback, err)
		}
	})
}
