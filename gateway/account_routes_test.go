package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Now().UTC()} }

// Now returns the clock's time.
func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// refresh exchanges a refresh token over HTTP.
func refresh(t *testing.T, env *restEnv, token string) reply {
	t.Helper()
	return call(t, http.MethodPost, env.url+"/api/v1/auth/refresh", "", `{"refresh_token":"`+token+`"}`)
}

// KOWAI_SESSION_MAX_AGE bounds a session however often it is refreshed.
func TestRefreshStopsAtSessionMaxAge(t *testing.T) {
	clk := newTestClock()
	env := startREST(t, restConfig{sessionMaxAge: 3 * time.Hour, clock: clk.Now})
	u := env.newUser(t, "aging@example.com")
	pair := u.pair
	for range 2 {
		clk.Advance(time.Hour)
		r := refresh(t, env, pair.RefreshToken)
		if r.status != http.StatusOK {
			t.Fatalf("refresh within the max age: %d %s", r.status, r.body)
		}
		pair = auth.TokenPair{}
		r.json(t, &pair)
	}
	clk.Advance(time.Hour)
	refresh(t, env, pair.RefreshToken).problem(t, http.StatusUnauthorized)
}

// loginAs logs in over HTTP with a User-Agent header.
func loginAs(t *testing.T, env *restEnv, u user, userAgent string) auth.TokenPair {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.url+"/api/v1/auth/login", strings.NewReader(`{"email":"`+u.email+`","password":"`+u.password+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	r := do(t, req)
	if r.status != http.StatusOK {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	var pair auth.TokenPair
	r.json(t, &pair)
	return pair
}

// sessionID returns the sid of an access token.
func sessionID(t *testing.T, env *restEnv, access string) string {
	t.Helper()
	p, err := env.svc.Authenticate(t.Context(), access)
	if err != nil {
		t.Fatal(err)
	}
	return p.SessionID
}

func listSessions(t *testing.T, env *restEnv, access string) []sessionView {
	t.Helper()
	r := call(t, http.MethodGet, env.url+"/api/v1/auth/sessions", access, "")
	if r.status != http.StatusOK || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("list sessions: %d %v %s", r.status, r.header, r.body)
	}
	var page sessionsPage
	r.json(t, &page)
	return page.Sessions
}

func TestSessionsListAndRevoke(t *testing.T) {
	env := startREST(t, restConfig{})
	u := env.newUser(t, "many@example.com")
	phone := loginAs(t, env, u, "kowai-phone/1.0")
	other := env.newUser(t, "other@example.com")

	list := listSessions(t, env, phone.AccessToken)
	if len(list) != 2 {
		t.Fatalf("sessions %+v, want the two sign-ins", list)
	}
	phoneID, firstID := sessionID(t, env, phone.AccessToken), sessionID(t, env, u.pair.AccessToken)
	byID := map[string]sessionView{}
	for _, s := range list {
		byID[s.ID] = s
	}
	if s := byID[phoneID]; !s.Current || s.UserAgent != "kowai-phone/1.0" || s.IP != "127.0.0.1" || s.LastRefreshedAt == nil || s.ExpiresAt == nil {
		t.Fatalf("the phone's session %+v, want current with its client", s)
	}
	if s := byID[firstID]; s.Current || s.ID == "" {
		t.Fatalf("the first session %+v, want listed and not current", s)
	}

	sessions := env.url + "/api/v1/auth/sessions/"
	for _, tc := range []struct {
		name, id string
		status   int
	}{
		{"another user's session", sessionID(t, env, other.pair.AccessToken), http.StatusNotFound},
		{"no such session", "0198c3f0-0000-7000-8000-000000000000", http.StatusNotFound},
		{"not an ID", "nope", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			call(t, http.MethodDelete, sessions+tc.id, phone.AccessToken, "").problem(t, tc.status)
		})
	}
	if r := call(t, http.MethodGet, env.url+"/api/v1/auth/me", other.pair.AccessToken, ""); r.status != http.StatusOK {
		t.Fatalf("the other user's session after a refused revoke: %d %s", r.status, r.body)
	}

	if r := call(t, http.MethodDelete, sessions+firstID, phone.AccessToken, ""); r.status != http.StatusNoContent {
		t.Fatalf("revoke own session: %d %s", r.status, r.body)
	}
	call(t, http.MethodGet, env.url+"/api/v1/auth/me", u.pair.AccessToken, "").problem(t, http.StatusUnauthorized)
	refresh(t, env, u.pair.RefreshToken).problem(t, http.StatusUnauthorized)
	if list := listSessions(t, env, phone.AccessToken); len(list) != 1 || list[0].ID != phoneID {
		t.Fatalf("sessions after revoking one: %+v", list)
	}
}

