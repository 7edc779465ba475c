package durability

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence/persisttest"
)

// streamEvent is one Server-Sent Event of a chat stream.
type streamEvent struct{ id, event, data string }

// chatStream posts (or, with body empty, gets) path on n as an event stream
// and reads it to its final event. started receives the stream ID and the
// turn's idempotency key as soon as the response starts (started may be
// nil). A transport failure (the node died) returns err.
func (c *kowaiCluster) chatStream(ctx context.Context, n *kowaiNode, method, path, token, key, body string, started func(streamID, key string)) ([]streamEvent, error) {
	req, err := http.NewRequestWithContext(ctx, method, n.httpURL+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s on node %d: status %d", method, path, n.index, res.StatusCode)
	}
	if started != nil {
		started(res.Header.Get("X-Kowai-Stream-Id"), res.Header.Get("Idempotency-Key"))
	}
	var out []streamEvent
	var cur streamEvent
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.event != "" {
				out = append(out, cur)
				if cur.event == "done" || cur.event == "error" {
					return out, nil
				}
			}
			cur = streamEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
	return out, fmt.Errorf("stream on node %d ended without a final event (%v) after %d events", n.index, sc.Err(), len(out))
}

// TestStreamSurvivesKill: three nodes sharing MariaDB and Redis, a model that
// holds every reply back. A client streams a keyed turn over SSE from the
// node that also hosts the conversation's session; that node is killed with
// SIGKILL while the model call is in flight. The client retries with the
// same Idempotency-Key on a survivor: the reply arrives on the same stream
// after a restart event, a reader joining the stream on the third node sees
// the same, and the conversation's history has exactly one reply.
func TestStreamSurvivesKill(t *testing.T) { testStreamSurvivesKill(t, false) }

// TestUnkeyedStreamSurvivesKill is TestStreamSurvivesKill for a turn sent
// without an Idempotency-Key: the client retries with the key the first
// attempt's response headers carried (minted by the node).
func TestUnkeyedStreamSurvivesKill(t *testing.T) { testStreamSurvivesKill(t, true) }

