package persisttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kowai/kowai/persistence"
)

// DSNVar names the environment variable holding the base MariaDB URL for tests.
const DSNVar = "KOWAI_TEST_MYSQL_DSN"

// cleanupTimeout bounds closing and dropping a test database; t.Context() is already
// cancelled when cleanups run.
const cleanupTimeout = 30 * time.Second

// Each runs fn as the subtests "sqlite" and "mysql", each on a fresh migrated database.
// The mysql subtest follows MySQLDSN's skip/fail rule.
func Each(t *testing.T, fn func(t *testing.T, db *persistence.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("mysql", func(t *testing.T) { fn(t, MySQL(t)) })
}

// EachEmpty is Each on databases that have not been migrated, for migration tests.
func EachEmpty(t *testing.T, fn func(t *testing.T, db *persistence.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, EmptySQLite(t)) })
	t.Run("mysql", func(t *testing.T) { fn(t, EmptyMySQL(t)) })
}

// SQLite returns a fresh migrated database in a temporary file, closed in Cleanup.
func SQLite(t testing.TB) *persistence.DB {
	t.Helper()
	return migrated(t, EmptySQLite(t))
}

// EmptySQLite returns a fresh database in a temporary file with no tables, closed in Cleanup.
func EmptySQLite(t testing.TB) *persistence.DB {
	t.Helper()
	return Open(t, SQLiteURL(t))
}

// SQLiteURL returns the URL of a new SQLite file in the test's temporary directory.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "kowai.db")
}

// MySQL returns a fresh migrated, uniquely named MariaDB database, dropped in Cleanup.
// It follows MySQLDSN's skip/fail rule.
func MySQL(t testing.TB) *persistence.DB {
	t.Helper()
	return migrated(t, EmptyMySQL(t))
}

// EmptyMySQL returns a fresh uniquely named MariaDB database with no tables, dropped in
// Cleanup.
func EmptyMySQL(t testing.TB) *persistence.DB {
	t.Helper()
	return Open(t, MySQLURL(t))
}

// MySQLURL creates an empty uniquely named database on the server of MySQLDSN, drops it
// in Cleanup, and returns its URL, so a test can open several pools on one database.
func MySQLURL(t testing.TB) string {
	t.Helper()
	base, err := url.Parse(MySQLDSN(t))
	if err != nil {
		t.Fatalf("%s is not a URL: %v", DSNVar, err)
	}
	// information_schema exists on every server and needs no privilege to open, so the
	// base database named in the variable need not exist.
	admin := *base
	admin.Path = "/information_schema"
	adminDB := Open(t, admin.String())
	name := "kowai_t_" + randomHex(t, 8)
	// Identifiers cannot be bound as parameters; name is generated here, never input.
	if _, err := adminDB.SQL.ExecContext(t.Context(), "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatalf("create test database %s: %v", name, err)
	}
	// Cleanups run last-in first-out: this drop runs after the test's pools are closed,
	// and before adminDB is closed.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if _, err := adminDB.SQL.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u := *base
	u.Path = "/" + name
	return u.String()
}

// MySQLDSN returns the base MariaDB URL from KOWAI_TEST_MYSQL_DSN. When it is unset the
// test fails under CI=true and is skipped, loudly, otherwise.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(DSNVar)
	if dsn != "" {
		return dsn
	}
	msg := DSNVar + " is not set, so the MariaDB half of this test cannot run; " +
		"set it, e.g. " + DSNVar + "=mysql://root@127.0.0.1:3306/kowai_test"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: MariaDB is required)")
	}
	t.Skip("SKIPPING MariaDB TEST: " + msg)
	return ""
}

// Open opens rawURL with persistence.Open and closes it in Cleanup.
func Open(t testing.TB, rawURL string) *persistence.DB {
	t.Helper()
	db, err := persistence.Open(t.Context(), rawURL, persistence.Options{MaxOpenConns: 8})
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close test database: %v", err)
		}
	})
	return db
}

func migrated(t testing.TB, db *persistence.DB) *persistence.DB {
	t.Helper()
	m, err := persistence.NewMigrator(db, persistence.MigratorOptions{})
	if err != nil {
		t.Fatalf("read migrations: %v", err)
	}
	if _, err := m.Up(t.Context()); err != nil {
		t.Fatalf("migrate test database: %v", err)
	}
	return db
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random database name: %v", err)
	}
	return hex.EncodeToString(b)
}
