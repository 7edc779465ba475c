package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/node"
	"github.com/kowai/kowai/workflows"
)

// postJSON sends body as JSON with token (when not empty) and decodes the answer
// into out, returning the status.
func postJSON(t *testing.T, url, token string, body, out any) int {
	t.Helper()
	return doJSON(t, http.MethodPost, url, token, body, out)
}

// doJSON is postJSON with any method; a nil body sends none.
func doJSON(t *testing.T, method, url, token string, body, out any) int {
	t.Helper()
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
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
	if out != nil && res.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v in %s", url, err, b)
		}
	}
	return res.StatusCode
}

// A node built by package node in the process answers readiness and a chat turn, and Run
// returns nil once its context ends, having released the database.
func TestNodeServesATurnAndStops(t *testing.T) {
	var logs testenv.LogBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	n, err := node.New(t.Context(), testenv.NodeConfig(t, nil), node.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("Run returned before the gateway listened: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not listen within 30 s")
	}
	base := "http://" + n.HTTPAddr().String()
	testenv.Eventually(t, 10*time.Second, func() error {
		res, err := http.Get(base + "/health/ready")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return errors.New(res.Status)
		}
		return nil
	})

	creds := map[string]string{"email": "ada@example.com", "password": "correct horse battery"}
	if code := postJSON(t, base+"/api/v1/auth/register", "", creds, nil); code != http.StatusCreated {
		t.Fatalf("register: %d", code)
	}
	var pair struct {
		AccessToken string `json:"access_token"`
	}
	if code := postJSON(t, base+"/api/v1/auth/login", "", creds, &pair); code != http.StatusOK || pair.AccessToken == "" {
		t.Fatalf("login: %d, token %q", code, pair.AccessToken)
	}
	var turn struct {
		ConversationID string `json:"conversation_id"`
		Response       string `json:"response"`
	}
	if code := postJSON(t, base+"/api/v1/chat/message", pair.AccessToken, map[string]string{"content": "hello"}, &turn); code != http.StatusOK {
		t.Fatalf("chat turn: %d", code)
	}
	if turn.ConversationID == "" || turn.Response == "" {
		t.Fatalf("chat turn answered %+v; want a conversation and a reply", turn)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30 s of its context ending")
	}
	if !strings.Contains(logs.String(), `"msg":"kowai node stopped"`) {
		t.Errorf("no stop line in the log:\n%s", logs.String())
	}
	if err := n.Close(); err != nil {
		t.Errorf("Close after Run: %v", err)
	}
	if err := n.Run(t.Context()); err == nil {
		t.Error("a second Run returned nil")
	}
}

// A node built by package node gives its workflow runtime the run owner's current
// roles: a workflow's agent task on a premium model (KOWAI_LLM_MODELS) runs while its
// owner holds models:premium and is refused once an admin demoted them.
func TestNodeWorkflowAgentTaskPremium(t *testing.T) {
	fancy := newFakeOpenAI(t, "fancy answer", 20, 8)
	cfg := testenv.NodeConfig(t, map[string]string{
		"KOWAI_LLM_MODELS":     fmt.Sprintf(`[{"name":"openai:fancy-1","base_url":%q,"premium":true}]`, fancy.URL+"/v1"),
		"KOWAI_ADMIN_EMAIL":    "root@example.com",
		"KOWAI_ADMIN_PASSWORD": "correct horse battery",
	})
	n, err := node.New(t.Context(), cfg, node.Options{Workflows: func(reg *workflows.Registry) error {
		return workflows.Register(reg, "ask", func(c *workflows.Context, p struct {
			Agent string `json:"agent"`
		}) (string, error) {
			r, err := workflows.Agent(c, "ask", workflows.AgentRequest{Agent: p.Agent, Message: "from a workflow"})
			return r.Content, err
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("Run returned before the gateway listened: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the gateway did not listen within 30 s")
	}
	base := "http://" + n.HTTPAddr().String()
	login := func(email string) string {
		t.Helper()
		var pair struct {
			AccessToken string `json:"access_token"`
		}
		if code := postJSON(t, base+"/api/v1/auth/login", "", map[string]string{"email": email, "password": "correct horse battery"}, &pair); code != http.StatusOK {
			t.Fatalf("login %s: %d", email, code)
		}
		return pair.AccessToken
	}
	var ada struct {
		ID string `json:"id"`
	}
	if code := postJSON(t, base+"/api/v1/auth/register", "", map[string]string{"email": "ada@example.com", "password": "correct horse battery"}, &ada); code != http.StatusCreated {
		t.Fatalf("register: %d", code)
	}
	root := login("root@example.com")
	setRoles := func(role string) {
		t.Helper()
		if code := doJSON(t, http.MethodPut, base+"/api/v1/admin/users/"+ada.ID+"/roles", root, map[string][]string{"roles": {role}}, nil); code != http.StatusOK {
			t.Fatalf("set roles %s: %d", role, code)
		}
	}
	// run triggers ask with token and returns the run once it has finished.
	run := func(token, agent string) (status, result, runErr string) {
		t.Helper()
		var acc struct {
			RunID string `json:"run_id"`
		}
		if code := postJSON(t, base+"/api/v1/workflows/trigger", token, map[string]any{"name": "ask", "parameters": map[string]string{"agent": agent}}, &acc); code != http.StatusAccepted {
			t.Fatalf("trigger: %d", code)
		}
		var st struct {
			Status string          `json:"status"`
			Result json.RawMessage `json:"result"`
			Error  string          `json:"error"`
		}
		testenv.Eventually(t, 20*time.Second, func() error {
			if code := doJSON(t, http.MethodGet, base+"/api/v1/workflows/"+acc.RunID+"/status", token, nil, &st); code != http.StatusOK {
				return fmt.Errorf("status: %d", code)
			}
			if !workflows.Finished(st.Status) {
				return fmt.Errorf("run is %s", st.Status)
			}
			return nil
		})
		return st.Status, string(st.Result), st.Error
	}

	setRoles("premium")
	token := login("ada@example.com")
	var agent struct {
		ID string `json:"id"`
	}
	if code := postJSON(t, base+"/api/v1/agents", token, map[string]string{"name": "fancy", "type": "chat", "model": "openai:fancy-1"}, &agent); code != http.StatusCreated {
		t.Fatalf("create the premium agent: %d", code)
	}
	if status, result, runErr := run(token, agent.ID); status != "completed" || result != `"fancy answer"` {
		t.Fatalf("premium owner's run: %s %s %s", status, result, runErr)
	}
	setRoles("user")
	token = login("ada@example.com")
	if status, _, runErr := run(token, agent.ID); status != "failed" || !strings.Contains(runErr, "models:premium") {
		t.Fatalf("demoted owner's run: %s %s", status, runErr)
	}
	if calls := fancy.calls.Load(); calls != 1 {
		t.Fatalf("the premium model was called %d times, want 1", calls)
	}
}
