package deploy

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
)

// The CI workflow passes actionlint (pinned in go.mod as a tool: go tool
// actionlint), and runs the project's test command and scans.
func TestCIWorkflow(t *testing.T) {
	path := filepath.Join("..", ".github", "workflows", "ci.yml")
	var out bytes.Buffer
	linter, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := linter.LintFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Errorf("actionlint: %s", e.Error())
	}
	wf := readFile(t, path)
	for _, want := range []string{"make test", "make tidy-check", "govulncheck", "gosec", "-exclude-generated", "sbom: true", "mariadb:", "redis:", "etcd-server"} {
		if !strings.Contains(wf, want) {
			t.Errorf("ci.yml does not mention %q", want)
		}
	}
}
