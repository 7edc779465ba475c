package persistence

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doug-martin/goqu/v9"

	"github.com/kowai/kowai/migrations"
)

// ErrSchemaBehind reports a database that lacks migrations this binary has.
var ErrSchemaBehind = errors.New("persistence: database schema is behind this binary; run `kowai migrate up`")

// ErrSchemaAhead reports a database migrated by a newer binary. Running on it could
// corrupt data this binary does not understand, so it is refused.
var ErrSchemaAhead = errors.New("persistence: database schema is newer than this binary; upgrade kowai, or roll back with the newer binary's `kowai migrate down`")

// ErrDirty reports a migration that stopped halfway on an earlier run (MariaDB commits
// each DDL statement on its own, so a failure can leave part of a migration applied).
var ErrDirty = errors.New("persistence: a migration was interrupted and may be half-applied")

// ErrMigrationChanged reports an applied migration whose file differs from what was
// applied. Released migrations must not be edited; add a new version instead.
var ErrMigrationChanged = errors.New("persistence: an applied migration file has changed")

// ErrMigrationLocked reports that another process held the migration lock for longer
// than the lock timeout.
var ErrMigrationLocked = errors.New("persistence: another process is migrating this database")

// migrationFile matches VERSION_NAME.up.sql and VERSION_NAME.down.sql.
var migrationFile = regexp.MustCompile(`^(\d+)_([A-Za-z0-9_]+)\.(up|down)\.sql$`)

// Migration is one version of the schema, read from a migrations file system.
type Migration struct {
	Version int64
	Name    string
	// Up and Down are the statements that apply and revert it.
	Up, Down []string
	// Checksum is the SHA-256 of the up file, recorded when it is applied.
	Checksum string
}

// MigrationStatus is a migration and whether the database has it.
type MigrationStatus struct {
	Version int64
	Name    string
	Applied bool
	// AppliedAt is zero when not applied (or when Dirty).
	AppliedAt time.Time
	// Dirty is set when an earlier run stopped halfway through this migration.
	Dirty bool
	// Unknown is set for a version the database has and this binary does not.
	Unknown bool
}

// MigratorOptions configure a Migrator. The zero value migrates with the embedded
// migrations of the database's dialect.
type MigratorOptions struct {
	// FS holds the migration files; nil means the embedded ones (package migrations).
	FS fs.FS
	// LockTimeout bounds the wait for another process's migration lock (default 1m).
	LockTimeout time.Duration
	// Logger receives one line per migration applied or reverted. Nil discards them.
	Logger *slog.Logger
}

// Migrator applies and reverts schema migrations and checks that a database matches
// the binary. Every change runs under a lock, so nodes starting together take turns:
// GET_LOCK on MariaDB (per database, held by one dedicated connection), and on SQLite
// the pool's single connection plus an immediate (write-locking) transaction per
// migration. On SQLite each migration and its schema_migrations row commit together. On
// MariaDB, where DDL commits itself, the row is written first marked dirty and cleared
// when the last statement succeeds, so a migration that fails halfway is reported by
// every later run (ErrDirty) until it is repaired.
type Migrator struct {
	db          *DB
	migrations  []Migration
	lockTimeout time.Duration
	log         *slog.Logger
	dialect     goqu.DialectWrapper
	// dataSteps are the data changes that SQL cannot express, run by Up once
	// after the version they belong to was applied (embedded migrations only).
	dataSteps map[int64]func(context.Context) error
}

// builtinDataSteps are the embedded migrations' data changes in Go, by version.
func (m *Migrator) builtinDataSteps() map[int64]func(context.Context) error {
	return map[int64]func(context.Context) error{
		// 0003 makes emails compare byte for byte; SQL can lower-case but not
		// apply NFKC and case folding, so the rows it cannot fix are fixed here,
		// once. A clash needs an operator, not a failed migration: it is logged.
		3: func(ctx context.Context) error {
			n, err := NewUserStore(m.db).NormalizeEmails(ctx)
			if err != nil {
				m.log.Error("some stored emails could not be normalized", "normalized", n, "error", err)
			} else if n > 0 {
				m.log.Info("stored emails normalized", "normalized", n)
			}
			return nil
		},
	}
}

