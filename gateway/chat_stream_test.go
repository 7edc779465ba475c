package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/streams"
	"github.com/kowai/kowai/internal/testenv"
)

// sseEvent is one parsed Server-Sent Event; a comment is an event with
// only Comment set.
type sseEvent struct {
	ID, Event, Data, Comment string
}

// sseReader parses an event stream.
type sseReader struct {
	res *http.Response
	sc  *bufio.Scanner
}

// sseClient fails a request whose response headers do not come promptly:
// an event stream sends them at once, before the turn's first token.
var sseClient = &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 10 * time.Second}}

// openSSE sends a request that answers with an event stream and checks
// its headers; the body is closed when the test ends.
func openSSE(t *testing.T, method, url, token, body string, header map[string]string) *sseReader {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := sseClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("%s %s: status %d, content type %q: %s", method, url, res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	if res.Header.Get("Cache-Control") != "no-cache" || res.Header.Get("X-Accel-Buffering") != "no" || !isUUID(res.Header.Get("X-Kowai-Stream-Id")) {
		t.Fatalf("event stream headers %v", res.Header)
	}
	return &sseReader{res: res, sc: bufio.NewScanner(res.Body)}
}

// next returns the next event or comment; ok is false at the end of the
// body.
func (r *sseReader) next(t *testing.T) (sseEvent, bool) {
	t.Helper()
	var e sseEvent
	seen := false
	for r.sc.Scan() {
		line := r.sc.Text()
		if line == "" {
			if seen {
				return e, true
			}
			continue
		}
		seen = true
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimPrefix(v, " ")
		switch k {
		case "":
			e.Comment = v
		case "id":
			e.ID = v
		case "event":
			e.Event = v
		case "data":
			e.Data = v
		}
	}
	return e, false
}

// event returns the next event, skipping comments.
func (r *sseReader) event(t *testing.T) sseEvent {
	t.Helper()
	for {
		e, ok := r.next(t)
		if !ok {
			t.Fatalf("event stream ended: %v", r.sc.Err())
		}
		if e.Comment == "" {
			return e
		}
	}
}

type tokenData struct {
	Seq     int64  `json:"seq"`
	Delta   string `json:"delta"`
	Attempt int    `json:"attempt"`
}

func decodeData[T any](t *testing.T, e sseEvent) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(e.Data), &v); err != nil {
		t.Fatalf("event %+v: %v", e, err)
	}
	return v
}

// readReply reads token events up to the final one and returns the text and
// the final event; every token's ID and seq must continue from after.
func (r *sseReader) readReply(t *testing.T, sid string, after int64) (string, sseEvent) {
	t.Helper()
	var text strings.Builder
	for {
		e := r.event(t)
		if e.Event == "error" || e.Event == "done" {
			return text.String(), e
		}
		d := decodeData[tokenData](t, e)
		after++
		if e.ID != fmt.Sprintf("%s:%d", sid, after) || d.Seq != after {
			t.Fatalf("event %+v, want id %s:%d", e, sid, after)
		}
		if e.Event == "restart" {
			text.Reset()
			text.WriteString(fmt.Sprintf("[restart %d]", d.Attempt))
			continue
		}
		if e.Event != "token" {
			t.Fatalf("unexpected event %+v", e)
		}
		text.WriteString(d.Delta)
	}
}