func TestChangePassword(t *testing.T) {
	env := startREST(t, restConfig{})
	u := env.newUser(t, "pw@example.com")
	laptop := env.login(t, u.email, u.password)
	url := env.url + "/api/v1/auth/password"
	for _, tc := range []struct {
		name, body string
		status     int
		field      string
	}{
		{"wrong current password", `{"current_password":"not it at all","new_password":"a brand new passphrase"}`, http.StatusForbidden, ""},
		{"too short", `{"current_password":"correct horse battery","new_password":"short pw 11"}`, http.StatusBadRequest, "new_password"},
		{"the email", `{"current_password":"correct horse battery","new_password":"PW@example.com"}`, http.StatusBadRequest, "new_password"},
		{"missing current", `{"new_password":"a brand new passphrase"}`, http.StatusBadRequest, "current_password"},
		{"unknown field", `{"current_password":"correct horse battery","new_password":"a brand new passphrase","x":1}`, http.StatusBadRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := call(t, http.MethodPost, url, u.pair.AccessToken, tc.body).problem(t, tc.status)
			if tc.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tc.field) {
				t.Fatalf("field errors %+v, want %s", p.Errors, tc.field)
			}
		})
	}
	// Nothing changed so far.
	if r := call(t, http.MethodGet, env.url+"/api/v1/auth/me", laptop.AccessToken, ""); r.status != http.StatusOK {
		t.Fatalf("other session after refused changes: %d", r.status)
	}
	env.login(t, u.email, u.password)

	r := call(t, http.MethodPost, url, u.pair.AccessToken, `{"current_password":"correct horse battery","new_password":"a brand new passphrase"}`)
	if r.status != http.StatusNoContent {
		t.Fatalf("change password: %d %s", r.status, r.body)
	}
	// The other sessions end; this one goes on and refreshes.
	call(t, http.MethodGet, env.url+"/api/v1/auth/me", laptop.AccessToken, "").problem(t, http.StatusUnauthorized)
	refresh(t, env, laptop.RefreshToken).problem(t, http.StatusUnauthorized)
	if r := call(t, http.MethodGet, env.url+"/api/v1/auth/me", u.pair.AccessToken, ""); r.status != http.StatusOK {
		t.Fatalf("the session that changed the password: %d %s", r.status, r.body)
	}
	if r := refresh(t, env, u.pair.RefreshToken); r.status != http.StatusOK {
		t.Fatalf("refresh of the session that changed the password: %d %s", r.status, r.body)
	}
	call(t, http.MethodPost, env.url+"/api/v1/auth/login", "", `{"email":"pw@example.com","password":"correct horse battery"}`).problem(t, http.StatusUnauthorized)
	env.login(t, u.email, "a brand new passphrase")
}