// NewMigrator reads the migrations and returns a Migrator for db. It fails when a file
// name does not follow VERSION_NAME.up.sql / .down.sql, a version lacks one of its two
// files, or two files share a version.
func NewMigrator(db *DB, opts MigratorOptions) (*Migrator, error) {
	fsys := opts.FS
	if fsys == nil {
		var err error
		if fsys, err = migrations.ForDialect(db.Dialect); err != nil {
			return nil, fmt.Errorf("persistence: %w", err)
		}
	}
	ms, err := readMigrations(fsys)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Migrator{
		db:          db,
		migrations:  ms,
		lockTimeout: cmp.Or(opts.LockTimeout, time.Minute),
		log:         log,
		dialect:     goqu.Dialect(db.Dialect),
	}
	if opts.FS == nil {
		m.dataSteps = m.builtinDataSteps()
	}
	return m, nil
}

func readMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("persistence: read migrations: %w", err)
	}
	byVersion := map[int64]*Migration{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		match := migrationFile.FindStringSubmatch(e.Name())
		if match == nil {
			return nil, fmt.Errorf("persistence: migration file %q: name must be VERSION_NAME.up.sql or VERSION_NAME.down.sql", e.Name())
		}
		version, err := strconv.ParseInt(match[1], 10, 64)
		if err != nil || version <= 0 {
			return nil, fmt.Errorf("persistence: migration file %q: version must be a positive number", e.Name())
		}
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("persistence: read migration %q: %w", e.Name(), err)
		}
		m := byVersion[version]
		if m == nil {
			m = &Migration{Version: version, Name: match[2]}
			byVersion[version] = m
		}
		if m.Name != match[2] {
			return nil, fmt.Errorf("persistence: migration version %d has two names, %q and %q", version, m.Name, match[2])
		}
		stmts := splitStatements(string(body))
		if match[3] == "up" {
			if m.Up != nil {
				return nil, fmt.Errorf("persistence: migration version %d has two up files", version)
			}
			m.Up = stmts
			sum := sha256.Sum256(body)
			m.Checksum = hex.EncodeToString(sum[:])
		} else {
			if m.Down != nil {
				return nil, fmt.Errorf("persistence: migration version %d has two down files", version)
			}
			m.Down = stmts
		}
	}
	ms := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == nil || m.Down == nil {
			return nil, fmt.Errorf("persistence: migration %04d_%s needs both an .up.sql and a .down.sql file", m.Version, m.Name)
		}
		ms = append(ms, *m)
	}
	slices.SortFunc(ms, func(a, b Migration) int { return cmp.Compare(a.Version, b.Version) })
	return ms, nil
}

