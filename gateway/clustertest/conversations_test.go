package clustertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/google/uuid"

	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// derivedSpace is the gateway's namespace of conversation IDs derived from a user and
// an idempotency key; each race below checks that the owner's reply names the ID
// derived with it, so a changed namespace fails the test instead of hollowing it.
var derivedSpace = uuid.MustParse("4a8f3a52-6f0e-4d3b-9a57-0d3c2b7e9f11")

// signUp registers and logs in a user, returning the user's ID and access token.
func signUp(t *testing.T, s *stack, email string) (string, string) {
	t.Helper()
	var me auth.PublicUser
	s.call(t, http.MethodPost, "/api/v1/auth/register", "", `{"email":"`+email+`","password":"correct horse battery"}`).decode(t, http.StatusCreated, &me)
	var pair auth.TokenPair
	s.call(t, http.MethodPost, "/api/v1/auth/login", "", `{"email":"`+email+`","password":"correct horse battery"}`).decode(t, http.StatusOK, &pair)
	return me.ID, pair.AccessToken
}

// keyed posts a chat message with an Idempotency-Key.
func (s *stack) keyed(t *testing.T, token, key, body string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url+"/api/v1/chat/message", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return reply{}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", key)
	res, err := s.client.Do(req)
	if err != nil {
		t.Error(err)
		return reply{}
	}
	defer res.Body.Close()
	var raw json.RawMessage
	_ = json.NewDecoder(res.Body).Decode(&raw)
	return reply{status: res.StatusCode, body: raw}
}

// The first-turn race over HTTP: while the owner's first turn (no conversation_id,
// an Idempotency-Key) runs, another user posts to the ID derived from the owner and the
// key, with the same key. The stranger must always get 404 and never the owner's reply,
// whoever arrives first, and every conversation is the owner's.
func TestFirstTurnRaceOverHTTP(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		s := startStack(t, db, stackOptions{})
		ownerID, owner := signUp(t, s, "owner@example.com")
		_, stranger := signUp(t, s, "stranger@example.com")
		for i := range 40 {
			key := fmt.Sprintf("race-%d", i)
			secret := fmt.Sprintf("my secret number %d", i)
			derived := uuid.NewSHA1(derivedSpace, []byte(ownerID+"\x00"+key)).String()
			var wg sync.WaitGroup
			var mine, theirs reply
			wg.Go(func() { mine = s.keyed(t, owner, key, `{"content":"`+secret+`"}`) })
			wg.Go(func() {
				theirs = s.keyed(t, stranger, key, `{"content":"`+secret+`","conversation_id":"`+derived+`"}`)
			})
			wg.Wait()
			var r gateway.ChatReply
			mine.decode(t, http.StatusOK, &r)
			if r.ConversationID != derived {
				t.Fatalf("round %d: the owner's conversation is %s, not the derived %s", i, r.ConversationID, derived)
			}
			if theirs.status != http.StatusNotFound || strings.Contains(string(theirs.body), r.Response) {
				t.Fatalf("round %d: the stranger got %d %s", i, theirs.status, theirs.body)
			}
		}
		var list struct {
			Conversations []struct{} `json:"conversations"`
		}
		s.call(t, http.MethodGet, "/api/v1/chat/conversations", stranger, "").decode(t, http.StatusOK, &list)
		if len(list.Conversations) != 0 {
			t.Fatalf("the stranger owns %d conversations", len(list.Conversations))
		}
	})
}

