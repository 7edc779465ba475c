package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
)

// seedConversation stores a conversation of owner with n alternating user
// and assistant messages, and returns it with its messages.
func (e *restEnv) seedConversation(t *testing.T, owner string, n int) (persistence.Conversation, []persistence.Message) {
	t.Helper()
	conv, err := e.stores.Conversations.Create(t.Context(), persistence.Conversation{OwnerID: owner, Title: "t"})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []persistence.Message
	for i := range n {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		m, err := e.stores.Messages.Insert(t.Context(), persistence.Message{ConversationID: conv.ID, Seq: int64(i + 1), Role: role, Content: fmt.Sprint("m", i+1)})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	return conv, msgs
}

func TestHistory(t *testing.T) {
	env := startREST(t, restConfig{})
	alice := env.newUser(t, "alice@example.com")
	bob := env.newUser(t, "bob@example.com")
	mod := env.newUser(t, "mod@example.com", auth.RoleModerator)
	conv, msgs := env.seedConversation(t, alice.id, 5)
	history := func(token, query string) reply {
		return call(t, http.MethodGet, env.url+"/api/v1/chat/history?"+query, token, "")
	}

	// The owner pages through all five messages, two at a time, in order.
	var seqs []int64
	query := url.Values{"conversation_id": {conv.ID}, "limit": {"2"}}
	for range 5 {
		var page historyPage
		r := history(alice.pair.AccessToken, query.Encode())
		if r.status != http.StatusOK {
			t.Fatalf("history: %d %s", r.status, r.body)
		}
		r.json(t, &page)
		for _, m := range page.Messages {
			seqs = append(seqs, m.Seq)
		}
		if page.NextCursor == "" {
			break
		}
		query.Set("cursor", page.NextCursor)
	}
	if fmt.Sprint(seqs) != "[1 2 3 4 5]" {
		t.Fatalf("paged seqs %v", seqs)
	}

	var page historyPage
	history(mod.pair.AccessToken, "conversation_id="+conv.ID).json(t, &page)
	if len(page.Messages) != 5 || page.Messages[0].ID != msgs[0].ID || page.Messages[0].Content != "m1" || page.Messages[0].CreatedAt.Location().String() != "UTC" {
		t.Fatalf("moderator read %+v", page)
	}
	// Another user's conversation and a missing one are the same 404.
	other := history(bob.pair.AccessToken, "conversation_id="+conv.ID).problem(t, http.StatusNotFound)
	missing := history(bob.pair.AccessToken, "conversation_id=0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e").problem(t, http.StatusNotFound)
	if other.Detail != missing.Detail {
		t.Fatalf("a foreign conversation (%q) is distinguishable from a missing one (%q)", other.Detail, missing.Detail)
	}
	for _, q := range []string{"", "conversation_id=nope", "conversation_id=" + conv.ID + "&limit=0", "conversation_id=" + conv.ID + "&limit=201",
		"conversation_id=" + conv.ID + "&cursor=forged"} {
		history(alice.pair.AccessToken, q).problem(t, http.StatusBadRequest)
	}
	history("", "conversation_id="+conv.ID).problem(t, http.StatusUnauthorized)
}

func TestConversations(t *testing.T) {
	env := startREST(t, restConfig{})
	alice := env.newUser(t, "alice@example.com")
	bob := env.newUser(t, "bob@example.com")
	mine, _ := env.seedConversation(t, alice.id, 0)
	env.seedConversation(t, bob.id, 0)
	var page conversationsPage
	call(t, http.MethodGet, env.url+"/api/v1/chat/conversations", alice.pair.AccessToken, "").json(t, &page)
	if len(page.Conversations) != 1 || page.Conversations[0].ID != mine.ID || page.NextCursor != "" {
		t.Fatalf("alice's conversations: %+v", page)
	}
}

func TestFeedback(t *testing.T) {
	env := startREST(t, restConfig{})
	alice := env.newUser(t, "alice@example.com")
	bob := env.newUser(t, "bob@example.com")
	mod := env.newUser(t, "mod@example.com", auth.RoleModerator)
	_, msgs := env.seedConversation(t, alice.id, 2)
	feedback := func(token, body string) reply {
		return call(t, http.MethodPost, env.url+"/api/v1/chat/feedback", token, body)
	}
	answer := msgs[1].ID
	r := feedback(alice.pair.AccessToken, `{"message_id":"`+answer+`","rating":-1,"comment":"too long"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("feedback: %d %s", r.status, r.body)
	}
	var fb feedbackView
	r.json(t, &fb)
	if fb.MessageID != answer || fb.Rating != -1 || fb.Comment != "too long" || !isUUID(fb.ID) {
		t.Fatalf("feedback %+v", fb)
	}
	for _, tc := range []struct {
		name, token, body string
		status            int
	}{
		{"own question", alice.pair.AccessToken, `{"message_id":"` + msgs[0].ID + `","rating":1}`, http.StatusBadRequest},
		{"another user's message", bob.pair.AccessToken, `{"message_id":"` + answer + `","rating":1}`, http.StatusNotFound},
		{"moderators read but do not rate", mod.pair.AccessToken, `{"message_id":"` + answer + `","rating":1}`, http.StatusNotFound},
		{"rating 0", alice.pair.AccessToken, `{"message_id":"` + answer + `","rating":0}`, http.StatusBadRequest},
		{"missing message", alice.pair.AccessToken, `{"message_id":"0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e","rating":1}`, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) { feedback(tc.token, tc.body).problem(t, tc.status) })
	}
	// Rating again changes the rating: the same feedback, 200 instead of 201.
	r = feedback(alice.pair.AccessToken, `{"message_id":"`+answer+`","rating":1,"comment":"fine after all"}`)
	var changed feedbackView
	r.json(t, &changed)
	if r.status != http.StatusOK || changed.ID != fb.ID || changed.Rating != 1 || changed.Comment != "fine after all" {
		t.Fatalf("second rating: %d %s; first %+v", r.status, r.body, fb)
	}
}