// splitStatements cuts a migration file into statements: a statement ends with a line
// whose last character is a semicolon; whole-line "--" comments are dropped.
func splitStatements(body string) []string {
	stmts := []string{}
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if trimmed := strings.TrimSpace(line); trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(line, ";") {
			stmts = append(stmts, strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")))
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		stmts = append(stmts, rest)
	}
	return stmts
}

// Latest returns the highest version this binary has, 0 when it has none.
func (m *Migrator) Latest() int64 {
	if len(m.migrations) == 0 {
		return 0
	}
	return m.migrations[len(m.migrations)-1].Version
}

// Current returns the highest version fully applied to the database, 0 when none is.
func (m *Migrator) Current(ctx context.Context) (int64, error) {
	var current int64
	err := m.withConn(ctx, false, func(conn *sql.Conn) error {
		applied, err := m.applied(ctx, conn)
		for v, row := range applied {
			if !row.dirty {
				current = max(current, v)
			}
		}
		return err
	})
	return current, err
}

// Status lists every migration this binary has, and any the database has that it does
// not (Unknown), in version order.
func (m *Migrator) Status(ctx context.Context) ([]MigrationStatus, error) {
	var out []MigrationStatus
	err := m.withConn(ctx, false, func(conn *sql.Conn) error {
		applied, err := m.applied(ctx, conn)
		if err != nil {
			return err
		}
		for _, mig := range m.migrations {
			st := MigrationStatus{Version: mig.Version, Name: mig.Name}
			if row, ok := applied[mig.Version]; ok {
				st.Applied, st.AppliedAt, st.Dirty = !row.dirty, row.appliedAt, row.dirty
				delete(applied, mig.Version)
			}
			out = append(out, st)
		}
		for v, row := range applied {
			out = append(out, MigrationStatus{Version: v, Name: row.name, Applied: !row.dirty, AppliedAt: row.appliedAt, Dirty: row.dirty, Unknown: true})
		}
		slices.SortFunc(out, func(a, b MigrationStatus) int { return cmp.Compare(a.Version, b.Version) })
		return nil
	})
	return out, err
}

// CheckCurrent returns nil when the database has exactly this binary's migrations,
// ErrSchemaBehind when some are missing, ErrSchemaAhead when the database has versions
// the binary does not know, ErrDirty after a half-applied migration, and
// ErrMigrationChanged when an applied file was edited. It takes no lock.
func (m *Migrator) CheckCurrent(ctx context.Context) error {
	return m.withConn(ctx, false, func(conn *sql.Conn) error {
		applied, err := m.applied(ctx, conn)
		if err != nil {
			return err
		}
		if err := m.verify(applied); err != nil {
			return err
		}
		if pending := m.pending(applied); len(pending) > 0 {
			return fmt.Errorf("%w (database has %d of %d migrations; first missing: %04d_%s)",
				ErrSchemaBehind, len(applied), len(m.migrations), pending[0].Version, pending[0].Name)
		}
		return nil
	})
}

// Up applies every pending migration in version order and returns how many it applied.
// It refuses a database that is ahead, dirty or changed (see CheckCurrent). The data
// steps of the versions it applied run after the migration lock is released (on
// SQLite the lock is the pool's one connection).
func (m *Migrator) Up(ctx context.Context) (int, error) {
	done := 0
	var steps []func(context.Context) error
	err := m.withConn(ctx, true, func(conn *sql.Conn) error {
		applied, err := m.applied(ctx, conn)
		if err != nil {
			return err
		}
		if err := m.verify(applied); err != nil {
			return err
		}
		for _, mig := range m.pending(applied) {
			start := time.Now()
			if err := m.apply(ctx, conn, mig); err != nil {
				return err
			}
			done++
			m.log.Info("migration applied", "version", mig.Version, "name", mig.Name, "duration", time.Since(start))
			if step := m.dataSteps[mig.Version]; step != nil {
				steps = append(steps, step)
			}
		}
		return nil
	})
	for _, step := range steps {
		if serr := step(ctx); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	return done, err
}

// Down reverts the n most recently applied migrations, newest first, and returns how many
// it reverted (fewer than n when fewer are applied).
func (m *Migrator) Down(ctx context.Context, n int) (int, error) {
	if n <= 0 {
		return 0, fmt.Errorf("persistence: migrate down: the count must be at least 1, not %d", n)
	}
	done := 0
	err := m.withConn(ctx, true, func(conn *sql.Conn) error {
		applied, err := m.applied(ctx, conn)
		if err != nil {
			return err
		}
		if err := m.verify(applied); err != nil {
			return err
		}
		for i := len(m.migrations) - 1; i >= 0 && done < n; i-- {
			mig := m.migrations[i]
			if _, ok := applied[mig.Version]; !ok {
				continue
			}
			start := time.Now()
			if err := m.revert(ctx, conn, mig); err != nil {
				return err
			}
			done++
			m.log.Info("migration reverted", "version", mig.Version, "name", mig.Name, "duration", time.Since(start))
		}
		return nil
	})
	return done, err
}

// withConn runs fn on one dedicated connection, creating schema_migrations first and,
// when locked, holding the migration lock around fn.
func (m *Migrator) withConn(ctx context.Context, locked bool, fn func(*sql.Conn) error) (err error) {
	conn, err := m.db.SQL.Conn(ctx)
	if err != nil {
		return fmt.Errorf("persistence: migrations: %w", classify(err))
	}
	defer func() {
		if cerr := conn.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("persistence: migrations: release connection: %w", classify(cerr))
		}
	}()
	if locked && m.db.Dialect == DialectMySQL {
		if err := m.lock(ctx, conn); err != nil {
			return err
		}
		defer func() {
			// The lock dies with the session anyway; failing to release it early only
			// delays the next migrator until this connection closes.
			if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK(CONCAT('kowai_migrate:', DATABASE()))"); rerr != nil && err == nil {
				err = fmt.Errorf("persistence: release migration lock: %w", classify(rerr))
			}
		}()
	}
	if _, err := conn.ExecContext(ctx, m.createTableSQL()); err != nil {
		return fmt.Errorf("persistence: create schema_migrations: %w", classify(err))
	}
	return fn(conn)
}

