package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/migrations"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm/lmtest"
)

// serveProc is a `kowai serve` process started by startServe.
type serveProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs strings.Builder
	done chan error
}

// startServe starts `kowai serve` in dir with env added to a clean
// environment; it is killed when the test ends.
func startServe(t *testing.T, dir string, env []string) *serveProc {
	t.Helper()
	n := &serveProc{cmd: exec.Command(binary, "serve"), done: make(chan error, 1)}
	n.cmd.Dir = dir
	n.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			n.mu.Lock()
			n.logs.WriteString(sc.Text() + "\n")
			n.mu.Unlock()
		}
		n.done <- n.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = n.cmd.Process.Kill()
		<-n.done
	})
	return n
}

func (n *serveProc) log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.logs.String()
}

// waitReady polls http://addr/health/ready until it answers 200.
func (n *serveProc) waitReady(t *testing.T, addr string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		select {
		case err := <-n.done:
			n.done <- err
			return testenv.Stop{Err: errors.New("serve exited: " + n.log())}
		default:
		}
		res, err := http.Get("http://" + addr + "/health/ready")
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return errors.New(res.Status)
		}
		return nil
	})
}

// stop sends SIGTERM and waits for a clean exit.
func (n *serveProc) stop(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-n.done:
		n.done <- err
		if err != nil {
			t.Fatalf("serve did not exit 0 after SIGTERM: %v\n%s", err, n.log())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit within 30 s of SIGTERM")
	}
}

// assertMode fails unless path exists with exactly the permission bits want.
func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	if got := st.Mode().Perm(); got != want {
		t.Errorf("%s: mode %04o, want %04o", path, got, want)
	}
}

// Every command that opens the embedded database finds it in KOWAI_DATA_DIR,
// creates that directory for its owner only and the database file readable
// by its owner only.
func TestDataDirHoldsThePrivateDatabase(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "state", "kowai")
	env := []string{"KOWAI_DATA_DIR=" + data}
	db := filepath.Join(data, "kowai.db")

	if code, out, stderr := kowai(t, dir, env, "", "migrate", "up"); code != 0 || !strings.Contains(out, fmt.Sprintf("applied %d migration(s)", migrationCount(t))) {
		t.Fatalf("migrate up: exit %d, out %q, stderr %q", code, out, stderr)
	}
	assertMode(t, data, 0o700)
	assertMode(t, db, 0o600)
	if code, out, stderr := kowai(t, dir, env, "", "migrate", "status"); code != 0 || !strings.Contains(out, "applied") || strings.Contains(out, "pending") {
		t.Fatalf("migrate status: exit %d, out %q, stderr %q", code, out, stderr)
	}
	// user create finds the migrated database there (a fresh one would lack
	// the users table).
	if code, out, stderr := kowai(t, dir, env, "s3cret-passw0rd\n", "user", "create", "--email", "ops@example.com", "--role", "admin"); code != 0 || !strings.Contains(out, "created user") {
		t.Fatalf("user create: exit %d, out %q, stderr %q", code, out, stderr)
	}
	addr := freePort(t)
	n := startServe(t, dir, append(env, "KOWAI_HTTP_ADDR="+addr, "KOWAI_METRICS_ADDR=off"))
	n.waitReady(t, addr)
	assertMode(t, db+"-wal", 0o600)
	assertMode(t, db+"-shm", 0o600)
	assertMode(t, filepath.Join(data, "jwt-secret"), 0o600)
	n.stop(t)
	if !strings.Contains(n.log(), `"database":"sqlite://`+db+`"`) {
		t.Errorf("serve did not open %s:\n%s", db, n.log())
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("a command used ./data despite KOWAI_DATA_DIR: %v", err)
	}
}

