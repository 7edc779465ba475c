package persistence

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doug-martin/goqu/v9"
	"github.com/go-sql-driver/mysql"
)

// stmt is one SQL statement with ? placeholders and its values. want is the row
// count the statement must report (the matched rows of a compare-and-swap UPDATE,
// counted with clientFoundRows), or -1 when any count will do.
type stmt struct {
	query string
	args  []any
	want  int64
}

// statementer is an Op the Writer may send to MariaDB as plain statements, together
// with the rest of its batch in one request. A statement that fails or reports
// another row count than it wants makes the Writer run the batch again the ordinary
// way, where the Op's Apply says what went wrong; so statements must do exactly what
// Apply does when Apply succeeds.
type statementer interface {
	Op
	statements() ([]stmt, error)
}

// mysqlSQL builds MariaDB statements outside any connection.
var mysqlSQL = goqu.Dialect(DialectMySQL)

// errNotStatements means a batch holds an Op that is not a statementer: it is
// committed the ordinary way.
var errNotStatements = errors.New("persistence: batch not expressible as statements")

// errStatementCheck means a statement of a multi-statement batch reported a row
// count other than the one it wants (a lost compare-and-swap): the batch is
// isolated, so that the Op's own Apply reports the conflict to its caller.
var errStatementCheck = errors.New("persistence: a statement of the batch matched other rows than expected")

// batchStatements turns the merged steps of a batch (see mergeBatch) into
// statements, or returns errNotStatements.
func batchStatements(steps []any) ([]stmt, error) {
	var out []stmt
	saves := groupSaves(steps)
	for _, s := range steps {
		var (
			ss  []stmt
			err error
		)
		switch s := s.(type) {
		case versionedSave:
			group, ok := saves[s.groupKey()]
			switch {
			case !ok:
				ss, err = s.statements()
			case group == nil:
				continue // its group's statement, at the group's first save, holds it
			default:
				saves[s.groupKey()] = nil
				ss, err = mergedSaveStatements(group)
			}
		case *insertTarget:
			ss, err = insertStatements(DialectMySQL, s.table, s.cols, s.rows)
		case *touchTarget:
			ss, err = touchStatements(mysqlSQL, DialectMySQL, s.table, s.column, s.touches)
		case *usageTarget:
			ss = usageStatements(DialectMySQL, s.entries)
		case statementer:
			ss, err = s.statements()
		default:
			return nil, errNotStatements
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ss...)
	}
	return out, nil
}

// multiStatementBudget bounds the text of one multi-statement request, well
// below MariaDB's default max_allowed_packet (16 MiB); a larger batch is
// committed the ordinary way.
const multiStatementBudget = 4 << 20