func TestPostMessageSSE(t *testing.T) {
	ts := startAPI(t, &fakeChat{})
	url := ts.url + "/api/v1/chat/message"
	r := openSSE(t, http.MethodPost, url, "good-u1", `{"content":"one two three"}`, nil)
	sid := r.res.Header.Get("X-Kowai-Stream-Id")
	text, final := r.readReply(t, sid, 0)
	if final.Event != "done" || !strings.HasPrefix(final.ID, sid+":") {
		t.Fatalf("final event %+v", final)
	}
	reply := decodeData[ChatReply](t, final)
	if text != "echo: one two three" || reply.Response != text || reply.MessageID != "m-1" || reply.Usage.PromptTokens != 3 || !isUUID(reply.ConversationID) {
		t.Fatalf("streamed %q, done %+v", text, reply)
	}
	if _, ok := r.next(t); ok {
		t.Fatal("events after done")
	}

	// A refusal by the backend is an error event with the problem's fields.
	r = openSSE(t, http.MethodPost, url, "good-u1", `{"content":"forbidden"}`, nil)
	_, final = r.readReply(t, r.res.Header.Get("X-Kowai-Stream-Id"), 0)
	if p := decodeData[problem](t, final); final.Event != "error" || p.Status != http.StatusForbidden || p.Detail != "not your conversation" {
		t.Fatalf("final event %+v", final)
	}
	r = openSSE(t, http.MethodPost, url, "good-u1", `{"content":"crash"}`, nil)
	_, final = r.readReply(t, r.res.Header.Get("X-Kowai-Stream-Id"), 0)
	if p := decodeData[problem](t, final); final.Event != "error" || p.Status != http.StatusInternalServerError || strings.Contains(final.Data, "secret") {
		t.Fatalf("final event %+v", final)
	}

	// Refusals before the turn are problem+json, as without SSE.
	for _, tc := range []struct {
		token, body string
		status      int
	}{
		{"", `{"content":"hi"}`, 401},
		{"good-u1", `{"content":""}`, 400},
	} {
		res, body := post(t, url, tc.token, tc.body, map[string]string{"Accept": "text/event-stream"})
		if res.StatusCode != tc.status || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
			t.Fatalf("%s: %d %s: %s", tc.body, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	}
	// The JSON answer stays the default.
	if res, body := post(t, url, "good-u1", `{"content":"hi"}`, nil); res.StatusCode != 200 || !strings.Contains(string(body), `"response":"echo: hi"`) {
		t.Fatalf("json answer %d %s", res.StatusCode, body)
	}
}

func TestPostMessageSSEHeartbeat(t *testing.T) {
	chat := &fakeChat{gate: make(chan struct{})}
	ts := startWith(t, Options{}, func(s *Server) {
		if err := s.Mount(API{Authenticator: fakeAuth, Chat: chat, sseHeartbeat: 20 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	})
	r := openSSE(t, http.MethodPost, ts.url+"/api/v1/chat/message", "good-u1", `{"content":"slow"}`, nil)
	// The first ping goes out with the headers, the next ones on the beat.
	for i := range 3 {
		if e, ok := r.next(t); !ok || e.Comment != "ping" {
			t.Fatalf("event %d: %+v, want a ping comment while the turn runs", i, e)
		}
	}
	close(chat.gate)
	if _, final := r.readReply(t, r.res.Header.Get("X-Kowai-Stream-Id"), 0); final.Event != "done" {
		t.Fatalf("final %+v", final)
	}
}

// stepChat streams the deltas the test hands it: each turn takes deltas
// from its attempt's channel until it is closed, then answers with their
// concatenation. An attempt whose channel is nil blocks until ctx ends (a
// producer that died).
type stepChat struct {
	mu       sync.Mutex
	attempts []chan string
	// refuse, when it holds an error for an attempt's index, fails that
	// attempt at once (a session that refuses a retry while the first
	// attempt runs).
	refuse map[int]error
	// failAtEnd, when it holds an error for an attempt's index, fails that
	// attempt when its channel closes (a node lost mid-reply).
	failAtEnd map[int]error
	sends     int
	started   chan int
	// turns are the turns sent, in order.
	turns []ChatTurn
}

func newStepChat(attempts ...chan string) *stepChat {
	return &stepChat{attempts: attempts, started: make(chan int, len(attempts)+4)}
}

// waitStarted waits until n attempts have started.
func (f *stepChat) waitStarted(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-f.started:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d attempts started", i, n)
		}
	}
}

func (f *stepChat) Send(ctx context.Context, t ChatTurn, onDelta func(string)) (ChatReply, error) {
	f.mu.Lock()
	n := f.sends
	f.sends++
	f.turns = append(f.turns, t)
	var ch chan string
	if n < len(f.attempts) {
		ch = f.attempts[n]
	}
	refused, failed := f.refuse[n], f.failAtEnd[n]
	f.mu.Unlock()
	f.started <- n
	if refused != nil {
		return ChatReply{}, refused
	}
	var text strings.Builder
	for {
		select {
		case <-ctx.Done():
			return ChatReply{}, ctx.Err()
		case d, ok := <-ch:
			if !ok && failed != nil {
				return ChatReply{}, failed
			}
			if !ok {
				return ChatReply{ConversationID: t.ConversationID, MessageID: "m-1", Response: text.String()}, nil
			}
			text.WriteString(d)
			if onDelta != nil {
				onDelta(d)
			}
		}
	}
}

// gatewayWith starts a gateway over a stream store and a chat backend;
// two of them sharing a backend and a store (Redis, or one in-process
// store) are two nodes as a client sees them.
// testStreamKey signs the stream IDs of every test gateway, as the nodes
// of one cluster share theirs.
var testStreamKey = []byte("stream-key-0123456789abcdef012345")

func gatewayWith(t *testing.T, store streams.Store, chat ChatBackend) testServer {
	t.Helper()
	return startWith(t, Options{}, func(s *Server) {
		if err := s.Mount(API{Authenticator: fakeAuth, Chat: chat, Streams: store, StreamKey: testStreamKey, sseHeartbeat: 50 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	})
}

// storesUnderTest are the stream stores resumption is tested with: the
// in-process one, and Redis shared by separate store instances.
func storesUnderTest(t *testing.T) map[string]func(t *testing.T) (streams.Store, streams.Store) {
	return map[string]func(t *testing.T) (streams.Store, streams.Store){
		"memory": func(t *testing.T) (streams.Store, streams.Store) {
			m := streams.NewMemory(streams.MemoryOptions{})
			return m, m
		},
		"redis": func(t *testing.T) (streams.Store, streams.Store) {
			client := testenv.Redis(t)
			prefix := testenv.Prefix("gw-streams")
			opts := streams.RedisOptions{Prefix: prefix, Poll: 100 * time.Millisecond}
			return streams.NewRedis(client, opts), streams.NewRedis(client, opts)
		},
	}
}

// TestSSEResumeOnAnotherNode: a client that lost its event stream after two
// tokens resumes on the other node with Last-Event-ID (and with ?after),
// gets the rest, live, then done; nobody else can join the stream.
func TestSSEResumeOnAnotherNode(t *testing.T) {
	for name, stores := range storesUnderTest(t) {
		t.Run(name, func(t *testing.T) {
			sa, sb := stores(t)
			deltas := make(chan string)
			chat := newStepChat(deltas)
			a, b := gatewayWith(t, sa, chat), gatewayWith(t, sb, chat)
			r := openSSE(t, http.MethodPost, a.url+"/api/v1/chat/message", "good-u1", `{"content":"tell me"}`, nil)
			sid := r.res.Header.Get("X-Kowai-Stream-Id")
			deltas <- "one "
			deltas <- "two "
			for want := int64(1); want <= 2; want++ {
				if e := r.event(t); e.ID != fmt.Sprintf("%s:%d", sid, want) {
					t.Fatalf("event %+v", e)
				}
			}
			r.res.Body.Close() // the connection is lost
			deltas <- "three "

			streamURL := b.url + "/api/v1/chat/streams/" + sid
			// Another user cannot see it; a stream that does not exist is the same 404.
			if res, body := get(t, streamURL, map[string]string{"Authorization": "Bearer good-u2"}); res.StatusCode != http.StatusNotFound {
				t.Fatalf("other user: %d %s", res.StatusCode, body)
			}
			if res, _ := get(t, b.url+"/api/v1/chat/streams/0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e", map[string]string{"Authorization": "Bearer good-u1"}); res.StatusCode != http.StatusNotFound {
				t.Fatalf("unknown stream: %d", res.StatusCode)
			}
			for _, bad := range []map[string]string{{"Last-Event-ID": "x"}, {"Last-Event-ID": "0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e:1"}} {
				bad["Authorization"] = "Bearer good-u1"
				if res, _ := get(t, streamURL, bad); res.StatusCode != http.StatusBadRequest {
					t.Fatalf("Last-Event-ID %q: %d", bad["Last-Event-ID"], res.StatusCode)
				}
			}

			resumed := openSSE(t, http.MethodGet, streamURL, "good-u1", "", map[string]string{"Last-Event-ID": sid + ":2"})
			byQuery := openSSE(t, http.MethodGet, streamURL+"?after=0", "good-u1", "", nil)
			if e := resumed.event(t); e.ID != sid+":3" || decodeData[tokenData](t, e).Delta != "three " {
				t.Fatalf("first resumed event %+v", e)
			}
			deltas <- "four"
			close(deltas)
			text, final := resumed.readReply(t, sid, 3)
			if text != "four" || final.Event != "done" || decodeData[ChatReply](t, final).Response != "one two three four" {
				t.Fatalf("resumed %q then %+v", text, final)
			}
			if text, final := byQuery.readReply(t, sid, 0); text != "one two three four" || final.Event != "done" {
				t.Fatalf("joined from 0: %q then %+v", text, final)
			}
			// Once finished, the rest comes at once.
			late := openSSE(t, http.MethodGet, streamURL, "good-u1", "", map[string]string{"Last-Event-ID": sid + ":3"})
			if text, final := late.readReply(t, sid, 3); text != "four" || final.Event != "done" {
				t.Fatalf("late %q then %+v", text, final)
			}
		})
	}
}

// TestSSEResumeBeforeTheFirstToken: the stream of a turn sent without an
// Idempotency-Key is written by its recorder as the turn starts, not before
// the response's headers; a client that resumes it on the other node as
// soon as it has them, before any token, is not told that the stream does
// not exist, and gets the whole reply.
func TestSSEResumeBeforeTheFirstToken(t *testing.T) {
	for name, stores := range storesUnderTest(t) {
		t.Run(name, func(t *testing.T) {
			sa, sb := stores(t)
			deltas := make(chan string)
			chat := newStepChat(deltas)
			a, b := gatewayWith(t, sa, chat), gatewayWith(t, sb, chat)
			r := openSSE(t, http.MethodPost, a.url+"/api/v1/chat/message", "good-u1", `{"content":"tell me"}`, nil)
			sid := r.res.Header.Get("X-Kowai-Stream-Id")
			chat.waitStarted(t, 1)
			resumed := openSSE(t, http.MethodGet, b.url+"/api/v1/chat/streams/"+sid, "good-u1", "", nil)
			deltas <- "one "
			deltas <- "two"
			close(deltas)
			for name, reader := range map[string]*sseReader{"resumed": resumed, "first": r} {
				if text, final := reader.readReply(t, sid, 0); text != "one two" || final.Event != "done" {
					t.Fatalf("%s reader: %q then %+v", name, text, final)
				}
			}
		})
	}
}

// TestWebSocketResume: token frames carry stream_id and seq; a client that
// lost its socket resumes with a resume frame on the other node.
func TestWebSocketResume(t *testing.T) {
	for name, stores := range storesUnderTest(t) {
		t.Run(name, func(t *testing.T) {
			sa, sb := stores(t)
			deltas := make(chan string)
			chat := newStepChat(deltas)
			a, b := gatewayWith(t, sa, chat), gatewayWith(t, sb, chat)
			c, _, err := wsDial(t, a, "good-u1")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.WriteJSON(map[string]string{"type": "message", "content": "tell me", "id": "m"}); err != nil {
				t.Fatal(err)
			}
			deltas <- "one "
			deltas <- "two "
			var sid string
			for want := int64(1); want <= 2; want++ {
				f := readFrame(t, c)
				if f.Type != "token" || f.ID != "m" || f.Seq != want || !isUUID(f.StreamID) || (sid != "" && f.StreamID != sid) {
					t.Fatalf("frame %+v", f)
				}
				sid = f.StreamID
			}
			c.Close()
			deltas <- "three "

			other, _, err := wsDial(t, b, "good-u2")
			if err != nil {
				t.Fatal(err)
			}
			if err := other.WriteJSON(map[string]any{"type": "resume", "stream_id": sid, "after": 0, "id": "x"}); err != nil {
				t.Fatal(err)
			}
			if f := readFrame(t, other); f.Type != "error" || f.Status != http.StatusNotFound || f.ID != "x" {
				t.Fatalf("other user's resume: %+v", f)
			}

			c2, _, err := wsDial(t, b, "good-u1")
			if err != nil {
				t.Fatal(err)
			}
			if err := c2.WriteJSON(map[string]any{"type": "resume", "stream_id": sid, "after": 2, "id": "r"}); err != nil {
				t.Fatal(err)
			}
			if f := readFrame(t, c2); f.Type != "token" || f.Seq != 3 || f.Delta != "three " || f.StreamID != sid || f.ID != "r" {
				t.Fatalf("first resumed frame %+v", f)
			}
			deltas <- "four"
			close(deltas)
			if f := readFrame(t, c2); f.Type != "token" || f.Seq != 4 || f.Delta != "four" {
				t.Fatalf("live frame %+v", f)
			}
			if f := readFrame(t, c2); f.Type != "done" || f.Seq != 5 || f.Response != "one two three four" || f.StreamID != sid {
				t.Fatalf("done frame %+v", f)
			}
		})
	}
}

// TestStreamRestartAfterProducerDied: the first attempt's producer dies
// after two tokens; the client retries with the same Idempotency-Key on the
// other node, which appends to the same stream: a restart event, then the
// new attempt's tokens numbered on, then done. A reader that was resuming
// the stream sees the same; nothing is spliced silently. A turn sent
// without a key gets one in the response's headers, and its retry with it
// works alike.
func TestStreamRestartAfterProducerDied(t *testing.T) {
	for name, stores := range storesUnderTest(t) {
		for _, minted := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/minted key %v", name, minted), func(t *testing.T) {
				testStreamRestartAfterProducerDied(t, stores, minted)
			})
		}
	}
}

