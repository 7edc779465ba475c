package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kowai optimize --agent compiles the program an agent runs and deploys it to the
// agent as a canary through a node's API; another user's agent is not found, and
// --program with --agent is a usage error.
func TestOptimizeAgent(t *testing.T) {
	base := serveNode(t)
	token := register(t, base, "ada@example.com")
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/agents", strings.NewReader(`{"name":"Tuned","type":"chat","instructions":"Answer kindly."}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ag struct {
		ID string `json:"id"`
	}
	err = json.NewDecoder(res.Body).Decode(&ag)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("create agent: %d %v", res.StatusCode, err)
	}
	dir := t.TempDir()
	train := filepath.Join(dir, "train.jsonl")
	if err := os.WriteFile(train, []byte(`{"inputs":{"message":"hi"},"outputs":{"response":"hello"}}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"KOWAI_URL=" + base, "KOWAI_TOKEN=" + token}
	out := filepath.Join(dir, "state.json")
	code, stdout, stderr := kowai(t, dir, env, "", "optimize", "--agent", ag.ID, "--trainset", train, "--out", out,
		"--percent", "25", "--min-turns", "40", "--min-ratings", "0")
	if code != 0 || !strings.Contains(stdout, "program chat") || !strings.Contains(stdout, "deployed sha256:") {
		t.Fatalf("optimize --agent: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var st struct {
		Version string `json:"version"`
	}
	raw, err := os.ReadFile(out)
	if err != nil || json.Unmarshal(raw, &st) != nil || !strings.Contains(stdout, "deployed "+st.Version+" to agent "+ag.ID) {
		t.Fatalf("state file %s (%v) does not match the deploy: %s", raw, err, stdout)
	}
	req, err = http.NewRequest(http.MethodGet, base+"/api/v1/agents/"+ag.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Variants []struct {
			Canary *struct {
				Percent    int    `json:"percent"`
				MinTurns   int    `json:"min_turns"`
				MinRatings int    `json:"min_ratings"`
				Version    string `json:"version"`
			} `json:"canary"`
		} `json:"variants"`
	}
	err = json.NewDecoder(res.Body).Decode(&got)
	res.Body.Close()
	if err != nil || len(got.Variants) != 1 || got.Variants[0].Canary == nil {
		t.Fatalf("agent after the deploy: %+v %v", got, err)
	}
	if c := got.Variants[0].Canary; c.Percent != 25 || c.MinTurns != 40 || c.MinRatings != 0 || c.Version != st.Version {
		t.Fatalf("canary %+v, want 25%%, 40 turns, 0 ratings, version %s", *c, st.Version)
	}

	other := register(t, base, "bob@example.com")
	code, _, stderr = kowai(t, dir, []string{"KOWAI_URL=" + base, "KOWAI_TOKEN=" + other}, "", "optimize", "--agent", ag.ID, "--trainset", train)
	if code != 1 || !strings.Contains(stderr, "404") {
		t.Fatalf("another user's agent: exit %d %q", code, stderr)
	}
	code, _, stderr = kowai(t, dir, env, "", "optimize", "--agent", ag.ID, "--program", "chat", "--trainset", train)
	if code != 2 || !strings.Contains(stderr, "--program and --agent") {
		t.Fatalf("--program with --agent: exit %d %q", code, stderr)
	}
}
