package clustertest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/workflows"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id, event, data string
}

// watch reads the run's events stream until its "result" event (or the
// deadline), sending lastID as Last-Event-ID when set.
func (s *stack) watch(t *testing.T, token, runID, lastID string) []sseEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/api/v1/workflows/"+runID+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
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
				if cur.event == "result" {
					return out
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
	t.Fatalf("events stream of %s ended without a result (%v): %v", runID, sc.Err(), out)
	return nil
}

type runStatus struct {
	RunID   string          `json:"run_id"`
	Name    string          `json:"name"`
	Status  string          `json:"status"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Waiting *struct {
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
	} `json:"waiting"`
	Tasks []struct {
		Name     string `json:"name"`
		Kind     string `json:"kind"`
		Status   string `json:"status"`
		Attempts int    `json:"attempts"`
	} `json:"tasks"`
}

func (s *stack) user(t *testing.T, email string) (string, string) {
	t.Helper()
	var u auth.PublicUser
	s.call(t, http.MethodPost, "/api/v1/auth/register", "", `{"email":"`+email+`","password":"correct horse battery"}`).decode(t, http.StatusCreated, &u)
	var pair auth.TokenPair
	s.call(t, http.MethodPost, "/api/v1/auth/login", "", `{"email":"`+email+`","password":"correct horse battery"}`).decode(t, http.StatusOK, &pair)
	return u.ID, pair.AccessToken
}

func (s *stack) trigger(t *testing.T, token, name, params string) string {
	t.Helper()
	var acc struct {
		RunID  string `json:"run_id"`
		Status string `json:"status"`
	}
	s.call(t, http.MethodPost, "/api/v1/workflows/trigger", token, `{"name":"`+name+`","parameters":`+params+`}`).decode(t, http.StatusAccepted, &acc)
	if acc.RunID == "" {
		t.Fatalf("trigger %s: no run ID", name)
	}
	return acc.RunID
}

func (s *stack) status(t *testing.T, token, runID string) runStatus {
	t.Helper()
	var st runStatus
	s.call(t, http.MethodGet, "/api/v1/workflows/"+runID+"/status", token, "").decode(t, http.StatusOK, &st)
	return st
}

func (s *stack) waitRun(t *testing.T, token, runID, status string) runStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := s.status(t, token, runID)
		if st.Status == status {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s (%s), want %s", runID, st.Status, st.Error, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBuiltinWorkflowsOverTheGateway(t *testing.T) {
	s := startStack(t, persisttest.SQLite(t), stackOptions{})
	_, ada := s.user(t, "ada@example.com")

	var list struct {
		Workflows []struct {
			Name       string          `json:"name"`
			Parameters json.RawMessage `json:"parameters"`
		} `json:"workflows"`
	}
	s.call(t, http.MethodGet, "/api/v1/workflows", ada, "").decode(t, http.StatusOK, &list)
	var names []string
	for _, w := range list.Workflows {
		names = append(names, w.Name)
	}
	if got := strings.Join(names, ","); got != "approval,complex-analysis,intelligent-chat,research" {
		t.Fatalf("workflows = %s", got)
	}

	// A trigger is validated against the workflow's schema, with field errors.
	bad := s.call(t, http.MethodPost, "/api/v1/workflows/trigger", ada, `{"name":"research","parameters":{"question":3,"extra":true}}`)
	if bad.status != http.StatusBadRequest || !strings.Contains(string(bad.body), `"field":"parameters.question"`) || !strings.Contains(string(bad.body), `"field":"parameters.extra"`) {
		t.Fatalf("bad trigger: %d %s", bad.status, bad.body)
	}
	if r := s.call(t, http.MethodPost, "/api/v1/workflows/trigger", ada, `{"name":"nope"}`); r.status != http.StatusBadRequest {
		t.Fatalf("unknown workflow: %d %s", r.status, r.body)
	}

	for _, tc := range []struct {
		name, params string
		check        func(result json.RawMessage) error
	}{
		{"complex-analysis", `{"data":"sales: 10, 12, 15, 11","focus":"trend"}`, func(r json.RawMessage) error {
			var v struct{ Analysis, Report string }
			if json.Unmarshal(r, &v) != nil || v.Analysis == "" || v.Report == "" {
				return fmt.Errorf("result %s", r)
			}
			return nil
		}},
		{"research", `{"question":"How do actor runtimes scale?","parts":3}`, func(r json.RawMessage) error {
			var v struct {
				Plan, Answers []string
				Synthesis     string
			}
			if json.Unmarshal(r, &v) != nil || len(v.Plan) != 3 || len(v.Answers) != 3 || v.Synthesis == "" {
				return fmt.Errorf("result %s", r)
			}
			return nil
		}},
		{"intelligent-chat", `{"message":"I am planning durable workflows"}`, func(r json.RawMessage) error {
			var v struct {
				Reply, Analysis string
				Profile         json.RawMessage
			}
			if json.Unmarshal(r, &v) != nil || v.Reply == "" || v.Analysis == "" || len(v.Profile) == 0 {
				return fmt.Errorf("result %s", r)
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := s.trigger(t, ada, tc.name, tc.params)
			evs := s.watch(t, ada, id, "")
			last := evs[len(evs)-1]
			if !strings.Contains(last.data, `"status":"completed"`) {
				t.Fatalf("last event %+v", last)
			}
			var res struct{ Result json.RawMessage }
			if err := json.Unmarshal([]byte(last.data), &res); err != nil {
				t.Fatal(err)
			}
			if err := tc.check(res.Result); err != nil {
				t.Fatal(err)
			}
			// Ids increase; a client resuming after the second event gets the rest.
			var ids []string
			for _, e := range evs[:len(evs)-1] {
				ids = append(ids, e.id)
			}
			rest := s.watch(t, ada, id, ids[1])
			if len(rest) != len(evs)-2 || rest[0].id != ids[2] {
				t.Fatalf("resumed after %s: %d events from %s, want %d from %s", ids[1], len(rest), rest[0].id, len(evs)-2, ids[2])
			}
			st := s.status(t, ada, id)
			if st.Status != "completed" || len(st.Tasks) < 2 {
				t.Fatalf("status = %+v", st)
			}
			for _, task := range st.Tasks {
				if task.Status != "completed" || task.Attempts < 1 {
					t.Errorf("task %+v", task)
				}
			}
		})
	}
	var prof struct {
		Profile struct {
			Messages int `json:"messages"`
		} `json:"profile"`
	}
	s.call(t, http.MethodGet, "/api/v1/users/me/profile", ada, "").decode(t, http.StatusOK, &prof)
	if prof.Profile.Messages != 1 {
		t.Fatalf("profile = %+v", prof)
	}
}

func TestWorkflowApprovalCancelRetryAndOwnership(t *testing.T) {
	var flaky atomic.Int32
	s := startStack(t, persisttest.SQLite(t), stackOptions{workflows: func(reg *workflows.Registry) {
		if err := workflows.Register(reg, "flaky", func(c *workflows.Context, _ struct{}) (string, error) {
			first, err := workflows.Task(c, "first", func(context.Context) (string, error) { return "one", nil })
			if err != nil {
				return "", err
			}
			return workflows.Task(c, "second", func(context.Context) (string, error) {
				if flaky.Add(1) == 1 {
					return "", workflows.Permanent(errors.New("not today"))
				}
				return first + " two", nil
			})
		}); err != nil {
			t.Fatal(err)
		}
	}})
	_, ada := s.user(t, "ada@example.com")
	_, eve := s.user(t, "eve@example.com")

	// Human in the loop: the run pauses with the input's schema, bad input is
	// refused with field errors, good input finishes it.
	id := s.trigger(t, ada, "approval", `{"request":"Can I get a refund?"}`)
	st := s.waitRun(t, ada, id, "paused")
	if st.Waiting == nil || st.Waiting.Name != "review" || !strings.Contains(string(st.Waiting.Schema), "approved") {
		t.Fatalf("paused status = %+v", st)
	}
	if r := s.call(t, http.MethodPost, "/api/v1/workflows/"+id+"/resume", ada, `{"input":{"approved":"yes"}}`); r.status != http.StatusBadRequest ||
		!strings.Contains(string(r.body), `"field":"input.approved"`) {
		t.Fatalf("bad resume: %d %s", r.status, r.body)
	}
	// Another user sees no such run; a resume from them is 404 too.
	if r := s.call(t, http.MethodGet, "/api/v1/workflows/"+id+"/status", eve, ""); r.status != http.StatusNotFound {
		t.Fatalf("another user's status: %d %s", r.status, r.body)
	}
	if r := s.call(t, http.MethodPost, "/api/v1/workflows/"+id+"/resume", eve, `{"input":{"approved":true}}`); r.status != http.StatusNotFound {
		t.Fatalf("another user's resume: %d %s", r.status, r.body)
	}
	s.call(t, http.MethodPost, "/api/v1/workflows/"+id+"/resume", ada, `{"input":{"approved":true,"text":"Refund on its way."}}`).decode(t, http.StatusAccepted, nil)
	st = s.waitRun(t, ada, id, "completed")
	if !strings.Contains(string(st.Result), `"final":"Refund on its way."`) {
		t.Fatalf("approved result %s", st.Result)
	}

	// Cancel a paused run: it ends cancelled and stays so.
	id2 := s.trigger(t, ada, "approval", `{"request":"another"}`)
	s.waitRun(t, ada, id2, "paused")
	if r := s.call(t, http.MethodPost, "/api/v1/workflows/"+id2+"/cancel", eve, ""); r.status != http.StatusNotFound {
		t.Fatalf("another user's cancel: %d %s", r.status, r.body)
	}
	s.call(t, http.MethodPost, "/api/v1/workflows/"+id2+"/cancel", ada, "").decode(t, http.StatusAccepted, nil)
	s.waitRun(t, ada, id2, "cancelled")
	if r := s.call(t, http.MethodPost, "/api/v1/workflows/"+id2+"/resume", ada, `{"input":{"approved":true}}`); r.status != http.StatusConflict {
		t.Fatalf("resume of a cancelled run: %d %s", r.status, r.body)
	}

	// Retry from the first failed task: the completed one is kept.
	id3 := s.trigger(t, ada, "flaky", `{}`)
	st = s.waitRun(t, ada, id3, "failed")
	if !strings.Contains(st.Error, "not today") {
		t.Fatalf("failed run = %+v", st)
	}
	s.call(t, http.MethodPost, "/api/v1/workflows/"+id3+"/retry", ada, "").decode(t, http.StatusAccepted, nil)
	st = s.waitRun(t, ada, id3, "completed")
	if string(st.Result) != `"one two"` || flaky.Load() != 2 {
		t.Fatalf("retried run = %+v, second ran %d times", st, flaky.Load())
	}

	// Listing: the caller's runs only, filtered and paged.
	var page struct {
		Runs []struct {
			RunID  string `json:"run_id"`
			Name   string `json:"name"`
			Status string `json:"status"`
		} `json:"runs"`
		NextCursor string `json:"next_cursor"`
	}
	s.call(t, http.MethodGet, "/api/v1/workflows?name=approval&limit=1", ada, "").decode(t, http.StatusOK, &page)
	if len(page.Runs) != 1 || page.Runs[0].RunID != id2 || page.NextCursor == "" {
		t.Fatalf("first page = %+v", page)
	}
	s.call(t, http.MethodGet, "/api/v1/workflows?name=approval&limit=1&cursor="+page.NextCursor, ada, "").decode(t, http.StatusOK, &page)
	if len(page.Runs) != 1 || page.Runs[0].RunID != id {
		t.Fatalf("second page = %+v", page)
	}
	s.call(t, http.MethodGet, "/api/v1/workflows?status=cancelled", ada, "").decode(t, http.StatusOK, &page)
	if len(page.Runs) != 1 || page.Runs[0].RunID != id2 {
		t.Fatalf("cancelled runs = %+v", page)
	}
	s.call(t, http.MethodGet, "/api/v1/workflows", eve, "").decode(t, http.StatusOK, &page)
	if len(page.Runs) != 0 {
		t.Fatalf("eve sees %d runs", len(page.Runs))
	}
	if r := s.call(t, http.MethodGet, "/api/v1/workflows?status=sleeping", ada, ""); r.status != http.StatusBadRequest {
		t.Fatalf("bad status filter: %d", r.status)
	}
}
