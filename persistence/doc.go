// Package persistence is kowai's storage layer: opening MariaDB or SQLite by URL, the
// migration runner, the repositories, the snapshot store and the group-commit writer.
//
// # Opening a database
//
// Open takes the value of KOWAI_DATABASE_URL:
//
//	sqlite://./data/kowai.db                       embedded default; the directory is created
//	sqlite:///var/lib/kowai/kowai.db               absolute path
//	mysql://kowai:secret@127.0.0.1:3306/kowai      MariaDB
//	mysql://kowai:secret@db:3306/kowai?tls=true    extra go-sql-driver/mysql parameters
//
// SQLite runs in WAL mode with foreign keys on, a busy timeout and one pooled connection
// (one writer at a time, queued in the pool instead of spinning on SQLITE_BUSY), and its
// queries with arguments run as prepared statements kept in a bounded cache by statement
// text, so SQLite does not compile them again on every call. MariaDB connections use
// utf8mb4, UTC and parseTime, and interpolate arguments client-side (one round trip, no
// prepared statement). Errors say which form is accepted or what to
// check, and never contain the password; DB.String shows the URL redacted.
//
// Every stored time is UTC, truncated to microseconds (DATETIME(6) on MariaDB, DATETIME
// text on SQLite), so a value reads back equal on both. IDs are UUIDv7 strings.
//
// # Migrations
//
// Package migrations embeds versioned up/down SQL per dialect. A Migrator applies them
// (Up), reverts them (Down), lists them (Status) and checks a database against the binary
// (CheckCurrent: ErrSchemaBehind names `kowai migrate up`; ErrSchemaAhead refuses a
// database from a newer binary). Migrating takes a lock so nodes starting together take
// turns. On SQLite a migration and its schema_migrations row commit in one transaction;
// MariaDB commits DDL statement by statement, so a failure halfway leaves the version
// marked dirty and every later run reports ErrDirty with the steps to repair it.
//
//	m, err := persistence.NewMigrator(db, persistence.MigratorOptions{Logger: log})
//	if err != nil { ... }
//	if _, err := m.Up(ctx); err != nil { ... }
//
// # Repositories
//
// Each table group has a small ctx-first interface and a store implementing it on a DB:
// Users (UserStore), AuthSessions (SessionStore), Conversations, Messages, FeedbackWriter,
// Agents, Snapshots, WorkflowRuns and AuditLog. Queries are built with goqu in the
// database's dialect with bound parameters; nothing is concatenated into SQL. Failures
// wrap the sentinels ErrNotFound, ErrConflict and ErrDuplicate (test with errors.Is);
// driver error types never escape, and IsRetryable says whether running the same
// transaction again may succeed.
//
// Lists page with a PageRequest (limit 50 by default, 200 at most) and return a Page with
// an opaque NextCursor: base64url of the last item's sort key and ID, so pages are stable
// under inserts and cost one index range scan each.
//
//	users := persistence.NewUserStore(db)
//	page, err := users.List(ctx, persistence.PageRequest{Limit: 20})
//	next, err := users.List(ctx, persistence.PageRequest{Limit: 20, Cursor: page.NextCursor})
//
// # Fencing with snapshot versions
//
// The cluster can briefly run two activations of one actor. Every snapshot save is a
// compare-and-swap on its version: Save(s, expected) succeeds only if the stored version is
// still expected (0: none stored yet). The activation that loses gets ErrConflict, drops
// its state and stops. Message appends are fenced the same way by the unique
// (conversation_id, seq) key: the second writer of a seq gets ErrDuplicate.
//
// # Group commit
//
// Writer batches appends from many actors: concurrent callers hand it messages, snapshot
// saves or other operations, it commits them together in one transaction per batch
// (bounded by size and a short delay), and answers each caller only after its own batch
// committed. A nil error means durable; a duplicate or conflict reaches only the caller
// that caused it. Use the Writer on hot paths and the stores for single writes and reads.
//
// Ops bundles several writes into one all-or-nothing write, such as a chat reply, its
// actor's snapshot (SnapshotSave) and its conversation's updated_at (ConversationTouch),
// and still lets the Writer merge its Inserts and Touches with the rest of the batch:
//
//	err := w.Submit(ctx, persistence.Ops{
//		persistence.MessagesInsert(reply),
//		persistence.SnapshotSave(snap, expectedVersion),
//		persistence.ConversationTouch(reply.ConversationID, now),
//	})
//
// SnapshotStore.LoadSession reads a conversation actor's snapshot and, in the same
// statement, whether the log goes on past it, so a current snapshot costs one read.
package persistence
