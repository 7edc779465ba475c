package clustertest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/persistence/persisttest"
)

// An agent's variants, set through node A, run on the turns of conversations
// sent through node B (each with the instructions of the variant its ID hashes
// to); history shows each reply's variant and the stats count them per variant.
func TestAgentVariantsAcrossNodes(t *testing.T) {
	model := promptModel()
	nodes := startStacks(t, persisttest.SQLite(t), 2, stackOptions{model: model})
	a, b := nodes[0], nodes[1]
	_, token := signUp(t, a, "ada@example.com")
	var ag struct {
		ID string `json:"id"`
	}
	a.call(t, http.MethodPost, "/api/v1/agents", token, `{"name":"AB","type":"chat","instructions":"Answer plainly.",
		"variants":[{"name":"pirate","weight":1,"instructions":"Answer as a pirate."},{"name":"poet","weight":1,"instructions":"Answer as a poet."}]}`).
		decode(t, http.StatusCreated, &ag)
	names, instructions := []string{"pirate", "poet"}, []string{"Answer as a pirate.", "Answer as a poet."}
	counts := map[string]int64{}
	for range 6 {
		var r gateway.ChatReply
		b.call(t, http.MethodPost, "/api/v1/chat/message", token, fmt.Sprintf(`{"content":"Hello","agent_id":%q}`, ag.ID)).decode(t, http.StatusOK, &r)
		i := agents.AssignVariant(ag.ID, r.ConversationID, []int{1, 1})
		if p := lastSystemPrompt(t, model); !strings.Contains(p, instructions[i]) {
			t.Fatalf("conversation %s should run variant %s: %s", r.ConversationID, names[i], p)
		}
		var h struct {
			Messages []struct {
				Role, Variant string
			} `json:"messages"`
		}
		a.call(t, http.MethodGet, "/api/v1/chat/history?conversation_id="+r.ConversationID, token, "").decode(t, http.StatusOK, &h)
		if len(h.Messages) != 2 || h.Messages[0].Variant != "" || h.Messages[1].Variant != names[i] {
			t.Fatalf("history of %s: %+v, want the reply of variant %s", r.ConversationID, h.Messages, names[i])
		}
		counts[names[i]]++
	}
	var stats struct {
		Variants []struct {
			Variant string `json:"variant"`
			Turns   int64  `json:"turns"`
		} `json:"variants"`
	}
	a.call(t, http.MethodGet, "/api/v1/agents/"+ag.ID+"/stats", token, "").decode(t, http.StatusOK, &stats)
	if len(stats.Variants) != 2 || stats.Variants[0].Turns != counts["pirate"] || stats.Variants[1].Turns != counts["poet"] {
		t.Fatalf("stats %+v, want turns %v", stats.Variants, counts)
	}
}
