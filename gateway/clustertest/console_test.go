package clustertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kowai/kowai/budgets"
	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/workflows"
)

// TestConsoleE2E runs tests/console/console.mjs: playwright-core drives
// Debian's headless Chromium through the console (/console) of a real node
// (SQLite, offline model): sign-up and sign-in, a streamed chat reply seen
// in pieces, feedback, Markdown that must not turn model text into HTML,
// an agent created through the generated form after a field error, compiled
// program state deployed to it as a canary and promoted, workflow
// runs watched, resumed and cancelled, and the cluster page as an admin and
// as a user. Node.js, the package (npm ci in tests/console) and Chromium
// are required under CI=true (.ci/run installs them); elsewhere the test is
// skipped, loudly, without them.
//
// With KOWAI_CONSOLE_SCREENSHOTS=DIR (an absolute path, or one relative to this
// package's directory) the script also writes the README's
// screenshots to DIR (make screenshots).
func TestConsoleE2E(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "tests", "console"))
	if err != nil {
		t.Fatal(err)
	}
	missing := func(msg string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: the console end-to-end test is required)")
		}
		t.Skip("SKIPPING CONSOLE E2E TEST: " + msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed; install Node.js 20 or later")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		missing("playwright-core is not installed; run npm ci in tests/console")
	}
	browser, err := exec.LookPath("chromium")
	if err != nil {
		missing("chromium is not installed; apt-get install chromium")
	}
	// The script signs in four times and loads the console's files on every
	// page; a generous per-address limit keeps the anonymous bucket out of it.
	// The node keeps the usage ledger as kowai serve does (no limits), so the
	// Cluster page's "today" figures count the script's turns.
	db := persisttest.SQLite(t)
	ledger := func(w *persistence.Writer) *budgets.Enforcer {
		e, err := budgets.New(budgets.Config{Users: persistence.NewUserStore(db), Ledger: persistence.NewUsageStore(db), Writer: w})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// countdown continues as new until n is 0: the run page links the chain.
	countdown := func(reg *workflows.Registry) {
		type params struct {
			N int `json:"n"`
		}
		if err := workflows.Register(reg, "countdown", func(c *workflows.Context, p params) (string, error) {
			if p.N > 0 {
				return "", workflows.ContinueAsNew(c, params{N: p.N - 1})
			}
			return "liftoff", nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// A model catalog as KOWAI_LLM_MODELS gives one (never called: the agents
	// the script creates keep the default model): the agent form offers the
	// plain model and hides the premium one from a user.
	eps, err := lm.ParseEndpoints(`[{"name":"openai:gpt-4o-mini","base_url":"http://127.0.0.1:9/v1","input_per_1k":0.00015,"output_per_1k":0.0006},
		{"name":"openai:gpt-4o","base_url":"http://127.0.0.1:9/v1","premium":true}]`)
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, db, stackOptions{rateLimit: ratelimit.Limit{Rate: 2000, Period: time.Minute}, budgets: ledger, workflows: countdown,
		models: testCatalog(t, eps, nil)})
	const adminEmail, adminPassword = "root@example.com", "console admin password 7"
	if _, err := s.auth.CreateUser(t.Context(), auth.NewUser{Email: adminEmail, Password: adminPassword, Name: "Root", Roles: []auth.Role{auth.RoleAdmin}}); err != nil {
		t.Fatal(err)
	}
	program := filepath.Join(t.TempDir(), "chat-program.json")
	if err := os.WriteFile(program, compiledChat(t, "Answer in one short paragraph."), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "console.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KOWAI_CONSOLE_URL="+s.url+"/console", "CHROMIUM_PATH="+browser,
		"KOWAI_ADMIN_EMAIL="+adminEmail, "KOWAI_ADMIN_PASSWORD="+adminPassword, "KOWAI_CONSOLE_PROGRAM="+program)
	if shots := os.Getenv("KOWAI_CONSOLE_SCREENSHOTS"); shots != "" {
		abs, err := filepath.Abs(shots)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, "KOWAI_CONSOLE_SCREENSHOTS="+abs)
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("console.mjs (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("the console end-to-end script failed: %v", err)
	}
}