// attemptMulti commits the batch in two requests to MariaDB: START TRANSACTION
// with every statement of the batch, then COMMIT, on a connection of the pool
// that accepts several statements per request. It returns errNotStatements,
// with nothing done, when the batch holds an Op that is not a statementer;
// errIsolate-wrapped errors when a statement failed or matched other rows than
// it wants (rolled back); retryable errors as they are (rolled back); and an
// errCommit-wrapped error when COMMIT failed.
func (w *Writer) attemptMulti(ctx context.Context, batch []*request) error {
	stmts, err := batchStatements(mergeBatch(batch))
	if err != nil {
		return err
	}
	// Sized up front: grown as it was written, the request's text and values
	// were the largest allocations of a workflow task's write.
	size, n := len("START TRANSACTION"), 0
	for _, st := range stmts {
		size, n = size+2+len(st.query), n+len(st.args)
	}
	if size > multiStatementBudget {
		return errNotStatements
	}
	var query strings.Builder
	query.Grow(size)
	args := make([]driver.NamedValue, 0, n)
	query.WriteString("START TRANSACTION")
	for _, s := range stmts {
		query.WriteString(";\n")
		query.WriteString(s.query)
		for _, a := range s.args {
			args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: a})
		}
	}
	conn, err := w.db.batch.Conn(ctx)
	if err != nil {
		return wrap(err, "connect")
	}
	defer func() {
		// Close only hands the connection back to its pool (or finds it
		// dropped already); the batch's outcome is Raw's.
		if err := conn.Close(); err != nil && !errors.Is(err, sql.ErrConnDone) {
			w.log.Warn("group commit connection not released", "error", err)
		}
	}()
	return conn.Raw(func(dc any) error {
		ex, ok := dc.(driver.ExecerContext)
		if !ok {
			return errNotStatements
		}
		if c, ok := dc.(driver.NamedValueChecker); ok {
			for i := range args {
				if err := c.CheckNamedValue(&args[i]); err != nil {
					return fmt.Errorf("persistence: batch value %d: %w", i+1, err)
				}
			}
		}
		res, err := ex.ExecContext(ctx, query.String(), args)
		if errors.Is(err, driver.ErrSkip) {
			// The driver would not interpolate the values (too large a packet):
			// nothing was sent.
			return errNotStatements
		}
		if err == nil {
			err = checkCounts(res, stmts)
		}
		if err != nil {
			if _, rbErr := ex.ExecContext(ctx, "ROLLBACK", nil); rbErr != nil {
				// The connection's state is unknown: database/sql drops it.
				return errors.Join(batchError(err), wrap(rbErr, "rollback"), driver.ErrBadConn)
			}
			return batchError(err)
		}
		if _, err := ex.ExecContext(ctx, "COMMIT", nil); err != nil {
			return fmt.Errorf("%w: %w", errCommit, errors.Join(classify(err), driver.ErrBadConn))
		}
		return nil
	})
}

// batchError sorts the failure of a multi-statement batch like applyMerged does:
// retryable and timed-out batches are retried or failed whole, anything else may
// be one Op's doing and is worth isolating.
func batchError(err error) error {
	if errors.Is(err, errStatementCheck) {
		return fmt.Errorf("%w: %w", errIsolate, err)
	}
	err = classify(err)
	if IsRetryable(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) {
		return err
	}
	return fmt.Errorf("%w: %w", errIsolate, err)
}

// checkCounts compares the row counts of a multi-statement result, whose first
// statement is START TRANSACTION, with what the statements want.
func checkCounts(res driver.Result, stmts []stmt) error {
	mr, ok := res.(mysql.Result)
	if !ok {
		return fmt.Errorf("%w: the driver reported no row counts", errStatementCheck)
	}
	counts := mr.AllRowsAffected()
	if len(counts) != len(stmts)+1 {
		return fmt.Errorf("%w: %d results for %d statements", errStatementCheck, len(counts), len(stmts)+1)
	}
	for i, s := range stmts {
		if s.want >= 0 && counts[i+1] != s.want {
			return fmt.Errorf("%w: statement %d matched %d rows, want %d", errStatementCheck, i+1, counts[i+1], s.want)
		}
	}
	return nil
}

// insertStatements is rows as multi-row INSERTs, as many as the parameter limit
// asks for. The statements are built by hand rather than through goqu: both
// dialects take ? for a parameter and backquoted names, and goqu's builder
// allocated about 12 KB per merged message row (a third of a chat turn's
// allocation, BenchmarkTurnCost). The values go to the driver as they are, which
// converts them as goqu's prepared mode did (named types, driver.Valuer, nil). Rows
// that end with a runFence (RunFenced) are checked by one subquery per statement
// (fencedInsertSQL).
func insertStatements(dialect, table string, cols []string, rows [][]any) ([]stmt, error) {
	step := max(1, maxParams/(len(cols)+3))
	var out []stmt
	for chunk := range slices.Chunk(rows, step) {
		var fences []runFence
		first := -1 // the first fenced row of chunk
		for i, row := range chunk {
			switch {
			case len(row) == len(cols)+1:
				fence, ok := row[len(cols)].(runFence)
				if !ok {
					return nil, fmt.Errorf("persistence: build insert into %s: a row has %d values for %d columns", table, len(row), len(cols))
				}
				if first < 0 {
					first = i
				}
				if !slices.Contains(fences, fence) {
					fences = append(fences, fence)
				}
			case len(row) != len(cols):
				return nil, fmt.Errorf("persistence: build insert into %s: a row has %d values for %d columns", table, len(row), len(cols))
			}
		}
		if first >= 0 {
			st, err := fencedInsertSQL(dialect, table, cols, chunk, first, fences)
			if err != nil {
				return nil, err
			}
			out = append(out, st)
			continue
		}
		args := make([]any, 0, len(chunk)*len(cols))
		for _, row := range chunk {
			args = append(args, row...)
		}
		out = append(out, stmt{query: insertSQL(table, cols, len(chunk)), args: args, want: -1})
	}
	return out, nil
}

