package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// principalChat is fakeChat that also records the principal each turn ran
// with, as the gateway put it in the turn's context.
type principalChat struct {
	fakeChat
	pmu        sync.Mutex
	principals []auth.Principal
}

func (c *principalChat) Send(ctx context.Context, t ChatTurn, onDelta func(string)) (ChatReply, error) {
	p, _ := auth.PrincipalFromContext(ctx)
	c.pmu.Lock()
	c.principals = append(c.principals, p)
	c.pmu.Unlock()
	return c.fakeChat.Send(ctx, t, onDelta)
}

func (c *principalChat) lastPrincipal() auth.Principal {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if len(c.principals) == 0 {
		return auth.Principal{}
	}
	return c.principals[len(c.principals)-1]
}

// wsNode is one gateway node with the whole API over a real auth.Service;
// nodes started on one database are a cluster as far as authentication
// goes, each with its own caches.
type wsNode struct {
	ts   testServer
	svc  *auth.Service
	chat *principalChat
}

func startWSNode(t *testing.T, db *persistence.DB, cfg restConfig, recheck time.Duration) *wsNode {
	t.Helper()
	api, svc := restAPI(t, db, cfg, nil)
	chat := &principalChat{}
	api.Chat, api.wsRecheckInterval = chat, recheck
	ts := startWith(t, Options{}, func(s *Server) {
		if err := s.Mount(api); err != nil {
			t.Fatal(err)
		}
	})
	return &wsNode{ts: ts, svc: svc, chat: chat}
}

// newUser creates a user through n's service and logs in over HTTP.
func (n *wsNode) newUser(t *testing.T, email string, roles ...auth.Role) user {
	t.Helper()
	u, err := n.svc.CreateUser(t.Context(), auth.NewUser{Email: email, Password: "correct horse battery", Name: "T", Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	return user{id: u.ID, email: email, password: "correct horse battery", pair: n.login(t, email)}
}

func (n *wsNode) login(t *testing.T, email string) auth.TokenPair {
	t.Helper()
	r := call(t, http.MethodPost, n.ts.url+"/api/v1/auth/login", "", `{"email":"`+email+`","password":"correct horse battery"}`)
	if r.status != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, r.status, r.body)
	}
	var pair auth.TokenPair
	r.json(t, &pair)
	return pair
}

// wsOpen dials n with token on the upgrade request.
func wsOpen(t *testing.T, n *wsNode, token string) *fws.Conn {
	t.Helper()
	c, res, err := wsDial(t, n.ts, token)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, res)
	}
	return c
}

// wsSend writes one frame.
func wsSend(t *testing.T, c *fws.Conn, frame map[string]string) {
	t.Helper()
	if err := c.WriteJSON(frame); err != nil {
		t.Fatal(err)
	}
}

// wsSay sends a message frame and returns the frame that ends it: done or
// error (token frames are skipped).
func wsSay(t *testing.T, c *fws.Conn, id, content string) wsServerFrame {
	t.Helper()
	wsSend(t, c, map[string]string{"type": "message", "id": id, "content": content})
	for {
		f := readFrame(t, c)
		if f.ID != id {
			t.Fatalf("frame %+v while waiting for %q", f, id)
		}
		if f.Type != "token" {
			return f
		}
	}
}

// wsClose reads until the server closes the connection and returns its
// close frame; a data frame or a dropped connection fails the test.
func wsClose(t *testing.T, c *fws.Conn, within time.Duration) *fws.CloseError {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(within)); err != nil {
		t.Fatal(err)
	}
	_, data, err := c.ReadMessage()
	var ce *fws.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("want a close frame, got %q, %v", data, err)
	}
	return ce
}

