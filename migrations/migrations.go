package migrations

import (
	"embed"
	"fmt"
	"io/fs"
)

//go:embed mysql/*.sql sqlite/*.sql
var files embed.FS

// MySQL returns the MariaDB migrations: files named VERSION_NAME.up.sql and .down.sql.
func MySQL() fs.FS { return sub("mysql") }

// SQLite returns the SQLite migrations: files named VERSION_NAME.up.sql and .down.sql.
func SQLite() fs.FS { return sub("sqlite") }

// ForDialect returns the migrations for a goqu dialect name: "mysql" or "sqlite3".
func ForDialect(dialect string) (fs.FS, error) {
	switch dialect {
	case "mysql":
		return MySQL(), nil
	case "sqlite3":
		return SQLite(), nil
	}
	return nil, fmt.Errorf("migrations: unknown dialect %q (want mysql or sqlite3)", dialect)
}

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		// fs.Sub fails only for an invalid path, and dir is one of two constants.
		panic(err)
	}
	return f
}
