package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// serveNode starts kowai serve on an embedded database in a temp dir and
// returns its base URL once it is ready; it is killed in Cleanup.
func serveNode(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	addr := freePort(t)
	cmd := exec.Command(binary, "serve")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "KOWAI_HTTP_ADDR=" + addr, "KOWAI_LOG_LEVEL=warn"}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	base := "http://" + addr
	eventuallyOK(t, 30*time.Second, func() error {
		res, err := http.Get(base + "/health/ready")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("ready: %d", res.StatusCode)
		}
		return nil
	})
	return base
}

// eventuallyOK polls check until it returns nil or timeout passes.
func eventuallyOK(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// register creates a user over HTTP and returns an access token.
func register(t *testing.T, base, email string) string {
	t.Helper()
	body := `{"email":"` + email + `","password":"correct horse battery"}`
	for _, path := range []string{"/api/v1/auth/register", "/api/v1/auth/login"} {
		res, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var pair struct {
			AccessToken string `json:"access_token"`
		}
		err = json.NewDecoder(res.Body).Decode(&pair)
		res.Body.Close()
		if res.StatusCode/100 != 2 || err != nil {
			t.Fatalf("%s: %d %v", path, res.StatusCode, err)
		}
		if pair.AccessToken != "" {
			return pair.AccessToken
		}
	}
	t.Fatal("login returned no access token")
	return ""
}

// workflowStatus runs kowai workflow status and decodes its output.
func workflowStatus(t *testing.T, env []string, id string) (status string, raw string) {
	t.Helper()
	code, out, stderr := kowai(t, t.TempDir(), env, "", "workflow", "status", id)
	if code != 0 {
		t.Fatalf("status: exit %d %s", code, stderr)
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status output %q: %v", out, err)
	}
	return st.Status, out
}

func waitStatus(t *testing.T, env []string, id, want string) string {
	t.Helper()
	var raw string
	eventuallyOK(t, 20*time.Second, func() error {
		var got string
		got, raw = workflowStatus(t, env, id)
		if got != want {
			return fmt.Errorf("run %s is %s, want %s", id, got, want)
		}
		return nil
	})
	return raw
}

// TestWorkflowCLI drives the workflow CLI against a real kowai serve: list,
// run --wait of a built-in to completion with plain progress lines, field
// errors for bad parameters, the approval workflow paused, shown by status
// and resumed, and a cancelled run ending run --wait with exit 1.
func TestWorkflowCLI(t *testing.T) {
	base := serveNode(t)
	token := register(t, base, "ada@example.com")
	env := []string{"KOWAI_URL=" + base, "KOWAI_TOKEN=" + token}
	dir := t.TempDir()

	code, out, stderr := kowai(t, dir, env, "", "workflow", "list")
	if code != 0 || !strings.Contains(out, "complex-analysis") || !strings.Contains(out, "approval") || !strings.Contains(out, "request:string") {
		t.Fatalf("list: exit %d out %q err %q", code, out, stderr)
	}

	// run --wait follows the events to the result; progress goes to stderr
	// as plain lines (not a terminal), the result JSON to stdout.
	code, out, stderr = kowai(t, dir, env, "", "workflow", "run", "complex-analysis", "--param", "data=q1 revenue 10, q2 revenue 12", "--param", "focus=growth", "--wait")
	if code != 0 {
		t.Fatalf("run --wait: exit %d out %q err %q", code, out, stderr)
	}
	var result map[string]any
	if err := json.Unmarshal([]byte(out), &result); err != nil || len(result) == 0 {
		t.Fatalf("run --wait printed %q, want the result JSON: %v", out, err)
	}
	if !strings.Contains(stderr, "task 1 ") || !strings.Contains(stderr, " completed") || strings.Contains(stderr, "\r") {
		t.Fatalf("run --wait progress %q", stderr)
	}

	// --param values are JSON when they parse: parts=2 is a number, and a
	// wrong type is the server's field error, printed readably, exit 2.
	for _, tc := range []struct {
		args     []string
		code     int
		mentions string
	}{
		{[]string{"run", "research", "--param", "question=5"}, 2, "parameters.question"},
		{[]string{"run", "research", "--param", "question=why", "--param", "parts=lots"}, 2, "parameters.parts"},
		{[]string{"run", "nope"}, 2, "name: is not a registered workflow"},
		{[]string{"run", "research", "--params-json", "[1]"}, 2, "--params-json must be a JSON object"},
		{[]string{"run"}, 2, "want: kowai workflow run NAME"},
		{[]string{"resume", "0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e"}, 2, "--input is required"},
		{[]string{"status", "0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e"}, 1, "404"},
		{[]string{"dance"}, 2, "unknown subcommand"},
	} {
		code, _, stderr := kowai(t, dir, env, "", append([]string{"workflow"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.mentions) {
			t.Errorf("%v: exit %d %q; want %d mentioning %q", tc.args, code, stderr, tc.code, tc.mentions)
		}
	}
	if code, _, stderr := kowai(t, dir, []string{"KOWAI_URL=" + base}, "", "workflow", "list"); code != 2 || !strings.Contains(stderr, "KOWAI_TOKEN") {
		t.Errorf("without a token: exit %d %q", code, stderr)
	}
	if code, _, stderr := kowai(t, dir, []string{"KOWAI_URL=" + base, "KOWAI_TOKEN=forged"}, "", "workflow", "list"); code != 1 || !strings.Contains(stderr, "401") {
		t.Errorf("with a refused token: exit %d %q", code, stderr)
	}
	code, out, _ = kowai(t, dir, env, "", "workflow", "run", "research", "--params-json", `{"question":"why?"}`, "--param", "parts=2")
	if code != 0 || len(strings.TrimSpace(out)) != 36 {
		t.Fatalf("run research with a numeric param: exit %d %q", code, out)
	}

	// Human in the loop: the run pauses, status shows the input it waits
	// for, bad input is a field error, resume finishes it.
	code, out, stderr = kowai(t, dir, env, "", "workflow", "run", "approval", "--param", "request=Can I get a refund?")
	if code != 0 {
		t.Fatalf("run approval: exit %d %s", code, stderr)
	}
	id := strings.TrimSpace(out)
	if raw := waitStatus(t, env, id, "paused"); !strings.Contains(raw, `"approved"`) {
		t.Fatalf("paused status lacks the input schema: %s", raw)
	}
	if code, _, stderr := kowai(t, dir, env, "", "workflow", "resume", id, "--input", `{"approved":"yes"}`); code != 2 || !strings.Contains(stderr, "input.approved") {
		t.Fatalf("bad resume: exit %d %q", code, stderr)
	}
	if code, _, stderr := kowai(t, dir, env, "", "workflow", "resume", id, "--input", `{"approved":true,"text":"Refund on its way."}`); code != 0 {
		t.Fatalf("resume: exit %d %q", code, stderr)
	}
	if raw := waitStatus(t, env, id, "completed"); !strings.Contains(raw, "Refund on its way.") {
		t.Fatalf("resumed result: %s", raw)
	}

	// A run that is cancelled while run --wait follows it: exit 1.
	cmd := exec.Command(binary, "workflow", "run", "approval", "--param", "request=another", "--wait")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := bufio.NewScanner(errPipe)
	if !lines.Scan() {
		t.Fatalf("run --wait printed nothing: %v", lines.Err())
	}
	first := strings.Fields(lines.Text()) // "run ID STATUS"
	if len(first) != 3 || first[0] != "run" {
		t.Fatalf("first line %q", lines.Text())
	}
	id = first[1]
	waitStatus(t, env, id, "paused")
	if code, _, stderr := kowai(t, dir, env, "", "workflow", "cancel", id); code != 0 {
		t.Fatalf("cancel: exit %d %q", code, stderr)
	}
	var rest strings.Builder
	for lines.Scan() {
		rest.WriteString(lines.Text() + "\n")
	}
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("run --wait of a cancelled run: %v\n%s", err, rest.String())
	}
	if !strings.Contains(rest.String(), "cancelled") {
		t.Fatalf("run --wait output lacks the cancellation: %s", rest.String())
	}
	waitStatus(t, env, id, "cancelled")
}

func TestParamFlags(t *testing.T) {
	for _, tc := range []struct{ in, key, value, err string }{
		{"n=2", "n", `2`, ""},
		{"ok=true", "ok", `true`, ""},
		{`o={"a":1}`, "o", `{"a":1}`, ""},
		{"s=hello world", "s", `"hello world"`, ""},
		{"s=", "s", `""`, ""},
		{"e=a=b", "e", `"a=b"`, ""},
		{`q="quoted"`, "q", `"quoted"`, ""},
		{"novalue", "", "", "want k=v"},
		{"=v", "", "", "want k=v"},
	} {
		var p paramFlags
		err := p.Set(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || len(p) != 1 || p[0].key != tc.key || string(p[0].value) != tc.value {
			t.Errorf("%q: %+v %v, want %s=%s", tc.in, p, err, tc.key, tc.value)
		}
	}
}

// TestProgressBar: on a terminal the progress is one line redrawn in place,
// finished tasks over the tasks seen so far; elsewhere one line per event.
func TestProgressBar(t *testing.T) {
	var b strings.Builder
	p := &progress{w: &b, tty: true, tasks: map[int]runEvent{}}
	p.event("r", "run", runEvent{Status: "running"})
	p.event("r", "task", runEvent{Seq: 1, Name: "plan", Status: "running"})
	p.event("r", "task", runEvent{Seq: 1, Name: "plan", Status: "completed"})
	p.event("r", "task", runEvent{Seq: 2, Name: "answer", Status: "running"})
	p.finish()
	out := b.String()
	if strings.Count(out, "\r") != 4 || !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("terminal progress %q", out)
	}
	if last := out[strings.LastIndex(out, "\r"):]; !strings.Contains(last, "["+strings.Repeat("#", 12)+strings.Repeat("-", 12)+"] 1/2 tasks") {
		t.Fatalf("last frame %q", last)
	}
	b.Reset()
	p = &progress{w: &b, tasks: map[int]runEvent{}}
	p.event("r", "task", runEvent{Seq: 1, Name: "plan", Kind: "agent", Status: "retrying", Attempt: 2, Error: "timeout"})
	p.finish()
	if got := b.String(); got != "task 1 plan (agent) retrying attempt 2: timeout\n" {
		t.Fatalf("plain progress %q", got)
	}
}

// TestFollowContinuedRun: run --wait follows a run that continued as new to the
// run that continues it, and prints that run's result.
func TestFollowContinuedRun(t *testing.T) {
	streams := map[string]string{
		"/api/v1/workflows/run-1/events": "id: 1\nevent: run\ndata: {\"status\":\"running\"}\n\n" +
			"event: result\ndata: {\"run_id\":\"run-1\",\"status\":\"completed\",\"continued_as\":\"run-2\"}\n\n",
		"/api/v1/workflows/run-2/events": "id: 1\nevent: run\ndata: {\"status\":\"running\"}\n\n" +
			"event: result\ndata: {\"run_id\":\"run-2\",\"status\":\"completed\",\"result\":{\"total\":60}}\n\n",
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := streams[r.URL.Path]
		if !ok || r.Header.Get("Authorization") != "Bearer tok" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := newAPIClient(srv.URL, "tok")
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	if err := c.follow(t.Context(), "run-1", stdio{out: &out, err: &errOut}); err != nil {
		t.Fatalf("follow: %v (stderr %q)", err, errOut.String())
	}
	if strings.TrimSpace(out.String()) != `{"total":60}` && !strings.Contains(out.String(), `"total": 60`) {
		t.Fatalf("follow printed %q, want the continuing run's result", out.String())
	}
	if !strings.Contains(errOut.String(), "run run-1 continued as run-2") {
		t.Fatalf("progress %q does not say the run continued", errOut.String())
	}
}

// TestRunWaitDrawsABarOnATerminal runs kowai workflow run --wait on a real
// pseudo-terminal (script(1) gives the command one) against a node that streams a
// two-task run: the progress is a bar redrawn in place, not one line per event.
func TestRunWaitDrawsABarOnATerminal(t *testing.T) {
	scriptPath, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) from util-linux is not installed: no way to give the CLI a terminal without a new dependency")
	}
	events := "id: 1\nevent: run\ndata: {\"status\":\"running\"}\n\n" +
		"id: 2\nevent: task\ndata: {\"seq\":1,\"name\":\"plan\",\"kind\":\"task\",\"status\":\"running\",\"attempt\":1}\n\n" +
		"id: 3\nevent: task\ndata: {\"seq\":1,\"name\":\"plan\",\"kind\":\"task\",\"status\":\"completed\",\"attempt\":1}\n\n" +
		"id: 4\nevent: task\ndata: {\"seq\":2,\"name\":\"answer\",\"kind\":\"task\",\"status\":\"running\",\"attempt\":1}\n\n" +
		"id: 5\nevent: task\ndata: {\"seq\":2,\"name\":\"answer\",\"kind\":\"task\",\"status\":\"completed\",\"attempt\":1}\n\n" +
		"id: 6\nevent: run\ndata: {\"status\":\"completed\"}\n\n" +
		"event: result\ndata: {\"run_id\":\"run-1\",\"status\":\"completed\",\"result\":{\"answer\":42}}\n\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer tok":
			http.Error(w, "no", http.StatusUnauthorized)
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/workflows/trigger":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"run_id":"run-1","status":"running"}`)
		case r.URL.Path == "/api/v1/workflows/run-1/events":
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, events)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// -e: script exits with the command's status; the typescript goes nowhere, the
	// terminal's output to script's stdout.
	cmd := exec.CommandContext(ctx, scriptPath, "-q", "-e", "-c", binary+" workflow run demo --wait", "/dev/null")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "SHELL=/bin/sh", "TERM=xterm",
		"KOWAI_URL=" + srv.URL, "KOWAI_TOKEN=tok"}
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run --wait on a terminal: %v\n%q", err, out)
	}
	screen := string(out)
	// Frames redraw one line with a carriage return; the last shows both tasks done.
	if !strings.Contains(screen, "\r["+strings.Repeat("#", 24)+"] 2/2 tasks") || strings.Count(screen, "\r[") < 3 {
		t.Fatalf("no progress bar on the terminal: %q", screen)
	}
	if strings.Contains(screen, "task 1 plan (task)") {
		t.Fatalf("plain progress lines on a terminal: %q", screen)
	}
	if !strings.Contains(screen, `"answer": 42`) && !strings.Contains(screen, `"answer":42`) {
		t.Fatalf("the result is missing: %q", screen)
	}
}