// TestWebSocketEndsWithTheSession replays the audit: a socket kept chatting
// after its session ended. Now the next message frame is refused, the turn
// does not run, and the socket closes with 4403, whichever node ended the
// session.
func TestWebSocketEndsWithTheSession(t *testing.T) {
	db := persisttest.SQLite(t)
	a, b := startWSNode(t, db, restConfig{}, 0), startWSNode(t, db, restConfig{}, 0)
	admin := a.newUser(t, "admin@example.com", auth.RoleAdmin)
	users := NewStores(db).Users
	for i, tc := range []struct {
		name string
		end  func(t *testing.T, u user)
		// immediate: the node holding the socket ended the session, so
		// its caches know at once.
		immediate bool
		reason    string
	}{
		{"logout on this node", func(t *testing.T, u user) {
			call(t, http.MethodPost, a.ts.url+"/api/v1/auth/logout", u.pair.AccessToken, "")
		}, true, "session revoked"},
		{"logout on another node", func(t *testing.T, u user) {
			call(t, http.MethodPost, b.ts.url+"/api/v1/auth/logout", u.pair.AccessToken, "")
		}, false, "session revoked"},
		{"roles changed by an admin on another node", func(t *testing.T, u user) {
			if r := call(t, http.MethodPut, b.ts.url+"/api/v1/admin/users/"+u.id+"/roles", admin.pair.AccessToken, `{"roles":["user"]}`); r.status != http.StatusOK {
				t.Fatalf("set roles: %d %s", r.status, r.body)
			}
		}, false, "session revoked"},
		{"user deleted by an admin", func(t *testing.T, u user) {
			if r := call(t, http.MethodDelete, a.ts.url+"/api/v1/admin/users/"+u.id, admin.pair.AccessToken, ""); r.status != http.StatusNoContent {
				t.Fatalf("delete: %d %s", r.status, r.body)
			}
		}, true, "session revoked"},
		{"account disabled without a revocation", func(t *testing.T, u user) {
			if err := users.SetDisabled(t.Context(), u.id, true); err != nil {
				t.Fatal(err)
			}
		}, false, "account disabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := a.newUser(t, fmt.Sprintf("u%d@example.com", i), auth.RolePremium)
			c := wsOpen(t, a, u.pair.AccessToken)
			if f := wsSay(t, c, "before", "hello"); f.Type != "done" {
				t.Fatalf("before: %+v", f)
			}
			tc.end(t, u)
			var refused wsServerFrame
			attempt := 0
			testenv.Eventually(t, 5*time.Second, func() error {
				attempt++
				f := wsSay(t, c, "after"+strconv.Itoa(attempt), "still there?")
				if f.Type == "done" {
					if tc.immediate {
						t.Fatalf("the node that ended the session still ran a turn: %+v", f)
					}
					return errors.New("the socket still runs turns")
				}
				refused = f
				return nil
			})
			if refused.Type != "error" || (refused.Status != http.StatusUnauthorized && refused.Status != http.StatusForbidden) || refused.Detail != tc.reason {
				t.Fatalf("refusal %+v", refused)
			}
			if ce := wsClose(t, c, 5*time.Second); ce.Code != WSCloseRevoked || ce.Text != tc.reason {
				t.Fatalf("close %d %q, want %d %q", ce.Code, ce.Text, WSCloseRevoked, tc.reason)
			}
			for _, turn := range a.chat.recorded() {
				if turn.UserID == u.id && turn.Content == "still there?" && tc.immediate {
					t.Fatal("a refused frame reached the chat backend")
				}
			}
		})
	}
}

// TestWebSocketIdleSocketClosesOnLogout: a socket that sends nothing is
// closed by the periodic session check, without waiting for a frame.
func TestWebSocketIdleSocketClosesOnLogout(t *testing.T) {
	db := persisttest.SQLite(t)
	a, b := startWSNode(t, db, restConfig{}, 100*time.Millisecond), startWSNode(t, db, restConfig{}, 0)
	u := a.newUser(t, "idle@example.com")
	c := wsOpen(t, a, u.pair.AccessToken)
	if f := wsSay(t, c, "m", "hello"); f.Type != "done" {
		t.Fatalf("%+v", f)
	}
	call(t, http.MethodPost, b.ts.url+"/api/v1/auth/logout", u.pair.AccessToken, "")
	if ce := wsClose(t, c, 5*time.Second); ce.Code != WSCloseRevoked || ce.Text != "session revoked" {
		t.Fatalf("close %d %q", ce.Code, ce.Text)
	}
}

