package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kowai/kowai/internal/config"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm/lmtest"
)

// binary is the kowai executable built once for the process-level tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kowai-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "kowai")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build kowai: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// kowai runs the binary to completion in dir with env added to a clean
// environment and returns its exit code and output.
func kowai(t *testing.T, dir string, env []string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// httpGet returns the status and body of a GET.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

func TestBadInputExitsTwoWithOneLine(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		env      []string
		args     []string
		mentions string
	}{
		{nil, []string{"frobnicate"}, "unknown command"},
		{[]string{"KOWAI_HTTP_ADDR=nonsense"}, []string{"serve"}, "KOWAI_HTTP_ADDR"},
		{nil, []string{"serve", "--log-level=loud"}, "--log-level"},
		{nil, []string{"serve", "--no-such-flag"}, "no-such-flag"},
		{[]string{"KOWAI_DATABASE_URL=postgres://x/y"}, []string{"migrate", "status"}, "sqlite://PATH or mysql://"},
		{nil, []string{"migrate"}, "want up, down N or status"},
		{nil, []string{"migrate", "down"}, "down N"},
		{nil, []string{"migrate", "down", "zero"}, "N >= 1"},
		{nil, []string{"migrate", "sideways"}, "unknown action"},
		{[]string{"KOWAI_DATABASE_URL=mysql://root@127.0.0.1/kowai"}, []string{"serve"}, "KOWAI_JWT_SECRET"},
		{[]string{`KOWAI_BUDGETS={"guest":{"day_tokens":10}}`}, []string{"serve"}, `unknown role "guest"`},
		{[]string{`KOWAI_BUDGETS={"user":{"day_usd":-1}}`}, []string{"serve"}, "negative"},
		{[]string{`KOWAI_BUDGETS={"user":{"day_tokenz":1}}`}, []string{"serve"}, "unknown field"},
		{[]string{`KOWAI_LLM_MODELS=[{"name":"gpt-4"}]`}, []string{"serve"}, "provider:model"},
		{[]string{`KOWAI_LLM_MODELS=[{"name":"openai:x","api_key":"sk-secret"}]`}, []string{"serve"}, "unknown field"},
	} {
		code, _, stderr := kowai(t, dir, tc.env, "", tc.args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 2 || len(lines) != 1 || !strings.Contains(stderr, tc.mentions) {
			t.Errorf("%v %v: exit %d, stderr %q; want exit 2 and one line mentioning %q", tc.env, tc.args, code, stderr, tc.mentions)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	dir := t.TempDir()
	code, out, _ := kowai(t, dir, nil, "", "version")
	if code != 0 || !strings.Contains(out, "kowai ") || !strings.Contains(out, "go1.") {
		t.Errorf("version: exit %d, out %q", code, out)
	}
}

// Every command's --help prints its usage once and lists its flags; serve's
// lists every setting with its flag, variable and default.
func TestHelpListsFlags(t *testing.T) {
	dir := t.TempDir()
	var serveWants []string
	for _, v := range config.Variables() {
		flag := "--" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(v[0], "KOWAI_")), "_", "-")
		want := flag + " string\n        " + v[2] + " (env " + v[0]
		if v[1] != "" {
			want += ", default " + v[1]
		}
		serveWants = append(serveWants, want+")")
	}
	for _, tc := range []struct {
		args       []string
		wants, not []string
	}{
		{[]string{"--help"}, []string{"serve", "migrate", "optimize", "user", "version", "--help"}, nil},
		{[]string{"help"}, []string{"serve", "migrate"}, nil},
		{[]string{"serve", "--help"}, serveWants, nil},
		{[]string{"help", "serve"}, serveWants, nil},
		{[]string{"serve", "-h"}, []string{"--http-addr string", "KOWAI_HTTP_ADDR, default 127.0.0.1:8080"}, nil},
		{[]string{"migrate", "--help"}, []string{"migrate up | down N | down --all | status", "--all\n", "--database-url string", "(env KOWAI_DATABASE_URL)", "--data-dir string", "KOWAI_DATA_DIR, default ./data", "--log-format"}, []string{"--jwt-secret", "--http-addr"}},
		{[]string{"optimize", "--help"}, []string{"--program string", "--trainset string", "--optimizer string", "(default bootstrap)", "--llm-provider string", "KOWAI_LLM_PROVIDER, default offline"}, []string{"--database-url"}},
		{[]string{"user", "create", "--help"}, []string{"--email string", "--role value", "--database-url string"}, []string{"--jwt-secret"}},
		{[]string{"user", "--help"}, []string{"--email string", "--role value"}, nil},
		{[]string{"version", "--help"}, []string{"usage: kowai version"}, nil},
	} {
		code, out, stderr := kowai(t, dir, nil, "", tc.args...)
		if code != 0 || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, stderr)
		}
		if n := strings.Count(out, "usage: kowai"); n != 1 {
			t.Errorf("%v: the usage line appears %d times:\n%s", tc.args, n, out)
		}
		for _, w := range tc.wants {
			if !strings.Contains(out, w) {
				t.Errorf("%v: help lacks %q:\n%s", tc.args, w, out)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(out, w) {
				t.Errorf("%v: help lists %q, a setting the command does not read", tc.args, w)
			}
		}
	}
}

