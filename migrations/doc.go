// Package migrations holds kowai's versioned SQL schema, one folder per dialect, embedded in
// the binary so a node never depends on files next to it.
//
// # Layout
//
// Each dialect folder (mysql for MariaDB, sqlite for SQLite) holds pairs of files:
//
//	0001_init.up.sql     applies version 1
//	0001_init.down.sql   reverts version 1
//
// The four-digit prefix is the version, the words after it the name. Both folders carry the
// same versions with the same meaning, so a feature lands as one migration per dialect.
// Statements end with a semicolon at the end of a line; the runner in package persistence
// splits on that, because the MariaDB driver runs one statement per call.
//
// # Rules
//
// A migration that has been released is never edited: the runner records a checksum of each
// applied file and refuses to continue when it changes. Add a new version instead.
// MariaDB commits every DDL statement on its own, so keep each MariaDB migration small
// and its down file able to undo a partial apply (DROP ... IF EXISTS).
//
// # Example
//
//	fsys, err := migrations.ForDialect("sqlite3")
//	if err != nil { ... }
//	m := persistence.NewMigrator(db, persistence.MigratorOptions{FS: fsys})
package migrations
