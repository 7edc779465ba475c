package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/internal/testenv"
)

// fakeChat answers with the message reversed, streaming it word by word.
type fakeChat struct {
	mu    sync.Mutex
	turns []ChatTurn
	// gate, when set, holds every turn until closed.
	gate chan struct{}
	// words is how many deltas a reply streams (default: one per word).
	words int
}

var (
	_ ChatBackend         = (*fakeChat)(nil)
	_ ConversationBackend = (*fakeChat)(nil)
)

// RenameConversation implements ConversationBackend: the fake holds no
// conversations.
func (f *fakeChat) RenameConversation(context.Context, string, string, string) error {
	return errNoConversation()
}

// DeleteConversation implements ConversationBackend like RenameConversation.
func (f *fakeChat) DeleteConversation(context.Context, string, string) error {
	return errNoConversation()
}

// CancelTurn implements ConversationBackend like RenameConversation.
func (f *fakeChat) CancelTurn(context.Context, string, string, string) (bool, error) {
	return false, errNoConversation()
}

func (f *fakeChat) Send(ctx context.Context, t ChatTurn, onDelta func(string)) (ChatReply, error) {
	f.mu.Lock()
	f.turns = append(f.turns, t)
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ChatReply{}, ctx.Err()
		}
	}
	switch t.Content {
	case "forbidden":
		return ChatReply{}, NewError(http.StatusForbidden, "not your conversation")
	case "crash":
		return ChatReply{}, errors.New("grain exploded with secret detail")
	}
	response := "echo: " + t.Content
	if onDelta != nil {
		n := f.words
		if n == 0 {
			for _, w := range strings.SplitAfter(response, " ") {
				onDelta(w)
			}
		}
		for i := range n {
			onDelta(fmt.Sprintf("tok%d ", i))
		}
	}
	return ChatReply{ConversationID: t.ConversationID, MessageID: "m-1", Response: response, Usage: Usage{PromptTokens: 3, CompletionTokens: 2}}, nil
}

func (f *fakeChat) recorded() []ChatTurn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ChatTurn(nil), f.turns...)
}

// fakeAuth accepts "good-<user>" tokens.
var fakeAuth = auth.AuthenticatorFunc(func(_ context.Context, token string) (auth.Principal, error) {
	if user, ok := strings.CutPrefix(token, "good-"); ok {
		return auth.Principal{UserID: user, SessionID: "s", Roles: []auth.Role{auth.RoleUser}}, nil
	}
	return auth.Principal{}, auth.ErrInvalidToken
})

func startAPI(t *testing.T, chat ChatBackend) testServer {
	t.Helper()
	return startWith(t, Options{}, func(s *Server) {
		if err := s.Mount(API{Authenticator: fakeAuth, Chat: chat}); err != nil {
			t.Fatal(err)
		}
	})
}