func TestRuntimeFailuresExitOne(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		env      []string
		mentions string
	}{
		{[]string{"KOWAI_DATA_DIR=" + filepath.Join(blocker, "data")}, "KOWAI_DATA_DIR"},
		{[]string{"KOWAI_DATA_DIR=" + filepath.Join(dir, "metrics"), "KOWAI_METRICS_ADDR=" + taken.Addr().String(), "KOWAI_DRAIN_GRACE=0s"}, "KOWAI_METRICS_ADDR"},
		{[]string{"KOWAI_DATABASE_URL=mysql://nobody:s3cretpw@127.0.0.1:1/kowai", "KOWAI_JWT_SECRET=" + strings.Repeat("k", 32)}, "127.0.0.1:1"},
	} {
		code, _, stderr := kowai(t, dir, tc.env, "", "serve", "--http-addr", freePort(t))
		if code != 1 || !strings.Contains(stderr, tc.mentions) || strings.Contains(stderr, "s3cretpw") {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 naming %q without the password", tc.env, code, stderr, tc.mentions)
		}
	}
}

// TestServeEmbeddedLifecycle is the front door: serve on the defaults creates
// ./data/kowai.db, answers /health/ready, serves /metrics on the metrics
// address only, limits logins at KOWAI_AUTH_RATE_LIMIT, and exits 0 on
// SIGTERM.
func TestServeEmbeddedLifecycle(t *testing.T) {
	dir := t.TempDir()
	addr, metricsAddr := freePort(t), freePort(t)
	cmd := exec.Command(binary, "serve")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "KOWAI_HTTP_ADDR=" + addr, "KOWAI_LOG_FORMAT=json",
		"KOWAI_METRICS_ADDR=" + metricsAddr, "KOWAI_AUTH_RATE_LIMIT=2/h",
		// Readiness is polled every 20-50 ms, faster than the anonymous limit.
		"KOWAI_RATE_LIMIT=6000/m"}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		logs <- b.String()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	deadline := time.Now().Add(20 * time.Second)
	var status int
	for time.Now().Before(deadline) {
		res, err := http.Get("http://" + addr + "/health/ready")
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if status = res.StatusCode; status == 200 {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status != 200 {
		t.Fatalf("/health/ready never answered 200 (last %d)", status)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "kowai.db")); err != nil {
		t.Fatalf("embedded database not created: %v", err)
	}
	if status, body := httpGet(t, "http://"+metricsAddr+"/metrics"); status != http.StatusOK || !strings.Contains(body, "kowai_http_requests_total") {
		t.Errorf("metrics address: %d %.200s", status, body)
	}
	if status, body := httpGet(t, "http://"+addr+"/metrics"); status != http.StatusNotFound || strings.Contains(body, "kowai_http_requests_total") {
		t.Errorf("/metrics on the API port: %d %.200s", status, body)
	}
	for i, want := range []int{http.StatusUnauthorized, http.StatusUnauthorized, http.StatusTooManyRequests} {
		res, err := http.Post("http://"+addr+"/api/v1/auth/login", "application/json", strings.NewReader(`{"email":"nobody@example.com","password":"wrong password"}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("login %d: %d, want %d (KOWAI_AUTH_RATE_LIMIT=2/h)", i, res.StatusCode, want)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// During the drain grace the node still answers, but not ready.
	sawDraining := false
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && !sawDraining; {
		res, err := http.Get("http://" + addr + "/health/ready")
		if err != nil {
			break
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		sawDraining = res.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), `"draining"`)
		time.Sleep(20 * time.Millisecond)
	}
	if !sawDraining {
		t.Error("readiness never reported draining after SIGTERM")
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve did not exit 0 after SIGTERM: %v\n%s", err, <-logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit within 30 s of SIGTERM")
	}
	out := <-logs
	// The log is buffered: a clean exit flushes it, the last line included.
	for _, want := range []string{`"msg":"database migrated"`, `"msg":"cluster leave finished"`, `"msg":"kowai node stopped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	if n := strings.Count(out, `"route":"/api/v1/auth/login"`); n != 3 {
		t.Errorf("%d access-log lines of the 3 logins", n)
	}
	if !strings.HasSuffix(out, "\n") || !strings.Contains(out[strings.LastIndex(strings.TrimSuffix(out, "\n"), "\n")+1:], `"msg":"kowai node stopped"`) {
		t.Errorf("the last line is not the stop: %.300s", out[max(0, len(out)-300):])
	}
}

// TestMigrateRoundTrip runs migrate up, status, down 1, up on both databases.
func TestMigrateRoundTrip(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		migrateRoundTrip(t, dir, []string{"KOWAI_DATABASE_URL=sqlite://" + filepath.Join(dir, "k.db")})
	})
	t.Run("mysql", func(t *testing.T) {
		url := persisttest.MySQLURL(t)
		migrateRoundTrip(t, t.TempDir(), []string{"KOWAI_DATABASE_URL=" + url, "KOWAI_JWT_SECRET=" + strings.Repeat("k", 32)})
	})
}

