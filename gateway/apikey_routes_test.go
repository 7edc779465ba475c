package gateway

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// fakeCompletions is fakeChat with stateless completions: it records every
// Completion and echoes its content, as fakeChat does, streaming word by
// word.
type fakeCompletions struct {
	fakeChat
	cmu         sync.Mutex
	completions []Completion
	// stop is the stop reason every completion reports.
	stop string
}

var _ CompletionBackend = (*fakeCompletions)(nil)

func (f *fakeCompletions) Complete(ctx context.Context, c Completion, onDelta func(string)) (CompletionResult, error) {
	f.cmu.Lock()
	f.completions = append(f.completions, c)
	f.cmu.Unlock()
	if c.Content == "crash" {
		return CompletionResult{}, errors.New("grain exploded with secret detail")
	}
	if c.Content == "busy" {
		return CompletionResult{}, NewError(http.StatusConflict, "agent is busy")
	}
	if c.Content == "slow" {
		// A model thinking before its first token.
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return CompletionResult{}, ctx.Err()
		}
	}
	response := "echo: " + c.Content
	if onDelta != nil {
		for _, w := range strings.SplitAfter(response, " ") {
			onDelta(w)
		}
	}
	return CompletionResult{Response: response, Model: "offline:test", StopReason: f.stop,
		Usage: Usage{PromptTokens: 7, CompletionTokens: 2}}, nil
}

func (f *fakeCompletions) lastCompletion() Completion {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	if len(f.completions) == 0 {
		return Completion{}
	}
	return f.completions[len(f.completions)-1]
}

// keyNode is a gateway with the whole API, API keys and the OpenAI routes;
// nodes on one database are one cluster as far as authentication goes.
type keyNode struct {
	url  string
	ts   testServer
	logs *testenv.LogBuffer
	svc  *auth.Service
	keys *auth.APIKeys
	chat *fakeCompletions
	db   *persistence.DB
	// server is the node's gateway, for its OpenAPI document.
	server *Server
}

func startKeyNode(t *testing.T, db *persistence.DB, cfg restConfig, rdb *redis.Client) *keyNode {
	t.Helper()
	api, svc := restAPI(t, db, cfg, nil)
	chat := &fakeCompletions{}
	n := &keyNode{svc: svc, chat: chat, db: db}
	ts := startWith(t, Options{}, func(s *Server) {
		n.server = s
		// The keys log where the gateway does, so tests can read what they log.
		kcfg := auth.APIKeysConfig{Store: NewAuthAPIKeys(db), Users: svc, Logger: s.log}
		if rdb != nil {
			// Nodes on one database share a channel no other test uses.
			kcfg.Redis, kcfg.RedisChannel = rdb, keyChannel(t, db)
		}
		keys, err := auth.NewAPIKeys(kcfg)
		if err != nil {
			t.Fatal(err)
		}
		n.keys = keys
		api.Chat, api.Completions, api.APIKeys = chat, chat, keys
		// Streams get keep-alive comments often, so every stream test reads
		// some between its frames, as clients must skip them.
		api.sseKeepAlive = 20 * time.Millisecond
		if err := s.Mount(api); err != nil {
			t.Fatal(err)
		}
	})
	n.url, n.logs, n.ts = ts.url, ts.logs, ts
	if rdb != nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.keys.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("api keys run: %v", err)
			}
		})
	}
	return n
}

// keyChannel is the revocation channel of the key nodes on db.
func keyChannel(t *testing.T, db *persistence.DB) string {
	return fmt.Sprintf("kowai-test:apikeys:%s:%p", t.Name(), db)
}

