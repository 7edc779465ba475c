package migrations_test

import (
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/kowai/kowai/migrations"
)

// TestDialectsHaveTheSameVersions keeps the two folders in step: a migration added for
// one dialect and forgotten for the other would leave the schemas apart.
func TestDialectsHaveTheSameVersions(t *testing.T) {
	names := func(fsys fs.FS) []string {
		t.Helper()
		entries, err := fs.ReadDir(fsys, ".")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	mysql, sqlite := names(migrations.MySQL()), names(migrations.SQLite())
	if len(mysql) == 0 || !slices.Equal(mysql, sqlite) {
		t.Fatalf("mysql migrations %v differ from sqlite migrations %v", mysql, sqlite)
	}
	for _, name := range mysql {
		if !strings.HasSuffix(name, ".up.sql") && !strings.HasSuffix(name, ".down.sql") {
			t.Errorf("unexpected file %s", name)
		}
	}
}

func TestForDialect(t *testing.T) {
	for _, d := range []string{"mysql", "sqlite3"} {
		if _, err := migrations.ForDialect(d); err != nil {
			t.Errorf("ForDialect(%q): %v", d, err)
		}
	}
	if _, err := migrations.ForDialect("postgres"); err == nil {
		t.Error("ForDialect(postgres) succeeded")
	}
}
