package gateway

import (
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// The Wilson interval matches figures worked out by hand, and stays within -1..1.
func TestWilson(t *testing.T) {
	for _, tc := range []struct {
		up, down        int64
		mean, low, high float64
	}{
		{2, 1, 1.0 / 3, -0.5846, 0.8770},
		{10, 0, 1, 0.4449, 1},
		{0, 10, -1, -1, -0.4449},
		{50, 50, 0, -0.1923, 0.1923},
	} {
		mean, low, high := wilson(tc.up, tc.down)
		if math.Abs(mean-tc.mean) > 1e-3 || math.Abs(low-tc.low) > 1e-3 || math.Abs(high-tc.high) > 1e-3 {
			t.Errorf("wilson(%d, %d) = %.4f [%.4f, %.4f], want %.4f [%.4f, %.4f]", tc.up, tc.down, mean, low, high, tc.mean, tc.low, tc.high)
		}
	}
}

// GET /api/v1/agents/{id}/stats computes each variant's figures from known
// messages and feedback, on SQLite and MariaDB, and only for the agent's owner,
// moderators and admins.
func TestAgentStatsRoute(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		env := startREST(t, restConfig{db: db})
		ctx := t.Context()
		alice := env.newUser(t, "alice@example.com")
		bob := env.newUser(t, "bob@example.com")
		mod := env.newUser(t, "mod@example.com", auth.RoleModerator)
		ag, err := env.stores.Agents.Create(ctx, persistence.Agent{OwnerID: alice.id, Name: "ab", Type: "chat",
			Variants: []persistence.Variant{{Name: "a", Weight: 70}, {Name: "b", Weight: 30}}})
		if err != nil {
			t.Fatal(err)
		}
		builtin, err := env.stores.Agents.Create(ctx, persistence.Agent{Name: "shared", Type: "chat"})
		if err != nil {
			t.Fatal(err)
		}
		conv, err := env.stores.Conversations.Create(ctx, persistence.Conversation{OwnerID: alice.id, AgentID: ag.ID, Title: "t"})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Add(-time.Hour)
		var seq int64
		var replies []persistence.Message
		add := func(role, variant string, latency time.Duration, meta string) {
			t.Helper()
			seq++
			if _, err := env.stores.Messages.Insert(ctx, persistence.Message{ConversationID: conv.ID, Seq: seq, Role: "user", Content: "q", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			seq++
			m, err := env.stores.Messages.Insert(ctx, persistence.Message{ConversationID: conv.ID, Seq: seq, Role: role, Content: "r",
				Variant: variant, Metadata: []byte(meta), CreatedAt: now.Add(latency)})
			if err != nil {
				t.Fatal(err)
			}
			replies = append(replies, m)
			now = now.Add(time.Minute)
		}
		// Variant a: latencies 100..1000 ms, 2 failures among 12 turns.
		for i := 1; i <= 10; i++ {
			add("assistant", "a", time.Duration(i)*100*time.Millisecond, `{"usage":{"prompt_tokens":10,"completion_tokens":2,"cost_usd":0.01}}`)
		}
		add("system", "a", 5*time.Second, `{"error":{"code":"CODE_UNAVAILABLE","message":"x"}}`)
		add("system", "a", 5*time.Second, `{"error":{"code":"CODE_UNAVAILABLE","message":"x"}}`)
		// Variant b: one turn, rated down by alice.
		add("assistant", "b", 2*time.Second, `{"usage":{"prompt_tokens":100,"completion_tokens":50,"cost_usd":1}}`)
		for i, r := range []int{1, 1, -1} {
			rater := []user{alice, bob, mod}[i]
			if _, err := env.stores.Feedback.Create(ctx, persistence.Feedback{MessageID: replies[i].ID, UserID: rater.id, Rating: r, CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := env.stores.Feedback.Create(ctx, persistence.Feedback{MessageID: replies[12].ID, UserID: alice.id, Rating: -1, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}

		url := env.url + "/api/v1/agents/" + ag.ID + "/stats"
		var got agentStatsView
		r := call(t, http.MethodGet, url, alice.pair.AccessToken, "")
		if r.status != http.StatusOK {
			t.Fatalf("owner: %d %s", r.status, r.body)
		}
		r.json(t, &got)
		if len(got.Variants) != 2 || got.Truncated || got.AgentID != ag.ID {
			t.Fatalf("stats %s", r.body)
		}
		a, b := got.Variants[0], got.Variants[1]
		if a.Variant != "a" || a.Weight != 70 || a.Turns != 12 || a.Failed != 2 || math.Abs(a.ErrorRate-2.0/12) > 1e-9 ||
			a.LatencyP50Ms != 500 || a.LatencyP95Ms != 1000 || a.PromptTokens != 100 || a.Tokens != 120 || math.Abs(a.CostUSD-0.1) > 1e-9 {
			t.Fatalf("variant a: %+v", a)
		}
		if a.Feedback.Ratings != 3 || a.Feedback.Up != 2 || a.Feedback.Mean == nil || math.Abs(*a.Feedback.Mean-1.0/3) > 1e-9 ||
			math.Abs(*a.Feedback.CILow+0.5846) > 1e-3 || math.Abs(*a.Feedback.CIHigh-0.8770) > 1e-3 {
			t.Fatalf("variant a feedback: %s", r.body)
		}
		if b.Variant != "b" || b.Turns != 1 || b.ErrorRate != 0 || b.LatencyP50Ms != 2000 || b.LatencyP95Ms != 2000 || b.CostUSD != 1 ||
			b.Feedback.Down != 1 || *b.Feedback.Mean != -1 {
			t.Fatalf("variant b: %s", r.body)
		}

		if r := call(t, http.MethodGet, url, mod.pair.AccessToken, ""); r.status != http.StatusOK {
			t.Fatalf("moderator: %d %s", r.status, r.body)
		}
		for _, tc := range []struct {
			name, url, token string
			status           int
		}{
			{"another user", url, bob.pair.AccessToken, http.StatusNotFound},
			{"a built-in as a user", env.url + "/api/v1/agents/" + builtin.ID + "/stats", bob.pair.AccessToken, http.StatusForbidden},
			{"a built-in as a moderator", env.url + "/api/v1/agents/" + builtin.ID + "/stats", mod.pair.AccessToken, http.StatusOK},
			{"days out of range", url + "?days=91", alice.pair.AccessToken, http.StatusBadRequest},
			{"days not a number", url + "?days=x", alice.pair.AccessToken, http.StatusBadRequest},
		} {
			if r := call(t, http.MethodGet, tc.url, tc.token, ""); r.status != tc.status {
				t.Errorf("%s: %d %s", tc.name, r.status, r.body)
			}
		}
		// A window that ends before the turns holds none of them.
		var built agentStatsView
		call(t, http.MethodGet, env.url+"/api/v1/agents/"+builtin.ID+"/stats?days=1", mod.pair.AccessToken, "").json(t, &built)
		if len(built.Variants) != 1 || built.Variants[0].Variant != "" || built.Variants[0].Turns != 0 || built.Variants[0].Feedback.Mean != nil {
			t.Fatalf("built-in stats: %+v", built)
		}
	})
}
