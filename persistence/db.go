package persistence

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/doug-martin/goqu/v9"
	// Registers the goqu dialects used by Open.
	_ "github.com/doug-martin/goqu/v9/dialect/mysql"
	_ "github.com/doug-martin/goqu/v9/dialect/sqlite3"
	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	// Registers the pure-Go "sqlite" database/sql driver.
	_ "modernc.org/sqlite"
)

// Dialect names, as goqu spells them.
const (
	// DialectMySQL is MariaDB (or MySQL) through go-sql-driver/mysql.
	DialectMySQL = "mysql"
	// DialectSQLite is SQLite through modernc.org/sqlite.
	DialectSQLite = "sqlite3"
)

// URL forms accepted by Open, quoted in its errors.
const (
	sqliteForm = "sqlite://PATH (e.g. sqlite://./data/kowai.db)"
	mysqlForm  = "mysql://USER:PASS@HOST:PORT/DB?PARAMS (e.g. mysql://kowai:secret@127.0.0.1:3306/kowai)"
)

// batchIdleConns is how many idle connections the writer's MariaDB pool keeps:
// DefaultConcurrency plus one.
const batchIdleConns = DefaultConcurrency + 1

// sqliteBusyTimeout is how long a SQLite statement waits for another process's write lock.
const sqliteBusyTimeout = 5 * time.Second

// ErrBadURL reports a database URL that is not one of the accepted forms.
var ErrBadURL = errors.New("persistence: bad database URL")

// ErrUnavailable reports a database that cannot be reached or opened.
var ErrUnavailable = errors.New("persistence: database unavailable")

// DB is an open database: the connection pool, its dialect and a goqu handle on it.
// It is safe for concurrent use. Close it when done.
type DB struct {
	// SQL is the connection pool.
	SQL *sql.DB
	// Dialect is DialectMySQL or DialectSQLite.
	Dialect string
	// Goqu builds and runs queries in Dialect over SQL.
	Goqu *goqu.Database

	// batch is a second MariaDB pool whose connections accept several statements
	// in one request (multiStatements), for the group-commit writer only: it sends
	// a batch's statements in one round trip. Nil on SQLite. Keeping it apart from
	// SQL means no other query can ever stack statements.
	batch *sql.DB

	// run runs queries outside transactions: on SQLite the pool through a cache of
	// prepared statements (stmts), on MariaDB the pool itself, whose driver
	// interpolates arguments client-side (interpolateParams) and so needs no prepared
	// statement for a one-round-trip query.
	run   poolRunner
	stmts *stmtCache

	redacted string
	log      *slog.Logger
}

// Options tune Open. The zero value is usable.
type Options struct {
	// MaxOpenConns caps the MariaDB pool (default 20). SQLite always uses one
	// connection: see Open.
	MaxOpenConns int
	// MaxIdleConns is the number of idle MariaDB connections kept (default MaxOpenConns).
	MaxIdleConns int
	// ConnMaxLifetime recycles MariaDB connections after this long (default 30m).
	ConnMaxLifetime time.Duration
	// ConnMaxIdleTime closes MariaDB connections idle this long (default 5m).
	ConnMaxIdleTime time.Duration
	// Logger receives the driver's own diagnostics. Nil discards them.
	Logger *slog.Logger
}

// Open connects to the database named by rawURL and pings it.
//
// Accepted forms:
//
//	sqlite://PATH                             a file; relative paths are relative to the working directory
//	mysql://USER:PASS@HOST:PORT/DB?PARAMS      MariaDB; PARAMS are go-sql-driver/mysql DSN parameters
//
// SQLite runs in WAL mode with foreign keys on, a busy timeout, immediate write
// transactions and full sync (a committed write survives power loss). The pool has one
// connection: SQLite admits one writer at a time, and queueing writers in the pool is
// cheaper and fairer than letting several connections spin on SQLITE_BUSY. The price is
// that a read waits for a running write; kowai's writes are short batches. Never hold a
// transaction open while calling back into DB on SQLite: it would wait for itself.
//
// MariaDB always gets parseTime, UTC times, utf8mb4 with utf8mb4_unicode_ci,
// interpolateParams and clientFoundRows (an UPDATE counts matched rows, so compare-and-swap
// updates read the same on both dialects); other PARAMS pass through to the driver.
//
// A malformed URL fails with ErrBadURL naming the accepted forms; a database that
// cannot be reached fails with ErrUnavailable saying what to check. The password never
// appears in errors or logs.
func Open(ctx context.Context, rawURL string, opts Options) (*DB, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, fmt.Errorf("%w: missing scheme; use %s or %s", ErrBadURL, sqliteForm, mysqlForm)
	}
	var (
		db  *DB
		err error
	)
	switch scheme {
	case "sqlite":
		db, err = openSQLite(rawURL, log)
	case "mysql":
		db, err = openMySQL(rawURL, opts, log)
	default:
		return nil, fmt.Errorf("%w: unknown scheme %q; use %s or %s", ErrBadURL, scheme, sqliteForm, mysqlForm)
	}
	if err != nil {
		return nil, err
	}
	db.log = log
	db.run = db.SQL
	if db.Dialect == DialectSQLite {
		db.stmts = newStmtCache(db.SQL, stmtCacheSize, log)
		cached := cachingDB{DB: db.SQL, cache: db.stmts}
		db.run = cached
		db.Goqu = goqu.New(db.Dialect, cached)
	} else {
		db.Goqu = goqu.New(db.Dialect, db.SQL)
	}
	if err := db.Ping(ctx); err != nil {
		_ = db.Close() // the ping's error is the one that matters
		return nil, err
	}
	return db, nil
}