func testStreamRestartAfterProducerDied(t *testing.T, stores func(t *testing.T) (streams.Store, streams.Store), minted bool) {
	sa, sb := stores(t)
	first, second := make(chan string), make(chan string)
	chat := newStepChat(first, second)
	a, b := gatewayWith(t, sa, chat), gatewayWith(t, sb, chat)
	key := map[string]string{"Idempotency-Key": "turn-1"}
	if minted {
		key = nil
	}
	body := `{"content":"tell me"}`
	r := openSSE(t, http.MethodPost, a.url+"/api/v1/chat/message", "good-u1", body, key)
	sid := r.res.Header.Get("X-Kowai-Stream-Id")
	if minted {
		got := r.res.Header.Get("Idempotency-Key")
		if !strings.HasPrefix(got, "kowai-") || r.res.Header.Get("X-Kowai-Conversation-Id") == "" {
			t.Fatalf("an unkeyed streamed turn got key %q, conversation %q", got, r.res.Header.Get("X-Kowai-Conversation-Id"))
		}
		key = map[string]string{"Idempotency-Key": got}
	} else if got := r.res.Header.Get("Idempotency-Key"); got != "turn-1" {
		t.Fatalf("response Idempotency-Key %q, want the request's", got)
	}
	first <- "old one "
	first <- "old two "
	for range 2 {
		r.event(t)
	}
	r.res.Body.Close() // the producing node is gone; its attempt never ends

	follower := openSSE(t, http.MethodGet, b.url+"/api/v1/chat/streams/"+sid, "good-u1", "", map[string]string{"Last-Event-ID": sid + ":2"})
	retry := openSSE(t, http.MethodPost, b.url+"/api/v1/chat/message", "good-u1", body, key)
	if got := retry.res.Header.Get("X-Kowai-Stream-Id"); got != sid {
		t.Fatalf("retry stream %s, want %s", got, sid)
	}
	chat.waitStarted(t, 2)
	second <- "new one "
	second <- "new two"
	close(second)
	for _, rd := range []*sseReader{retry, follower} {
		text, final := rd.readReply(t, sid, 2)
		if text != "[restart 2]new one new two" || final.Event != "done" || final.ID != sid+":6" ||
			decodeData[ChatReply](t, final).Response != "new one new two" {
			t.Fatalf("after restart %q then %+v", text, final)
		}
	}
	// The first attempt's producer comes back to life and finishes: its
	// late entries are refused, not spliced into the stream.
	close(first)
	a2 := openSSE(t, http.MethodGet, a.url+"/api/v1/chat/streams/"+sid, "good-u1", "", nil)
	var old strings.Builder
	for range 2 {
		old.WriteString(decodeData[tokenData](t, a2.event(t)).Delta)
	}
	if text, final := a2.readReply(t, sid, 2); old.String() != "old one old two " || text != "[restart 2]new one new two" || final.ID != sid+":6" {
		t.Fatalf("whole stream %q, %q then %+v", old.String(), text, final)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(a.logs.String(), "stream store failed") {
			return fmt.Errorf("the stale attempt's append was not refused")
		}
		return nil
	})
	// A new conversation named by a key minted just now is fresh (nothing is
	// stored under it); the retry, which brings the key, is not.
	chat.mu.Lock()
	defer chat.mu.Unlock()
	if len(chat.turns) != 2 || chat.turns[0].Fresh != minted || chat.turns[1].Fresh ||
		chat.turns[0].FreshKey != minted || chat.turns[1].FreshKey ||
		chat.turns[0].ConversationID != chat.turns[1].ConversationID {
		t.Fatalf("turns %+v: want the first fresh (conversation and key) only with a minted key, and one conversation", chat.turns)
	}
}

