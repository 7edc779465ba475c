package main

import (
	"bytes"
	"encoding/json"

	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// postJSON posts body to url and returns the status and response body.
func postJSON(t *testing.T, url string, body any) (int, string) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(url, "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(out)
}

// login reports the status of a sign-in of email on the node at addr.
func login(t *testing.T, addr, email string) int {
	t.Helper()
	code, _ := postJSON(t, "http://"+addr+"/api/v1/auth/login", map[string]string{"email": email, "password": "s3cret-passw0rd"})
	return code
}

// A backup taken while the node serves holds what was written before it;
// restore refuses while the node runs and without --force, then, after the
// node died, brings the database back to the backup: later writes are gone
// (the dead node's WAL is not replayed), earlier ones are there.
func TestBackupAndRestore(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	env := []string{"KOWAI_DATA_DIR=" + data}
	db := filepath.Join(data, "kowai.db")
	backup := filepath.Join(dir, "backup.db")

	addr := freePort(t)
	serveEnv := append(env, "KOWAI_HTTP_ADDR="+addr, "KOWAI_METRICS_ADDR=off")
	n := startServe(t, dir, serveEnv)
	n.waitReady(t, addr)
	// Written through the running node, before the backup.
	if code, body := postJSON(t, "http://"+addr+"/api/v1/auth/register", map[string]string{"email": "before@example.com", "password": "s3cret-passw0rd", "name": "Before"}); code != http.StatusCreated {
		t.Fatalf("register: %d %s", code, body)
	}
	code, out, stderr := kowai(t, dir, env, "", "backup", "--out", backup)
	if code != 0 || !strings.Contains(out, "backed up "+db+" to "+backup+" (schema version ") {
		t.Fatalf("online backup: exit %d, out %q, stderr %q", code, out, stderr)
	}
	assertMode(t, backup, 0o600)
	if code, _, stderr := kowai(t, dir, env, "", "backup", "--out", backup); code != 2 || !strings.Contains(stderr, "exists; choose a new file") {
		t.Errorf("backup onto an existing file: exit %d, stderr %q", code, stderr)
	}
	// Written after the backup.
	if code, body := postJSON(t, "http://"+addr+"/api/v1/auth/register", map[string]string{"email": "after@example.com", "password": "s3cret-passw0rd", "name": "After"}); code != http.StatusCreated {
		t.Fatalf("register: %d %s", code, body)
	}
	// The node has the database open: even --force is refused, and the
	// node goes on serving the data it had.
	code, _, stderr = kowai(t, dir, env, "", "restore", backup, "--force")
	if code != 1 || !strings.Contains(stderr, "in use") || !strings.Contains(stderr, "stop it first") {
		t.Fatalf("restore under a running node: exit %d, stderr %q", code, stderr)
	}
	if got := login(t, addr, "after@example.com"); got != http.StatusOK {
		t.Fatalf("after a refused restore the node lost a user: login %d", got)
	}
	// The node dies without a checkpoint: its WAL still holds the later
	// writes, and must not be replayed onto the restored database.
	if err := n.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	n.done <- <-n.done
	if _, err := os.Stat(db + "-wal"); err != nil {
		t.Fatalf("a killed node left no WAL to test with: %v", err)
	}

	code, _, stderr = kowai(t, dir, env, "", "restore", backup)
	if code != 1 || !strings.Contains(stderr, "pass --force to replace it") {
		t.Fatalf("restore onto an existing database without --force: exit %d, stderr %q", code, stderr)
	}
	code, out, stderr = kowai(t, dir, env, "", "restore", backup, "--force")
	if code != 0 || !strings.Contains(out, "restored "+db+" from "+backup) {
		t.Fatalf("restore: exit %d, out %q, stderr %q", code, out, stderr)
	}
	assertMode(t, db, 0o600)
	for _, side := range []string{db + "-wal", db + "-shm", db + ".restoring"} {
		if _, err := os.Stat(side); !os.IsNotExist(err) {
			t.Errorf("%s left behind after restore: %v", side, err)
		}
	}

	n = startServe(t, dir, serveEnv)
	n.waitReady(t, addr)
	if got := login(t, addr, "before@example.com"); got != http.StatusOK {
		t.Errorf("a user written before the backup: login %d, want 200", got)
	}
	if got := login(t, addr, "after@example.com"); got != http.StatusUnauthorized {
		t.Errorf("a user written after the backup: login %d, want 401", got)
	}
	n.stop(t)
}

// Restore into an empty data directory creates the database; a restore from
// a file that is not a kowai database changes nothing.
func TestRestoreChecksTheBackup(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	if code, _, stderr := kowai(t, dir, []string{"KOWAI_DATABASE_URL=sqlite://" + src}, "", "migrate", "up"); code != 0 {
		t.Fatalf("migrate: %s", stderr)
	}
	backup := filepath.Join(dir, "b.db")
	if code, _, stderr := kowai(t, dir, []string{"KOWAI_DATABASE_URL=sqlite://" + src}, "", "backup", "--out", backup); code != 0 {
		t.Fatalf("backup: %s", stderr)
	}
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not sqlite "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.db") // a SQLite database without kowai's schema
	if code, _, stderr := kowai(t, dir, []string{"KOWAI_DATABASE_URL=sqlite://" + empty}, "", "migrate", "status"); code != 0 {
		t.Fatalf("status: %s", stderr)
	}
	target := filepath.Join(dir, "fresh", "kowai.db")
	env := []string{"KOWAI_DATA_DIR=" + filepath.Join(dir, "fresh")}
	for _, tc := range []struct {
		file     string
		mentions string
	}{
		{garbage, "not a SQLite database"},
		{filepath.Join(dir, "missing.db"), "no such file"},
		{empty, "no migration applied"},
		{dir, "not a regular file"},
	} {
		code, _, stderr := kowai(t, dir, env, "", "restore", tc.file)
		if code != 1 || !strings.Contains(stderr, "not a usable backup") || !strings.Contains(stderr, tc.mentions) {
			t.Errorf("restore %s: exit %d, stderr %q; want exit 1 mentioning %q", tc.file, code, stderr, tc.mentions)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Fatalf("a refused restore created %s", target)
		}
	}
	if code, out, stderr := kowai(t, dir, env, "", "restore", backup); code != 0 || !strings.Contains(out, "restored") {
		t.Fatalf("restore into an empty data directory: exit %d, out %q, stderr %q", code, out, stderr)
	}
	if code, out, _ := kowai(t, dir, env, "", "migrate", "status"); code != 0 || strings.Contains(out, "pending") {
		t.Errorf("the restored database is not migrated:\n%s", out)
	}
}