func (m *Migrator) lock(ctx context.Context, conn *sql.Conn) error {
	secs := int64(math.Ceil(m.lockTimeout.Seconds()))
	var got sql.NullInt64
	err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(CONCAT('kowai_migrate:', DATABASE()), ?)", secs).Scan(&got)
	switch {
	case err != nil:
		return fmt.Errorf("persistence: take migration lock: %w", classify(err))
	case !got.Valid || got.Int64 != 1:
		return fmt.Errorf("%w: waited %s for its lock; try again when it has finished", ErrMigrationLocked, m.lockTimeout)
	}
	return nil
}

func (m *Migrator) createTableSQL() string {
	if m.db.Dialect == DialectMySQL {
		return `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT       NOT NULL PRIMARY KEY,
    name       VARCHAR(255) NOT NULL,
    applied_at DATETIME(6)  NULL,
    checksum   CHAR(64)     NOT NULL,
    dirty      BOOLEAN      NOT NULL DEFAULT FALSE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`
	}
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER  NOT NULL PRIMARY KEY,
    name       TEXT     NOT NULL,
    applied_at DATETIME NULL,
    checksum   TEXT     NOT NULL,
    dirty      INTEGER  NOT NULL DEFAULT 0
)`
}

// appliedRow is one row of schema_migrations.
type appliedRow struct {
	name      string
	appliedAt time.Time
	checksum  string
	dirty     bool
}

// queryer runs statements: a *sql.Conn or a *sql.Tx.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (m *Migrator) applied(ctx context.Context, q queryer) (map[int64]appliedRow, error) {
	query, args, err := m.dialect.From("schema_migrations").Prepared(true).
		Select("version", "name", "applied_at", "checksum", "dirty").ToSQL()
	if err != nil {
		return nil, fmt.Errorf("persistence: build migration query: %w", err)
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("persistence: read schema_migrations: %w", classify(err))
	}
	defer rows.Close()
	out := map[int64]appliedRow{}
	for rows.Next() {
		var (
			v         int64
			row       appliedRow
			appliedAt sql.NullTime
		)
		if err := rows.Scan(&v, &row.name, &appliedAt, &row.checksum, &row.dirty); err != nil {
			return nil, fmt.Errorf("persistence: read schema_migrations: %w", classify(err))
		}
		row.appliedAt = appliedAt.Time
		out[v] = row
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("persistence: read schema_migrations: %w", classify(err))
	}
	return out, nil
}

// verify refuses a database that is dirty, ahead of the binary or migrated from files
// that have since changed.
func (m *Migrator) verify(applied map[int64]appliedRow) error {
	known := map[int64]Migration{}
	for _, mig := range m.migrations {
		known[mig.Version] = mig
	}
	versions := slices.Sorted(maps.Keys(applied))
	for _, v := range versions {
		row := applied[v]
		if row.dirty {
			return fmt.Errorf("%w: version %d (%s) stopped halfway on an earlier run. Repair it by hand: "+
				"finish or undo its statements (its down file uses IF EXISTS and can be run by hand), then either "+
				"DELETE FROM schema_migrations WHERE version = %d (to have `kowai migrate up` apply it again) or "+
				"UPDATE schema_migrations SET dirty = 0 WHERE version = %d (if it is fully applied)",
				ErrDirty, v, row.name, v, v)
		}
	}
	for _, v := range versions {
		if _, ok := known[v]; !ok {
			return fmt.Errorf("%w (database has version %d (%s); this binary knows up to %d)",
				ErrSchemaAhead, v, applied[v].name, m.Latest())
		}
	}
	for _, v := range versions {
		if mig := known[v]; applied[v].checksum != mig.Checksum {
			return fmt.Errorf("%w: %04d_%s was applied from a different file; restore the released file and add a new migration instead",
				ErrMigrationChanged, v, mig.Name)
		}
	}
	return nil
}

func (m *Migrator) pending(applied map[int64]appliedRow) []Migration {
	var out []Migration
	for _, mig := range m.migrations {
		if _, ok := applied[mig.Version]; !ok {
			out = append(out, mig)
		}
	}
	return out
}

func (m *Migrator) apply(ctx context.Context, conn *sql.Conn, mig Migration) error {
	row := goqu.Record{"version": mig.Version, "name": mig.Name, "checksum": mig.Checksum}
	if m.db.Dialect == DialectSQLite {
		return m.inTx(ctx, conn, func(tx *sql.Tx) error {
			// Another process may have applied it between our read and this write lock.
			applied, err := m.applied(ctx, tx)
			if err != nil {
				return err
			}
			if _, ok := applied[mig.Version]; ok {
				return nil
			}
			if err := m.run(ctx, tx, mig, "up", mig.Up); err != nil {
				return err
			}
			row["applied_at"], row["dirty"] = utc(time.Now()), false
			return m.execBuilt(ctx, tx, m.dialect.Insert("schema_migrations").Prepared(true).Rows(row))
		})
	}
	row["dirty"] = true
	if err := m.execBuilt(ctx, conn, m.dialect.Insert("schema_migrations").Prepared(true).Rows(row)); err != nil {
		return err
	}
	if err := m.run(ctx, conn, mig, "up", mig.Up); err != nil {
		return fmt.Errorf("%w; the migration is marked dirty in schema_migrations and later runs will refuse until it is repaired", err)
	}
	return m.execBuilt(ctx, conn, m.dialect.Update("schema_migrations").Prepared(true).
		Set(goqu.Record{"dirty": false, "applied_at": utc(time.Now())}).
		Where(goqu.C("version").Eq(mig.Version)))
}

func (m *Migrator) revert(ctx context.Context, conn *sql.Conn, mig Migration) error {
	del := m.dialect.Delete("schema_migrations").Prepared(true).Where(goqu.C("version").Eq(mig.Version))
	if m.db.Dialect == DialectSQLite {
		return m.inTx(ctx, conn, func(tx *sql.Tx) error {
			if err := m.run(ctx, tx, mig, "down", mig.Down); err != nil {
				return err
			}
			return m.execBuilt(ctx, tx, del)
		})
	}
	if err := m.execBuilt(ctx, conn, m.dialect.Update("schema_migrations").Prepared(true).
		Set(goqu.Record{"dirty": true}).Where(goqu.C("version").Eq(mig.Version))); err != nil {
		return err
	}
	if err := m.run(ctx, conn, mig, "down", mig.Down); err != nil {
		return fmt.Errorf("%w; the migration is marked dirty in schema_migrations and later runs will refuse until it is repaired", err)
	}
	return m.execBuilt(ctx, conn, del)
}

// run executes the statements of one direction of a migration, naming the failing one.
func (m *Migrator) run(ctx context.Context, q queryer, mig Migration, dir string, stmts []string) error {
	for i, stmt := range stmts {
		if _, err := q.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("persistence: migration %04d_%s (%s) failed at statement %d of %d: %w",
				mig.Version, mig.Name, dir, i+1, len(stmts), classify(err))
		}
	}
	return nil
}

func (m *Migrator) inTx(ctx context.Context, conn *sql.Conn, fn func(*sql.Tx) error) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("persistence: begin migration: %w", classify(err))
	}
	if err := fn(tx); err != nil {
		if rbErr := tx.Rollback(); rbErr != nil {
			return errors.Join(err, fmt.Errorf("persistence: roll back migration: %w", classify(rbErr)))
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("persistence: commit migration: %w", classify(err))
	}
	return nil
}

func (m *Migrator) execBuilt(ctx context.Context, q queryer, b interface {
	ToSQL() (string, []any, error)
}) error {
	query, args, err := b.ToSQL()
	if err != nil {
		return fmt.Errorf("persistence: build schema_migrations statement: %w", err)
	}
	if _, err := q.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("persistence: write schema_migrations: %w", classify(err))
	}
	return nil
}