// TestStreamRetryRefusedWhileFirstAttemptRuns: a retry that the session
// refuses while the first attempt is still producing gets its error, and
// the stream stays the first attempt's: no restart, no error entry.
func TestStreamRetryRefusedWhileFirstAttemptRuns(t *testing.T) {
	first := make(chan string)
	chat := newStepChat(first, nil)
	chat.refuse = map[int]error{1: NewError(http.StatusConflict, "the conversation is busy with another turn")}
	ts := gatewayWith(t, streams.NewMemory(streams.MemoryOptions{}), chat)
	key := map[string]string{"Idempotency-Key": "turn-2"}
	r := openSSE(t, http.MethodPost, ts.url+"/api/v1/chat/message", "good-u1", `{"content":"hi"}`, key)
	sid := r.res.Header.Get("X-Kowai-Stream-Id")
	first <- "a "
	r.event(t)
	retry := openSSE(t, http.MethodPost, ts.url+"/api/v1/chat/message", "good-u1", `{"content":"hi"}`, key)
	if e := retry.event(t); e.Event != "error" || e.ID != "" || decodeData[problem](t, e).Status != http.StatusConflict {
		t.Fatalf("refused retry: %+v", e)
	}
	first <- "b"
	close(first)
	if text, final := r.readReply(t, sid, 1); text != "b" || final.Event != "done" || final.ID != sid+":3" {
		t.Fatalf("first attempt went on as %q then %+v", text, final)
	}
	all := openSSE(t, http.MethodGet, ts.url+"/api/v1/chat/streams/"+sid, "good-u1", "", nil)
	if text, final := all.readReply(t, sid, 0); text != "a b" || final.Event != "done" {
		t.Fatalf("stream %q then %+v", text, final)
	}
}

