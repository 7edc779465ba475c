package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/kowai/kowai"

// rule forbids packages under from (module-relative), other than those under
// exempt, to depend, directly or transitively, on packages under any of deny,
// except those under allow.
type rule struct {
	from   string
	exempt []string
	deny   []string
	allow  []string
	why    string
}

// rules are the dependency rules of docs/architecture.md.
var rules = []rule{
	{from: "signatures", deny: []string{""}, allow: []string{"signatures"}, why: "signatures is a library over langchaingo and imports no other kowai package"},
	{from: "agents", deny: []string{""}, allow: []string{"agents", "signatures", "internal/jsonschema"}, why: "the agent catalog compiles programs from signatures (and derives config schemas); it never touches persistence, actors, cluster or gateway"},
	{from: "persistence", deny: []string{"actors", "cluster", "gateway", "signatures", "supervisors"}, why: "persistence sits below every other layer"},
	{from: "supervisors", deny: []string{"actors", "cluster", "gateway", "persistence", "signatures"}, why: "supervision policy is independent of what it supervises"},
	{from: "actors", deny: []string{"gateway", "cluster"}, why: "actors get a caller interface injected; cluster implements it"},
	{from: "workflows", deny: []string{""}, allow: []string{"workflows", "signatures", "internal/jsonschema", "internal/jsontext"}, why: "workflows describes programs: it imports only signatures and leaf helpers, never persistence, cluster, gateway or actors"},
	{from: "gateway", deny: []string{"actors"}, allow: []string{"actors/actorpb"}, why: "the gateway talks to actors through cluster's grain client and may import only the protocol (actors/actorpb)"},
	{from: "", deny: []string{"cmd"}, why: "only cmd/kowai wires implementations; nothing imports it"},
	{from: "", exempt: []string{"cmd"}, deny: []string{"node"}, why: "node is the composition root that cmd/kowai calls; no library package depends on it"},
	{from: "internal", deny: []string{""}, allow: []string{"internal"}, why: "internal/ holds leaves (configuration as plain values, logging, test helpers...): it imports no kowai domain package; node translates the configuration into each package's options"},
	{from: "console", deny: []string{""}, allow: []string{"console"}, why: "the console is static files that reach kowai only through the public API; it imports no other kowai package"},
}

// exempted reports whether pkg is under one of prefixes.
func exempted(pkg string, prefixes []string) bool {
	for _, p := range prefixes {
		if under(pkg, p) {
			return true
		}
	}
	return false
}