// fencedInsertSQL is the INSERT of rows, some of which end with a runFence
// (RunFenced): the run_id of the first fenced row, first, is written as
//
//	CASE WHEN (SELECT COUNT(*) FROM workflow_runs WHERE id IN (?, ...)
//		AND version = CASE id WHEN ? THEN ? ... END) = n THEN ? END
//
// over the statement's distinct fences, which is NULL, refused by the NOT NULL
// column, unless every fenced run is at its version: one subquery per statement,
// however many runs it fences. A run at another version so fails the whole
// statement; the Writer then applies each write on its own, where only the stale
// one fails. On MariaDB the subquery reads workflow_runs by its primary key only
// (primaryOnly).
func fencedInsertSQL(dialect, table string, cols []string, rows [][]any, first int, fences []runFence) (stmt, error) {
	at := slices.Index(cols, "run_id")
	if at < 0 {
		return stmt{}, fmt.Errorf("persistence: build fenced insert into %s: no run_id column", table)
	}
	var b strings.Builder
	b.Grow(32 + len(table) + len(rows)*(4+3*len(cols)) + 8*len(cols) + 96 + 32*len(fences))
	args := make([]any, 0, len(rows)*len(cols)+2*len(fences)+1)
	writeInsertHead(&b, table, cols)
	for r, row := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for i := range cols {
			if i > 0 {
				b.WriteString(", ")
			}
			if r == first && i == at {
				b.WriteString("CASE WHEN (SELECT COUNT(*) FROM `workflow_runs`")
				if dialect == DialectMySQL {
					b.WriteString(primaryOnly)
				}
				b.WriteString(" WHERE ")
				args = appendAtVersions(&b, args, len(fences), func(k int) (string, int64) { return fences[k].id, fences[k].version })
				b.WriteString(") = ")
				b.WriteString(strconv.Itoa(len(fences)))
				b.WriteString(" THEN ? END")
				args = append(args, row[i])
				continue
			}
			b.WriteByte('?')
			args = append(args, row[i])
		}
		b.WriteByte(')')
	}
	return stmt{query: b.String(), args: args, want: -1}, nil
}

// insertSQL is the INSERT of n rows of cols into table, with a ? for each value.
func insertSQL(table string, cols []string, n int) string {
	var b strings.Builder
	size := 32 + len(table) + n*(4+3*len(cols))
	for _, c := range cols {
		size += len(c) + 4
	}
	b.Grow(size)
	writeInsertHead(&b, table, cols)
	for r := range n {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for i := range cols {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('?')
		}
		b.WriteByte(')')
	}
	return b.String()
}

// writeInsertHead writes "INSERT INTO `table` (`col`, ...) VALUES ".
func writeInsertHead(b *strings.Builder, table string, cols []string) {
	b.WriteString("INSERT INTO ")
	quoteName(b, table)
	b.WriteString(" (")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		quoteName(b, c)
	}
	b.WriteString(") VALUES ")
}

// quoteName writes name backquoted, as both MariaDB and SQLite read a table or
// column name; a backquote inside it is doubled.
func quoteName(b *strings.Builder, name string) {
	b.WriteByte('`')
	b.WriteString(strings.ReplaceAll(name, "`", "``"))
	b.WriteByte('`')
}