// seedData gives u a conversation with a message and feedback, an agent and a
// workflow run, and returns the conversation's ID.
func seedData(t *testing.T, env *restEnv, u user) string {
	t.Helper()
	ctx := t.Context()
	conv, err := env.stores.Conversations.Create(ctx, persistence.Conversation{OwnerID: u.id, Title: "private"})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := env.stores.Messages.Insert(ctx, persistence.Message{ConversationID: conv.ID, Seq: 1, Role: "assistant", Content: "private"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.stores.Feedback.Create(ctx, persistence.Feedback{MessageID: msg.ID, UserID: u.id, Rating: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.stores.Agents.Create(ctx, persistence.Agent{OwnerID: u.id, Name: "mine", Type: "chat", Signature: "message -> response"}); err != nil {
		t.Fatal(err)
	}
	if _, err := persistence.NewWorkflowStore(env.db).CreateRun(ctx, persistence.WorkflowRun{Name: "w", OwnerID: u.id, Status: persistence.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	return conv.ID
}

// owns counts the rows of u in the tables an erasure empties.
func owns(t *testing.T, env *restEnv, userID string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for table, column := range map[string]string{"users": "id", "conversations": "owner_id", "feedback": "user_id",
		"agents": "owner_id", "workflow_runs": "owner_id", "auth_sessions": "user_id"} {
		var n int
		if err := env.db.SQL.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+table+" WHERE "+column+" = ?", userID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			out[table] = n
		}
	}
	return out
}

func TestDeleteAccount(t *testing.T) {
	for _, tc := range []struct {
		name  string
		redis bool
	}{{"redis", true}, {"database only", false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := restConfig{}
			if tc.redis {
				cfg.redis, cfg.redisPrefix = testenv.Redis(t), testenv.Prefix("erase")
			}
			env := startREST(t, cfg)
			cfg.db = env.db
			nodeB := startREST(t, cfg)
			u, kept := env.newUser(t, "leaving@example.com"), env.newUser(t, "staying@example.com")
			seedData(t, env, u)
			keptConv := seedData(t, env, kept)
			other := env.login(t, u.email, u.password)
			// Node B has seen the token: its caches hold the session as live. The probe
			// is a route that needs nothing but an accepted token (auth/me would
			// fail for a deleted user anyway).
			probe := "/api/v1/chat/conversations"
			if r := call(t, http.MethodGet, nodeB.url+probe, other.AccessToken, ""); r.status != http.StatusOK {
				t.Fatalf("node B: %d", r.status)
			}
			url := env.url + "/api/v1/users/me"
			call(t, http.MethodDelete, url, u.pair.AccessToken, `{"password":"wrong password!"}`).problem(t, http.StatusForbidden)
			call(t, http.MethodDelete, url, u.pair.AccessToken, `{}`).problem(t, http.StatusBadRequest)
			if got := owns(t, env, u.id); len(got) != 6 {
				t.Fatalf("after refused erasures the user has %v, want everything", got)
			}

			if r := call(t, http.MethodDelete, url, u.pair.AccessToken, `{"password":"correct horse battery"}`); r.status != http.StatusNoContent {
				t.Fatalf("erase: %d %s", r.status, r.body)
			}
			if got := owns(t, env, u.id); len(got) != 0 {
				t.Fatalf("after the erasure the user still has %v", got)
			}
			for _, token := range []string{u.pair.AccessToken, other.AccessToken} {
				call(t, http.MethodGet, env.url+probe, token, "").problem(t, http.StatusUnauthorized)
			}
			testenv.Eventually(t, 5*time.Second, func() error {
				if r := call(t, http.MethodGet, nodeB.url+probe, other.AccessToken, ""); r.status != http.StatusUnauthorized {
					return fmt.Errorf("node B answers %d for a token of the erased user", r.status)
				}
				return nil
			})
			refresh(t, env, other.RefreshToken).problem(t, http.StatusUnauthorized)
			call(t, http.MethodPost, env.url+"/api/v1/auth/login", "", `{"email":"leaving@example.com","password":"correct horse battery"}`).problem(t, http.StatusUnauthorized)

			// The audit log keeps the erasure by user ID, without the email.
			page, err := env.stores.Audit.List(t.Context(), persistence.PageRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, e := range page.Items {
				if e.Action == auditUserErase && e.TargetID == u.id && e.ActorID == u.id {
					found = true
					var detail map[string]int
					if err := json.Unmarshal(e.Detail, &detail); err != nil || detail["conversations"] != 1 || strings.Contains(string(e.Detail), "leaving@") || e.IP != "" {
						t.Fatalf("audit entry %+v (%s), %v", e, e.Detail, err)
					}
				}
			}
			if !found {
				t.Fatalf("no %s audit entry for %s in %+v", auditUserErase, u.id, page.Items)
			}
			// The other user keeps everything.
			if got := owns(t, env, kept.id); len(got) != 6 {
				t.Fatalf("the other user has %v, want everything", got)
			}
			if _, err := env.stores.Conversations.Get(t.Context(), keptConv); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// An account without a password (Appwrite sign-in) confirms its erasure by
// having signed in within the last 10 minutes.
func TestDeleteAccountWithoutPassword(t *testing.T) {
	appwrite := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"$id":"aw-9","email":"aw9@example.com","name":"Aw","labels":[],"status":true,"emailVerification":true}`)
	}))
	t.Cleanup(appwrite.Close)
	verifier, err := auth.NewAppwriteVerifier(auth.AppwriteConfig{Endpoint: appwrite.URL + "/v1", ProjectID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	clk := newTestClock()
	env := startREST(t, restConfig{appwrite: verifier, clock: clk.Now})
	signIn := func() auth.TokenPair {
		r := call(t, http.MethodPost, env.url+"/api/v1/auth/appwrite", "", `{"jwt":"any"}`)
		if r.status != http.StatusOK {
			t.Fatalf("appwrite sign-in: %d %s", r.status, r.body)
		}
		var pair auth.TokenPair
		r.json(t, &pair)
		return pair
	}
	old := signIn()
	clk.Advance(auth.RecentLogin + time.Second)
	p := call(t, http.MethodDelete, env.url+"/api/v1/users/me", old.AccessToken, `{}`).problem(t, http.StatusForbidden)
	if !strings.Contains(p.Detail, "sign in again") {
		t.Fatalf("detail %q", p.Detail)
	}
	call(t, http.MethodPost, env.url+"/api/v1/auth/password", old.AccessToken, `{"current_password":"x","new_password":"a brand new passphrase"}`).problem(t, http.StatusConflict)
	fresh := signIn()
	if r := call(t, http.MethodDelete, env.url+"/api/v1/users/me", fresh.AccessToken, `{}`); r.status != http.StatusNoContent {
		t.Fatalf("erase after a fresh sign-in: %d %s", r.status, r.body)
	}
	if _, err := NewAuthUsers(env.db).UserByAppwriteID(t.Context(), "aw-9"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("the erased Appwrite user: %v", err)
	}
}
