package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestLoadCountsAndHistogram is the generator's smoke test: a short run
// against a local server counts every answered request once, in the
// histogram too, and counts wrong statuses as failures.
func TestLoadCountsAndHistogram(t *testing.T) {
	var mu sync.Mutex
	served := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served++
		mu.Unlock()
		if r.Header.Get("X-Test") != "yes" {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	var out bytes.Buffer
	if err := run(t.Context(), []string{"-url", srv.URL, "-c", "4", "-d", "200ms", "-H", "X-Test: yes"}, &out); err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	var inHist int64
	for _, n := range res.Histogram {
		inHist += n
	}
	mu.Lock()
	defer mu.Unlock()
	if res.Requests == 0 || res.Failures != 0 || inHist != res.Requests || int64(served) < res.Requests || res.Seconds <= 0 {
		t.Fatalf("result %+v (histogram total %d), server saw %d", res, inHist, served)
	}

	out.Reset()
	if err := run(t.Context(), []string{"-url", srv.URL, "-c", "2", "-d", "50ms"}, &out); err != nil {
		t.Fatal(err)
	}
	res = Result{}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Failures == 0 || res.FirstErr == "" {
		t.Fatalf("a 400 must count as a failure: %+v", res)
	}
}

// TestChatContinueReusesConversation checks the continue mode: each
// connection starts one conversation, then sends its ID with every turn.
func TestChatContinueReusesConversation(t *testing.T) {
	var mu sync.Mutex
	started, continued := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ConversationID string `json:"conversation_id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if body.ConversationID == "" {
			started++
			fmt.Fprintf(w, `{"conversation_id":"c%d"}`, started)
			return
		}
		continued++
		fmt.Fprintf(w, `{"conversation_id":%q}`, body.ConversationID)
	}))
	t.Cleanup(srv.Close)
	var out bytes.Buffer
	if err := run(t.Context(), []string{"-url", srv.URL, "-c", "3", "-d", "100ms", "-chat", "continue"}, &out); err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if started != 3 || res.Failures != 0 || res.Requests == 0 || int64(continued) < res.Requests {
		t.Fatalf("started %d, continued %d, result %+v", started, continued, res)
	}
}
