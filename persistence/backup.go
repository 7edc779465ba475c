package persistence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// ErrInUse reports a SQLite database that another process has open, such as a
// running node: replacing it under that process would corrupt it.
var ErrInUse = errors.New("persistence: database in use")

// ErrExists reports a restore onto a database file that exists while the
// caller did not ask to replace it, or a backup onto a file that exists.
var ErrExists = errors.New("persistence: file exists")

// ErrBadBackup reports a restore source that is not an intact kowai SQLite
// database (not SQLite, damaged, or without a migrated schema).
var ErrBadBackup = errors.New("persistence: not a usable backup")

// SQLitePath returns the file path of a sqlite:// database URL, without its
// parameters. Any other URL fails with ErrBadURL.
func SQLitePath(rawURL string) (string, error) {
	rest, ok := strings.CutPrefix(rawURL, "sqlite://")
	if !ok {
		return "", fmt.Errorf("%w: not a SQLite database URL; want %s", ErrBadURL, sqliteForm)
	}
	path, _, _ := strings.Cut(rest, "?")
	if path == "" {
		return "", fmt.Errorf("%w: no file path; use %s", ErrBadURL, sqliteForm)
	}
	return path, nil
}

// BackupInfo describes a SQLite backup file.
type BackupInfo struct {
	// Version is the newest migration applied in the copy.
	Version int64
	// Size is the file's size in bytes.
	Size int64
}

// Backup writes a consistent copy of db, a SQLite database, to the new file
// out with VACUUM INTO, and checks the copy. It runs online: a node may keep
// serving, since the copy reads one snapshot of the database (WAL mode) and
// holds no write lock. out must not exist (ErrExists); it is created
// readable by its owner only, like the database, and removed again when the
// copy fails.
func (db *DB) Backup(ctx context.Context, out string) (BackupInfo, error) {
	if db.Dialect != DialectSQLite {
		return BackupInfo{}, fmt.Errorf("persistence: backup: %s is not SQLite", db.redacted)
	}
	// VACUUM INTO accepts an empty file, so creating it first fixes its mode
	// and refuses an existing one.
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return BackupInfo{}, fmt.Errorf("%w: %s; choose a new file", ErrExists, out)
	}
	if err != nil {
		return BackupInfo{}, fmt.Errorf("persistence: backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return BackupInfo{}, fmt.Errorf("persistence: backup: %w", err)
	}
	info, err := db.backupInto(ctx, out)
	if err != nil {
		if rmErr := os.Remove(out); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			err = errors.Join(err, rmErr)
		}
		return BackupInfo{}, err
	}
	return info, nil
}

func (db *DB) backupInto(ctx context.Context, out string) (BackupInfo, error) {
	if _, err := db.SQL.ExecContext(ctx, "VACUUM INTO ?", out); err != nil {
		return BackupInfo{}, fmt.Errorf("persistence: backup to %s: %w", out, classify(err))
	}
	f, err := os.Open(out)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("persistence: backup: %w", err)
	}
	syncErr := f.Sync()
	if err := errors.Join(syncErr, f.Close()); err != nil {
		return BackupInfo{}, fmt.Errorf("persistence: backup: flush %s: %w", out, err)
	}
	return CheckBackup(ctx, out)
}

// CheckBackup opens the SQLite file path read-only and checks that it is an
// intact kowai database: SQLite's integrity check passes and at least one
// migration is applied and none is half-applied. Anything else fails with
// ErrBadBackup saying what is wrong.
func CheckBackup(ctx context.Context, path string) (BackupInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("%w: %w", ErrBadBackup, err)
	}
	if !st.Mode().IsRegular() {
		return BackupInfo{}, fmt.Errorf("%w: %s is not a regular file", ErrBadBackup, path)
	}
	// mode=ro leaves the file untouched: no WAL, no journal, no schema change.
	conn, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro")
	if err != nil {
		return BackupInfo{}, fmt.Errorf("%w: %s: %w", ErrBadBackup, path, err)
	}
	defer conn.Close()
	var check string
	if err := conn.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil {
		return BackupInfo{}, fmt.Errorf("%w: %s is not a SQLite database: %w", ErrBadBackup, path, err)
	}
	if check != "ok" {
		return BackupInfo{}, fmt.Errorf("%w: %s fails SQLite's integrity check: %s", ErrBadBackup, path, check)
	}
	var version sql.NullInt64
	var dirty int
	err = conn.QueryRowContext(ctx, "SELECT MAX(version), COALESCE(SUM(dirty), 0) FROM schema_migrations").Scan(&version, &dirty)
	switch {
	case err != nil:
		return BackupInfo{}, fmt.Errorf("%w: %s has no kowai schema (%w)", ErrBadBackup, path, err)
	case !version.Valid:
		return BackupInfo{}, fmt.Errorf("%w: %s has no migration applied", ErrBadBackup, path)
	case dirty > 0:
		return BackupInfo{}, fmt.Errorf("%w: %s has a half-applied migration", ErrBadBackup, path)
	}
	return BackupInfo{Version: version.Int64, Size: st.Size()}, nil
}

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Replace allows replacing a database file that exists. Without it
	// Restore fails with ErrExists and changes nothing.
	Replace bool
}