func (n *keyNode) newUser(t *testing.T, email string, roles ...auth.Role) user {
	t.Helper()
	u, err := n.svc.CreateUser(t.Context(), auth.NewUser{Email: email, Password: "correct horse battery", Name: "T", Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	r := call(t, http.MethodPost, n.url+"/api/v1/auth/login", "", `{"email":"`+email+`","password":"correct horse battery"}`)
	var pair auth.TokenPair
	if r.status != http.StatusOK {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	r.json(t, &pair)
	return user{id: u.ID, email: email, password: "correct horse battery", pair: pair}
}

// createKey makes a key over HTTP and returns it.
func (n *keyNode) createKey(t *testing.T, token, body string) auth.CreatedAPIKey {
	t.Helper()
	r := call(t, http.MethodPost, n.url+"/api/v1/auth/api-keys", token, body)
	if r.status != http.StatusCreated {
		t.Fatalf("create key: %d %s", r.status, r.body)
	}
	var k auth.CreatedAPIKey
	r.json(t, &k)
	if !strings.HasPrefix(k.Key, "kowai_") || len(k.Key) < len("kowai_")+43 || !strings.HasPrefix(k.Key, k.Prefix) || k.ID == "" {
		t.Fatalf("created key %+v", k)
	}
	return k
}

func TestAPIKeyScopes(t *testing.T) {
	n := startKeyNode(t, persisttest.SQLite(t), restConfig{}, nil)
	u := n.newUser(t, "keys@example.com")
	admin := n.newUser(t, "root@example.com", auth.RoleAdmin)
	chatKey := n.createKey(t, u.pair.AccessToken, `{"name":"ci","scopes":["chat"]}`)
	readKey := n.createKey(t, u.pair.AccessToken, `{"name":"reader","scopes":["agents:read"]}`)
	adminKey := n.createKey(t, admin.pair.AccessToken, `{"name":"everything","scopes":["chat","agents:read","agents:write","workflows"]}`)

	agent := `{"name":"a","type":"chat"}`
	for _, tt := range []struct {
		name, method, path, token, body string
		status                          int
	}{
		{"chat key sends a message", http.MethodPost, "/api/v1/chat/message", chatKey.Key, `{"content":"hi"}`, http.StatusOK},
		{"chat key reads conversations", http.MethodGet, "/api/v1/chat/conversations", chatKey.Key, "", http.StatusOK},
		{"chat key cannot list agents", http.MethodGet, "/api/v1/agents", chatKey.Key, "", http.StatusForbidden},
		{"chat key cannot create agents", http.MethodPost, "/api/v1/agents", chatKey.Key, agent, http.StatusForbidden},
		{"read key lists agents", http.MethodGet, "/api/v1/agents", readKey.Key, "", http.StatusOK},
		{"read key cannot create agents", http.MethodPost, "/api/v1/agents", readKey.Key, agent, http.StatusForbidden},
		{"read key cannot chat", http.MethodPost, "/api/v1/chat/message", readKey.Key, `{"content":"hi"}`, http.StatusForbidden},
		{"admin's key creates agents", http.MethodPost, "/api/v1/agents", adminKey.Key, agent, http.StatusCreated},
		{"admin's key is no admin", http.MethodGet, "/api/v1/admin/users", adminKey.Key, "", http.StatusForbidden},
		{"admin's key cannot see the cluster", http.MethodGet, "/api/v1/admin/cluster", adminKey.Key, "", http.StatusForbidden},
		{"admin's token is admin", http.MethodGet, "/api/v1/admin/users", admin.pair.AccessToken, "", http.StatusOK},
		{"a key cannot make keys", http.MethodPost, "/api/v1/auth/api-keys", adminKey.Key, `{"name":"x","scopes":["chat"]}`, http.StatusForbidden},
		{"a key cannot list keys", http.MethodGet, "/api/v1/auth/api-keys", chatKey.Key, "", http.StatusForbidden},
		{"a key cannot revoke keys", http.MethodDelete, "/api/v1/auth/api-keys/" + readKey.ID, chatKey.Key, "", http.StatusForbidden},
		{"a key cannot list sessions", http.MethodGet, "/api/v1/auth/sessions", chatKey.Key, "", http.StatusForbidden},
		{"a key cannot erase the account", http.MethodDelete, "/api/v1/users/me", chatKey.Key, `{"password":"correct horse battery"}`, http.StatusForbidden},
		{"a key cannot change the password", http.MethodPost, "/api/v1/auth/password", chatKey.Key, `{"current_password":"correct horse battery","new_password":"another long password"}`, http.StatusForbidden},
		{"a forged key is refused", http.MethodGet, "/api/v1/chat/conversations", "kowai_" + strings.Repeat("A", 43), "", http.StatusUnauthorized},
		{"a malformed key is refused", http.MethodGet, "/api/v1/chat/conversations", "kowai_short", "", http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, tt.method, n.url+tt.path, tt.token, tt.body)
			if r.status != tt.status {
				t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.path, r.status, r.body, tt.status)
			}
		})
	}
	// The account is still there: the key could not erase it.
	if _, err := n.svc.Me(t.Context(), auth.Principal{UserID: u.id}); err != nil {
		t.Fatalf("user after a key tried to erase it: %v", err)
	}
	// A user cannot give a key scopes their roles lack: there is no such
	// scope for users today, so check that scopes are validated at all.
	for _, body := range []string{
		`{"name":"x","scopes":["admin"]}`, `{"name":"x","scopes":[]}`, `{"name":"","scopes":["chat"]}`,
		`{"name":"x","scopes":["chat"],"expires_at":"2001-01-01T00:00:00Z"}`, `{"name":"x","scopes":["chat"],"extra":1}`,
	} {
		r := call(t, http.MethodPost, n.url+"/api/v1/auth/api-keys", u.pair.AccessToken, body)
		p := r.problem(t, http.StatusBadRequest)
		if len(p.Errors) == 0 {
			t.Fatalf("%s: no field errors in %+v", body, p)
		}
	}
}

