package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/kowai/kowai/node"
	"github.com/kowai/kowai/persistence"
)

// mariadbBackupHint sends an operator on MariaDB to the tools that back it up.
const mariadbBackupHint = "covers the embedded SQLite database only; back up MariaDB with mariadb-dump --single-transaction (README: Operating kowai, Backups)"

func backupCmd(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	fs := flagSet("backup", "backup --out FILE  (an online, consistent copy of the SQLite database)", io)
	out := fs.String("out", "", "the backup file to write; it must not exist")
	cfg, log, err := withConfig(fs, args, io, getenv, databaseSettings()...)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q; want backup --out FILE", fs.Arg(0))
	}
	if *out == "" {
		return usagef("--out is required: the backup file to write")
	}
	path, err := persistence.SQLitePath(cfg.DatabaseURL)
	if err != nil {
		return usagef("KOWAI_DATABASE_URL: backup %s", mariadbBackupHint)
	}
	// Opening a missing database would create an empty one and back that up.
	if err := fileExists(path); err != nil {
		return fmt.Errorf("no database to back up at %s (KOWAI_DATABASE_URL, KOWAI_DATA_DIR): %w", path, err)
	}
	db, _, err := node.OpenDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	info, err := db.Backup(ctx, *out)
	if errors.Is(err, persistence.ErrExists) {
		return usagef("--out %s exists; choose a new file", *out)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(io.out, "backed up %s to %s (schema version %d, %d bytes)\n", path, *out, info.Version, info.Size)
	return err
}

func restoreCmd(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	fs := flagSet("restore", "restore FILE [--force]  (replace the SQLite database with a backup; stop the node first)", io)
	force := fs.Bool("force", false, "replace the database when it exists (never while a node has it open)")
	cfg, _, err := withConfig(fs, args, io, getenv, databaseSettings()...)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want restore FILE [--force]: one backup file")
	}
	path, err := persistence.SQLitePath(cfg.DatabaseURL)
	if err != nil {
		return usagef("KOWAI_DATABASE_URL: restore %s", mariadbBackupHint)
	}
	info, err := persistence.Restore(ctx, fs.Arg(0), path, persistence.RestoreOptions{Replace: *force})
	if errors.Is(err, persistence.ErrExists) {
		return fmt.Errorf("%s exists; stop the node, keep a backup of it if it matters, and pass --force to replace it", path)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(io.out, "restored %s from %s (schema version %d); start the node to migrate it if this binary is newer\n", path, fs.Arg(0), info.Version)
	return err
}
