package persistence_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

func newMigrator(t *testing.T, db *persistence.DB, opts persistence.MigratorOptions) *persistence.Migrator {
	t.Helper()
	m, err := persistence.NewMigrator(db, opts)
	if err != nil {
		t.Fatalf("NewMigrator: %v", err)
	}
	return m
}

func tableExists(t *testing.T, db *persistence.DB, table string) bool {
	t.Helper()
	// Selecting from a missing table fails in both dialects; the name is a test constant.
	_, err := db.SQL.ExecContext(t.Context(), "SELECT 1 FROM "+table+" WHERE 1 = 0")
	return err == nil
}

func TestMigrateRoundTrip(t *testing.T) {
	persisttest.EachEmpty(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		m := newMigrator(t, db, persistence.MigratorOptions{})
		if err := m.CheckCurrent(ctx); !errors.Is(err, persistence.ErrSchemaBehind) {
			t.Fatalf("CheckCurrent on empty db = %v, want ErrSchemaBehind", err)
		} else if !strings.Contains(err.Error(), "kowai migrate up") {
			t.Fatalf("ErrSchemaBehind message %q does not name the command", err)
		}
		n, err := m.Up(ctx)
		if err != nil || n != len(mustStatus(t, m)) {
			t.Fatalf("Up = %d, %v", n, err)
		}
		if err := m.CheckCurrent(ctx); err != nil {
			t.Fatalf("CheckCurrent after Up: %v", err)
		}
		for _, st := range mustStatus(t, m) {
			if !st.Applied || st.AppliedAt.IsZero() || st.Dirty || st.Unknown {
				t.Fatalf("status after Up: %+v", st)
			}
		}
		if !tableExists(t, db, "messages") {
			t.Fatal("messages table missing after Up")
		}
		if n, err := m.Up(ctx); err != nil || n != 0 {
			t.Fatalf("second Up = %d, %v; want 0, nil", n, err)
		}
		if n, err := m.Down(ctx, 1); err != nil || n != 1 {
			t.Fatalf("Down(1) = %d, %v", n, err)
		}
		// Versions may have gaps (they are assigned ahead of merging): the one before the latest.
		all := mustStatus(t, m)
		if cur, err := m.Current(ctx); err != nil || cur != all[len(all)-2].Version {
			t.Fatalf("Current after Down(1) = %d, %v; want %d", cur, err, all[len(all)-2].Version)
		}
		if err := m.CheckCurrent(ctx); !errors.Is(err, persistence.ErrSchemaBehind) {
			t.Fatalf("CheckCurrent after Down(1) = %v, want ErrSchemaBehind", err)
		}
		if n, err := m.Up(ctx); err != nil || n != 1 {
			t.Fatalf("Up after Down(1) = %d, %v", n, err)
		}
		// Reverting everything leaves no kowai table; asking for more than exist is fine.
		if n, err := m.Down(ctx, 1000); err != nil || n != len(all) {
			t.Fatalf("Down(all) = %d, %v; want %d", n, err, len(all))
		}
		if tableExists(t, db, "messages") || tableExists(t, db, "users") {
			t.Fatal("tables still there after reverting every migration")
		}
		if n, err := m.Up(ctx); err != nil || n != len(all) {
			t.Fatalf("Up after Down(all) = %d, %v", n, err)
		}
		if err := m.CheckCurrent(ctx); err != nil {
			t.Fatalf("CheckCurrent after round trip: %v", err)
		}
	})
}

// testMigrations is a two-version migration set whose second version fails on its
// second statement, after the first one created a table.
func testMigrations(second string) fstest.MapFS {
	return fstest.MapFS{
		"0001_first.up.sql":    {Data: []byte("CREATE TABLE t_one (id INTEGER NOT NULL PRIMARY KEY);\n")},
		"0001_first.down.sql":  {Data: []byte("DROP TABLE IF EXISTS t_one;\n")},
		"0002_second.up.sql":   {Data: []byte(second)},
		"0002_second.down.sql": {Data: []byte("DROP TABLE IF EXISTS t_two;\n")},
	}
}

func TestMigrateFailureHalfway(t *testing.T) {
	fsys := testMigrations("-- second\nCREATE TABLE t_two (id INTEGER NOT NULL PRIMARY KEY);\nCREATE TABLE t_broken (id NOSUCHTYPE!!);\n")
	persisttest.EachEmpty(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		m := newMigrator(t, db, persistence.MigratorOptions{FS: fsys})
		_, err := m.Up(ctx)
		if err == nil || !strings.Contains(err.Error(), "0002_second (up) failed at statement 2 of 2") {
			t.Fatalf("Up = %v, want a failure naming 0002_second statement 2", err)
		}
		if cur, err := m.Current(ctx); err != nil || cur != 1 {
			t.Fatalf("Current = %d, %v; want 1 (first migration kept)", cur, err)
		}
		if db.Dialect == persistence.DialectSQLite {
			// Transactional DDL: nothing of version 2 remains and it can be retried.
			if tableExists(t, db, "t_two") {
				t.Fatal("t_two exists after a rolled back migration")
			}
			if err := m.CheckCurrent(ctx); !errors.Is(err, persistence.ErrSchemaBehind) {
				t.Fatalf("CheckCurrent = %v, want ErrSchemaBehind", err)
			}
			return
		}
		// MariaDB committed the first statement: every later run must say so.
		if !tableExists(t, db, "t_two") {
			t.Fatal("expected t_two to exist after the half-applied migration on MariaDB")
		}
		for _, check := range []func() error{
			func() error { _, err := m.Up(ctx); return err },
			func() error { return m.CheckCurrent(ctx) },
		} {
			err := check()
			if !errors.Is(err, persistence.ErrDirty) || !strings.Contains(err.Error(), "DELETE FROM schema_migrations WHERE version = 2") {
				t.Fatalf("after half-applied migration: %v, want ErrDirty with repair steps", err)
			}
		}
		st := mustStatus(t, m)
		if len(st) != 2 || !st[1].Dirty || st[1].Applied {
			t.Fatalf("status = %+v, want version 2 dirty", st)
		}
	})
}