func TestAPIKeyLifecycle(t *testing.T) {
	db := persisttest.SQLite(t)
	n := startKeyNode(t, db, restConfig{}, nil)
	u := n.newUser(t, "life@example.com")
	other := n.newUser(t, "other@example.com")
	k := n.createKey(t, u.pair.AccessToken, `{"name":"ci","scopes":["chat","workflows"],"expires_at":"`+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`"}`)

	if r := call(t, http.MethodPost, n.url+"/api/v1/chat/message", k.Key, `{"content":"hello"}`); r.status != http.StatusOK {
		t.Fatalf("chat with the key: %d %s", r.status, r.body)
	}
	if got := n.chat.recorded(); len(got) != 1 || got[0].UserID != u.id {
		t.Fatalf("turns %+v, want one of user %s", got, u.id)
	}
	if err := n.keys.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	var page apiKeysPage
	r := call(t, http.MethodGet, n.url+"/api/v1/auth/api-keys", u.pair.AccessToken, "")
	r.json(t, &page)
	if len(page.APIKeys) != 1 || page.APIKeys[0].ID != k.ID || page.APIKeys[0].Prefix != k.Prefix ||
		page.APIKeys[0].LastUsedAt == nil || page.APIKeys[0].ExpiresAt == nil || strings.Contains(string(r.body), k.Key) {
		t.Fatalf("listing %s", r.body)
	}

	// Hashed at rest: neither the database nor the logs hold the key.
	dump := dumpTables(t, db, "api_keys", "audit_log")
	if strings.Contains(dump, k.Key) || strings.Contains(dump, k.Key[len(k.Prefix):]) {
		t.Fatal("the raw API key is stored in the database")
	}
	if !strings.Contains(dump, auth.HashAPIKey(k.Key)) {
		t.Fatal("the key's hash is not stored")
	}
	if logs := n.logs.String(); !strings.Contains(logs, k.ID) || strings.Contains(logs, k.Key[len(k.Prefix):]) {
		t.Fatalf("the logs do not record the key's creation, or hold the raw key:\n%s", logs)
	}

	// Only its owner revokes it; then it stops working at once.
	if r := call(t, http.MethodDelete, n.url+"/api/v1/auth/api-keys/"+k.ID, other.pair.AccessToken, ""); r.status != http.StatusNotFound {
		t.Fatalf("revoke by another user: %d %s", r.status, r.body)
	}
	if r := call(t, http.MethodGet, n.url+"/api/v1/chat/conversations", k.Key, ""); r.status != http.StatusOK {
		t.Fatalf("key after a refused revoke: %d", r.status)
	}
	if r := call(t, http.MethodDelete, n.url+"/api/v1/auth/api-keys/"+k.ID, u.pair.AccessToken, ""); r.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if r := call(t, http.MethodGet, n.url+"/api/v1/chat/conversations", k.Key, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("revoked key: %d, want 401", r.status)
	}
	if r := call(t, http.MethodDelete, n.url+"/api/v1/auth/api-keys/"+k.ID, u.pair.AccessToken, ""); r.status != http.StatusNotFound {
		t.Fatalf("second revoke: %d", r.status)
	}
	_, entries := auditActions(t, persistence.NewAuditStore(db))
	var actions []string
	for _, e := range entries {
		if e.TargetID == k.ID {
			actions = append(actions, e.Action)
		}
	}
	if strings.Join(actions, ",") != "apikey.create,apikey.revoke" {
		t.Fatalf("audit actions for the key: %v", actions)
	}
	if strings.Contains(n.logs.String(), k.Key[len(k.Prefix):]) {
		t.Fatal("the raw API key appears in the logs")
	}
}

