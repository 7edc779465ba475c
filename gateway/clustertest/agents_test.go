package clustertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tmc/langchaingo/llms"

	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/lmtest"
)

// promptModel answers every chat prompt and records the prompts; its system
// message holds the agent's instructions.
func promptModel() *lmtest.Scripted {
	return lmtest.NewScripted(nil, lmtest.WithRespond(func(*lm.Request) lmtest.Output {
		return lmtest.Output{Text: "[[ ## response ## ]]\nnoted\n\n[[ ## completed ## ]]"}
	}))
}

// lastSystemPrompt is the system message of the model's last request.
func lastSystemPrompt(t *testing.T, model *lmtest.Scripted) string {
	t.Helper()
	reqs := model.Requests()
	if len(reqs) == 0 {
		t.Fatal("the model was not called")
	}
	for _, m := range reqs[len(reqs)-1].Messages {
		if m.Role == llms.ChatMessageTypeSystem {
			return lm.MessagesText([]llms.MessageContent{m})
		}
	}
	t.Fatal("the model's last request has no system message")
	return ""
}

// An agent changed through node A answers the very next turn through node C
// with its new instructions: the agent's grain owns its definition, wherever
// it runs, so no node serves a stale copy.
func TestAgentUpdateAppliesOnEveryNode(t *testing.T) {
	model := promptModel()
	nodes := startStacks(t, persisttest.SQLite(t), 3, stackOptions{model: model})
	a, c := nodes[0], nodes[2]
	_, token := signUp(t, a, "ada@example.com")

	type agent struct {
		ID      string `json:"id"`
		Version int64  `json:"version"`
	}
	var ag agent
	a.call(t, http.MethodPost, "/api/v1/agents", token,
		`{"name":"Pirate","type":"chat","instructions":"Answer as a pirate."}`).decode(t, http.StatusCreated, &ag)
	turn := func(s *stack, conv string) gateway.ChatReply {
		t.Helper()
		body := fmt.Sprintf(`{"content":"Hello there","agent_id":%q}`, ag.ID)
		if conv != "" {
			body = fmt.Sprintf(`{"content":"Hello again","conversation_id":%q}`, conv)
		}
		var r gateway.ChatReply
		s.call(t, http.MethodPost, "/api/v1/chat/message", token, body).decode(t, http.StatusOK, &r)
		return r
	}
	first := turn(c, "")
	if p := lastSystemPrompt(t, model); !strings.Contains(p, "Answer as a pirate.") {
		t.Fatalf("first turn: the agent's instructions are not in the prompt: %s", p)
	}
	for i, instructions := range []string{"Answer as a poet.", "Answer as a lawyer.", "Answer as a chef."} {
		body, err := json.Marshal(map[string]any{"name": "Pirate", "type": "chat", "instructions": instructions,
			"signature": "", "model": "", "config": map[string]any{}, "version": ag.Version})
		if err != nil {
			t.Fatal(err)
		}
		// The update goes through a node other than the turn's, in turn A and B.
		nodes[i%2].call(t, http.MethodPut, "/api/v1/agents/"+ag.ID, token, string(body)).decode(t, http.StatusOK, &ag)
		turn(c, first.ConversationID)
		if p := lastSystemPrompt(t, model); !strings.Contains(p, instructions) {
			t.Fatalf("update %d: the turn through node C did not use %q: %s", i+1, instructions, p)
		}
	}
	a.call(t, http.MethodDelete, "/api/v1/agents/"+ag.ID, token, "").decode(t, http.StatusNoContent, nil)
	if r := c.call(t, http.MethodPost, "/api/v1/chat/message", token,
		fmt.Sprintf(`{"content":"Hello","agent_id":%q}`, ag.ID)); r.status != http.StatusNotFound {
		t.Fatalf("a new conversation with the deleted agent: %d %s", r.status, r.body)
	}
}