// On the defaults the gateway listens on 127.0.0.1:8080 only: reachable over
// loopback and refused on every other address of the host. The test needs
// port 8080 free.
func TestDefaultListenerIsLoopbackOnly(t *testing.T) {
	dir := t.TempDir()
	if ln, err := net.Listen("tcp", ":8080"); err != nil {
		t.Fatalf("this test needs port 8080 free: %v", err)
	} else {
		_ = ln.Close()
	}
	// Only the metrics listener is turned off, so that its port is not
	// needed too; KOWAI_HTTP_ADDR keeps its default.
	n := startServe(t, dir, []string{"KOWAI_METRICS_ADDR=off"})
	n.waitReady(t, "127.0.0.1:8080")
	defer n.stop(t)

	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	others := 0
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		others++
		target := net.JoinHostPort(ipn.IP.String(), "8080")
		if c, err := net.DialTimeout("tcp", target, 2*time.Second); err == nil {
			_ = c.Close()
			t.Errorf("the gateway accepts connections on %s; the default must be loopback only", target)
		}
	}
	// Without another address to dial, read the kernel's table of listening
	// sockets: port 8080 (1F90) must be bound to 127.0.0.1 (0100007F) only.
	if others == 0 {
		for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
			raw, err := os.ReadFile(table)
			if err != nil {
				t.Fatalf("no non-loopback address to dial and no %s: %v", table, err)
			}
			for _, line := range strings.Split(string(raw), "\n")[1:] {
				f := strings.Fields(line)
				if len(f) > 3 && f[3] == "0A" && strings.HasSuffix(f[1], ":1F90") && f[1] != "0100007F:1F90" {
					t.Errorf("%s: a socket listens on %s", table, f[1])
				}
			}
		}
	}
	// serve logs JSON by default, through a buffer flushed every 100 ms.
	testenv.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(n.log(), `"msg":"kowai node starting"`) || !strings.Contains(n.log(), `"http_addr":"127.0.0.1:8080"`) {
			return fmt.Errorf("serve's default log is not JSON naming 127.0.0.1:8080:\n%s", n.log())
		}
		return nil
	})
}

// migrate needs only the database: on MariaDB it runs without
// KOWAI_JWT_SECRET (serve still requires it), and a malformed setting it
// does not read does not stop it.
func TestMigrateOnMySQLNeedsNoJWTSecret(t *testing.T) {
	url := persisttest.MySQLURL(t)
	dir := t.TempDir()
	env := []string{"KOWAI_DATABASE_URL=" + url, "KOWAI_LLM_PROVIDER=gpt-5"}
	for _, args := range [][]string{{"migrate", "status"}, {"migrate", "up"}, {"migrate", "down", "1"}} {
		if code, out, stderr := kowai(t, dir, env, "", args...); code != 0 {
			t.Fatalf("%v: exit %d, out %q, stderr %q", args, code, out, stderr)
		}
	}
	if code, _, stderr := kowai(t, dir, []string{"KOWAI_DATABASE_URL=" + url}, "", "serve", "--http-addr", freePort(t)); code != 2 || !strings.Contains(stderr, "KOWAI_JWT_SECRET") {
		t.Fatalf("serve without a secret: exit %d, stderr %q", code, stderr)
	}
}

// migrate down N refuses a count beyond what is applied, changing nothing;
// down --all rolls everything back.
func TestMigrateDownBeyondApplied(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		migrateDownBeyondApplied(t, dir, []string{"KOWAI_DATABASE_URL=sqlite://" + filepath.Join(dir, "k.db")})
	})
	t.Run("mysql", func(t *testing.T) {
		migrateDownBeyondApplied(t, t.TempDir(), []string{"KOWAI_DATABASE_URL=" + persisttest.MySQLURL(t)})
	})
}

