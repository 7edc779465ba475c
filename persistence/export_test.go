package persistence

import (
	"context"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// Hooks for the external tests of this package.

// Statements of ListByOwner, for its plan test.
const (
	ConversationsByOwnerSQL      = conversationsByOwnerSQL
	ConversationsByOwnerAfterSQL = conversationsByOwnerAfterSQL
)

// CachedStatements is the number of statements db's cache holds (0 without a cache).
func CachedStatements(db *DB) int {
	if db.stmts == nil {
		return 0
	}
	return db.stmts.len()
}

// StatementPrepares is the number of statements db's cache has prepared so far.
func StatementPrepares(db *DB) int {
	if db.stmts == nil {
		return 0
	}
	db.stmts.mu.Lock()
	defer db.stmts.mu.Unlock()
	return db.stmts.prepares
}

// SetStatementCacheSize changes the bound of db's cache; call it before any query.
func SetStatementCacheSize(db *DB, n int) {
	db.stmts.mu.Lock()
	defer db.stmts.mu.Unlock()
	db.stmts.max = n
}

// Uncached returns a handle on db's pool whose queries bypass the statement cache and
// whose ListByOwner is built with goqu, as before the cache, for benchmarks.
func Uncached(db *DB) *DB {
	u := *db
	u.Goqu = goqu.New(db.Dialect, db.SQL)
	u.run = db.SQL
	u.stmts = nil
	return &u
}

// ListByOwnerWithGoqu is ListByOwner built with goqu's keyset, the form before it was
// written out, for benchmarks.
func ListByOwnerWithGoqu(ctx context.Context, s *ConversationStore, ownerID string, req PageRequest) (Page[Conversation], error) {
	return s.list(ctx, s.selectConversations().Where(goqu.C("owner_id").Eq(ownerID)), req)
}

// WriterPaths returns how many batches w committed in one multi-statement request
// (MariaDB) and how many it ran again with a savepoint per Op after its fast path
// failed.
func WriterPaths(w *Writer) (multiCommits, isolations int64) {
	return w.multiCommits.Load(), w.isolations.Load()
}

// RunFenceSQL is the MariaDB fenced INSERT of one journal row per run of ids, each
// run fenced at version 1, for its plan test.
func RunFenceSQL(ids []string) (string, []any, error) {
	rows := make([][]any, len(ids))
	fences := make([]runFence, len(ids))
	for i, id := range ids {
		rows[i], fences[i] = []any{id, 1}, runFence{id: id, version: 1}
	}
	st, err := fencedInsertSQL(DialectMySQL, "workflow_steps", []string{"run_id", "seq"}, rows, 0, fences)
	return st.query, st.args, err
}

// MergedRunSaveSQL is the merged compare-and-swap of the runs of ids from version 1
// to 2, for its plan test.
func MergedRunSaveSQL(ids []string) (string, []any, error) {
	saves := make([]versionedSave, len(ids))
	for i, id := range ids {
		saves[i] = versionedSave{table: "workflow_runs", what: "workflow run", id: id, rec: goqu.Record{"version": int64(2)}, version: 2, expected: 1}
	}
	sts, err := mergedSaveStatements(saves)
	if err != nil {
		return "", nil, err
	}
	return sts[0].query, sts[0].args, nil
}

// TouchSQL is the MariaDB merged touch of the conversations of ids, for its plan test.
func TouchSQL(ids []string) (string, []any, error) {
	touches := make([]Touch, len(ids))
	for i, id := range ids {
		touches[i] = ConversationTouch(id, time.Now())
	}
	sts, err := touchStatements(mysqlSQL, DialectMySQL, "conversations", "updated_at", touches)
	if err != nil {
		return "", nil, err
	}
	return sts[0].query, sts[0].args, nil
}
