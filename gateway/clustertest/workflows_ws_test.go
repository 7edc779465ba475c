package clustertest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"

	"github.com/kowai/kowai/persistence/persisttest"
)

// wsRunFrame is any frame the server sends on a socket that follows runs.
type wsRunFrame struct {
	Type      string          `json:"type"`
	ID        json.RawMessage `json:"id"`
	RunID     string          `json:"run_id"`
	EventType string          `json:"event_type"`
	Event     json.RawMessage `json:"event"`
	Status    int             `json:"status"`
	Detail    string          `json:"detail"`
}

func (s *stack) wsOpen(t *testing.T, token string) *fws.Conn {
	t.Helper()
	c, res, err := fws.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.url, "http")+"/api/v1/chat/ws", http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, res)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func wsWrite(t *testing.T, c *fws.Conn, frame string) {
	t.Helper()
	if err := c.WriteMessage(fws.TextMessage, []byte(frame)); err != nil {
		t.Fatal(err)
	}
}

func wsRead(t *testing.T, c *fws.Conn, within time.Duration) wsRunFrame {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(within)); err != nil {
		t.Fatal(err)
	}
	var f wsRunFrame
	if err := c.ReadJSON(&f); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

// TestWorkflowEventsOverWebSocket follows runs with subscribe frames: the
// same numbered events as the SSE stream, then the result; a stranger's
// subscribe is refused with the REST route's 404; unsubscribe stops the
// stream; and one socket follows several runs.
func TestWorkflowEventsOverWebSocket(t *testing.T) {
	s := startStack(t, persisttest.SQLite(t), stackOptions{})
	_, ada := s.user(t, "ada@example.com")
	_, eve := s.user(t, "eve@example.com")

	id := s.trigger(t, ada, "approval", `{"request":"Can I get a refund?"}`)
	s.waitRun(t, ada, id, "paused")

	// A stranger learns nothing, not even that the run exists.
	stranger := s.wsOpen(t, eve)
	wsWrite(t, stranger, `{"type":"subscribe","run_id":"`+id+`","id":"s1"}`)
	if f := wsRead(t, stranger, 5*time.Second); f.Type != "error" || f.Status != http.StatusNotFound || string(f.ID) != `"s1"` {
		t.Fatalf("stranger's subscribe: %+v", f)
	}
	wsWrite(t, stranger, `{"type":"subscribe","run_id":"not-a-uuid","id":"s2"}`)
	if f := wsRead(t, stranger, 5*time.Second); f.Type != "error" || f.Status != http.StatusBadRequest || !strings.Contains(f.Detail, "run_id") {
		t.Fatalf("malformed subscribe: %+v", f)
	}

	c := s.wsOpen(t, ada)
	wsWrite(t, c, `{"type":"subscribe","run_id":"`+id+`","id":"a1"}`)
	if f := wsRead(t, c, 5*time.Second); f.Type != "subscribed" || f.RunID != id {
		t.Fatalf("subscribe: %+v", f)
	}
	wsWrite(t, c, `{"type":"subscribe","run_id":"`+id+`","id":"a2"}`)
	var seen []int64
	readUntil := func(want func(wsRunFrame) bool) wsRunFrame {
		t.Helper()
		for {
			f := wsRead(t, c, 10*time.Second)
			if f.Type == "run_event" && f.EventType != "result" {
				var n int64
				if err := json.Unmarshal(f.ID, &n); err != nil || n <= 0 {
					t.Fatalf("run_event without a numeric id: %+v", f)
				}
				seen = append(seen, n)
			}
			if want(f) {
				return f
			}
		}
	}
	// The events so far, in order, then the duplicate subscription's refusal.
	readUntil(func(f wsRunFrame) bool {
		if f.Type == "error" && f.Status != http.StatusConflict {
			t.Fatalf("duplicate subscribe: %+v", f)
		}
		return f.Type == "error"
	})
	s.call(t, http.MethodPost, "/api/v1/workflows/"+id+"/resume", ada, `{"input":{"approved":true,"text":"Refund on its way."}}`).decode(t, http.StatusAccepted, nil)
	res := readUntil(func(f wsRunFrame) bool { return f.Type == "run_event" && f.EventType == "result" })
	if res.RunID != id || !strings.Contains(string(res.Event), `"status":"completed"`) || !strings.Contains(string(res.Event), "Refund on its way.") {
		t.Fatalf("result frame: %+v %s", res, res.Event)
	}
	// The WebSocket stream is the SSE stream: same ids, same order.
	var sse []int64
	for _, e := range s.watch(t, ada, id, "") {
		if e.event != "result" {
			var n int64
			if err := json.Unmarshal([]byte(e.id), &n); err != nil {
				t.Fatal(err)
			}
			sse = append(sse, n)
		}
	}
	if len(seen) == 0 || len(seen) != len(sse) {
		t.Fatalf("websocket events %v, SSE events %v", seen, sse)
	}
	for i := range seen {
		if seen[i] != sse[i] {
			t.Fatalf("websocket events %v, SSE events %v", seen, sse)
		}
	}

	// last_event_id resumes: only the later events, then the result again.
	last := seen[len(seen)-1]
	wsWrite(t, c, `{"type":"subscribe","run_id":"`+id+`","id":"again","last_event_id":`+strconv.FormatInt(seen[len(seen)-2], 10)+`}`)
	seen = nil
	readUntil(func(f wsRunFrame) bool { return f.Type == "run_event" && f.EventType == "result" })
	if len(seen) != 1 || seen[0] != last {
		t.Fatalf("events after last_event_id: %v, want [%d]", seen, last)
	}

	// Two runs on one socket; unsubscribing one stops it, the other goes on.
	a := s.trigger(t, ada, "approval", `{"request":"first"}`)
	b := s.trigger(t, ada, "approval", `{"request":"second"}`)
	s.waitRun(t, ada, a, "paused")
	s.waitRun(t, ada, b, "paused")
	wsWrite(t, c, `{"type":"subscribe","run_id":"`+a+`","id":"a"}`)
	wsWrite(t, c, `{"type":"subscribe","run_id":"`+b+`","id":"b"}`)
	wsWrite(t, c, `{"type":"unsubscribe","run_id":"`+a+`","id":"ua"}`)
	readUntil(func(f wsRunFrame) bool { return f.Type == "unsubscribed" && f.RunID == a })
	s.call(t, http.MethodPost, "/api/v1/workflows/"+a+"/cancel", ada, "").decode(t, http.StatusAccepted, nil)
	s.call(t, http.MethodPost, "/api/v1/workflows/"+b+"/cancel", ada, "").decode(t, http.StatusAccepted, nil)
	res = readUntil(func(f wsRunFrame) bool {
		if f.RunID == a && f.Type == "run_event" {
			t.Fatalf("event of an unsubscribed run: %+v", f)
		}
		return f.Type == "run_event" && f.EventType == "result"
	})
	if res.RunID != b || !strings.Contains(string(res.Event), `"status":"cancelled"`) {
		t.Fatalf("result frame: %+v %s", res, res.Event)
	}
	// Unsubscribing a run the socket does not follow is a 404 frame.
	wsWrite(t, c, `{"type":"unsubscribe","run_id":"`+a+`","id":"ua2"}`)
	if f := readUntil(func(f wsRunFrame) bool { return f.Type == "error" }); f.Status != http.StatusNotFound {
		t.Fatalf("unsubscribe of an unfollowed run: %+v", f)
	}

	// A socket follows at most 16 runs at once.
	many := s.wsOpen(t, ada)
	for i := range 17 {
		run := s.trigger(t, ada, "approval", `{"request":"r`+strconv.Itoa(i)+`"}`)
		wsWrite(t, many, `{"type":"subscribe","run_id":"`+run+`","id":"m`+strconv.Itoa(i)+`"}`)
	}
	subscribed := 0
	for {
		f := wsRead(t, many, 10*time.Second)
		if f.Type == "subscribed" {
			subscribed++
		}
		if f.Type == "error" {
			if f.Status != http.StatusTooManyRequests || subscribed != 16 || string(f.ID) != `"m16"` {
				t.Fatalf("17th subscribe: %+v after %d subscribed", f, subscribed)
			}
			break
		}
	}
}
