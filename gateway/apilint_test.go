package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kowai/kowai/persistence/persisttest"
)

// apiLintDir holds the pinned Node linters (see its package.json).
var apiLintDir = filepath.Join("..", "tools", "apilint")

// apiLinters returns the absolute path of tools/apilint once node and the
// installed linters are there. Outside CI a missing toolchain skips the test
// with the command that fixes it; in CI (CI=true) it fails the test.
func apiLinters(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(apiLintDir)
	if err != nil {
		t.Fatal(err)
	}
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not installed (Node.js 20 or later)"
	} else {
		for _, bin := range []string{"redocly", "spectral"} {
			if _, err := os.Stat(filepath.Join(dir, "node_modules", ".bin", bin)); err != nil {
				missing = "the API linters are not installed: run make apilint-deps (npm ci in tools/apilint)"
			}
		}
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("API lint cannot run in CI: %s", missing)
		}
		t.Skipf("API LINT NOT RUN: %s", missing)
	}
	return dir
}

// lintEnv keeps the linters quiet and offline: no telemetry, no update checks.
func lintEnv() []string {
	return append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true",
		"NO_UPDATE_NOTIFIER=1", "SCARF_ANALYTICS=false", "NO_COLOR=1")
}

// runLinter runs name with args in dir and returns its combined output and
// exit code; failing to start at all fails the test.
func runLinter(t *testing.T, dir, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	cmd.Env = lintEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	}
	t.Fatalf("%s: %v\n%s", name, err, out.String())
	return "", -1
}

// TestAPILint serves the whole REST API, downloads /openapi.json and
// /asyncapi.json over HTTP, and runs Redocly's and Spectral's recommended
// rules on the first and the AsyncAPI parser on the second. Any error or
// warning fails: routes added later are linted too, since the documents are
// generated from the registered routes and the WebSocket frame types.
func TestAPILint(t *testing.T) {
	dir := apiLinters(t)
	// The whole API: REST, API keys, models, usage and budgets, and the
	// OpenAI-compatible routes.
	db := persisttest.SQLite(t)
	env := startKeyNode(t, db, restConfig{models: testModels(), budgets: testBudgets(t, db, nil)}, nil)
	tmp := t.TempDir()
	for _, name := range []string{"openapi.json", "asyncapi.json"} {
		res, body := get(t, env.url+"/"+name, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /%s: %d %s", name, res.StatusCode, body)
		}
		if err := os.WriteFile(filepath.Join(tmp, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	openapi, asyncapi := filepath.Join(tmp, "openapi.json"), filepath.Join(tmp, "asyncapi.json")
	bin := func(name string) string { return filepath.Join(dir, "node_modules", ".bin", name) }

	t.Run("redocly", func(t *testing.T) {
		t.Parallel()
		out, code := runLinter(t, dir, bin("redocly"), "lint", "--config", "redocly.yaml", "--format", "json", "--max-problems", "1000", openapi)
		var report struct {
			Totals   struct{ Errors, Warnings, Ignored int } `json:"totals"`
			Problems []struct {
				RuleID   string `json:"ruleId"`
				Severity string `json:"severity"`
				Message  string `json:"message"`
				Location []struct {
					Pointer string `json:"pointer"`
				} `json:"location"`
			} `json:"problems"`
		}
		// The JSON report starts on a line of its own; notices may come
		// before it and a summary after it.
		start := strings.Index(out, "\n{")
		if start < 0 || json.NewDecoder(strings.NewReader(out[start:])).Decode(&report) != nil {
			t.Fatalf("redocly (exit %d) printed no JSON report:\n%s", code, out)
		}
		for _, p := range report.Problems {
			where := ""
			if len(p.Location) > 0 {
				where = p.Location[0].Pointer
			}
			t.Errorf("redocly %s %s at %s: %s", p.Severity, p.RuleID, where, p.Message)
		}
		if code != 0 || report.Totals.Errors+report.Totals.Warnings+report.Totals.Ignored > 0 {
			t.Errorf("redocly: exit %d, %d errors, %d warnings, %d ignored", code, report.Totals.Errors, report.Totals.Warnings, report.Totals.Ignored)
		}
	})
	t.Run("spectral", func(t *testing.T) {
		t.Parallel()
		out, code := runLinter(t, dir, bin("spectral"), "lint", "--ruleset", ".spectral.yaml", "--fail-severity", "hint",
			"--format", "text", openapi)
		if code != 0 {
			t.Errorf("spectral: exit %d:\n%s", code, out)
		}
	})
	t.Run("asyncapi", func(t *testing.T) {
		t.Parallel()
		out, code := runLinter(t, dir, "node", "asyncapi.mjs", asyncapi)
		if code != 0 {
			t.Errorf("asyncapi parser: exit %d:\n%s", code, out)
		}
	})
}