func migrateRoundTrip(t *testing.T, dir string, env []string) {
	t.Helper()
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "status"}, "pending"},
		{[]string{"migrate", "up"}, "migration(s); schema at version"},
		{[]string{"migrate", "status"}, "applied"},
		{[]string{"migrate", "up"}, "applied 0 migration(s)"},
		{[]string{"migrate", "down", "1"}, "rolled back 1 migration(s); schema at version"},
		{[]string{"migrate", "status"}, "pending"},
		{[]string{"migrate", "up"}, "applied 1 migration(s)"},
	}
	for _, s := range steps {
		code, out, stderr := kowai(t, dir, env, "", s.args...)
		if code != 0 || !strings.Contains(out, s.want) {
			t.Fatalf("%v: exit %d, out %q, stderr %q; want %q", s.args, code, out, stderr, s.want)
		}
	}
	// A node without auto-migrate refuses a schema that is behind.
	if !strings.HasPrefix(env[0], "KOWAI_DATABASE_URL=mysql") {
		return
	}
	if code, _, _ := kowai(t, dir, env, "", "migrate", "down", "1"); code != 0 {
		t.Fatal("down failed")
	}
	code, _, stderr := kowai(t, dir, env, "", "serve", "--http-addr", freePort(t))
	if code != 1 || !strings.Contains(stderr, "kowai migrate up") {
		t.Fatalf("serve on a schema behind: exit %d, stderr %q", code, stderr)
	}
}

