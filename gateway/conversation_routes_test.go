package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence"
)

// storeConversations is a ConversationBackend over the repositories, with
// the session grain's rules: the owner alone, and the same 404 for anyone
// else as for a missing conversation.
type storeConversations struct{ stores Stores }

var _ ConversationBackend = storeConversations{}

func (s storeConversations) owned(ctx context.Context, userID, id string) error {
	c, err := s.stores.Conversations.Get(ctx, id)
	if errors.Is(err, persistence.ErrNotFound) || err == nil && c.OwnerID != userID {
		return NewError(http.StatusNotFound, "conversation "+id+" does not exist")
	}
	return err
}

func (s storeConversations) RenameConversation(ctx context.Context, userID, id, title string) error {
	if err := s.owned(ctx, userID, id); err != nil {
		return err
	}
	return s.stores.Conversations.UpdateTitle(ctx, id, title)
}

func (s storeConversations) DeleteConversation(ctx context.Context, userID, id string) error {
	if err := s.owned(ctx, userID, id); err != nil {
		return err
	}
	return s.stores.Conversations.Delete(ctx, id)
}

func (s storeConversations) CancelTurn(ctx context.Context, userID, id, _ string) (bool, error) {
	return false, s.owned(ctx, userID, id)
}

func TestConversationRoutes(t *testing.T) {
	var backend storeConversations
	env := startREST(t, restConfig{conversations: &lazyConversations{get: func() ConversationBackend { return backend }}})
	backend = storeConversations{stores: env.stores}
	alice := env.newUser(t, "alice@example.com")
	bob := env.newUser(t, "bob@example.com")
	mod := env.newUser(t, "mod@example.com", auth.RoleModerator)
	conv, _ := env.seedConversation(t, alice.id, 2)
	one := env.url + "/api/v1/chat/conversations/" + conv.ID
	missing := env.url + "/api/v1/chat/conversations/0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e"

	var view conversationView
	call(t, http.MethodGet, one, alice.pair.AccessToken, "").json(t, &view)
	if view.ID != conv.ID || view.Title != "t" {
		t.Fatalf("owner GET %+v", view)
	}
	call(t, http.MethodGet, one, mod.pair.AccessToken, "").json(t, &view)
	if view.ID != conv.ID {
		t.Fatalf("moderator GET %+v", view)
	}
	r := call(t, http.MethodPatch, one, alice.pair.AccessToken, `{"title":"  Trip plans  "}`)
	r.json(t, &view)
	if r.status != http.StatusOK || view.Title != "Trip plans" {
		t.Fatalf("rename: %d %s", r.status, r.body)
	}
	// A stranger, a moderator writing, and a missing conversation: one 404.
	notFound := call(t, http.MethodGet, missing, bob.pair.AccessToken, "").problem(t, http.StatusNotFound)
	for _, tc := range []struct {
		name, method, url, token, body string
	}{
		{"stranger reads", http.MethodGet, one, bob.pair.AccessToken, ""},
		{"stranger renames", http.MethodPatch, one, bob.pair.AccessToken, `{"title":"mine"}`},
		{"moderator renames", http.MethodPatch, one, mod.pair.AccessToken, `{"title":"mine"}`},
		{"stranger deletes", http.MethodDelete, one, bob.pair.AccessToken, ""},
		{"rename a missing one", http.MethodPatch, missing, alice.pair.AccessToken, `{"title":"x"}`},
		{"delete a missing one", http.MethodDelete, missing, alice.pair.AccessToken, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p := call(t, tc.method, tc.url, tc.token, tc.body).problem(t, http.StatusNotFound); p.Detail != notFound.Detail {
				t.Fatalf("detail %q differs from a missing conversation's %q", p.Detail, notFound.Detail)
			}
		})
	}
	for _, tc := range []struct{ name, body, field string }{
		{"empty title", `{"title":"  "}`, "title"},
		{"bidi override", `{"title":"invoice\u202Efdp.exe"}`, "title"},
		{"isolate", `{"title":"\u2066x\u2069"}`, "title"},
		{"line break", `{"title":"a\nb"}`, "title"},
		{"too long", `{"title":"` + strings.Repeat("a", 201) + `"}`, "title"},
		{"unknown field", `{"title":"x","owner_id":"y"}`, "owner_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := call(t, http.MethodPatch, one, alice.pair.AccessToken, tc.body).problem(t, http.StatusBadRequest)
			if len(p.Errors) == 0 || p.Errors[0].Field != tc.field {
				t.Fatalf("errors %+v, want %s", p.Errors, tc.field)
			}
		})
	}
	call(t, http.MethodGet, env.url+"/api/v1/chat/conversations/nope", alice.pair.AccessToken, "").problem(t, http.StatusBadRequest)

	if r := call(t, http.MethodDelete, one, alice.pair.AccessToken, ""); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	call(t, http.MethodGet, one, alice.pair.AccessToken, "").problem(t, http.StatusNotFound)
	call(t, http.MethodGet, env.url+"/api/v1/chat/history?conversation_id="+conv.ID, alice.pair.AccessToken, "").problem(t, http.StatusNotFound)
}

