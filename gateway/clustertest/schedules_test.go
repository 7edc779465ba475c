package clustertest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/actors"
	"github.com/kowai/kowai/persistence/persisttest"
)

// TestScheduleWithWebhookOverTheGateway creates an @every 1s schedule with a webhook
// over HTTP and watches it start runs that finish and notify a receiver with a valid
// signature; another user cannot see it; its owner deletes it.
func TestScheduleWithWebhookOverTheGateway(t *testing.T) {
	s := startStack(t, persisttest.SQLite(t), stackOptions{})
	_, ada := s.user(t, "ada-sched@example.com")
	_, bob := s.user(t, "bob-sched@example.com")

	var mu sync.Mutex
	var got []actors.WebhookPayload
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sig := r.Header.Get(actors.SignatureHeader)
		ts, _ := strconv.ParseInt(strings.TrimPrefix(strings.Split(sig, ",")[0], "t="), 10, 64)
		if sig == "" || actors.Sign(testSecret, body, time.Unix(ts, 0)) != sig {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p actors.WebhookPayload
		if err := json.Unmarshal(body, &p); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)

	var sc struct {
		ID         string `json:"id"`
		NextFireAt string `json:"next_fire_at"`
	}
	s.call(t, http.MethodPost, "/api/v1/workflows/schedules", ada,
		`{"workflow":"complex-analysis","parameters":{"data":"3,5,8"},"spec":"@every 1s","webhook_url":"`+recv.URL+`/hook"}`).
		decode(t, http.StatusCreated, &sc)
	if sc.ID == "" || sc.NextFireAt == "" {
		t.Fatalf("schedule %+v", sc)
	}
	if r := s.call(t, http.MethodGet, "/api/v1/workflows/schedules/"+sc.ID, bob, ""); r.status != http.StatusNotFound {
		t.Fatalf("another user reads the schedule: %d", r.status)
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d signed notifications after 20s, want 2", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	first := got[0]
	mu.Unlock()
	if first.Name != "complex-analysis" || first.Status != "completed" || len(first.Result) == 0 {
		t.Fatalf("notification %+v", first)
	}
	st := s.status(t, ada, first.RunID)
	if st.Status != "completed" {
		t.Fatalf("scheduled run %s is %s", first.RunID, st.Status)
	}

	s.call(t, http.MethodDelete, "/api/v1/workflows/schedules/"+sc.ID, ada, "").decode(t, http.StatusNoContent, nil)
	if r := s.call(t, http.MethodGet, "/api/v1/workflows/schedules/"+sc.ID, ada, ""); r.status != http.StatusNotFound {
		t.Fatalf("deleted schedule: %d", r.status)
	}
}
