package persistence

import (
	"context"

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
