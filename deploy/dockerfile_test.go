package deploy

import (
	"bufio"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

// stage is one FROM and the instructions under it.
type stage struct {
	image, name string
	ins         []instruction
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// parseDockerfile splits a Dockerfile into stages (instructions before the
// first FROM, such as global ARGs, form a stage with no image).
func parseDockerfile(t *testing.T, raw string) []stage {
	t.Helper()
	stages := []stage{{}}
	sc := bufio.NewScanner(strings.NewReader(raw))
	var cur strings.Builder
	start, n := 0, 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(line, "#") {
			continue // comments inside a continued instruction are dropped
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			s := stage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			continue
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	if cur.Len() > 0 {
		t.Fatalf("Dockerfile ends inside a continued instruction")
	}
	return stages
}

// execForm decodes a JSON-array (exec form) argument list.
func execForm(t *testing.T, in instruction, args string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(args), &out); err != nil {
		t.Errorf("line %d: %s %s is not in exec form (a JSON array): %v", in.line, in.cmd, args, err)
	}
	return out
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// The image: a Go build stage and a minimal runtime stage that runs the
// binary as a fixed non-root user with a health check needing no shell, the
// data under a volume, OCI labels, and the version stamped as make build does.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, readRepoFile(t, "Dockerfile"))
	if len(stages) != 3 {
		t.Fatalf("want global ARGs, a build stage and a runtime stage; got %d stages", len(stages)-1)
	}
	build, run := stages[1], stages[2]
	if !strings.HasPrefix(build.image, "golang:") || build.name != "build" {
		t.Errorf("first stage: FROM %s AS %s; want a golang image named build", build.image, build.name)
	}
	if !regexp.MustCompile(`^(gcr\.io/distroless/static[-\w]*|alpine):[\w.-]+$`).MatchString(run.image) || strings.HasSuffix(run.image, ":latest") {
		t.Errorf("runtime stage FROM %s: want a pinned distroless static or alpine base", run.image)
	}

	// The build stamps version and commit with the Makefile's -X flags.
	var goBuild string
	for _, in := range build.all("RUN") {
		if strings.Contains(in.args, "go build") {
			goBuild = in.args
		}
	}
	makeLD := regexp.MustCompile(`(?m)^LDFLAGS\s*:=\s*(.*)$`).FindStringSubmatch(readRepoFile(t, "Makefile"))
	if makeLD == nil {
		t.Fatal("Makefile has no LDFLAGS")
	}
	stamp := regexp.MustCompile(`-X (main\.\w+)=\$[({](\w+)[)}]`)
	want := stamp.FindAllStringSubmatch(makeLD[1], -1)
	got := stamp.FindAllStringSubmatch(goBuild, -1)
	if len(want) == 0 || len(got) != len(want) {
		t.Errorf("go build stamps %v; the Makefile stamps %v", got, want)
	}
	args := map[string]bool{}
	for _, in := range build.all("ARG") {
		name, _, _ := strings.Cut(in.args, "=")
		args[name] = true
	}
	for i := range min(len(got), len(want)) {
		if got[i][1] != want[i][1] || got[i][2] != want[i][2] {
			t.Errorf("go build sets %s from %s; the Makefile sets %s from %s", got[i][1], got[i][2], want[i][1], want[i][2])
		}
		if !args[got[i][2]] {
			t.Errorf("the build stage has no ARG %s for %s", got[i][2], got[i][1])
		}
	}
	if !strings.Contains(goBuild, "./cmd/kowai") {
		t.Errorf("no go build of ./cmd/kowai in the build stage: %q", goBuild)
	}

	// The runtime stage: no shell needed, nothing run in it.
	if r := run.all("RUN"); len(r) > 0 {
		t.Errorf("line %d: the runtime stage runs commands; a distroless base has no shell", r[0].line)
	}
	var binary string
	for _, in := range run.all("COPY") {
		f := strings.Fields(in.args)
		if strings.HasPrefix(f[0], "--from=build") && strings.HasSuffix(f[len(f)-2], "/kowai") {
			binary = f[len(f)-1]
		}
	}
	if binary == "" {
		t.Fatal("the runtime stage does not copy the kowai binary from the build stage")
	}
	users := run.all("USER")
	if len(users) != 1 {
		t.Fatalf("want one USER in the runtime stage, got %d", len(users))
	}
	uid, gid, _ := strings.Cut(users[0].args, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("USER %s: want a fixed non-zero numeric UID (Kubernetes' runAsNonRoot checks numbers)", users[0].args)
	}
	if n, err := strconv.Atoi(gid); err != nil || n == 0 {
		t.Errorf("USER %s: want a fixed non-zero numeric GID", users[0].args)
	}
	hc := run.all("HEALTHCHECK")
	if len(hc) != 1 {
		t.Fatalf("want one HEALTHCHECK, got %d", len(hc))
	}
	_, cmdArgs, ok := strings.Cut(hc[0].args, "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %s has no CMD", hc[0].args)
	}
	if c := execForm(t, hc[0], cmdArgs); len(c) < 2 || c[0] != binary || c[1] != "health" {
		t.Errorf("HEALTHCHECK CMD %v: want [%s health ...] in exec form (no shell in the image)", c, binary)
	}
	for _, cmd := range []string{"ENTRYPOINT", "CMD"} {
		if in := run.all(cmd); len(in) != 1 {
			t.Errorf("want one %s in the runtime stage", cmd)
		} else if c := execForm(t, in[0], in[0].args); len(c) == 0 {
			t.Errorf("%s is empty", cmd)
		}
	}
	if e := run.all("ENTRYPOINT"); len(e) == 1 && !strings.Contains(e[0].args, binary) {
		t.Errorf("ENTRYPOINT %s does not run %s", e[0].args, binary)
	}

	text := func(cmd string) string {
		var b strings.Builder
		for _, in := range run.all(cmd) {
			b.WriteString(in.args + " ")
		}
		return b.String()
	}
	if !strings.Contains(text("VOLUME"), `"/data"`) || !strings.Contains(text("ENV"), "KOWAI_DATA_DIR=/data") {
		t.Errorf("the data must live on the volume /data: VOLUME %s, ENV %s", text("VOLUME"), text("ENV"))
	}
	if !strings.Contains(text("ENV"), "KOWAI_HTTP_ADDR=0.0.0.0:8080") {
		t.Error("the gateway must listen on every address inside the container (KOWAI_HTTP_ADDR=0.0.0.0:8080)")
	}
	if e := strings.Fields(text("EXPOSE")); !contains(e, "8080") || !contains(e, "9090") {
		t.Errorf("EXPOSE %v: want 8080 (gateway) and 9090 (metrics)", e)
	}
	for _, label := range []string{"title", "source", "version", "revision", "description"} {
		if !strings.Contains(text("LABEL"), "org.opencontainers.image."+label+"=") {
			t.Errorf("no OCI label org.opencontainers.image.%s", label)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// dockerignore is a .dockerignore: the last pattern that matches a path (or
// one of its parent directories) decides, and "!" re-includes.
type dockerignore []struct {
	re     *regexp.Regexp
	negate bool
}

func parseDockerignore(raw string) dockerignore {
	var out dockerignore
	for _, line := range strings.Split(raw, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		neg := strings.HasPrefix(line, "!")
		line = strings.TrimPrefix(strings.TrimPrefix(line, "!"), "/")
		var re strings.Builder
		for i := 0; i < len(line); i++ {
			switch {
			case strings.HasPrefix(line[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case line[i] == '*':
				re.WriteString("[^/]*")
			case line[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(line[i : i+1]))
			}
		}
		out = append(out, struct {
			re     *regexp.Regexp
			negate bool
		}{regexp.MustCompile("^" + re.String() + "$"), neg})
	}
	return out
}

func (d dockerignore) excluded(path string) bool {
	ex := false
	for _, p := range d {
		for prefix := path; prefix != "."; prefix = filepath.Dir(prefix) {
			if p.re.MatchString(prefix) {
				ex = !p.negate
				break
			}
		}
	}
	return ex
}

// The build context the Dockerfile sees (the repository less .dockerignore)
// holds no local state and every file the image's build compiles or embeds.
func TestDockerBuildContext(t *testing.T) {
	ignore := parseDockerignore(readRepoFile(t, ".dockerignore"))
	for path, want := range map[string]bool{
		".git/config": true, "bin/kowai": true, "data/kowai.db": true, "cmd/kowai/data/x.db": true,
		"persistence/testdata/x": true, "README.md": false, "docs/architecture.md": true,
		"go.mod": false, "go.sum": false, "cmd/kowai/main.go": false, "migrations/sqlite/0001_init.up.sql": false,
	} {
		if got := ignore.excluded(path); got != want {
			t.Errorf(".dockerignore excludes %s: %v, want %v", path, got, want)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	ctxDir := t.TempDir()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		if ignore.excluded(filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(ctxDir, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(ctxDir, rel), raw, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Compiling the copy would take minutes on a cold cache (-trimpath and
	// the k8s tag change every cache key); listing what the build would
	// compile, and checking it is the same as in the repository, is exact.
	inRepo, inContext := buildFiles(t, root), buildFiles(t, ctxDir)
	if len(inRepo) < 50 {
		t.Fatalf("go list found only %d files of kowai's build; the listing is broken", len(inRepo))
	}
	for f := range inRepo {
		if !inContext[f] {
			t.Errorf("the build context lacks %s, which the image's build compiles or embeds", f)
		}
	}

}

// buildFiles lists, relative to dir, the Go and embedded files of kowai's own
// packages that `go build -tags k8s ./cmd/kowai` (the image's build) reads
// in dir; a package that cannot be loaded fails the test.
func buildFiles(t *testing.T, dir string) map[string]bool {
	t.Helper()
	cmd := exec.Command("go", "list", "-tags", "k8s", "-deps", "-json=Dir,ImportPath,Module,GoFiles,EmbedFiles,Error,DepsErrors", "./cmd/kowai")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list in %s: %v\n%s", dir, err, stderr)
	}
	files := map[string]bool{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			Dir, ImportPath     string
			Module              *struct{ Path string }
			GoFiles, EmbedFiles []string
			Error               *struct{ Err string }
			DepsErrors          []*struct{ Err string }
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Error != nil {
			t.Errorf("%s: %s", p.ImportPath, p.Error.Err)
		}
		if p.Module == nil || p.Module.Path != "github.com/kowai/kowai" {
			continue
		}
		rel, err := filepath.Rel(dir, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			files[filepath.ToSlash(filepath.Join(rel, f))] = true
		}
	}
	return files
}