// One conversation's life over HTTP and WebSocket through the real cluster: a reused
// key with another body is a 422 (REST and WebSocket), the owner reads, renames and
// deletes it, a stranger gets 404 for each, and after the delete neither a retry of the
// first turn nor a new turn brings it back.
func TestConversationLifecycle(t *testing.T) {
	s := startStack(t, persisttest.SQLite(t), stackOptions{})
	_, owner := signUp(t, s, "owner@example.com")
	_, stranger := signUp(t, s, "stranger@example.com")
	var first gateway.ChatReply
	s.keyed(t, owner, "k1", `{"content":"Hello kowai"}`).decode(t, http.StatusOK, &first)
	conv := first.ConversationID

	if r := s.keyed(t, owner, "k1", `{"content":"Something else"}`); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("reused key, new body: %d %s", r.status, r.body)
	}
	if r := s.keyed(t, owner, "k2", `{"content":"second","conversation_id":"`+conv+`"}`); r.status != http.StatusOK {
		t.Fatalf("second turn: %d %s", r.status, r.body)
	}
	if r := s.keyed(t, owner, "k2", `{"content":"not second","conversation_id":"`+conv+`"}`); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("reused key in a conversation: %d %s", r.status, r.body)
	}
	if f := wsKeyed(t, s, owner, conv, "k2", "not second either"); f.Type != "error" || f.Status != http.StatusUnprocessableEntity {
		t.Fatalf("websocket frame with a reused key: %+v", f)
	}
	if f := wsKeyed(t, s, owner, conv, "k2", "second"); f.Type != "done" {
		t.Fatalf("websocket retry of the same turn: %+v", f)
	}

	path := "/api/v1/chat/conversations/" + conv
	for _, c := range []struct{ method, body string }{{http.MethodGet, ""}, {http.MethodPatch, `{"title":"mine"}`}, {http.MethodDelete, ""}} {
		if r := s.call(t, c.method, path, stranger, c.body); r.status != http.StatusNotFound {
			t.Fatalf("stranger %s: %d %s", c.method, r.status, r.body)
		}
	}
	if r := s.keyed(t, stranger, "k9", `{"content":"let me in","conversation_id":"`+conv+`"}`); r.status != http.StatusNotFound {
		t.Fatalf("stranger's turn: %d %s", r.status, r.body)
	}
	var view struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	s.call(t, http.MethodPatch, path, owner, `{"title":"Renamed"}`).decode(t, http.StatusOK, &view)
	if view.ID != conv || view.Title != "Renamed" {
		t.Fatalf("rename: %+v", view)
	}
	s.call(t, http.MethodGet, path, owner, "").decode(t, http.StatusOK, &view)
	if view.Title != "Renamed" {
		t.Fatalf("get after rename: %+v", view)
	}
	s.call(t, http.MethodDelete, path, owner, "").decode(t, http.StatusNoContent, nil)
	s.call(t, http.MethodGet, path, owner, "").decode(t, http.StatusNotFound, nil)
	s.call(t, http.MethodGet, "/api/v1/chat/history?conversation_id="+conv, owner, "").decode(t, http.StatusNotFound, nil)
	if r := s.keyed(t, owner, "k1", `{"content":"Hello kowai"}`); r.status != http.StatusNotFound {
		t.Fatalf("retry of the first turn after delete: %d %s", r.status, r.body)
	}
	if r := s.keyed(t, owner, "k3", `{"content":"anyone there?","conversation_id":"`+conv+`"}`); r.status != http.StatusNotFound {
		t.Fatalf("new turn after delete: %d %s", r.status, r.body)
	}
	var list struct {
		Conversations []struct{} `json:"conversations"`
	}
	s.call(t, http.MethodGet, "/api/v1/chat/conversations", owner, "").decode(t, http.StatusOK, &list)
	if len(list.Conversations) != 0 {
		t.Fatalf("%d conversations after delete", len(list.Conversations))
	}
}

// wsKeyed sends one message frame with an idempotency key and returns the first
// frame that is not a token.
func wsKeyed(t *testing.T, s *stack, token, conv, key, content string) wsFrame {
	t.Helper()
	c, res, err := fws.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.url, "http")+"/api/v1/chat/ws", http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, res)
	}
	defer c.Close()
	if err := c.WriteJSON(map[string]string{"type": "message", "id": "m", "content": content, "conversation_id": conv, "idempotency_key": key}); err != nil {
		t.Fatal(err)
	}
	for {
		if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
			t.Fatal(err)
		}
		var f wsFrame
		if err := c.ReadJSON(&f); err != nil {
			t.Fatalf("read frame: %v", err)
		}
		if f.Type != "token" {
			return f
		}
	}
}
