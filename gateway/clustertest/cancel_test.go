package clustertest

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
)

// POST /api/v1/chat/conversations/{id}/cancel stops the running turn through
// the conversation's session grain: the turn answers 409, the user's message
// stays, the conversation answers again, and nobody but the owner can cancel.
func TestCancelRunningTurn(t *testing.T) {
	srv := newFakeOpenAI(t, "slow answer", 10, 5)
	eps, err := lm.ParseEndpoints(fmt.Sprintf(`[{"name":"openai:slow-1","base_url":%q}]`, srv.URL+"/v1"))
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, persisttest.SQLite(t), stackOptions{models: testCatalog(t, eps, nil)})
	_, token := signUp(t, s, "ada@example.com")
	_, stranger := signUp(t, s, "eve@example.com")
	var agent struct {
		ID string `json:"id"`
	}
	s.call(t, http.MethodPost, "/api/v1/agents", token, `{"name":"slow","type":"chat","model":"openai:slow-1"}`).decode(t, http.StatusCreated, &agent)
	var first struct {
		ConversationID string `json:"conversation_id"`
	}
	s.call(t, http.MethodPost, "/api/v1/chat/message", token, fmt.Sprintf(`{"content":"hello","agent_id":%q}`, agent.ID)).decode(t, http.StatusOK, &first)
	cancelPath := "/api/v1/chat/conversations/" + first.ConversationID + "/cancel"
	var view struct {
		Canceled bool `json:"canceled"`
	}
	s.call(t, http.MethodPost, cancelPath, token, "").decode(t, http.StatusOK, &view)
	if view.Canceled {
		t.Fatal("an idle conversation reported a cancelled turn")
	}

	srv.delay.Store(int64(3 * time.Second))
	turn := fmt.Sprintf(`{"content":"take your time","conversation_id":%q}`, first.ConversationID)
	answered := make(chan int, 1)
	go func() { answered <- s.call(t, http.MethodPost, "/api/v1/chat/message", token, turn).status }()
	testenv.Eventually(t, 10*time.Second, func() error {
		if srv.calls.Load() < 2 {
			return fmt.Errorf("the second turn has not reached the model")
		}
		return nil
	})
	if r := s.call(t, http.MethodPost, cancelPath, stranger, ""); r.status != http.StatusNotFound {
		t.Fatalf("a stranger's cancel: %d %s", r.status, r.body)
	}
	s.call(t, http.MethodPost, cancelPath, token, `{}`).decode(t, http.StatusOK, &view)
	if !view.Canceled {
		t.Fatal("the running turn was not cancelled")
	}
	select {
	case status := <-answered:
		if status != http.StatusConflict {
			t.Fatalf("the cancelled turn answered %d, want 409", status)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the cancelled turn did not answer before the model would have")
	}
	if r := s.call(t, http.MethodPost, cancelPath, token, `{"turn_id":1}`); r.status != http.StatusBadRequest {
		t.Fatalf("a malformed body: %d %s", r.status, r.body)
	}
	var hist struct {
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	s.call(t, http.MethodGet, "/api/v1/chat/history?conversation_id="+first.ConversationID, token, "").decode(t, http.StatusOK, &hist)
	if n := len(hist.Messages); n < 3 || hist.Messages[2].Role != "user" || hist.Messages[2].Content != "take your time" {
		t.Fatalf("history after the cancel: %+v", hist.Messages)
	}
	srv.delay.Store(0)
	s.call(t, http.MethodPost, "/api/v1/chat/message", token, turn).decode(t, http.StatusOK, nil)
}
