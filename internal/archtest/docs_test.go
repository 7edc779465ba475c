package archtest

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestArchitectureDocCoversPackages keeps docs/architecture.md true as the
// module grows: every top-level directory holding Go code must appear in its
// package list, so adding a package forces a line about it.
func TestArchitectureDocCoversPackages(t *testing.T) {
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatalf("docs/architecture.md: %v", err)
	}
	dirs := goDirs(t, root)
	if len(dirs) < 5 {
		t.Fatalf("found only %d top-level Go directories; the walk is broken", len(dirs))
	}
	for _, d := range dirs {
		if !strings.Contains(string(doc), d+"/") {
			t.Errorf("docs/architecture.md does not mention the top-level package %s/", d)
		}
	}
}

// goDirs lists the top-level directories of root that contain Go files at
// any depth (testdata, hidden and build directories aside).
func goDirs(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || strings.HasPrefix(name, ".") || name == "bin" || name == "data" || name == "node_modules" {
			continue
		}
		found := false
		err := filepath.WalkDir(filepath.Join(root, name), func(path string, d fs.DirEntry, err error) error {
			if err != nil || found {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			found = !d.IsDir() && strings.HasSuffix(path, ".go")
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if found {
			out = append(out, name)
		}
	}
	return out
}