func openSQLite(rawURL string, log *slog.Logger) (*DB, error) {
	rest := strings.TrimPrefix(rawURL, "sqlite://")
	path, params, _ := strings.Cut(rest, "?")
	if path == "" {
		return nil, fmt.Errorf("%w: no file path; use %s", ErrBadURL, sqliteForm)
	}
	query, err := url.ParseQuery(params)
	if err != nil {
		return nil, fmt.Errorf("%w: parameters: %v; use %s", ErrBadURL, err, sqliteForm)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: cannot create directory %q for the SQLite database: %v; "+
			"make it writable or choose another path in the database URL", ErrUnavailable, dir, err)
	}
	if err := privateFiles(path, log); err != nil {
		return nil, err
	}
	query.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	query.Add("_pragma", "journal_mode(WAL)")
	query.Add("_pragma", "foreign_keys(1)")
	query.Add("_pragma", "synchronous(FULL)")
	query.Set("_txlock", "immediate")
	query.Set("_time_format", "sqlite")
	query.Set("_timezone", "UTC")
	sqlDB, err := sql.Open("sqlite", path+"?"+query.Encode())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	sqlDB.SetMaxOpenConns(1)
	sqlDB.SetMaxIdleConns(1)
	sqlDB.SetConnMaxLifetime(0)
	sqlDB.SetConnMaxIdleTime(0)
	return &DB{SQL: sqlDB, Dialect: DialectSQLite, redacted: "sqlite://" + path}, nil
}

// privateFiles makes the database file, and its WAL and shared-memory files
// when they exist, readable by their owner only: the database holds password
// hashes and every conversation. A missing database file is created with mode
// 0600 before the driver opens it; SQLite gives the -wal and -shm files it
// creates later the database file's mode. An existing file with looser modes
// is tightened to 0600, with a warning. Directories are left as they are (a
// new one is created 0700 by the caller): the database may live in a shared
// directory such as the working directory.
func privateFiles(path string, log *slog.Logger) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("%w: cannot create the SQLite database %q: %v; "+
			"make its directory writable or choose another path in the database URL", ErrUnavailable, path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%w: create the SQLite database %q: %v", ErrUnavailable, path, err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if st.Mode().Perm()&0o077 == 0 {
			continue
		}
		if err := os.Chmod(p, st.Mode().Perm()&0o700); err != nil {
			return fmt.Errorf("%w: restrict %q to its owner: %v; chmod 600 it", ErrUnavailable, p, err)
		}
		log.Warn("database file was readable by others; restricted to its owner", "file", p,
			"old_mode", fmt.Sprintf("%04o", st.Mode().Perm()), "new_mode", fmt.Sprintf("%04o", st.Mode().Perm()&0o700))
	}
	return nil
}