func testStreamSurvivesKill(t *testing.T, unkeyed bool) {
	persisttest.MySQLDSN(t) // skip or fail before the build when MariaDB is not configured
	rdb := testenv.Redis(t)
	bin := clustertest.BuildBinary(t, "github.com/kowai/kowai/cmd/kowai")
	model := newCountingModel(t, 3*time.Second)
	c := newCluster(t, bin, "automanaged", 3)
	redisURL := fmt.Sprintf("redis://%s/%d", rdb.Options().Addr, rdb.Options().DB)
	for _, n := range c.nodes {
		n.env = append(n.env, "KOWAI_LLM_PROVIDER=openai", "KOWAI_LLM_BASE_URL="+model.URL,
			"KOWAI_LLM_MODEL=test-model", "KOWAI_LLM_CACHE=false", "KOWAI_REDIS_URL="+redisURL)
	}
	c.start(c.nodes...)
	token := c.register(c.nodes[0], "streamer@durability.test")
	var me struct {
		ID string `json:"id"`
	}
	if err := c.get(c.nodes[0], "/api/v1/auth/me", token, &me); err != nil {
		t.Fatal(err)
	}
	// The first turn's conversation ID is derived from the user and the key
	// (see gateway.newTurn), so the test knows which node hosts its session;
	// an unkeyed turn names a new conversation instead.
	key := "kill-" + randomHex(t, 4)
	convID := uuid.NewSHA1(uuid.MustParse("4a8f3a52-6f0e-4d3b-9a57-0d3c2b7e9f11"), []byte(me.ID+"\x00"+key)).String()
	body := `{"content":"Tell me about durable streams"}`
	if unkeyed {
		key, convID = "", uuid.NewString()
		body = `{"content":"Tell me about durable streams","conversation_id":"` + convID + `"}`
	}
	victim := c.nodeAt(owner(convID, c.memberAddresses()))
	var survivors []*kowaiNode
	for _, n := range c.nodes {
		if n != victim {
			survivors = append(survivors, n)
		}
	}

	// The first attempt, on the victim: it dies while the model holds the reply.
	type started struct{ sid, key string }
	sidc := make(chan started, 1)
	firstDone := make(chan error, 1)
	go func() {
		_, err := c.chatStream(t.Context(), victim, http.MethodPost, "/api/v1/chat/message", token, key, body, func(id, k string) { sidc <- started{id, k} })
		firstDone <- err
	}()
	var sid string
	select {
	case st := <-sidc:
		sid = st.sid
		if unkeyed {
			if !strings.HasPrefix(st.key, "kowai-") {
				t.Fatalf("the unkeyed turn's response carries key %q, want one minted by the node", st.key)
			}
			key = st.key
		} else if st.key != key {
			t.Fatalf("the response carries key %q, want the request's %q", st.key, key)
		}
	case err := <-firstDone:
		t.Fatalf("first attempt ended before it started: %v", err)
	case <-time.After(readyTimeout):
		t.Fatal("first attempt did not start")
	}
	testenv.Eventually(t, loadTimeout, func() error {
		if model.total.Load() < 1 {
			return fmt.Errorf("the model has not been called yet")
		}
		return nil
	})
	c.kill(victim)
	t.Logf("killed node %d (%s), hosting the session and serving the stream %s", victim.index, victim.clusterAddr, sid)
	if err := <-firstDone; err == nil {
		t.Fatal("the first attempt's stream completed although its node was killed")
	}

	// The client retries with the same key on a survivor until the cluster has
	// moved the session and the reply completes.
	var events []streamEvent
	testenv.Eventually(t, loadTimeout, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		got, err := c.chatStream(ctx, survivors[0], http.MethodPost, "/api/v1/chat/message", token, key, body, func(id, _ string) {
			if id != sid {
				t.Errorf("retry streams %s, want the first attempt's stream %s", id, sid)
			}
		})
		if err != nil {
			return err
		}
		if last := got[len(got)-1]; last.event != "done" {
			return fmt.Errorf("retry ended with %s %s", last.event, last.data)
		}
		events = got
		return nil
	})
	check := func(who string, events []streamEvent) string {
		t.Helper()
		restarted := false
		var text strings.Builder
		var reply struct {
			ConversationID string `json:"conversation_id"`
			Response       string `json:"response"`
		}
		for _, e := range events {
			var d struct {
				Delta   string `json:"delta"`
				Attempt int    `json:"attempt"`
			}
			switch e.event {
			case "restart":
				if err := json.Unmarshal([]byte(e.data), &d); err != nil || d.Attempt < 2 {
					t.Fatalf("%s: restart %s", who, e.data)
				}
				restarted = true
				text.Reset()
			case "token":
				if err := json.Unmarshal([]byte(e.data), &d); err != nil {
					t.Fatal(err)
				}
				text.WriteString(d.Delta)
			case "done":
				if err := json.Unmarshal([]byte(e.data), &reply); err != nil {
					t.Fatal(err)
				}
			}
			if !strings.HasPrefix(e.id, sid+":") {
				t.Fatalf("%s: event %+v is not of stream %s", who, e, sid)
			}
		}
		if !restarted || reply.ConversationID != convID || reply.Response == "" || text.String() != reply.Response {
			t.Fatalf("%s: restarted %v, tokens %q, done %+v", who, restarted, text.String(), reply)
		}
		return reply.Response
	}
	answer := check("retrying client", events)

	// A reader joining on the third node gets the same stream.
	joined, err := c.chatStream(t.Context(), survivors[1], http.MethodGet, "/api/v1/chat/streams/"+sid, token, "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := check("joining reader", joined); got != answer {
		t.Fatalf("joined reply %q, want %q", got, answer)
	}

	hist, err := c.history(token, convID)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Role != "user" || hist[1].Role != "assistant" || hist[1].Content != answer {
		t.Fatalf("history %+v, want the one turn answered %q", hist, answer)
	}
	t.Logf("stream %s: %d events after the kill, restart then the reply; model calls %d", sid, len(events), model.total.Load())
}