// TestOptimize compiles the shipped example program with the offline model
// and against an OpenAI-compatible server.
func TestOptimize(t *testing.T) {
	examples, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	srv := lmtest.NewOpenAIServer(t)
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"offline", nil},
		{"openai-compatible", []string{"KOWAI_LLM_PROVIDER=openai", "KOWAI_LLM_BASE_URL=" + srv.URL, "KOWAI_LLM_MODEL=test-model"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "boolqa.json")
			code, stdout, stderr := kowai(t, dir, tc.env, "", "optimize", "--program", "boolqa",
				"--trainset", filepath.Join(examples, "boolqa-train.jsonl"), "--devset", filepath.Join(examples, "boolqa-dev.jsonl"),
				"--out", out, "--seed", "7")
			if code != 0 || !strings.Contains(stdout, "score before:") || !strings.Contains(stdout, "score after:") {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			state, err := os.ReadFile(out)
			if err != nil || !bytes.Contains(state, []byte(`"demos"`)) {
				t.Fatalf("state file: %v %s", err, state)
			}
		})
	}
	if len(srv.Requests()) == 0 {
		t.Fatal("the OpenAI-compatible server saw no request")
	}
	code, _, stderr := kowai(t, t.TempDir(), nil, "", "optimize", "--program", "nope", "--trainset", "x", "--out", "y")
	if code != 2 || !strings.Contains(stderr, "unknown program") {
		t.Fatalf("unknown program: exit %d %q", code, stderr)
	}
}

func TestUserCreate(t *testing.T) {
	dir := t.TempDir()
	env := []string{"KOWAI_DATABASE_URL=sqlite://" + filepath.Join(dir, "k.db")}
	if code, _, stderr := kowai(t, dir, env, "", "migrate", "up"); code != 0 {
		t.Fatalf("migrate: %s", stderr)
	}
	code, out, stderr := kowai(t, dir, env, "s3cret-passw0rd\n", "user", "create", "--email", "Root@Example.com", "--role", "admin", "--role", "user", "--name", "Root")
	if code != 0 || !strings.Contains(out, "<root@example.com>") || !strings.Contains(out, "admin") {
		t.Fatalf("create: exit %d out %q err %q", code, out, stderr)
	}
	for _, tc := range []struct {
		stdin    string
		args     []string
		code     int
		mentions string
	}{
		{"s3cret-passw0rd\n", []string{"--email", "root@example.com", "--role", "user"}, 1, "exists already"},
		{"s3cret-passw0rd\n", []string{"--email", "x@example.com", "--role", "overlord"}, 2, "want one of user, premium, moderator, admin"},
		{"short\n", []string{"--email", "y@example.com", "--role", "user"}, 2, "password"},
		{"12345678\n", []string{"--email", "y@example.com", "--role", "user"}, 2, "--password: must be at least 12 characters"},
		{"qwerty123456\n", []string{"--email", "y@example.com", "--role", "user"}, 2, "most common passwords"},
		{"yolanda.example\n", []string{"--email", "Yolanda.Example@example.com", "--role", "user"}, 2, "email"},
		{"s3cret-passw0rd\n", []string{"--email", "ＲＯＯＴ@example.com", "--role", "user"}, 1, "exists already"},
		{"", []string{"--email", "z@example.com", "--role", "user"}, 2, "stdin"},
		{"s3cret-passw0rd\n", []string{"--email", "z@example.com"}, 2, "--role"},
		{"s3cret-passw0rd\n", []string{"--email", "not-an-email", "--role", "user"}, 2, "email"},
	} {
		code, _, stderr := kowai(t, dir, env, tc.stdin, append([]string{"user", "create"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.mentions) {
			t.Errorf("%v: exit %d %q; want %d mentioning %q", tc.args, code, stderr, tc.code, tc.mentions)
		}
	}
}