// lazyConversations defers to a backend chosen after the server starts.
type lazyConversations struct{ get func() ConversationBackend }

func (l *lazyConversations) RenameConversation(ctx context.Context, userID, id, title string) error {
	return l.get().RenameConversation(ctx, userID, id, title)
}

func (l *lazyConversations) DeleteConversation(ctx context.Context, userID, id string) error {
	return l.get().DeleteConversation(ctx, userID, id)
}

func (l *lazyConversations) CancelTurn(ctx context.Context, userID, id, turnID string) (bool, error) {
	return l.get().CancelTurn(ctx, userID, id, turnID)
}

// order=desc pages from the newest message to the oldest, cursor included.
func TestHistoryNewestFirst(t *testing.T) {
	env := startREST(t, restConfig{})
	alice := env.newUser(t, "alice@example.com")
	conv, _ := env.seedConversation(t, alice.id, 5)
	for _, tc := range []struct {
		order string
		want  string
	}{{"desc", "[5 4 3 2 1]"}, {"asc", "[1 2 3 4 5]"}, {"", "[1 2 3 4 5]"}} {
		var seqs []int64
		query := url.Values{"conversation_id": {conv.ID}, "limit": {"2"}, "order": {tc.order}}
		for range 5 {
			var page historyPage
			call(t, http.MethodGet, env.url+"/api/v1/chat/history?"+query.Encode(), alice.pair.AccessToken, "").json(t, &page)
			for _, m := range page.Messages {
				seqs = append(seqs, m.Seq)
			}
			if page.NextCursor == "" {
				break
			}
			query.Set("cursor", page.NextCursor)
		}
		if fmt.Sprint(seqs) != tc.want {
			t.Errorf("order %q: seqs %v, want %s", tc.order, seqs, tc.want)
		}
	}
	p := call(t, http.MethodGet, env.url+"/api/v1/chat/history?order=newest&conversation_id="+conv.ID, alice.pair.AccessToken, "").problem(t, http.StatusBadRequest)
	if len(p.Errors) == 0 || p.Errors[0].Field != "order" {
		t.Fatalf("errors %+v", p.Errors)
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name, v  string
		required bool
		ok       bool
	}{
		{"plain", "Ada Lovelace", true, true},
		{"accents and CJK", "Zoë 山田", true, true},
		{"emoji", "🚀 launch", true, true},
		{"surrounding space trimmed", "  Ada  ", true, true},
		{"empty optional", "", false, true},
		{"empty required", " ", true, false},
		{"right-to-left override U+202E", "abc\u202Etxt", true, false},
		{"left-to-right embedding U+202A", "a\u202Ab", true, false},
		{"pop directional formatting U+202C", "a\u202Cb", true, false},
		{"isolate U+2066", "a\u2066b", true, false},
		{"first strong isolate U+2068", "a\u2068b", true, false},
		{"pop isolate U+2069", "a\u2069b", true, false},
		{"zero-width space U+200B", "ad\u200Bmin", true, false},
		{"zero-width joiner U+200D", "a\u200Db", true, false},
		{"LRM U+200E", "a\u200Eb", true, false},
		{"RLM U+200F", "a\u200Fb", true, false},
		{"BOM U+FEFF", "\uFEFFadmin", true, false},
		{"soft hyphen U+00AD (Cf)", "ad\u00ADmin", true, false},
		{"line separator U+2028", "a\u2028b", true, false},
		{"newline", "a\nb", true, false},
		{"tab", "a\tb", true, false},
		{"escape", "a\x1bb", true, false},
		{"DEL", "a\x7fb", true, false},
		{"C1 control U+0085", "a\u0085b", true, false},
		{"invalid UTF-8", "a\xffb", true, false},
		{"too long", strings.Repeat("a", 21), true, false},
	} {
		got := checkName("name", tc.v, 20, tc.required)
		if (len(got) == 0) != tc.ok || len(got) > 0 && got[0].Field != "name" {
			t.Errorf("%s: checkName(%q) = %+v, want ok=%v", tc.name, tc.v, got, tc.ok)
		}
	}
}

// A user's name is refused with invisible characters at registration.
func TestRegisterRefusesInvisibleNames(t *testing.T) {
	env := startREST(t, restConfig{})
	for i, name := range []string{"admin\u202E", "ad\u200Bmin", "\u2066x\u2069"} {
		body := fmt.Sprintf(`{"email":"u%d@example.com","password":"correct horse battery","name":%q}`, i, name)
		p := call(t, http.MethodPost, env.url+"/api/v1/auth/register", "", body).problem(t, http.StatusBadRequest)
		if len(p.Errors) == 0 || p.Errors[0].Field != "name" {
			t.Fatalf("%q: errors %+v", name, p.Errors)
		}
	}
}