func post(t *testing.T, url, token, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

func TestPostMessage(t *testing.T) {
	chat := &fakeChat{}
	ts := startAPI(t, chat)
	url := ts.url + "/api/v1/chat/message"
	conv := "0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e"
	for _, tc := range []struct {
		name, token, body string
		header            map[string]string
		status            int
		field             string
	}{
		{"ok new conversation", "good-u1", `{"content":"hello there"}`, nil, 200, ""},
		{"ok existing", "good-u1", `{"content":"hi","conversation_id":"` + conv + `"}`, map[string]string{"Idempotency-Key": "k-1"}, 200, ""},
		{"no token", "", `{"content":"hi"}`, nil, 401, ""},
		{"bad token", "evil", `{"content":"hi"}`, nil, 401, ""},
		{"empty content", "good-u1", `{"content":"   "}`, nil, 400, "content"},
		{"huge content", "good-u1", `{"content":"` + strings.Repeat("a", MaxMessageBytes+1) + `"}`, nil, 400, "content"},
		{"nul byte", "good-u1", `{"content":"a\u0000b"}`, nil, 400, "content"},
		{"bad conversation id", "good-u1", `{"content":"hi","conversation_id":"../../etc/passwd"}`, nil, 400, "conversation_id"},
		{"sql in id", "good-u1", `{"content":"hi","agent_id":"1' OR '1'='1"}`, nil, 400, "agent_id"},
		{"unknown field", "good-u1", `{"content":"hi","role":"admin"}`, nil, 400, "role"},
		{"bad idempotency key", "good-u1", `{"content":"hi"}`, map[string]string{"Idempotency-Key": "a b"}, 400, "Idempotency-Key"},
		{"backend forbids", "good-u1", `{"content":"forbidden"}`, nil, 403, ""},
		{"backend crashes", "good-u1", `{"content":"crash"}`, nil, 500, ""},
	} {
		res, body := post(t, url, tc.token, tc.body, tc.header)
		if res.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, res.StatusCode, tc.status, body)
			continue
		}
		if tc.status != 200 {
			var p problem
			if err := json.Unmarshal(body, &p); err != nil || p.Status != tc.status || p.CorrelationID == "" {
				t.Errorf("%s: not a problem: %s", tc.name, body)
			}
			if tc.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tc.field) {
				t.Errorf("%s: field errors %+v, want %s", tc.name, p.Errors, tc.field)
			}
			if strings.Contains(string(body), "secret detail") {
				t.Errorf("%s: leaks internals: %s", tc.name, body)
			}
			continue
		}
		var r ChatReply
		if err := json.Unmarshal(body, &r); err != nil || !strings.HasPrefix(r.Response, "echo: ") || !isUUID(r.ConversationID) {
			t.Errorf("%s: reply %s", tc.name, body)
		}
	}
	turns := chat.recorded()
	if len(turns) != 4 {
		t.Fatalf("backend saw %d turns, want 4 (only valid requests reach it)", len(turns))
	}
	if turns[0].UserID != "u1" || turns[1].ConversationID != conv || turns[1].IdempotencyKey != "k-1" {
		t.Fatalf("turns: %+v", turns)
	}
}

// wsDial opens a WebSocket to the server with an optional bearer token.
func wsDial(t *testing.T, ts testServer, token string) (*fws.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	c, res, err := fws.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.url, "http")+"/api/v1/chat/ws", h)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, res, err
}

