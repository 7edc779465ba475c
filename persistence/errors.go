package persistence

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/go-sql-driver/mysql"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrNotFound reports that the requested row does not exist (or is not visible to the caller).
var ErrNotFound = errors.New("persistence: not found")

// ErrConflict reports a lost optimistic-concurrency race (a version compare-and-swap
// failed) or a write that related rows forbid (a foreign key).
var ErrConflict = errors.New("persistence: conflict")

// ErrDuplicate reports a write that collides with a unique key, such as an email that is
// taken or a message sequence number that another writer already used.
var ErrDuplicate = errors.New("persistence: duplicate")

// ErrGone reports a write to an ID whose row was deleted for good, such as a new
// conversation under the ID of a deleted one.
var ErrGone = errors.New("persistence: gone")

// ErrNoOwner reports a new row naming an owner (a user) that does not exist; it comes
// wrapped together with ErrConflict, the foreign key's error.
var ErrNoOwner = errors.New("persistence: owner does not exist")

// ErrWithdrawn reports a write that a Writer never applied: its caller's context ended
// before the writer took it into a batch. It comes wrapped together with the context's
// error.
var ErrWithdrawn = errors.New("persistence: write withdrawn")

// ErrInvalidCursor reports a page cursor that this package did not produce.
var ErrInvalidCursor = errors.New("persistence: invalid cursor")

// errNullColumn reports NULL written to a NOT NULL column: a fenced row's run_id
// whose run is at another version (RunFenced).
var errNullColumn = errors.New("persistence: null in a NOT NULL column")

// MySQL server error numbers classify looks at.
const (
	mysqlNullColumn      = 1048
	mysqlLockWaitTimeout = 1205
	mysqlDeadlock        = 1213
	mysqlDuplicate       = 1062
	mysqlRowIsReferenced = 1451
	mysqlNoReferencedRow = 1452
)

// dbError is a classified driver error: the sentinel it maps to (if any), whether
// retrying may succeed, and the driver's text. It deliberately does not unwrap to the
// driver error, so driver types never leak past this package.
type dbError struct {
	kind      error
	retryable bool
	msg       string
}

func (e *dbError) Error() string {
	if e.kind != nil {
		return e.kind.Error() + ": " + e.msg
	}
	return "persistence: " + e.msg
}

func (e *dbError) Unwrap() error { return e.kind }

// classify turns a driver error into a package error: sql.ErrNoRows becomes ErrNotFound,
// unique violations ErrDuplicate, foreign-key violations ErrConflict, and lock waits,
// deadlocks and SQLITE_BUSY retryable errors. Context errors and errors already
// classified pass through unchanged; nil stays nil.
func classify(err error) error {
	var de *dbError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &de), isPackageError(err),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	}
	var (
		myErr *mysql.MySQLError
		liErr *sqlite.Error
	)
	switch {
	case errors.As(err, &myErr):
		e := &dbError{msg: myErr.Error()}
		switch myErr.Number {
		case mysqlDuplicate:
			e.kind = ErrDuplicate
		case mysqlRowIsReferenced, mysqlNoReferencedRow:
			e.kind = ErrConflict
		case mysqlNullColumn:
			e.kind = errNullColumn
		case mysqlDeadlock, mysqlLockWaitTimeout:
			e.retryable = true
		}
		return e
	case errors.As(err, &liErr):
		e := &dbError{msg: liErr.Error()}
		switch liErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			e.kind = ErrDuplicate
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			e.kind = ErrConflict
		case sqlite3.SQLITE_CONSTRAINT_NOTNULL:
			e.kind = errNullColumn
		}
		switch liErr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			e.retryable = true
		}
		return e
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn):
		return &dbError{msg: err.Error(), retryable: true}
	}
	return &dbError{msg: err.Error()}
}

// isPackageError reports whether err already carries one of this package's sentinels.
func isPackageError(err error) bool {
	for _, s := range []error{ErrNotFound, ErrConflict, ErrDuplicate, ErrGone, ErrNoOwner, ErrWithdrawn, ErrInvalidCursor, ErrBadURL, ErrUnavailable} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// IsRetryable reports whether err is transient, so running the same transaction again
// may succeed: a deadlock, a lock wait timeout, a busy SQLite database or a broken
// connection. Duplicates, conflicts and missing rows are never retryable.
func IsRetryable(err error) bool {
	var de *dbError
	return errors.As(classify(err), &de) && de.retryable
}

// wrap classifies err and adds what was being done, e.g. wrap(err, "get user %s", id).
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), classify(err))
}