// Restore replaces the SQLite database at dst with a copy of the backup src
// (checked with CheckBackup first). It refuses, changing nothing, when dst is
// open in another process such as a running node (ErrInUse; stop the node
// first, Replace does not override this), and when dst exists without
// opts.Replace (ErrExists). The copy is written next to dst and renamed over
// it, so dst is either the old database or the whole backup; the old
// database's WAL and shared-memory files are removed so that they are not
// replayed onto the restored one. The restored file is readable by its owner
// only.
func Restore(ctx context.Context, src, dst string, opts RestoreOptions) (BackupInfo, error) {
	info, err := CheckBackup(ctx, src)
	if err != nil {
		return BackupInfo{}, err
	}
	same, err := sameFile(src, dst)
	if err != nil {
		return BackupInfo{}, err
	}
	if same {
		return BackupInfo{}, fmt.Errorf("%w: %s is the database itself", ErrBadBackup, src)
	}
	if _, err := os.Stat(dst); err == nil {
		if !opts.Replace {
			return BackupInfo{}, fmt.Errorf("%w: %s", ErrExists, dst)
		}
		if err := checkNotInUse(ctx, dst); err != nil {
			return BackupInfo{}, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return BackupInfo{}, fmt.Errorf("persistence: restore: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return BackupInfo{}, fmt.Errorf("persistence: restore: %w", err)
	}
	tmp := dst + ".restoring"
	if err := copyFile(src, tmp); err != nil {
		if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			err = errors.Join(err, rmErr)
		}
		return BackupInfo{}, err
	}
	for _, side := range []string{dst + "-wal", dst + "-shm", dst + "-journal"} {
		if err := os.Remove(side); err != nil && !errors.Is(err, os.ErrNotExist) {
			return BackupInfo{}, fmt.Errorf("persistence: restore: remove the old database's %s: %w", side, err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return BackupInfo{}, fmt.Errorf("persistence: restore: %w", err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return BackupInfo{}, err
	}
	return info, nil
}

// checkNotInUse fails with ErrInUse when another process has the SQLite
// database at path open. A connection in WAL mode holds a shared lock on the
// database file for as long as it is open, so an exclusive lock is refused at
// once while any node (or other tool) has it open, idle or not.
func checkNotInUse(ctx context.Context, path string) error {
	conn, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+
		"?_pragma=busy_timeout(0)&_pragma=locking_mode(EXCLUSIVE)")
	if err != nil {
		return fmt.Errorf("persistence: restore: open %s: %w", path, err)
	}
	defer conn.Close()
	c, err := conn.Conn(ctx)
	if err != nil {
		return fmt.Errorf("persistence: restore: open %s: %w", path, err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		if IsRetryable(err) { // SQLITE_BUSY: another process holds a lock
			return fmt.Errorf("%w: %s is open in another process (a running node?); stop it first", ErrInUse, path)
		}
		return fmt.Errorf("persistence: restore: lock %s: %w", path, classify(err))
	}
	if _, err := c.ExecContext(ctx, "ROLLBACK"); err != nil {
		return fmt.Errorf("persistence: restore: unlock %s: %w", path, classify(err))
	}
	return nil
}

// sameFile reports whether a and b name one file; a missing b is not a.
func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, fmt.Errorf("persistence: restore: %w", err)
	}
	sb, err := os.Stat(b)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("persistence: restore: %w", err)
	}
	return os.SameFile(sa, sb), nil
}

// copyFile copies src to the new or truncated file dst (mode 0600) and
// flushes it to disk.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("persistence: restore: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("persistence: restore: %w", err)
	}
	_, copyErr := io.Copy(out, in)
	syncErr := out.Sync()
	if err := errors.Join(copyErr, syncErr, out.Close()); err != nil {
		return fmt.Errorf("persistence: restore: write %s: %w", dst, err)
	}
	// A file left by an earlier failed restore keeps its old mode.
	if err := os.Chmod(dst, 0o600); err != nil {
		return fmt.Errorf("persistence: restore: %w", err)
	}
	return nil
}

// syncDir flushes a directory so that a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("persistence: restore: %w", err)
	}
	syncErr := d.Sync()
	if err := errors.Join(syncErr, d.Close()); err != nil {
		return fmt.Errorf("persistence: restore: flush %s: %w", dir, err)
	}
	return nil
}