func under(pkg, prefix string) bool {
	return prefix == "" || pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

// violations returns, for the import graph g (module-relative package ->
// module-relative imports), every path that breaks a rule.
func violations(g map[string][]string) []string {
	var out []string
	for _, r := range rules {
		for pkg := range g {
			if !under(pkg, r.from) || exempted(pkg, r.exempt) {
				continue
			}
			for dep, via := range closure(g, pkg) {
				if dep == pkg || under(dep, r.from) && r.from != "" {
					continue
				}
				allowed := false
				for _, a := range r.allow {
					allowed = allowed || under(dep, a)
				}
				for _, d := range r.deny {
					if under(dep, d) && !allowed {
						out = append(out, pkg+" -> "+via+": "+r.why)
					}
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// closure maps every package reachable from start to the import chain that
// reaches it.
func closure(g map[string][]string, start string) map[string]string {
	seen := map[string]string{start: start}
	queue := []string{start}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, d := range g[p] {
			if _, ok := seen[d]; !ok {
				seen[d] = seen[p] + " -> " + d
				queue = append(queue, d)
			}
		}
	}
	return seen
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// importGraph parses the non-test Go files of the module and returns its
// internal import graph, module-relative.
func importGraph(t *testing.T, root string) map[string][]string {
	t.Helper()
	g := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "data" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		if _, ok := g[pkg]; !ok {
			g[pkg] = nil
		}
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			if p == module {
				g[pkg] = append(g[pkg], "")
			} else if strings.HasPrefix(p, module+"/") {
				g[pkg] = append(g[pkg], strings.TrimPrefix(p, module+"/"))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestDependencyRules(t *testing.T) {
	g := importGraph(t, repoRoot(t))
	if len(g) < 3 {
		t.Fatalf("found only %d packages; the walk is broken", len(g))
	}
	for _, v := range violations(g) {
		t.Error(v)
	}
}

// TestRulesCatchViolations proves the checker fails on forbidden imports,
// direct and transitive, and accepts the allowed ones.
func TestRulesCatchViolations(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    map[string][]string
		bad  bool
	}{
		{"signatures imports persistence", map[string][]string{"signatures": {"persistence"}, "persistence": nil}, true},
		{"signatures imports internal", map[string][]string{"signatures": {"internal/logging"}, "internal/logging": nil}, true},
		{"signatures/lm inside signatures", map[string][]string{"signatures": {"signatures/lm"}, "signatures/lm": nil}, false},
		{"persistence transitively imports actors", map[string][]string{"persistence": {"internal/x"}, "internal/x": {"actors"}, "actors": nil}, true},
		{"supervisors imports signatures", map[string][]string{"supervisors": {"signatures/lm"}, "signatures/lm": nil}, true},
		{"actors imports cluster", map[string][]string{"actors": {"cluster"}, "cluster": nil}, true},
		{"actors imports persistence", map[string][]string{"actors": {"persistence"}, "persistence": nil}, false},
		{"gateway imports actor implementation", map[string][]string{"gateway": {"actors"}, "actors": nil}, true},
		{"gateway imports protocol", map[string][]string{"gateway": {"actors/actorpb"}, "actors/actorpb": nil}, false},
		{"gateway imports cluster", map[string][]string{"gateway": {"cluster"}, "cluster": nil}, false},
		{"workflows imports persistence", map[string][]string{"workflows": {"persistence"}, "persistence": nil}, true},
		{"workflows imports actors", map[string][]string{"workflows": {"actors"}, "actors": nil}, true},
		{"workflows imports signatures and jsonschema", map[string][]string{"workflows": {"signatures/lm", "internal/jsonschema"}, "signatures/lm": nil, "internal/jsonschema": nil}, false},
		{"agents imports persistence", map[string][]string{"agents": {"persistence"}, "persistence": nil}, true},
		{"agents imports actors", map[string][]string{"agents": {"actors/actorpb"}, "actors/actorpb": nil}, true},
		{"agents imports signatures and jsonschema", map[string][]string{"agents": {"signatures/lm", "internal/jsonschema"}, "signatures/lm": nil, "internal/jsonschema": nil}, false},
		{"anyone imports cmd", map[string][]string{"gateway": {"cmd/kowai"}, "cmd/kowai": nil}, true},
		{"cmd/kowai runs a node", map[string][]string{"cmd/kowai": {"node"}, "node": {"gateway", "actors"}, "gateway": nil, "actors": nil}, false},
		{"gateway imports node", map[string][]string{"gateway": {"node"}, "node": nil}, true},
		{"actors transitively imports node", map[string][]string{"actors": {"internal/x"}, "internal/x": {"node"}, "node": nil}, true},
		{"node imports cmd", map[string][]string{"node": {"cmd/kowai"}, "cmd/kowai": nil}, true},
		{"config imports lm", map[string][]string{"internal/config": {"signatures/lm"}, "signatures/lm": nil}, true},
		{"config imports ratelimit", map[string][]string{"internal/config": {"gateway/ratelimit"}, "gateway/ratelimit": nil}, true},
		{"internal imports internal", map[string][]string{"internal/tracing": {"internal/logging"}, "internal/logging": nil}, false},
		{"console imports gateway", map[string][]string{"console": {"gateway"}, "gateway": nil}, true},
		{"gateway serves the console", map[string][]string{"gateway": {"console"}, "console": nil}, false},
	} {
		if got := len(violations(tc.g)) > 0; got != tc.bad {
			t.Errorf("%s: violation=%v, want %v (%v)", tc.name, got, tc.bad, violations(tc.g))
		}
	}
}

// TestTopLevelDocs requires a doc.go in every top-level package.
func TestTopLevelDocs(t *testing.T) {
	root := repoRoot(t)
	for _, dir := range []string{"actors", "agents", "supervisors", "gateway", "persistence", "signatures", "cluster", "migrations", "workflows", "console", "node"} {
		if _, err := os.Stat(filepath.Join(root, dir, "doc.go")); err != nil {
			t.Errorf("%s/doc.go: %v", dir, err)
		}
	}
}