func migrateDownBeyondApplied(t *testing.T, dir string, env []string) {
	t.Helper()
	n := migrationCount(t)
	steps := []struct {
		args       []string
		code       int
		out, plain string
	}{
		{[]string{"migrate", "up"}, 0, fmt.Sprintf("applied %d migration(s)", n), ""},
		{[]string{"migrate", "down", fmt.Sprint(n + 3)}, 2, "", fmt.Sprintf("kowai migrate: down %d: only %d migration(s) are applied; roll them all back with down --all\n", n+3, n)},
		{[]string{"migrate", "status"}, 0, "applied", ""},
		{[]string{"migrate", "down", "--all", "3"}, 2, "", "kowai migrate: down --all takes no count\n"},
		{[]string{"migrate", "up", "--all"}, 2, "", "kowai migrate: --all goes with down only\n"},
		{[]string{"migrate", "down", "--all"}, 0, fmt.Sprintf("rolled back %d migration(s); schema at version 0", n), ""},
		{[]string{"migrate", "down", "1"}, 2, "", "kowai migrate: down 1: only 0 migration(s) are applied; roll them all back with down --all\n"},
		{[]string{"migrate", "up"}, 0, fmt.Sprintf("applied %d migration(s)", n), ""},
	}
	for _, s := range steps {
		code, out, stderr := kowai(t, dir, env, "", s.args...)
		if code != s.code || !strings.Contains(out, s.out) || (s.plain != "" && stderr != s.plain) {
			t.Fatalf("%v: exit %d, out %q, stderr %q; want exit %d, out with %q, stderr %q", s.args, code, out, stderr, s.code, s.out, s.plain)
		}
		if s.args[1] == "status" && strings.Contains(out, "pending") {
			t.Fatalf("a refused down changed the schema:\n%s", out)
		}
	}
}

// The administrative commands talk to a person: plain lines on stderr, not
// JSON records, unless a log format is asked for.
func TestCommandsLogPlainMessages(t *testing.T) {
	dir := t.TempDir()
	env := []string{"KOWAI_DATABASE_URL=sqlite://" + filepath.Join(dir, "k.db")}
	code, _, stderr := kowai(t, dir, env, "", "migrate", "up")
	if code != 0 || !strings.HasPrefix(stderr, "migration applied: version=1 name=init duration=") || strings.Contains(stderr, "{") || strings.Contains(stderr, "level=") {
		t.Fatalf("migrate up: exit %d, stderr %q; want plain lines", code, stderr)
	}
	code, _, stderr = kowai(t, dir, env, "", "migrate", "down", "1", "--log-format", "json")
	if code != 0 || !strings.HasPrefix(stderr, `{"time":`) || !strings.Contains(stderr, `"msg":"migration reverted"`) {
		t.Fatalf("migrate --log-format json: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = kowai(t, dir, append(env, "KOWAI_LOG_FORMAT=text"), "", "migrate", "up")
	if code != 0 || !strings.Contains(stderr, `level=INFO msg="migration applied"`) {
		t.Fatalf("migrate with KOWAI_LOG_FORMAT=text: exit %d, stderr %q", code, stderr)
	}
}

// optimize against a model that fails every call exits 1 with one line and
// writes no state file.
func TestOptimizeEveryExampleFailed(t *testing.T) {
	examples, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	var replies []lmtest.Reply
	for range 100 {
		replies = append(replies, lmtest.Reply{Status: http.StatusBadRequest, ErrorMessage: "model not found"})
	}
	srv := lmtest.NewOpenAIServer(t, replies...)
	dir := t.TempDir()
	out := filepath.Join(dir, "boolqa.json")
	code, stdout, stderr := kowai(t, dir, []string{"KOWAI_LLM_PROVIDER=openai", "KOWAI_LLM_BASE_URL=" + srv.URL, "KOWAI_LLM_MODEL=missing"}, "",
		"optimize", "--program", "boolqa", "--trainset", filepath.Join(examples, "boolqa-train.jsonl"),
		"--devset", filepath.Join(examples, "boolqa-dev.jsonl"), "--out", out)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	if code != 1 || !strings.HasPrefix(last, "kowai optimize: every evaluation example failed (10 of 10") || strings.Contains(stderr, "optimize: optimize:") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a run where every example failed wrote %s", out)
	}
	if strings.Contains(stdout, "wrote") {
		t.Fatalf("stdout claims a write: %s", stdout)
	}
}

// migrationCount is how many migrations the binary carries (versions are
// assigned per change, so they are not contiguous).
func migrationCount(t *testing.T) int {
	t.Helper()
	ups, err := fs.Glob(migrations.SQLite(), "*.up.sql")
	if err != nil || len(ups) == 0 {
		t.Fatalf("embedded migrations: %v (%d)", err, len(ups))
	}
	return len(ups)
}