func TestMigrateSchemaAhead(t *testing.T) {
	full := testMigrations("CREATE TABLE t_two (id INTEGER NOT NULL PRIMARY KEY);\n")
	older := fstest.MapFS{"0001_first.up.sql": full["0001_first.up.sql"], "0001_first.down.sql": full["0001_first.down.sql"]}
	persisttest.EachEmpty(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		if _, err := newMigrator(t, db, persistence.MigratorOptions{FS: full}).Up(ctx); err != nil {
			t.Fatalf("Up with the newer migrations: %v", err)
		}
		old := newMigrator(t, db, persistence.MigratorOptions{FS: older})
		if err := old.CheckCurrent(ctx); !errors.Is(err, persistence.ErrSchemaAhead) {
			t.Fatalf("CheckCurrent by an older binary = %v, want ErrSchemaAhead", err)
		}
		if _, err := old.Up(ctx); !errors.Is(err, persistence.ErrSchemaAhead) {
			t.Fatalf("Up by an older binary = %v, want ErrSchemaAhead", err)
		}
		if _, err := old.Down(ctx, 1); !errors.Is(err, persistence.ErrSchemaAhead) {
			t.Fatalf("Down by an older binary = %v, want ErrSchemaAhead", err)
		}
		st := mustStatus(t, old)
		if len(st) != 2 || !st[1].Unknown {
			t.Fatalf("status = %+v, want version 2 unknown", st)
		}
	})
}

func TestMigrateChangedFile(t *testing.T) {
	applied := testMigrations("CREATE TABLE t_two (id INTEGER NOT NULL PRIMARY KEY);\n")
	edited := testMigrations("CREATE TABLE t_two (id INTEGER NOT NULL PRIMARY KEY, x INTEGER);\n")
	db := persisttest.EmptySQLite(t)
	if _, err := newMigrator(t, db, persistence.MigratorOptions{FS: applied}).Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	err := newMigrator(t, db, persistence.MigratorOptions{FS: edited}).CheckCurrent(t.Context())
	if !errors.Is(err, persistence.ErrMigrationChanged) {
		t.Fatalf("CheckCurrent with an edited file = %v, want ErrMigrationChanged", err)
	}
}

func TestNewMigratorBadFiles(t *testing.T) {
	db := persisttest.EmptySQLite(t)
	tests := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"bad name", fstest.MapFS{"init.sql": {}}, "VERSION_NAME.up.sql"},
		{"missing down", fstest.MapFS{"0001_a.up.sql": {}}, "needs both"},
		{"two names", fstest.MapFS{"0001_a.up.sql": {}, "0001_b.down.sql": {}}, "two names"},
		{"zero version", fstest.MapFS{"0000_a.up.sql": {}, "0000_a.down.sql": {}}, "positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := persistence.NewMigrator(db, persistence.MigratorOptions{FS: tt.fsys})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewMigrator = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestMigrateConcurrentUpMySQL(t *testing.T) {
	t.Parallel()
	dbURL := persisttest.MySQLURL(t)
	const nodes = 4
	var (
		wg      sync.WaitGroup
		applied = make([]int, nodes)
		errs    = make([]error, nodes)
	)
	for i := range nodes {
		// Separate pools stand in for separate nodes.
		m := newMigrator(t, persisttest.Open(t, dbURL), persistence.MigratorOptions{})
		wg.Go(func() { applied[i], errs[i] = m.Up(t.Context()) })
	}
	wg.Wait()
	total := 0
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %d: Up: %v", i, errs[i])
		}
		total += applied[i]
	}
	m := newMigrator(t, persisttest.Open(t, dbURL), persistence.MigratorOptions{})
	if want := len(mustStatus(t, m)); total != want {
		t.Fatalf("nodes applied %d migrations in total, want exactly %d", total, want)
	}
	if err := m.CheckCurrent(t.Context()); err != nil {
		t.Fatalf("CheckCurrent: %v", err)
	}
}

func mustStatus(t *testing.T, m *persistence.Migrator) []persistence.MigrationStatus {
	t.Helper()
	st, err := m.Status(t.Context())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}