// touchStatements is touches of one table and column, whose IDs are distinct, as
// UPDATEs, one per chunk that the parameter limit allows. On MariaDB (dialect) each
// UPDATE finds its rows by the primary key only (primaryOnly): it is a locking read of
// a list of IDs, like a merged compare-and-swap.
func touchStatements(b runner, dialect, table, column string, touches []Touch) ([]stmt, error) {
	var out []stmt
	for chunk := range slices.Chunk(touches, maxParams/3) {
		values := goqu.Case().Value(goqu.C("id"))
		ids := make([]any, len(chunk))
		for i, t := range chunk {
			values = values.When(t.ID, utc(t.At))
			ids[i] = t.ID
		}
		query, args, err := b.Update(table).Prepared(true).Set(goqu.Record{column: values}).Where(goqu.C("id").In(ids...)).ToSQL()
		if err != nil {
			return nil, fmt.Errorf("persistence: build touch of %s: %w", table, err)
		}
		if dialect == DialectMySQL {
			query = strings.Replace(query, "UPDATE `"+table+"`", "UPDATE `"+table+"`"+primaryOnly, 1)
		}
		out = append(out, stmt{query: query, args: args, want: -1})
	}
	return out, nil
}

// versionedSave is saveVersioned as an Op: the compare-and-swap of one row's
// columns rec on its version.
type versionedSave struct {
	table, what, id   string
	rec               goqu.Record
	version, expected int64
}

// Apply implements Op.
func (v versionedSave) Apply(ctx context.Context, tx *goqu.TxDatabase) error {
	return saveVersioned(ctx, tx, v.table, v.what, v.id, v.rec, v.version, v.expected)
}

// groupKey names the table and columns of v: saves with the same key can share
// one UPDATE.
func (v versionedSave) groupKey() string {
	return v.table + "\x00" + strings.Join(slices.Sorted(maps.Keys(v.rec)), "\x00")
}

// groupSaves maps the group key of each group of two or more valid
// versionedSaves among steps to the group, in batch order.
func groupSaves(steps []any) map[string][]versionedSave {
	groups := map[string][]versionedSave{}
	for _, s := range steps {
		if v, ok := s.(versionedSave); ok && v.version > v.expected {
			groups[v.groupKey()] = append(groups[v.groupKey()], v)
		}
	}
	for k, g := range groups {
		if len(g) < 2 {
			delete(groups, k)
		}
	}
	return groups
}

// mergedSaveStatements is the compare-and-swaps of saves, of one table and
// column set, as UPDATEs of many rows each (as many as the parameter limit
// allows): every column is set by a CASE on the ID, and the WHERE clause
// matches each row at its own expected version. Each must match all of its
// rows; a single stale version fails the count, and the Writer then isolates
// the batch, so that only the stale save's caller learns of the conflict (the
// same outcome as one UPDATE per save, in one statement instead of one per
// run).
func mergedSaveStatements(saves []versionedSave) ([]stmt, error) {
	cols := slices.Sorted(maps.Keys(saves[0].rec))
	step := max(1, maxParams/(2*len(cols)+3))
	var out []stmt
	for chunk := range slices.Chunk(saves, step) {
		var b strings.Builder
		args := make([]any, 0, len(chunk)*(2*len(cols)+3))
		b.WriteString("UPDATE `")
		b.WriteString(chunk[0].table)
		b.WriteString("`")
		b.WriteString(primaryOnly)
		b.WriteString(" SET ")
		for i, c := range cols {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString("`")
			b.WriteString(c)
			b.WriteString("`=CASE `id`")
			for _, v := range chunk {
				b.WriteString(" WHEN ? THEN ?")
				args = append(args, v.id, v.rec[c])
			}
			b.WriteString(" END")
		}
		b.WriteString(" WHERE ")
		args = appendAtVersions(&b, args, len(chunk), func(k int) (string, int64) { return chunk[k].id, chunk[k].expected })
		out = append(out, stmt{query: b.String(), args: args, want: int64(len(chunk))})
	}
	return out, nil
}