func TestAPIKeyExpires(t *testing.T) {
	db := persisttest.SQLite(t)
	n := startKeyNode(t, db, restConfig{}, nil)
	u := n.newUser(t, "exp@example.com")
	k := n.createKey(t, u.pair.AccessToken, `{"name":"short","scopes":["chat"],"expires_at":"`+time.Now().Add(1500*time.Millisecond).UTC().Format(time.RFC3339Nano)+`"}`)
	if r := call(t, http.MethodGet, n.url+"/api/v1/chat/conversations", k.Key, ""); r.status != http.StatusOK {
		t.Fatalf("fresh key: %d", r.status)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if r := call(t, http.MethodGet, n.url+"/api/v1/chat/conversations", k.Key, ""); r.status != http.StatusUnauthorized {
			return fmt.Errorf("expired key: %d", r.status)
		}
		return nil
	})
}

// TestAPIKeyRevokedOnEveryNode revokes on one node a key another node has
// just accepted (and cached): the other refuses it within the cache's one
// second, through the database alone, and at once with Redis.
func TestAPIKeyRevokedOnEveryNode(t *testing.T) {
	for _, withRedis := range []bool{false, true} {
		t.Run(fmt.Sprintf("redis=%v", withRedis), func(t *testing.T) {
			var rdb *redis.Client
			if withRedis {
				rdb = testRedisClient(t)
			}
			db := persisttest.SQLite(t)
			a, b := startKeyNode(t, db, restConfig{}, rdb), startKeyNode(t, db, restConfig{}, rdb)
			u := a.newUser(t, "nodes@example.com")
			k := a.createKey(t, u.pair.AccessToken, `{"name":"ci","scopes":["chat"]}`)
			if r := call(t, http.MethodGet, b.url+"/api/v1/chat/conversations", k.Key, ""); r.status != http.StatusOK {
				t.Fatalf("key on node b: %d %s", r.status, r.body)
			}
			if withRedis {
				// Both nodes listen before the revocation is published.
				testenv.Eventually(t, 5*time.Second, func() error {
					n, err := rdb.PubSubNumSub(t.Context(), keyChannel(t, db)).Result()
					if err != nil || n[keyChannel(t, db)] < 2 {
						return fmt.Errorf("subscribers %v, %v", n, err)
					}
					return nil
				})
			}
			if r := call(t, http.MethodDelete, a.url+"/api/v1/auth/api-keys/"+k.ID, u.pair.AccessToken, ""); r.status != http.StatusNoContent {
				t.Fatalf("revoke on node a: %d %s", r.status, r.body)
			}
			// Without Redis the cache's one second bounds the delay; with it,
			// the revocation is pushed to node b, well inside that second.
			within := 3 * time.Second
			if withRedis {
				within = 500 * time.Millisecond
			}
			start := time.Now()
			testenv.Eventually(t, within, func() error {
				if r := call(t, http.MethodGet, b.url+"/api/v1/chat/conversations", k.Key, ""); r.status != http.StatusUnauthorized {
					return fmt.Errorf("node b still accepts the revoked key: %d", r.status)
				}
				return nil
			})
			t.Logf("node b refused the key %s after the revocation", time.Since(start))
		})
	}
}