func openMySQL(rawURL string, opts Options, log *slog.Logger) (*DB, error) {
	cfg, redacted, err := mysqlConfig(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.Logger = driverLogger{log}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v; use %s", ErrBadURL, err, mysqlForm)
	}
	sqlDB := sql.OpenDB(connector)
	maxOpen := cmp.Or(opts.MaxOpenConns, 20)
	sqlDB.SetMaxOpenConns(maxOpen)
	sqlDB.SetMaxIdleConns(cmp.Or(opts.MaxIdleConns, maxOpen))
	sqlDB.SetConnMaxLifetime(cmp.Or(opts.ConnMaxLifetime, 30*time.Minute))
	sqlDB.SetConnMaxIdleTime(cmp.Or(opts.ConnMaxIdleTime, 5*time.Minute))
	multi := cfg.Clone()
	multi.MultiStatements = true
	batchConnector, err := mysql.NewConnector(multi)
	if err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("%w: %v; use %s", ErrBadURL, err, mysqlForm)
	}
	batchDB := sql.OpenDB(batchConnector)
	// One connection per batch the writer commits at once; a few spare ones
	// cover several writers on one DB (tests).
	batchDB.SetMaxOpenConns(maxOpen)
	batchDB.SetMaxIdleConns(batchIdleConns)
	batchDB.SetConnMaxLifetime(cmp.Or(opts.ConnMaxLifetime, 30*time.Minute))
	batchDB.SetConnMaxIdleTime(cmp.Or(opts.ConnMaxIdleTime, 5*time.Minute))
	return &DB{SQL: sqlDB, Dialect: DialectMySQL, batch: batchDB, redacted: redacted}, nil
}

// mysqlConfig turns a mysql:// URL into a driver config, and the URL with its password
// redacted for messages.
func mysqlConfig(rawURL string) (*mysql.Config, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the URL, password included, so only its cause is kept.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, "", fmt.Errorf("%w: %v; use %s", ErrBadURL, err, mysqlForm)
	}
	redacted := u.Redacted()
	dbName := strings.TrimPrefix(u.Path, "/")
	switch {
	case u.User == nil || u.User.Username() == "":
		return nil, "", fmt.Errorf("%w: no user in %s; use %s", ErrBadURL, redacted, mysqlForm)
	case u.Hostname() == "":
		return nil, "", fmt.Errorf("%w: no host in %s; use %s", ErrBadURL, redacted, mysqlForm)
	case dbName == "" || strings.Contains(dbName, "/"):
		return nil, "", fmt.Errorf("%w: no database name (or a nested path) in %s; use %s", ErrBadURL, redacted, mysqlForm)
	}
	// ParseDSN understands every driver parameter; give it only the parameters so the
	// password never passes through a DSN string.
	cfg, err := mysql.ParseDSN("/?" + u.RawQuery)
	if err != nil {
		return nil, "", fmt.Errorf("%w: parameters in %s: %v; use %s", ErrBadURL, redacted, err, mysqlForm)
	}
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net = "tcp"
	port := u.Port()
	if port == "" {
		port = "3306"
	}
	cfg.Addr = net.JoinHostPort(u.Hostname(), port)
	cfg.DBName = dbName
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.InterpolateParams = true
	cfg.ClientFoundRows = true
	if err := cfg.Apply(mysql.Charset("utf8mb4", "utf8mb4_unicode_ci")); err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	return cfg, redacted, nil
}

// Ping checks that the database answers; the readiness probe calls it.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.SQL.PingContext(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return fmt.Errorf("persistence: ping %s: %w", db.redacted, err)
		}
		return fmt.Errorf("%w: %s: %v; %s", ErrUnavailable, db.redacted, err, db.hint())
	}
	return nil
}

func (db *DB) hint() string {
	if db.Dialect == DialectSQLite {
		return "check that the file and its directory are writable and the file is a SQLite database"
	}
	return "check that MariaDB is running and reachable at that host and port, and that the user, password and database are right"
}

// String returns the database URL with any password redacted.
func (db *DB) String() string { return db.redacted }

// Close closes the pool and its cached statements. Queries still running finish first.
func (db *DB) Close() error {
	if db.stmts != nil {
		db.stmts.close()
	}
	err := db.SQL.Close()
	if db.batch != nil {
		err = errors.Join(err, db.batch.Close())
	}
	if err != nil {
		return fmt.Errorf("persistence: close %s: %w", db.redacted, err)
	}
	return nil
}

// NewPoolCollector returns a Prometheus collector of the pool's statistics (open, in use and
// idle connections, waits), labelled db_name=name. Register it on the caller's registry.
func NewPoolCollector(db *DB, name string) prometheus.Collector {
	return collectors.NewDBStatsCollector(db.SQL, name)
}

// poolRunner runs a query outside a transaction: *sql.DB or cachingDB.
type poolRunner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// driverLogger routes go-sql-driver/mysql diagnostics into slog instead of the
// standard library's global logger.
type driverLogger struct{ log *slog.Logger }

func (l driverLogger) Print(v ...any) {
	l.log.Warn("mysql driver", "detail", fmt.Sprint(v...))
}

// utc is the one time rule: every time stored is UTC, truncated to the microsecond that
// MariaDB's DATETIME(6) keeps, so both dialects read back exactly what was written.
func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// nullTime is the stored form of an optional time: NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return utc(t)
}