func readFrame(t *testing.T, c *fws.Conn) wsServerFrame {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var f wsServerFrame
	if err := c.ReadJSON(&f); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

func TestWebSocketStreaming(t *testing.T) {
	ts := startAPI(t, &fakeChat{})
	for _, mode := range []string{"header", "first-frame"} {
		t.Run(mode, func(t *testing.T) {
			token := "good-u2"
			if mode == "first-frame" {
				token = ""
			}
			c, _, err := wsDial(t, ts, token)
			if err != nil {
				t.Fatal(err)
			}
			if mode == "first-frame" {
				if err := c.WriteJSON(map[string]string{"type": "auth", "token": "good-u2"}); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.WriteJSON(map[string]string{"type": "message", "content": "one two three", "id": "c1"}); err != nil {
				t.Fatal(err)
			}
			var streamed strings.Builder
			for {
				f := readFrame(t, c)
				if f.ID != "c1" {
					t.Fatalf("frame for %q", f.ID)
				}
				if f.Type == "token" {
					streamed.WriteString(f.Delta)
					continue
				}
				if f.Type != "done" || f.Response != "echo: one two three" || streamed.String() != f.Response || f.Usage == nil || f.Usage.PromptTokens != 3 {
					t.Fatalf("done frame %+v after tokens %q", f, streamed.String())
				}
				break
			}
			// Errors arrive as frames and keep the connection open.
			for _, bad := range []string{`{"type":"message","content":"","id":"c2"}`, `{"type":"dance"}`, `not json`, `{"type":"message","content":"forbidden","id":"c3"}`} {
				if err := c.WriteMessage(fws.TextMessage, []byte(bad)); err != nil {
					t.Fatal(err)
				}
				if f := readFrame(t, c); f.Type != "error" || f.Status < 400 || f.Status >= 500 {
					t.Fatalf("%s: frame %+v", bad, f)
				}
			}
		})
	}
}

func TestWebSocketAuthFailures(t *testing.T) {
	ts := startAPI(t, &fakeChat{})
	// A refused bearer token fails the upgrade itself.
	if _, res, err := wsDial(t, ts, "evil"); err == nil || res == nil || res.StatusCode != 401 {
		t.Fatalf("upgrade with a bad token: %v %v", err, res)
	}
	// Plain HTTP on the route is refused.
	if res, _ := get(t, ts.url+"/api/v1/chat/ws", nil); res.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: %d", res.StatusCode)
	}
	// A bad first frame gets an error frame and a policy-violation close.
	c, _, err := wsDial(t, ts, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteJSON(map[string]string{"type": "auth", "token": "evil"}); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, c); f.Type != "error" || f.Status != 401 {
		t.Fatalf("frame %+v", f)
	}
	_, _, err = c.ReadMessage()
	if !fws.IsCloseError(err, fws.ClosePolicyViolation) {
		t.Fatalf("want a policy-violation close, got %v", err)
	}
}

func TestWebSocketAuthTimeout(t *testing.T) {
	ts := startWith(t, Options{}, func(s *Server) {
		if err := s.Mount(API{Authenticator: fakeAuth, Chat: &fakeChat{}}); err != nil {
			t.Fatal(err)
		}
	})
	c, _, err := wsDial(t, ts, "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.ReadMessage()
	if !fws.IsCloseError(err, fws.ClosePolicyViolation) || time.Since(start) < 4*time.Second {
		t.Fatalf("want a policy-violation close after about 5 s, got %v after %v", err, time.Since(start))
	}
}

// TestWebSocketSlowReader: a client that never reads is disconnected once
// its send queue is full, instead of growing the server's memory.
func TestWebSocketSlowReader(t *testing.T) {
	chat := &fakeChat{words: 200_000}
	ts := startAPI(t, chat)
	c, _, err := wsDial(t, ts, "good-u3")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteJSON(map[string]string{"type": "message", "content": "flood me", "id": "f"}); err != nil {
		t.Fatal(err)
	}
	// Read nothing until the server has given up, then drain: the stream
	// must end in a policy-violation close, not in a done frame.
	time.Sleep(500 * time.Millisecond)
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	frames := 0
	for {
		_, _, err := c.ReadMessage()
		if err != nil {
			if !fws.IsCloseError(err, fws.ClosePolicyViolation) {
				t.Fatalf("after %d frames: want a policy-violation close, got %v", frames, err)
			}
			break
		}
		frames++
	}
	if frames >= 200_000 {
		t.Fatalf("server buffered the whole stream (%d frames)", frames)
	}
}

// TestNewTurnFresh: only an ID the gateway mints at random marks a turn fresh (its
// session skips the activation reads); a client's ID and one derived from an
// idempotency key may already have a conversation behind them.
func TestNewTurnFresh(t *testing.T) {
	for _, c := range []struct {
		name, conv, key string
		fresh           bool
	}{
		{"minted", "", "", true},
		{"derived from a key", "", "k1", false},
		{"named by the client", "0190a000-0000-7000-8000-000000000001", "", false},
		{"named with a key", "0190a000-0000-7000-8000-000000000001", "k1", false},
	} {
		turn, err := newTurn(auth.Principal{UserID: "u1"}, c.conv, "", "hi", c.key)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if turn.Fresh != c.fresh || turn.ConversationID == "" {
			t.Errorf("%s: fresh %v (want %v), conversation %q", c.name, turn.Fresh, c.fresh, turn.ConversationID)
		}
	}
}

// One connection runs at most wsMaxTurns turns at once: the next message frame
// gets a 429 error frame and the turns already running finish.
func TestWebSocketTurnsPerConnection(t *testing.T) {
	chat := &fakeChat{gate: make(chan struct{})}
	ts := startAPI(t, chat)
	c, _, err := wsDial(t, ts, "good-u2")
	if err != nil {
		t.Fatal(err)
	}
	for i := range wsMaxTurns {
		if err := c.WriteJSON(map[string]string{"type": "message", "content": "held", "id": fmt.Sprintf("t%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		chat.mu.Lock()
		defer chat.mu.Unlock()
		if len(chat.turns) != wsMaxTurns {
			return fmt.Errorf("%d turns running, want %d", len(chat.turns), wsMaxTurns)
		}
		return nil
	})
	if err := c.WriteJSON(map[string]string{"type": "message", "content": "one too many", "id": "extra"}); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, c); f.ID != "extra" || f.Type != "error" || f.Status != http.StatusTooManyRequests {
		t.Fatalf("frame %+v, want a 429 error for the extra turn", f)
	}
	close(chat.gate)
	done := map[string]bool{}
	for len(done) < wsMaxTurns {
		if f := readFrame(t, c); f.Type == "done" {
			done[f.ID] = true
		}
	}
}