// TestStreamRetriesWhenTheConversationMoves: a streamed turn with an
// idempotency key whose conversation moved between nodes mid-reply (503) is
// sent again by the gateway; the stream says it restarted, then carries the
// new attempt, numbered on. A turn sent without a key gets one minted, and
// is retried alike.
func TestStreamRetriesWhenTheConversationMoves(t *testing.T) {
	moving := &Error{Status: http.StatusServiceUnavailable, Title: "Service Unavailable", Detail: "the conversation is moving between nodes; retry with the same Idempotency-Key"}
	for name, stores := range storesUnderTest(t) {
		t.Run(name, func(t *testing.T) {
			store, _ := stores(t)
			first, second := make(chan string, 1), make(chan string, 1)
			chat := newStepChat(first, second)
			chat.failAtEnd = map[int]error{0: moving}
			ts := startWith(t, Options{}, func(s *Server) {
				if err := s.Mount(API{Authenticator: fakeAuth, Chat: chat, Streams: store, StreamKey: testStreamKey, streamRetryDelay: time.Millisecond}); err != nil {
					t.Fatal(err)
				}
			})
			r := openSSE(t, http.MethodPost, ts.url+"/api/v1/chat/message", "good-u1", `{"content":"hi"}`, map[string]string{"Idempotency-Key": "move-1"})
			sid := r.res.Header.Get("X-Kowai-Stream-Id")
			first <- "old"
			if e := r.event(t); decodeData[tokenData](t, e).Delta != "old" {
				t.Fatalf("first event %+v", e)
			}
			close(first)
			chat.waitStarted(t, 2)
			second <- "new"
			close(second)
			text, final := r.readReply(t, sid, 1)
			if text != "[restart 2]new" || final.Event != "done" || final.ID != sid+":4" || decodeData[ChatReply](t, final).Response != "new" {
				t.Fatalf("after the move %q then %+v", text, final)
			}

			// A turn sent without a key gets one (minted by the gateway), so it
			// is sent again alike.
			first, second = make(chan string, 1), make(chan string, 1)
			chat = newStepChat(first, second)
			chat.failAtEnd = map[int]error{0: moving}
			ts = startWith(t, Options{}, func(s *Server) {
				if err := s.Mount(API{Authenticator: fakeAuth, Chat: chat, Streams: store, StreamKey: testStreamKey, streamRetryDelay: time.Millisecond}); err != nil {
					t.Fatal(err)
				}
			})
			r = openSSE(t, http.MethodPost, ts.url+"/api/v1/chat/message", "good-u1", `{"content":"hi"}`, nil)
			first <- "old"
			close(first)
			chat.waitStarted(t, 2)
			second <- "new"
			close(second)
			text, final = r.readReply(t, r.res.Header.Get("X-Kowai-Stream-Id"), 0)
			if text != "[restart 2]new" || final.Event != "done" || !strings.HasSuffix(final.ID, ":4") || decodeData[ChatReply](t, final).Response != "new" {
				t.Fatalf("unkeyed turn after the move %q then %+v", text, final)
			}
			chat.mu.Lock()
			defer chat.mu.Unlock()
			if chat.sends != 2 {
				t.Fatalf("an unkeyed turn was sent %d times, want 2", chat.sends)
			}
			// The first attempt may have created the conversation, so the
			// retry is not fresh.
			if !chat.turns[0].Fresh || chat.turns[1].Fresh || !chat.turns[0].FreshKey || chat.turns[1].FreshKey {
				t.Fatalf("fresh: first %v/%v, retry %v/%v; want true, false", chat.turns[0].Fresh, chat.turns[0].FreshKey,
					chat.turns[1].Fresh, chat.turns[1].FreshKey)
			}
		})
	}
}

