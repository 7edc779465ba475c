package clustertest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"

	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence/persisttest"
)

// wsFrame is the union of the WebSocket frames the server sends.
type wsFrame struct {
	Type           string `json:"type"`
	ID             string `json:"id"`
	Delta          string `json:"delta"`
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	Response       string `json:"response"`
	Status         int    `json:"status"`
	Detail         string `json:"detail"`
}

// TestEndToEnd is the README's quickstart through the real cluster:
// register, log in, chat over REST (a new conversation, then a second turn
// in it), chat over WebSocket with streamed tokens, and read the history.
func TestEndToEnd(t *testing.T) {
	s := startStack(t, persisttest.SQLite(t), stackOptions{})

	s.call(t, http.MethodPost, "/api/v1/auth/register", "", `{"email":"ada@example.com","password":"correct horse battery","name":"Ada"}`).
		decode(t, http.StatusCreated, nil)
	var pair auth.TokenPair
	s.call(t, http.MethodPost, "/api/v1/auth/login", "", `{"email":"ada@example.com","password":"correct horse battery"}`).
		decode(t, http.StatusOK, &pair)
	var me auth.PublicUser
	s.call(t, http.MethodGet, "/api/v1/auth/me", pair.AccessToken, "").decode(t, http.StatusOK, &me)
	if me.Email != "ada@example.com" {
		t.Fatalf("me = %+v", me)
	}

	var first, second gateway.ChatReply
	s.call(t, http.MethodPost, "/api/v1/chat/message", pair.AccessToken, `{"content":"Hello kowai"}`).decode(t, http.StatusOK, &first)
	if first.ConversationID == "" || first.MessageID == "" || !strings.Contains(strings.ToLower(first.Response), "offline") {
		t.Fatalf("first reply = %+v", first)
	}
	s.call(t, http.MethodPost, "/api/v1/chat/message", pair.AccessToken,
		`{"content":"And again","conversation_id":"`+first.ConversationID+`"}`).decode(t, http.StatusOK, &second)
	if second.ConversationID != first.ConversationID || second.MessageID == first.MessageID {
		t.Fatalf("second reply = %+v, first %+v", second, first)
	}

	// Another user can neither continue nor read Ada's conversation.
	s.call(t, http.MethodPost, "/api/v1/auth/register", "", `{"email":"eve@example.com","password":"correct horse battery"}`).
		decode(t, http.StatusCreated, nil)
	var eve auth.TokenPair
	s.call(t, http.MethodPost, "/api/v1/auth/login", "", `{"email":"eve@example.com","password":"correct horse battery"}`).decode(t, http.StatusOK, &eve)
	if r := s.call(t, http.MethodPost, "/api/v1/chat/message", eve.AccessToken,
		`{"content":"let me in","conversation_id":"`+first.ConversationID+`"}`); r.status != http.StatusForbidden && r.status != http.StatusNotFound {
		t.Fatalf("another user's turn: %d %s", r.status, r.body)
	}

	done := wsTurn(t, s, pair.AccessToken, first.ConversationID)
	if done.ConversationID != first.ConversationID || done.Response == "" {
		t.Fatalf("done frame = %+v", done)
	}

	var history struct {
		Messages []struct {
			Seq     int64  `json:"seq"`
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	s.call(t, http.MethodGet, "/api/v1/chat/history?conversation_id="+first.ConversationID, pair.AccessToken, "").decode(t, http.StatusOK, &history)
	var roles []string
	for i, m := range history.Messages {
		if m.Seq != int64(i+1) {
			t.Fatalf("message %d has seq %d", i, m.Seq)
		}
		roles = append(roles, m.Role)
	}
	if got := strings.Join(roles, ","); got != "user,assistant,user,assistant,user,assistant" ||
		history.Messages[4].Content != "Hello over WebSocket" || history.Messages[5].Content != done.Response {
		t.Fatalf("history roles %s: %+v", got, history.Messages)
	}
	if r := s.call(t, http.MethodGet, "/api/v1/chat/history?conversation_id="+first.ConversationID, eve.AccessToken, ""); r.status != http.StatusForbidden && r.status != http.StatusNotFound {
		t.Fatalf("another user's history: %d %s", r.status, r.body)
	}
}

// A client that retries the turn starting a conversation, with the same
// Idempotency-Key, gets the first answer back: one conversation, one turn.
func TestRetryOfFirstTurn(t *testing.T) {
	s := startStack(t, persisttest.SQLite(t), stackOptions{})
	s.call(t, http.MethodPost, "/api/v1/auth/register", "", `{"email":"ada@example.com","password":"correct horse battery"}`).
		decode(t, http.StatusCreated, nil)
	var pair auth.TokenPair
	s.call(t, http.MethodPost, "/api/v1/auth/login", "", `{"email":"ada@example.com","password":"correct horse battery"}`).
		decode(t, http.StatusOK, &pair)
	turn := func(key string) gateway.ChatReply {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, s.url+"/api/v1/chat/message", strings.NewReader(`{"content":"Hello kowai"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+pair.AccessToken)
		req.Header.Set("Idempotency-Key", key)
		res, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var r gateway.ChatReply
		if err := json.NewDecoder(res.Body).Decode(&r); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("turn with key %s: %d, %v", key, res.StatusCode, err)
		}
		return r
	}
	first, retry := turn("first-turn"), turn("first-turn")
	if retry != first {
		t.Fatalf("retry = %+v, want the first answer %+v", retry, first)
	}
	other := turn("another-turn")
	if other.ConversationID == first.ConversationID {
		t.Fatal("a new key continued the first key's conversation")
	}
	var list struct {
		Conversations []struct {
			ID string `json:"id"`
		} `json:"conversations"`
	}
	s.call(t, http.MethodGet, "/api/v1/chat/conversations", pair.AccessToken, "").decode(t, http.StatusOK, &list)
	if len(list.Conversations) != 2 {
		t.Fatalf("%d conversations, want 2 (the retry must not start one): %+v", len(list.Conversations), list)
	}
	var history struct {
		Messages []struct{} `json:"messages"`
	}
	s.call(t, http.MethodGet, "/api/v1/chat/history?conversation_id="+first.ConversationID, pair.AccessToken, "").decode(t, http.StatusOK, &history)
	if len(history.Messages) != 2 {
		t.Fatalf("%d messages in the first conversation, want 2", len(history.Messages))
	}
}

// wsTurn sends one message over a WebSocket authenticated by its upgrade
// request and returns the done frame, after checking that the streamed
// tokens add up to the response.
func wsTurn(t *testing.T, s *stack, token, conversationID string) wsFrame {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + token}}
	c, res, err := fws.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.url, "http")+"/api/v1/chat/ws", h)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, res)
	}
	defer c.Close()
	msg, err := json.Marshal(map[string]string{"type": "message", "id": "m1", "content": "Hello over WebSocket", "conversation_id": conversationID})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(fws.TextMessage, msg); err != nil {
		t.Fatal(err)
	}
	var streamed strings.Builder
	for {
		if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
			t.Fatal(err)
		}
		var f wsFrame
		if err := c.ReadJSON(&f); err != nil {
			t.Fatalf("read frame: %v", err)
		}
		if f.ID != "m1" {
			t.Fatalf("frame for %q: %+v", f.ID, f)
		}
		switch f.Type {
		case "token":
			streamed.WriteString(f.Delta)
		case "done":
			if streamed.Len() == 0 || streamed.String() != f.Response {
				t.Fatalf("streamed %q, response %q", streamed.String(), f.Response)
			}
			return f
		default:
			t.Fatalf("unexpected frame %+v", f)
		}
	}
}
