package persistence_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

func TestOpenRejectsMalformedURLs(t *testing.T) {
	tests := []struct {
		url  string
		want string
	}{
		{"", "missing scheme"},
		{"./data/kowai.db", "missing scheme"},
		{"postgres://u:p@h/db", `unknown scheme "postgres"`},
		{"sqlite://", "no file path"},
		{"mysql://127.0.0.1:3306/kowai", "no user"},
		{"mysql://kowai:s3cret@/kowai", "no host"},
		{"mysql://kowai:s3cret@127.0.0.1:3306/", "no database name"},
		{"mysql://kowai:s3cret@127.0.0.1:3306/a/b", "no database name"},
		{"mysql://kowai:s3cret@127.0.0.1:notaport/kowai", "invalid port"},
		{"mysql://kowai:s3cret@127.0.0.1:3306/kowai?readTimeout=soon", "parameters"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := persistence.Open(t.Context(), tt.url, persistence.Options{})
			if !errors.Is(err, persistence.ErrBadURL) {
				t.Fatalf("Open(%q) = %v, want ErrBadURL", tt.url, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not say %q", msg, tt.want)
			}
			if strings.Contains(msg, "s3cret") {
				t.Errorf("error %q leaks the password", msg)
			}
			if !strings.Contains(msg, "://") {
				t.Errorf("error %q does not name the accepted form", msg)
			}
		})
	}
}

func TestOpenUnreachableMySQL(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// Port 1 on loopback refuses connections at once.
	_, err := persistence.Open(ctx, "mysql://kowai:s3cret@127.0.0.1:1/kowai?timeout=2s", persistence.Options{})
	if !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("Open = %v, want ErrUnavailable", err)
	}
	if msg := err.Error(); strings.Contains(msg, "s3cret") || !strings.Contains(msg, "check that MariaDB is running") {
		t.Fatalf("error %q leaks the password or says nothing about what to check", msg)
	}
}

func TestOpenSQLiteUnwritableDirectory(t *testing.T) {
	// A directory cannot be created under a regular file, even by root.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := persistence.Open(t.Context(), "sqlite://"+filepath.Join(file, "data", "kowai.db"), persistence.Options{})
	if !errors.Is(err, persistence.ErrUnavailable) || !strings.Contains(err.Error(), "make it writable or choose another path") {
		t.Fatalf("Open = %v, want ErrUnavailable saying what to do", err)
	}
}

func TestOpenSQLiteCreatesDirectoryAndSetsPragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "kowai.db")
	db := persisttest.Open(t, "sqlite://"+path)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not created: %v", err)
	}
	if db.Dialect != persistence.DialectSQLite || db.String() != "sqlite://"+path {
		t.Fatalf("Dialect %q, String %q", db.Dialect, db.String())
	}
	for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "5000", "synchronous": "2"} {
		var got string
		if err := db.SQL.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil || got != want {
			t.Errorf("PRAGMA %s = %q, %v; want %q", pragma, got, err, want)
		}
	}
}

// The database holds password hashes and conversations: a new one is created
// in a directory only its owner can enter, and the file, its WAL and its
// shared memory are readable by their owner only, whatever the umask.
func TestOpenSQLiteFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "kowai.db")
	db := persisttest.Open(t, "sqlite://"+path)
	if _, err := db.SQL.ExecContext(t.Context(), "CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600, path + "-wal": 0o600, path + "-shm": 0o600} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: %v, mode %v; want %04o", filepath.Base(p), err, st.Mode().Perm(), want)
		}
	}
}

// A database file left readable by others (an older kowai, a copy) is
// tightened on open.
func TestOpenSQLiteTightensLooseFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kowai.db")
	for _, p := range []string{path, path + "-wal"} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	persisttest.Open(t, "sqlite://"+path)
	for _, p := range []string{path, path + "-wal"} {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o; want 0600", filepath.Base(p), st.Mode().Perm())
		}
	}
}

func TestOpenMySQLRedactsPassword(t *testing.T) {
	db := persisttest.MySQL(t)
	if db.Dialect != persistence.DialectMySQL {
		t.Fatalf("Dialect = %q", db.Dialect)
	}
	var charset string
	if err := db.SQL.QueryRowContext(t.Context(), "SELECT @@character_set_connection").Scan(&charset); err != nil || charset != "utf8mb4" {
		t.Fatalf("connection charset = %q, %v; want utf8mb4", charset, err)
	}
	if err := db.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestTimesRoundTripInUTC(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		local := time.FixedZone("UTC+9", 9*3600)
		at := time.Date(2025, 6, 30, 23, 59, 59, 987654321, local)
		c, err := persistence.NewConversationStore(db).Create(t.Context(), persistence.Conversation{OwnerID: seedUser(t, db).ID, CreatedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		got, err := persistence.NewConversationStore(db).Get(t.Context(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := at.UTC().Truncate(time.Microsecond)
		if !got.CreatedAt.Equal(want) || got.CreatedAt.Location() != time.UTC {
			t.Fatalf("CreatedAt = %v (%v), want %v in UTC", got.CreatedAt, got.CreatedAt.Location(), want)
		}
	})
}

func TestIsRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("plain"), false},
		{&mysql.MySQLError{Number: 1213, Message: "deadlock"}, true},
		{&mysql.MySQLError{Number: 1205, Message: "lock wait timeout"}, true},
		{fmt.Errorf("wrapped: %w", &mysql.MySQLError{Number: 1213}), true},
		{&mysql.MySQLError{Number: 1062, Message: "duplicate"}, false},
		{mysql.ErrInvalidConn, true},
		{persistence.ErrConflict, false},
		{context.DeadlineExceeded, false},
	}
	for _, tt := range tests {
		if got := persistence.IsRetryable(tt.err); got != tt.want {
			t.Errorf("IsRetryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestPoolCollector(t *testing.T) {
	db := persisttest.EmptySQLite(t)
	reg := prometheus.NewRegistry()
	if err := reg.Register(persistence.NewPoolCollector(db, "kowai")); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "go_sql_max_open_connections" {
			if v := f.GetMetric()[0].GetGauge().GetValue(); v != 1 {
				t.Fatalf("max open connections = %v, want 1 for SQLite", v)
			}
			return
		}
	}
	t.Fatal("pool metrics not collected")
}