// writeRecorder records each write made to it (each flush of a bufio.Writer
// over it).
type writeRecorder struct {
	mu     sync.Mutex
	writes []string
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

// first waits for the first write.
func (w *writeRecorder) first(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		w.mu.Lock()
		if len(w.writes) > 0 {
			first := w.writes[0]
			w.mu.Unlock()
			return first
		}
		w.mu.Unlock()
	}
	t.Fatal("nothing was written")
	return ""
}

// TestSSEFirstPingCarriesTheFirstEvent: an event stream's first ping goes
// out in one write with the events queued by then (a reply stored at once
// reaches its client in one write with the headers), and alone, without
// waiting for an event, when none comes.
func TestSSEFirstPingCarriesTheFirstEvent(t *testing.T) {
	s := newSSESink("s1")
	if err := s.entry(streams.Entry{Seq: 1, Kind: streams.KindToken, Delta: "a"}); err != nil {
		t.Fatal(err)
	}
	rec := &writeRecorder{}
	closed := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.write(bufio.NewWriter(rec), time.Hour, closed)
	}()
	if first := rec.first(t); !strings.HasPrefix(first, ": ping\n\n") || !strings.Contains(first, "id: s1:1\nevent: token\n") {
		t.Fatalf("first write %q, want the ping and the queued event", first)
	}
	close(closed)
	<-done

	idle := newSSESink("s2")
	rec = &writeRecorder{}
	closed = make(chan struct{})
	done = make(chan struct{})
	go func() {
		defer close(done)
		idle.write(bufio.NewWriter(rec), time.Hour, closed)
	}()
	if first := rec.first(t); first != ": ping\n\n" {
		t.Fatalf("first write %q, want the ping alone", first)
	}
	close(closed)
	<-done
}