// statements implements statementer: the UPDATE must match its one row.
func (v versionedSave) statements() ([]stmt, error) {
	if v.version <= v.expected {
		return nil, errNotStatements // Apply reports it
	}
	// Written by hand, not by goqu (whose reflection over the record cost more
	// than the rest of a run's final write): the table and columns are names
	// from this package, every value is a placeholder.
	cols := slices.Sorted(maps.Keys(v.rec))
	var b strings.Builder
	b.WriteString("UPDATE `")
	b.WriteString(v.table)
	b.WriteString("` SET ")
	args := make([]any, 0, len(cols)+2)
	for i, c := range cols {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("`")
		b.WriteString(c)
		b.WriteString("`=?")
		args = append(args, v.rec[c])
	}
	b.WriteString(" WHERE `id`=? AND `version`=?")
	args = append(args, v.id, v.expected)
	return []stmt{{query: b.String(), args: args, want: 1}}, nil
}

// statements implements statementer: the INSERT of a first snapshot (a taken key
// fails it), or the UPDATE that must match its one row at the expected version.
func (op snapshotCAS) statements() ([]stmt, error) {
	s := op.snap
	if s.Version <= op.expected {
		return nil, errNotStatements // Apply reports it
	}
	now := utc(s.UpdatedAt)
	if s.UpdatedAt.IsZero() {
		now = utc(time.Now())
	}
	state := s.State
	if state == nil {
		state = []byte{}
	}
	if op.expected == 0 {
		query, args, err := mysqlSQL.Insert("snapshots").Prepared(true).Rows(goqu.Record{
			"kind": s.Kind, "identity": s.Identity, "conversation_id": nullString(s.ConversationID),
			"version": s.Version, "state": state, "updated_at": now,
		}).ToSQL()
		if err != nil {
			return nil, fmt.Errorf("persistence: build save of snapshot %s/%s: %w", s.Kind, s.Identity, err)
		}
		return []stmt{{query: query, args: args, want: -1}}, nil
	}
	query, args, err := mysqlSQL.Update("snapshots").Prepared(true).
		Set(goqu.Record{"version": s.Version, "state": state, "updated_at": now}).
		Where(goqu.C("kind").Eq(s.Kind), goqu.C("identity").Eq(s.Identity), goqu.C("version").Eq(op.expected)).ToSQL()
	if err != nil {
		return nil, fmt.Errorf("persistence: build save of snapshot %s/%s: %w", s.Kind, s.Identity, err)
	}
	return []stmt{{query: query, args: args, want: 1}}, nil
}

// primaryOnly is the MariaDB index hint of the statements that find rows by a list
// of IDs (a run fence's subquery, a merged compare-and-swap, a merged touch): all are locking
// reads, and on a small table (a new database, the first runs) the optimizer
// chose a scan of a whole index over the primary key's lookups (EXPLAIN: type
// index), which locks every row it passes. Concurrent batches then waited for each
// other's locks and deadlocked: in BenchmarkWorkflowTasks, 26 runs of a phase once
// never finished (their writes failed after the retries).
const primaryOnly = " FORCE INDEX (PRIMARY)"

// appendAtVersions writes the condition that each of n rows, row k being
// at(k)'s ID, is at at(k)'s version: `id` IN (...) AND `version` = CASE `id`
// WHEN ... END, one placeholder per value, and returns args with the values.
func appendAtVersions(b *strings.Builder, args []any, n int, at func(k int) (id string, version int64)) []any {
	b.WriteString("`id` IN (")
	for k := range n {
		if k > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('?')
		id, _ := at(k)
		args = append(args, id)
	}
	b.WriteString(") AND `version` = CASE `id`")
	for k := range n {
		id, version := at(k)
		b.WriteString(" WHEN ? THEN ?")
		args = append(args, id, version)
	}
	b.WriteString(" END")
	return args
}