// shortLived re-signs u's access token with an exp in d, for tests of
// expiry that cannot wait for the 15-minute lifetime.
func shortLived(t *testing.T, u user, d time.Duration) (string, time.Time) {
	t.Helper()
	toks, err := auth.NewTokens(auth.TokenConfig{Secret: testJWTSecret, Issuer: "kowai", Audience: "kowai"})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := toks.Verify(u.pair.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(d).Truncate(time.Second)
	return forge(t, jwt.SigningMethodHS256, testJWTSecret, claims, func(c *auth.Claims) {
		c.ExpiresAt = jwt.NewNumericDate(exp)
		c.ID = "short-" + c.ID
	}), exp
}

// TestWebSocketClosesAtExpiry replays the audit's socket that chatted on
// after its token's exp: it is now closed with 4401 at exp, without waiting
// for a frame, in both ways of authenticating.
func TestWebSocketClosesAtExpiry(t *testing.T) {
	n := startWSNode(t, persisttest.SQLite(t), restConfig{}, 0)
	u := n.newUser(t, "exp@example.com")
	for _, mode := range []string{"header", "auth frame"} {
		t.Run(mode, func(t *testing.T) {
			token, exp := shortLived(t, u, 3*time.Second)
			var c *fws.Conn
			if mode == "header" {
				c = wsOpen(t, n, token)
			} else {
				c = wsOpen(t, n, "")
				wsSend(t, c, map[string]string{"type": "auth", "token": token})
			}
			if f := wsSay(t, c, "m", "hello"); f.Type != "done" {
				t.Fatalf("%+v", f)
			}
			ce := wsClose(t, c, 10*time.Second)
			if ce.Code != WSCloseTokenExpired || ce.Text != "token expired" {
				t.Fatalf("close %d %q", ce.Code, ce.Text)
			}
			// Not before exp, and well within the 30 s leeway a REST
			// request would still be granted.
			if now := time.Now(); now.Before(exp) || now.After(exp.Add(5*time.Second)) {
				t.Fatalf("closed at %v, exp %v", now, exp)
			}
		})
	}
}

// TestWebSocketReauthenticates: an auth frame with a fresh token of the same
// user extends the socket past the old token's exp; a token that does not
// verify is refused and the socket keeps its own; another user's token
// closes the socket.
func TestWebSocketReauthenticates(t *testing.T) {
	n := startWSNode(t, persisttest.SQLite(t), restConfig{}, 0)
	u := n.newUser(t, "re@example.com")
	other := n.newUser(t, "other@example.com")

	t.Run("fresh token of the same user", func(t *testing.T) {
		token, exp := shortLived(t, u, 3*time.Second)
		c := wsOpen(t, n, token)
		fresh := n.login(t, u.email) // another session of the same user
		wsSend(t, c, map[string]string{"type": "auth", "token": fresh.AccessToken, "id": "re"})
		if f := wsSay(t, c, "m1", "hello"); f.Type != "done" {
			t.Fatalf("after re-auth: %+v", f)
		}
		time.Sleep(time.Until(exp) + time.Second)
		if f := wsSay(t, c, "m2", "still here"); f.Type != "done" {
			t.Fatalf("past the old exp: %+v", f)
		}
	})
	t.Run("token that does not verify", func(t *testing.T) {
		c := wsOpen(t, n, u.pair.AccessToken)
		for _, bad := range []string{"evil", u.pair.RefreshToken} {
			wsSend(t, c, map[string]string{"type": "auth", "token": bad, "id": "re"})
			if f := readFrame(t, c); f.Type != "error" || f.ID != "re" || f.Status != http.StatusUnauthorized {
				t.Fatalf("%+v", f)
			}
		}
		wsSend(t, c, map[string]string{"type": "auth", "id": "re"})
		if f := readFrame(t, c); f.Type != "error" || f.Status != http.StatusBadRequest || f.Detail != "token: must not be empty" {
			t.Fatalf("%+v", f)
		}
		if f := wsSay(t, c, "m", "hello"); f.Type != "done" {
			t.Fatalf("%+v", f)
		}
	})
	t.Run("another user's token", func(t *testing.T) {
		c := wsOpen(t, n, u.pair.AccessToken)
		wsSend(t, c, map[string]string{"type": "auth", "token": other.pair.AccessToken, "id": "re"})
		if f := readFrame(t, c); f.Type != "error" || f.ID != "re" || f.Status != http.StatusForbidden {
			t.Fatalf("%+v", f)
		}
		if ce := wsClose(t, c, 5*time.Second); ce.Code != WSCloseRevoked || ce.Text != "the token belongs to another user" {
			t.Fatalf("close %d %q", ce.Code, ce.Text)
		}
		for _, turn := range n.chat.recorded() {
			if turn.UserID == other.id {
				t.Fatalf("a turn ran as the other user: %+v", turn)
			}
		}
	})
}

// TestWebSocketRolesFromTheUserRecord: a frame runs with the roles of the
// current user record, not those the token was issued with, so a demotion
// applies to an open socket even before its sessions are revoked.
func TestWebSocketRolesFromTheUserRecord(t *testing.T) {
	db := persisttest.SQLite(t)
	n := startWSNode(t, db, restConfig{}, 0)
	u := n.newUser(t, "demoted@example.com", auth.RoleAdmin)
	// A second admin, so the demotion is allowed by the last-admin rule.
	n.newUser(t, "admin2@example.com", auth.RoleAdmin)
	c := wsOpen(t, n, u.pair.AccessToken)
	if f := wsSay(t, c, "m0", "hello"); f.Type != "done" || !slices.Equal(n.chat.lastPrincipal().Roles, []auth.Role{auth.RoleAdmin}) {
		t.Fatalf("%+v as %+v", f, n.chat.lastPrincipal())
	}
	// As another node writes it: this node's user cache learns within its TTL.
	if err := NewStores(db).Users.UpdateRoles(t.Context(), u.id, []string{string(auth.RoleUser)}); err != nil {
		t.Fatal(err)
	}
	i := 0
	testenv.Eventually(t, 5*time.Second, func() error {
		i++
		if f := wsSay(t, c, "m"+strconv.Itoa(i), "hello"); f.Type != "done" {
			t.Fatalf("%+v", f)
		}
		if p := n.chat.lastPrincipal(); !slices.Equal(p.Roles, []auth.Role{auth.RoleUser}) {
			return fmt.Errorf("turn ran with roles %v", p.Roles)
		}
		return nil
	})
}

// TestWebSocketSharesTheChatRateLimit replays the audit's socket that ran
// 1,246 turns after REST was refused: message frames count against the
// same per-user bucket as POST /chat/message, both ways round, on both
// limiters.
func TestWebSocketSharesTheChatRateLimit(t *testing.T) {
	for _, backend := range []struct {
		name    string
		limiter func(t *testing.T) ratelimit.Limiter
	}{
		{"in-process", func(*testing.T) ratelimit.Limiter { return ratelimit.NewMemory(ratelimit.MemoryOptions{}) }},
		{"redis", func(t *testing.T) ratelimit.Limiter { return testRedisLimiter(t) }},
	} {
		t.Run(backend.name, func(t *testing.T) {
			n := startWSNode(t, persisttest.SQLite(t), restConfig{limiter: backend.limiter(t),
				rateLimit: ratelimit.Limit{Rate: 3, Period: time.Hour}}, 0)
			msg := n.ts.url + "/api/v1/chat/message"
			refused := func(t *testing.T, f wsServerFrame) {
				t.Helper()
				if f.Type != "error" || f.Status != http.StatusTooManyRequests || f.RetryAfter < 1 {
					t.Fatalf("want a 429 frame with retry_after, got %+v", f)
				}
			}

			// REST first, then a frame.
			alice := n.newUser(t, "alice@example.com")
			for i := range 3 {
				if r := call(t, http.MethodPost, msg, alice.pair.AccessToken, `{"content":"hi"}`); r.status != http.StatusOK {
					t.Fatalf("REST turn %d: %d %s", i, r.status, r.body)
				}
			}
			call(t, http.MethodPost, msg, alice.pair.AccessToken, `{"content":"hi"}`).problem(t, http.StatusTooManyRequests)
			before := len(n.chat.recorded())
			c := wsOpen(t, n, alice.pair.AccessToken)
			refused(t, wsSay(t, c, "w1", "one more"))
			refused(t, wsSay(t, c, "w2", "and another"))
			if got := len(n.chat.recorded()); got != before {
				t.Fatalf("refused frames ran %d turns", got-before)
			}

			// Frames first, then REST.
			bob := n.newUser(t, "bob@example.com")
			c = wsOpen(t, n, bob.pair.AccessToken)
			for i := range 3 {
				if f := wsSay(t, c, "b"+strconv.Itoa(i), "hello"); f.Type != "done" {
					t.Fatalf("frame %d: %+v", i, f)
				}
			}
			refused(t, wsSay(t, c, "b3", "one too many"))
			call(t, http.MethodPost, msg, bob.pair.AccessToken, `{"content":"hi"}`).problem(t, http.StatusTooManyRequests)
		})
	}
}

// TestWebSocketUnknownFrameTypes: frame types this server does not speak
// (subscribe is announced for later) get a 400 error frame that names the
// type, a bad resume frame an error frame saying why, and the socket stays
// open.
func TestWebSocketUnknownFrameTypes(t *testing.T) {
	ts := startAPI(t, &fakeChat{})
	c, _, err := wsDial(t, ts, "good-u1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		frame  string
		status int
		detail string
	}{
		{`{"type":"resume","stream_id":"s-1","after":3,"id":"r"}`, http.StatusBadRequest, "stream_id: must be a UUID"},
		{`{"type":"resume","stream_id":"0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e","after":-1,"id":"r"}`, http.StatusBadRequest, "after: must be >= 0"},
		{`{"type":"resume","stream_id":"0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e","after":3,"id":"r"}`, http.StatusNotFound, "no such stream (it may have expired)"},
		{`{"type":"resume","stream_id":"0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e","extra":1,"id":"r"}`, http.StatusBadRequest, "extra: unknown field"},
		{`{"type":"subscribe","run_id":"0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e","id":"r"}`, http.StatusServiceUnavailable, "this node runs no workflow engine"},
		{`{"type":"subscribe","run_id":"x","id":"r","extra":1}`, http.StatusBadRequest, ""},
		{`{"type":"dance","id":"r"}`, http.StatusBadRequest, "type: must be message, auth, resume, subscribe or unsubscribe"},
		{`{"id":"r"}`, http.StatusBadRequest, "type: must be message, auth, resume, subscribe or unsubscribe"},
	} {
		if err := c.WriteMessage(fws.TextMessage, []byte(tc.frame)); err != nil {
			t.Fatal(err)
		}
		if f := readFrame(t, c); f.Type != "error" || f.Status != tc.status || f.ID != "r" || tc.detail != "" && f.Detail != tc.detail {
			t.Fatalf("%s: %+v", tc.frame, f)
		}
	}
	if f := wsSay(t, c, "m", "still open"); f.Type != "done" {
		t.Fatalf("%+v", f)
	}
}