func TestBackupBadInput(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "b.db")
	for _, tc := range []struct {
		env      []string
		args     []string
		code     int
		mentions string
	}{
		{nil, []string{"backup"}, 2, "--out is required"},
		{nil, []string{"backup", "--out", out, "extra"}, 2, "unexpected argument"},
		{[]string{"KOWAI_DATABASE_URL=mysql://kowai:kowai@127.0.0.1:1/kowai"}, []string{"backup", "--out", out}, 2, "mariadb-dump --single-transaction"},
		{[]string{"KOWAI_DATABASE_URL=mysql://kowai:kowai@127.0.0.1:1/kowai"}, []string{"restore", out}, 2, "mariadb-dump --single-transaction"},
		{nil, []string{"restore"}, 2, "one backup file"},
		{nil, []string{"restore", "a", "b"}, 2, "one backup file"},
		// No database yet: backing up would create an empty one.
		{[]string{"KOWAI_DATA_DIR=" + filepath.Join(dir, "none")}, []string{"backup", "--out", out}, 1, "no database to back up"},
	} {
		code, _, stderr := kowai(t, dir, tc.env, "", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.mentions) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v %v: exit %d, stderr %q; want exit %d and one line mentioning %q", tc.env, tc.args, code, stderr, tc.code, tc.mentions)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("%v: wrote %s", tc.args, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "none")); !os.IsNotExist(err) {
		t.Errorf("backup without a database created its data directory")
	}
}

// health exits 0 when the liveness route answers 200, 1 otherwise, and
// finds a node from KOWAI_HTTP_ADDR without --url.
func TestHealth(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	n := startServe(t, dir, []string{"KOWAI_HTTP_ADDR=" + addr, "KOWAI_METRICS_ADDR=off"})
	n.waitReady(t, addr)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	for _, tc := range []struct {
		env      []string
		args     []string
		code     int
		mentions string
	}{
		{nil, []string{"health", "--url", "http://" + addr + "/health/live"}, 0, ""},
		{[]string{"KOWAI_HTTP_ADDR=" + addr}, []string{"health"}, 0, ""},
		{nil, []string{"health", "--http-addr", addr}, 0, ""},
		{nil, []string{"health", "--url", down.URL + "/health/live"}, 1, "503 Service Unavailable"},
		{nil, []string{"health", "--url", "http://" + freePort(t) + "/health/live"}, 1, "connection refused"},
		{nil, []string{"health", "--url", "ftp://x/"}, 2, "absolute http or https URL"},
		{nil, []string{"health", "--timeout", "0s"}, 2, "positive duration"},
		{nil, []string{"health", "extra"}, 2, "unexpected argument"},
	} {
		code, _, stderr := kowai(t, dir, tc.env, "", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.mentions) {
			t.Errorf("%v %v: exit %d, stderr %q; want exit %d mentioning %q", tc.env, tc.args, code, stderr, tc.code, tc.mentions)
		}
	}
	n.stop(t)
}

func TestLiveURL(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:8080", "http://127.0.0.1:8080/health/live"},
		{":8080", "http://127.0.0.1:8080/health/live"},
		{"0.0.0.0:9000", "http://127.0.0.1:9000/health/live"},
		{"[::]:9000", "http://127.0.0.1:9000/health/live"},
		{"[::1]:9000", "http://[::1]:9000/health/live"},
		{"node1.internal:80", "http://node1.internal:80/health/live"},
	} {
		if got := liveURL(tc.addr); got != tc.want {
			t.Errorf("liveURL(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}
