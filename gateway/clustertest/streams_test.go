package clustertest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"

	"github.com/kowai/kowai/gateway"
	"github.com/kowai/kowai/persistence/persisttest"
)

// chatStream sends req and reads its event stream to the final event
// (done or error), returning the stream ID and the events.
func (s *stack) chatStream(t *testing.T, req *http.Request) (string, []sseEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req = req.WithContext(ctx)
	req.Header.Set("Accept", "text/event-stream")
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, res.StatusCode, res.Header.Get("Content-Type"))
	}
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.event != "" {
				out = append(out, cur)
				if cur.event == "done" || cur.event == "error" {
					return res.Header.Get("X-Kowai-Stream-Id"), out
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
	t.Fatalf("event stream ended without done (%v): %v", sc.Err(), out)
	return "", nil
}

// streamedText checks the events' IDs and sequence numbers from after on
// and returns the tokens' text and the done event's reply.
func streamedText(t *testing.T, sid string, after int64, events []sseEvent) (string, gateway.ChatReply) {
	t.Helper()
	var text strings.Builder
	var reply gateway.ChatReply
	for i, e := range events {
		if want := fmt.Sprintf("%s:%d", sid, after+int64(i)+1); e.id != want {
			t.Fatalf("event %d id %q, want %q", i, e.id, want)
		}
		switch e.event {
		case "token":
			var d struct {
				Seq   int64  `json:"seq"`
				Delta string `json:"delta"`
			}
			if err := json.Unmarshal([]byte(e.data), &d); err != nil || d.Seq != after+int64(i)+1 {
				t.Fatalf("token %s: %v", e.data, err)
			}
			text.WriteString(d.Delta)
		case "done":
			if err := json.Unmarshal([]byte(e.data), &reply); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("event %+v", e)
		}
	}
	return text.String(), reply
}

// TestStreamsThroughTheCluster: a reply streamed over SSE through the real
// cluster and the offline model is resumable from any event, a retry with
// the same Idempotency-Key replays the stored stream without a second
// turn, and WebSocket token frames carry the stream's ID and numbers.
func TestStreamsThroughTheCluster(t *testing.T) {
	s := startStack(t, persisttest.SQLite(t), stackOptions{})
	_, token := signUp(t, s, "ada@example.com")
	post := func() *http.Request {
		req, err := http.NewRequest(http.MethodPost, s.url+"/api/v1/chat/message", strings.NewReader(`{"content":"Stream to me"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Idempotency-Key", "sse-1")
		return req
	}
	sid, events := s.chatStream(t, post())
	text, reply := streamedText(t, sid, 0, events)
	if len(events) < 3 || text == "" || text != reply.Response || reply.MessageID == "" {
		t.Fatalf("streamed %q in %d events, done %+v", text, len(events), reply)
	}

	resume, err := http.NewRequest(http.MethodGet, s.url+"/api/v1/chat/streams/"+sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	resume.Header.Set("Authorization", "Bearer "+token)
	resume.Header.Set("Last-Event-ID", sid+":1")
	if _, rest := s.chatStream(t, resume); len(rest) != len(events)-1 {
		t.Fatalf("resumed %d events after the first, want %d", len(rest), len(events)-1)
	} else if got, _ := streamedText(t, sid, 1, rest); got != strings.TrimPrefix(text, firstDelta(t, events)) {
		t.Fatalf("resumed text %q of %q", got, text)
	}

	retrySID, again := s.chatStream(t, post())
	if retrySID != sid || len(again) != len(events) {
		t.Fatalf("retry: stream %s with %d events, want %s with %d", retrySID, len(again), sid, len(events))
	}
	if got, r := streamedText(t, sid, 0, again); got != text || r.MessageID != reply.MessageID {
		t.Fatalf("retry replayed %q %+v", got, r)
	}
	var history struct {
		Messages []struct{ Role string } `json:"messages"`
	}
	s.call(t, http.MethodGet, "/api/v1/chat/history?conversation_id="+reply.ConversationID, token, "").decode(t, http.StatusOK, &history)
	if len(history.Messages) != 2 {
		t.Fatalf("history has %d messages, want one turn", len(history.Messages))
	}

	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	c, _, err := fws.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.url, "http")+"/api/v1/chat/ws", h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteJSON(map[string]string{"type": "message", "content": "Stream over WebSocket", "id": "w"}); err != nil {
		t.Fatal(err)
	}
	var wsSID string
	for seq := int64(1); ; seq++ {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		var f struct {
			Type     string `json:"type"`
			StreamID string `json:"stream_id"`
			Seq      int64  `json:"seq"`
		}
		if err := c.ReadJSON(&f); err != nil {
			t.Fatal(err)
		}
		if f.Type == "done" {
			if f.StreamID != wsSID || seq < 2 {
				t.Fatalf("done frame %+v after %d tokens", f, seq-1)
			}
			break
		}
		if f.Type != "token" || f.Seq != seq || f.StreamID == "" || (wsSID != "" && f.StreamID != wsSID) {
			t.Fatalf("frame %+v, want token %d", f, seq)
		}
		wsSID = f.StreamID
	}
}

func firstDelta(t *testing.T, events []sseEvent) string {
	t.Helper()
	var d struct {
		Delta string `json:"delta"`
	}
	if err := json.Unmarshal([]byte(events[0].data), &d); err != nil {
		t.Fatal(err)
	}
	return d.Delta
}
