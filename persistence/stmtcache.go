package persistence

import (
	"container/list"
	"context"
	"database/sql"
	"log/slog"
	"sync"
)

// stmtCacheSize bounds the statements a SQLite pool keeps prepared. kowai runs a few
// dozen distinct parameterized statements; the bound keeps texts that vary (IN lists
// of any length) from growing the cache without limit.
const stmtCacheSize = 128

// stmtCache keeps prepared statements of one pool by their SQL text, least recently
// used first out. It serves the statements goqu builds in prepared mode and kowai's
// hand-written ones: their text is stable and their values travel as arguments, so the
// text names the statement. A statement without arguments is not cached: in that form
// goqu inlines values into the text, so the text rarely repeats.
//
// It exists for SQLite: modernc.org/sqlite compiles a statement's text again on every
// query that is not prepared beforehand, which was 40% of the CPU of a short listing.
// database/sql keeps a *sql.Stmt usable across connections: it prepares the
// statement again on a connection that replaced a closed one, so the cache stays
// valid across reconnects.
//
// A statement evicted while a caller uses it is closed when the last caller releases
// it; a statement being read (open Rows) stays alive until its rows close, which
// database/sql itself guarantees.
type stmtCache struct {
	db  *sql.DB
	max int
	log *slog.Logger

	mu     sync.Mutex
	byText map[string]*list.Element // of *cachedStmt
	lru    list.List                // most recently used at the front
	closed bool
	// prepares counts statements prepared, for tests.
	prepares int
}

// cachedStmt is one prepared statement and the callers using it.
type cachedStmt struct {
	text    string
	stmt    *sql.Stmt
	refs    int
	evicted bool
}

func newStmtCache(db *sql.DB, maxStmts int, log *slog.Logger) *stmtCache {
	return &stmtCache{db: db, max: maxStmts, log: log, byText: make(map[string]*list.Element, maxStmts)}
}

// acquire returns the prepared statement for query, preparing it on first use. The
// caller must release it. A closed cache returns nil and no error: the caller runs the
// query on the pool, which reports that it is closed.
func (c *stmtCache) acquire(ctx context.Context, query string) (*cachedStmt, error) {
	c.mu.Lock()
	if e, ok := c.byText[query]; ok {
		s := e.Value.(*cachedStmt)
		s.refs++
		c.lru.MoveToFront(e)
		c.mu.Unlock()
		return s, nil
	}
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, nil
	}
	// Prepare outside the lock: it may wait for a connection.
	stmt, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	var done []*cachedStmt
	defer func() { c.closeAll(done) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prepares++
	if e, ok := c.byText[query]; ok || c.closed {
		// Another caller prepared it meanwhile, or the cache closed: use theirs, or
		// none, and drop this one.
		done = append(done, &cachedStmt{text: query, stmt: stmt})
		if !ok {
			return nil, nil
		}
		s := e.Value.(*cachedStmt)
		s.refs++
		c.lru.MoveToFront(e)
		return s, nil
	}
	s := &cachedStmt{text: query, stmt: stmt, refs: 1}
	c.byText[query] = c.lru.PushFront(s)
	for c.lru.Len() > c.max {
		done = c.evict(c.lru.Back(), done)
	}
	return s, nil
}

// release ends a use of s; an evicted statement closes with its last use.
func (c *stmtCache) release(s *cachedStmt) {
	c.mu.Lock()
	s.refs--
	last := s.evicted && s.refs == 0
	c.mu.Unlock()
	if last {
		c.closeAll([]*cachedStmt{s})
	}
}

// evict removes e from the cache and adds its statement to done when no caller uses
// it; otherwise the last caller closes it. c.mu is held.
func (c *stmtCache) evict(e *list.Element, done []*cachedStmt) []*cachedStmt {
	s := c.lru.Remove(e).(*cachedStmt)
	delete(c.byText, s.text)
	s.evicted = true
	if s.refs == 0 {
		done = append(done, s)
	}
	return done
}

// closeAll closes statements that are out of the cache, outside c.mu: Stmt.Close
// takes the pool's locks. Closing a prepared statement frees it on its connections; a
// failure there leaves nothing for a caller to do, so it is logged.
func (c *stmtCache) closeAll(done []*cachedStmt) {
	for _, s := range done {
		if err := s.stmt.Close(); err != nil {
			c.log.Warn("closing a cached statement failed", "statement", s.text, "error", err)
		}
	}
}

// close empties the cache and closes its statements (those in use close with their
// last use); later acquires return nil.
func (c *stmtCache) close() {
	var done []*cachedStmt
	c.mu.Lock()
	c.closed = true
	for c.lru.Len() > 0 {
		done = c.evict(c.lru.Back(), done)
	}
	c.mu.Unlock()
	c.closeAll(done)
}

// len is the number of statements cached, for tests.
func (c *stmtCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// cachingDB is the handle goqu runs queries on: the pool, whose parameterized queries
// and statements run as cached prepared statements. Transactions (BeginTx) are the
// pool's own.
type cachingDB struct {
	*sql.DB
	cache *stmtCache
}

// ExecContext runs query as a cached prepared statement when it has arguments.
func (d cachingDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if len(args) == 0 {
		return d.DB.ExecContext(ctx, query)
	}
	s, err := d.cache.acquire(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return d.DB.ExecContext(ctx, query, args...)
	}
	defer d.cache.release(s)
	return s.stmt.ExecContext(ctx, args...)
}

// QueryContext runs query as a cached prepared statement when it has arguments.
func (d cachingDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if len(args) == 0 {
		return d.DB.QueryContext(ctx, query)
	}
	s, err := d.cache.acquire(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return d.DB.QueryContext(ctx, query, args...)
	}
	defer d.cache.release(s)
	return s.stmt.QueryContext(ctx, args...)
}

// QueryRowContext runs query as a cached prepared statement when it has arguments. A
// statement that cannot be prepared yields a Row that reports the error on Scan, as
// sql.DB's does.
func (d cachingDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if len(args) == 0 {
		return d.DB.QueryRowContext(ctx, query)
	}
	s, err := d.cache.acquire(ctx, query)
	if err != nil || s == nil {
		// The pool prepares it again and reports the same error through the Row.
		return d.DB.QueryRowContext(ctx, query, args...)
	}
	defer d.cache.release(s)
	return s.stmt.QueryRowContext(ctx, args...)
}