// An API key draws from its user's per-user buckets: the user's keys and
// sessions share one budget per route, over REST and WebSocket, and another
// user's budget is untouched.
func TestAPIKeyRateLimitSharesUserBucket(t *testing.T) {
	n := startKeyNode(t, persisttest.SQLite(t), restConfig{rateLimit: ratelimit.Limit{Rate: 3, Period: time.Minute}}, nil)
	u := n.newUser(t, "limits@example.com")
	other := n.newUser(t, "other@example.com")
	k1 := n.createKey(t, u.pair.AccessToken, `{"name":"one","scopes":["chat"]}`)
	k2 := n.createKey(t, u.pair.AccessToken, `{"name":"two","scopes":["chat"]}`)
	k3 := n.createKey(t, other.pair.AccessToken, `{"name":"three","scopes":["chat"]}`)
	send := func(token string) int {
		return call(t, http.MethodPost, n.url+"/api/v1/chat/message", token, `{"content":"hi"}`).status
	}
	if a, b := send(k1.Key), send(k1.Key); a != http.StatusOK || b != http.StatusOK {
		t.Fatalf("two turns with one key: %d %d, want 200 200", a, b)
	}
	if s := send(k2.Key); s != http.StatusOK {
		t.Fatalf("the third turn, with another key of the user: %d, want 200", s)
	}
	if s := send(k2.Key); s != http.StatusTooManyRequests {
		t.Fatalf("a fourth turn with the other key: %d, want 429 (the user's bucket is spent)", s)
	}
	if s := send(u.pair.AccessToken); s != http.StatusTooManyRequests {
		t.Fatalf("the user's session: %d, want 429 (its keys spent its bucket)", s)
	}
	if s := send(k3.Key); s != http.StatusOK {
		t.Fatalf("another user's key: %d, want 200", s)
	}
	// WebSocket message frames count against the same bucket.
	c, _, err := wsDial(t, n.ts, k1.Key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteJSON(map[string]string{"type": "message", "content": "hi", "id": "w1"}); err != nil {
		t.Fatal(err)
	}
	var f struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := c.ReadJSON(&f); err != nil {
		t.Fatal(err)
	}
	if f.Type != "error" || f.Status != http.StatusTooManyRequests {
		t.Fatalf("a WebSocket turn with the spent user's key: %+v, want a 429 error frame", f)
	}
}

// dumpTables returns every row of tables as text.
func dumpTables(t *testing.T, db *persistence.DB, tables ...string) string {
	t.Helper()
	var b strings.Builder
	for _, table := range tables {
		// The table names are constants of the tests.
		rows, err := db.SQL.QueryContext(t.Context(), "SELECT * FROM "+table)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				b.Write(v)
				b.WriteByte('|')
			}
			b.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestAPIKeyOverWebSocket: a key with the chat scope chats over the
// WebSocket; one without it gets a 403 error frame for every message.
func TestAPIKeyOverWebSocket(t *testing.T) {
	n := startKeyNode(t, persisttest.SQLite(t), restConfig{}, nil)
	u := n.newUser(t, "ws-key@example.com")
	ts := testServer{url: n.url, logs: n.logs}
	for _, tt := range []struct {
		scopes string
		want   string
		status int
	}{
		{`["chat"]`, "done", 0},
		{`["agents:read"]`, "error", http.StatusForbidden},
	} {
		k := n.createKey(t, u.pair.AccessToken, `{"name":"ws","scopes":`+tt.scopes+`}`)
		c, res, err := wsDial(t, ts, k.Key)
		if err != nil {
			t.Fatalf("dial with a %s key: %v (%v)", tt.scopes, err, res)
		}
		if err := c.WriteJSON(map[string]string{"type": "message", "content": "over the socket", "id": "m1"}); err != nil {
			t.Fatal(err)
		}
		f := readFrame(t, c)
		for f.Type == "token" {
			f = readFrame(t, c)
		}
		if f.Type != tt.want || f.Status != tt.status {
			t.Fatalf("a %s key over the WebSocket: %+v, want %s %d", tt.scopes, f, tt.want, tt.status)
		}
	}
}
