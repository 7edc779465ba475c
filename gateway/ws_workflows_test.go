package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/google/uuid"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/workflows"
)

// wsRunFrame is a frame on a socket that follows runs; id is a number on
// run_event frames and a string elsewhere.
type wsRunFrame struct {
	Type      string          `json:"type"`
	ID        json.RawMessage `json:"id"`
	RunID     string          `json:"run_id"`
	EventType string          `json:"event_type"`
	Event     json.RawMessage `json:"event"`
	Status    int             `json:"status"`
}

// readRunFrame reads one frame and holds it to doc, the served AsyncAPI
// document.
func readRunFrame(t *testing.T, doc map[string]any, c *fws.Conn) wsRunFrame {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, raw, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	for _, p := range frameProblems(doc, raw) {
		t.Errorf("frame against /asyncapi.json: %s", p)
	}
	var f wsRunFrame
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("frame %s: %v", raw, err)
	}
	return f
}

// TestWebSocketSubscribeStreamsRunEvents follows runs written straight into
// the store (no engine), under the race detector: events in order with their
// numbers, last_event_id, the result, a stranger's 404, unsubscribe, and a
// socket closed while it follows a run; every frame is as /asyncapi.json
// documents it.
func TestWebSocketSubscribeStreamsRunEvents(t *testing.T) {
	db := persisttest.SQLite(t)
	store := persistence.NewWorkflowStore(db)
	writer := persistence.NewWriter(db, persistence.WriterOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- writer.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("writer: %v", err)
		}
	})
	api, svc := restAPI(t, db, restConfig{}, nil)
	api.Chat = &fakeChat{}
	api.Workflows = &Workflows{Registry: workflows.NewRegistry(), Runs: store, EventPoll: 10 * time.Millisecond}
	ts := startWith(t, Options{}, func(s *Server) {
		if err := s.Mount(api); err != nil {
			t.Fatal(err)
		}
	})
	n := &wsNode{ts: ts, svc: svc}
	doc := servedJSON(t, ts.url+"/asyncapi.json")
	ada, eve := n.newUser(t, "ada@example.com"), n.newUser(t, "eve@example.com")

	run, err := store.CreateRun(t.Context(), persistence.WorkflowRun{ID: uuid.NewString(), Name: "demo", OwnerID: ada.id, Status: persistence.StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	seq := int64(0)
	event := func(step int, status string) {
		t.Helper()
		seq++
		data, _ := json.Marshal(workflows.Event{RunID: run.ID, Seq: step, Name: "step", Status: status, Time: time.Now()})
		if err := writer.Submit(t.Context(), persistence.EventInsert(persistence.WorkflowEvent{RunID: run.ID, Seq: seq, StepSeq: step, Status: status, Data: data})); err != nil {
			t.Fatal(err)
		}
	}
	event(0, workflows.StatusRunning)
	event(1, workflows.StatusRunning)

	stranger := wsOpen(t, n, eve.pair.AccessToken)
	wsSend(t, stranger, map[string]string{"type": "subscribe", "run_id": run.ID, "id": "s"})
	if f := readRunFrame(t, doc, stranger); f.Type != "error" || f.Status != http.StatusNotFound || f.RunID != run.ID {
		t.Fatalf("stranger: %+v", f)
	}

	c := wsOpen(t, n, ada.pair.AccessToken)
	// A second socket follows the same run and is closed mid-stream.
	gone := wsOpen(t, n, ada.pair.AccessToken)
	for _, s := range []*fws.Conn{c, gone} {
		wsSend(t, s, map[string]string{"type": "subscribe", "run_id": run.ID, "id": "a"})
		if f := readRunFrame(t, doc, s); f.Type != "subscribed" || f.RunID != run.ID {
			t.Fatalf("subscribe: %+v", f)
		}
	}
	want := func(s *fws.Conn, id int64, typ string) wsRunFrame {
		t.Helper()
		f := readRunFrame(t, doc, s)
		if f.Type != "run_event" || f.RunID != run.ID || f.EventType != typ || typ != "result" && string(f.ID) != strconv.FormatInt(id, 10) {
			t.Fatalf("frame %+v (%s), want run_event %d %s", f, f.Event, id, typ)
		}
		return f
	}
	want(c, 1, "run")
	want(c, 2, "task")
	want(gone, 1, "run")
	gone.Close()
	event(1, workflows.StatusCompleted)
	want(c, 3, "task")

	// last_event_id resumes after that event on another subscription.
	other := wsOpen(t, n, ada.pair.AccessToken)
	if err := other.WriteJSON(map[string]any{"type": "subscribe", "run_id": run.ID, "last_event_id": 2}); err != nil {
		t.Fatal(err)
	}
	if f := readRunFrame(t, doc, other); f.Type != "subscribed" {
		t.Fatalf("%+v", f)
	}
	want(other, 3, "task")
	wsSend(t, other, map[string]string{"type": "unsubscribe", "run_id": run.ID})
	if f := readRunFrame(t, doc, other); f.Type != "unsubscribed" || f.RunID != run.ID {
		t.Fatalf("unsubscribe: %+v", f)
	}

	// The run finishes: its last event, then the result, ends the stream.
	fin := run
	fin.Status, fin.Result, fin.FinishedAt, fin.Version = workflows.StatusCompleted, json.RawMessage(`{"ok":true}`), time.Now(), run.Version+1
	if err := store.SaveRun(t.Context(), fin, run.Version); err != nil {
		t.Fatal(err)
	}
	event(0, workflows.StatusCompleted)
	want(c, 4, "run")
	if f := want(c, 0, "result"); string(f.Event) != `{"run_id":"`+run.ID+`","status":"completed","result":{"ok":true}}` {
		t.Fatalf("result %s", f.Event)
	}
	// The subscription ended with the run: the socket may follow it again, and
	// the unsubscribed socket got nothing more.
	wsSend(t, c, map[string]string{"type": "unsubscribe", "run_id": run.ID, "id": "u"})
	if f := readRunFrame(t, doc, c); f.Type != "error" || f.Status != http.StatusNotFound {
		t.Fatalf("unsubscribe after the result: %+v", f)
	}
	if f := wsSay(t, other, "m", "still chatting"); f.Type != "done" {
		t.Fatalf("after unsubscribe: %+v", f)
	}
}
