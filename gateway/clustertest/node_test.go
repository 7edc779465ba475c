package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/node"
)

// postJSON sends body as JSON with token (when not empty) and decodes the answer
// into out, returning the status.
func postJSON(t *testing.T, url, token string, body, out any) int {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
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
