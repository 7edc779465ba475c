package persistence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doug-martin/goqu/v9"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/internal/promreg"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kowai/kowai/internal/tracing"
)

// ErrClosed is returned by the Writer's methods once its Run has been asked
// to stop: the write was not attempted.
var ErrClosed = errors.New("persistence: writer closed")

// Defaults applied by NewWriter to zero WriterOptions fields.
const (
	// DefaultMaxBatch bounds the rows of one group-commit transaction. It keeps
	// a merged INSERT of messages well below SQLite's 32766 bound parameters
	// and MariaDB's default max_allowed_packet for typical rows.
	DefaultMaxBatch = 256
	// DefaultMaxDelay is how long a busy writer waits for a batch to fill.
	DefaultMaxDelay = time.Millisecond
	// DefaultConcurrency is how many batches commit at once on MariaDB: one
	// can insert while another waits for its flush. 3 did best in
	// BenchmarkGroupCommitMySQL (2: ~45k rows/s, 3: ~48k, 4 and 6: ~40k).
	DefaultConcurrency = 3
	// DefaultMaxRetries is how often a batch is retried after a retryable
	// error (deadlock, lock wait timeout, SQLITE_BUSY).
	DefaultMaxRetries = 3
	// DefaultRetryBackoff is the pause before the first retry; it doubles for
	// each further retry.
	DefaultRetryBackoff = 5 * time.Millisecond
	// DefaultBatchTimeout bounds one attempt to commit a batch.
	DefaultBatchTimeout = 10 * time.Second
)

// maxParams caps the bound parameters of one merged INSERT statement at
// SQLite's default limit, the lower of the two dialects.
const maxParams = 32766

// Op is one unit of work that a Writer applies inside a batch transaction.
// Apply does all its work through tx, under the writer's ctx (not the
// caller's), and never commits or rolls tx back.
//
// When Apply returns a non-retryable error, the Writer rolls the batch back
// and runs it again with every Op inside its own savepoint, so the error is
// returned, as is, to this Op's caller only while the other Ops of the batch
// commit. Retryable errors rerun the whole batch. Apply may therefore run more
// than once, always in a fresh transaction, and must not have effects outside
// tx. Errors of Ops in this package are translated with classify.
type Op interface {
	Apply(ctx context.Context, tx *goqu.TxDatabase) error
}

// OpFunc adapts a function to the Op interface.
type OpFunc func(ctx context.Context, tx *goqu.TxDatabase) error

// Apply calls f(ctx, tx).
func (f OpFunc) Apply(ctx context.Context, tx *goqu.TxDatabase) error { return f(ctx, tx) }

// Insert is an Op that adds rows to one table. The Writer merges the Inserts
// of a batch that name the same table and columns into one multi-row INSERT,
// which is where group commit gets its throughput, so append-only rows such
// as journal entries should be submitted as Inserts. The rows of one Insert
// are written all together or not at all.
type Insert struct {
	// Table is the table to insert into.
	Table string
	// Cols names the columns, in the order of each row's values.
	Cols []string
	// Rows holds one value per column for each row.
	Rows [][]any
}

// Apply inserts the rows of in.
func (in Insert) Apply(ctx context.Context, tx *goqu.TxDatabase) error {
	return insertRows(ctx, tx, in.Table, in.Cols, in.Rows)
}

// insertRows writes rows in as few statements as the parameter limit allows.
func insertRows(ctx context.Context, tx *goqu.TxDatabase, table string, cols []string, rows [][]any) error {
	stmts, err := insertStatements(tx.Dialect(), table, cols, rows)
	if err != nil {
		return err
	}
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st.query, st.args...); err != nil {
			return wrap(err, "insert into %s", table)
		}
	}
	return nil
}

// WriterOptions configures a Writer. Zero fields take the Default* values.
type WriterOptions struct {
	// MaxBatch is the most rows committed in one transaction. A single
	// request larger than MaxBatch is committed alone.
	MaxBatch int
	// MaxDelay is how long the writer, when it is busy, waits for more rows
	// before committing a batch that is not full. An idle writer never waits.
	// A negative value disables waiting.
	MaxDelay time.Duration
	// Concurrency is how many batches may commit at the same time, each in
	// its own transaction and connection: while one waits for its commit to
	// be flushed, the next is already inserting. The default is
	// DefaultConcurrency on MariaDB and 1 on SQLite, whose single connection
	// admits one writer anyway.
	Concurrency int
	// MaxRetries bounds the retries of a batch after retryable errors.
	// A negative value disables retries.
	MaxRetries int
	// RetryBackoff is the pause before the first retry, doubled for each next.
	RetryBackoff time.Duration
	// BatchTimeout bounds one attempt to commit a batch, and so how long a
	// caller whose context ended may still wait for a batch that took its
	// write (at most 2+MaxRetries attempts).
	BatchTimeout time.Duration
	// Logger receives batch failures and retries; nil discards them.
	Logger *slog.Logger
	// Metrics registers the kowai_db_group_commit_* collectors; nil skips
	// registration.
	Metrics prometheus.Registerer
	// Tracing records a span for each batch commit; nil turns tracing off. A
	// batch serves many callers, so its span is a child of the first traced
	// caller's span and links to every other traced caller's.
	Tracing trace.TracerProvider
}

// Writer is the group-commit writer of one database: concurrent callers hand
// it rows, it commits them in one transaction per batch and answers each
// caller once that caller's batch has committed or failed. Use one Writer per
// database; all its methods are safe for concurrent use.
//
// # Lifecycle
//
// NewWriter, then Run in its own goroutine (an errgroup member). Writes wait
// until Run takes them. When Run's context ends, the Writer stops accepting
// writes (they return ErrClosed), commits everything already queued, and Run
// returns nil once every accepted write has been answered.
//
// # Batching
//
// A batch holds at most MaxBatch rows. Writes that arrive while batches are
// committing form the next batch, so batches grow with load by themselves. An
// idle writer commits a write at once; only when writes arrived during the
// previous commit does it wait up to MaxDelay for a batch to fill. Up to
// Concurrency batches commit at the same time. Inserts into the same table
// and columns are merged into one multi-row INSERT per batch.
//
// # Errors
//
// Nil means durable. A batch that fails as a whole (connection lost, commit
// failed, retryable errors that outlast MaxRetries) fails every caller of that
// batch and no other. A deadlock, lock wait timeout or busy database retries
// the whole batch, after a backoff; a failed COMMIT is never retried, since it
// may have succeeded. An error caused by one write (a duplicate key, a lost
// snapshot compare-and-swap, any other error of one Op) reaches that write's
// caller only: the batch is rolled back and run again with every write in its
// own savepoint, which works the same on MariaDB and SQLite.
//
// # Ordering
//
// A write is committed before its caller is answered, so writes that a caller
// makes one after the other are committed in that order and each is visible
// when the next starts. Writes of concurrent callers have no order.
type Writer struct {
	db      *DB
	opts    WriterOptions
	log     *slog.Logger
	metrics writerMetrics
	started atomic.Bool
	// tracer is nil when tracing is off.
	tracer trace.Tracer

	// busy records whether writes arrived while the last batch committed.
	busy atomic.Bool

	// multiCommits counts batches committed in one multi-statement request
	// (attemptMulti) and isolations the batches run again with a savepoint per
	// Op. A batch that falls back from its merged statements to the isolated path
	// commits correctly but slowly, so tests read both to tell the paths apart.
	multiCommits, isolations atomic.Int64

	// wake holds at most one pending signal that the queue grew; a spurious
	// signal only costs one look at the queue.
	wake chan struct{}
	// closing is closed by close, waking every batch loop at once.
	closing chan struct{}

	mu     sync.Mutex
	queue  []*request
	closed bool
}

// Request states: a queued request is taken by the writer or canceled by its
// caller, never both, which is what keeps a cancellation unambiguous.
const (
	stateQueued int32 = iota
	stateTaken
	stateCanceled
)

type request struct {
	op   Op
	rows int
	// span is the caller's span context, recorded only when tracing is on.
	span  trace.SpanContext
	state atomic.Int32
	done  chan error // buffered: the writer never blocks on a caller
}

// NewWriter returns a Writer for db; call Run to start it.
func NewWriter(db *DB, opts WriterOptions) *Writer {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.MaxDelay == 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
		if db.Dialect == DialectSQLite {
			opts.Concurrency = 1
		}
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = DefaultRetryBackoff
	}
	if opts.BatchTimeout <= 0 {
		opts.BatchTimeout = DefaultBatchTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "group_commit")
	return &Writer{
		db:      db,
		opts:    opts,
		log:     log,
		metrics: newWriterMetrics(opts.Metrics, log),
		tracer:  tracing.Tracer(opts.Tracing, "github.com/kowai/kowai/persistence"),
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
	}
}

// Run commits batches until ctx is done, then stops accepting writes, commits
// what is still queued and returns nil. Batches started before ctx ended are
// completed, not aborted: they run under their own BatchTimeout. Run may be
// called once; a second call returns an error at once.
func (w *Writer) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("persistence: Writer.Run called twice")
	}
	stop := context.AfterFunc(ctx, w.close)
	defer stop()
	var wg sync.WaitGroup
	for range w.opts.Concurrency {
		wg.Go(func() {
			for batch := w.next(); batch != nil; batch = w.next() {
				w.execute(batch)
			}
		})
	}
	wg.Wait()
	return nil
}

// AppendMessages writes msgs durably: nil means they are committed. The
// messages of one call are written together or not at all; a message whose
// (conversation_id, seq) or (conversation_id, idempotency_key) exists already
// makes the call fail with an error wrapping ErrDuplicate and writes none of
// them, while the other callers of the same batch are unaffected.
func (w *Writer) AppendMessages(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := w.Submit(ctx, messagesInsert(w.db.Dialect, msgs)); err != nil {
		return fmt.Errorf("persistence: append %d messages: %w", len(msgs), err)
	}
	return nil
}

// SaveSnapshot stores s, whose Version must exceed expectedVersion, if the
// stored version of (s.Kind, s.Identity) is still expectedVersion, 0 meaning
// that none is stored yet. Otherwise another writer got there first and the
// error wraps ErrConflict. Nil means durable. It has the semantics of
// SnapshotStore.Save.
func (w *Writer) SaveSnapshot(ctx context.Context, s Snapshot, expectedVersion int64) error {
	return w.Submit(ctx, snapshotCAS{snap: s, expected: expectedVersion})
}

// Submit hands op to the writer and waits for its batch: nil means op's work
// is committed. The error of op's own Apply is returned as is; batch errors
// are translated like every error of this package.
//
// Cancellation: if ctx ends while op is still queued, op is withdrawn and
// Submit returns an error wrapping ErrWithdrawn and ctx.Err(): op was not and
// will not be applied. Once the writer has taken op into a batch, Submit waits for that
// batch's outcome (see BatchTimeout) and returns it, so that an error never
// hides a committed write and nil always means durable.
func (w *Writer) Submit(ctx context.Context, op Op) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("persistence: write not submitted: %w: %w", ErrWithdrawn, err)
	}
	r := &request{op: op, rows: rowsOf(op), done: make(chan error, 1)}
	if w.tracer != nil {
		r.span = trace.SpanContextFromContext(ctx)
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.queue = append(w.queue, r)
	w.metrics.queued.Inc()
	w.mu.Unlock()
	w.signal()

	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(stateQueued, stateCanceled) {
			return fmt.Errorf("persistence: write withdrawn before its batch: %w: %w", ErrWithdrawn, ctx.Err())
		}
		return <-r.done
	}
}

func rowsOf(op Op) int {
	switch op := op.(type) {
	case Insert:
		return max(1, len(op.Rows))
	case leadInsert:
		return max(1, len(op.Rows))
	case fencedInsert:
		return max(1, len(op.Rows))
	case usageCharge:
		// Its calls are summed into a row per key: many calls of one user cost one row.
		return max(1, op.rows())
	case Ops:
		n := 0
		for _, o := range op {
			n += rowsOf(o)
		}
		return max(1, n)
	}
	return 1
}

func (w *Writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Writer) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.closing)
	}
}

// next blocks for the next batch and returns nil when the writer is closed
// and drained.
func (w *Writer) next() []*request {
	for {
		batch, open := w.gather()
		if len(batch) > 0 {
			return batch
		}
		if !open {
			return nil
		}
		// Every request found was canceled by its caller: look again.
	}
}

// gather collects one batch; open is false once the writer is closed and its
// queue is empty.
//
// Batching rule: rows that arrive while a batch commits form the next one, and
// a full batch is committed at once. Beyond that, the writer waits up to
// MaxDelay for a batch to fill only under load, that is when writes arrived
// while the previous batch was committing: then a bounded delay buys fewer,
// larger commits. Otherwise it commits at once with whatever is queued, so a
// lone write, or a caller writing sequentially, pays one commit and no delay.
// (Work queued by the time the writer gets back to the queue is no evidence of
// load: a caller just answered may already have sent its next write.)
func (w *Writer) gather() (batch []*request, open bool) {
	idle := !w.busy.Load()
	w.mu.Lock()
	for len(w.queue) == 0 {
		if w.closed {
			w.mu.Unlock()
			return nil, false
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-w.closing:
		}
		idle = true
		w.mu.Lock()
	}
	batch, rows := w.takeLocked(nil, 0)
	closed := w.closed
	w.mu.Unlock()
	if idle || closed || rows >= w.opts.MaxBatch || w.opts.MaxDelay < 0 {
		return batch, true
	}

	timer := time.NewTimer(w.opts.MaxDelay)
	defer timer.Stop()
	for rows < w.opts.MaxBatch && !closed {
		select {
		case <-w.wake:
		case <-w.closing:
		case <-timer.C:
			return batch, true
		}
		w.mu.Lock()
		batch, rows = w.takeLocked(batch, rows)
		closed = w.closed
		w.mu.Unlock()
	}
	return batch, true
}

// takeLocked moves queued requests into batch up to MaxBatch rows, skipping
// those their callers canceled. The first request is taken whatever its
// size, so an Insert larger than MaxBatch still gets committed.
func (w *Writer) takeLocked(batch []*request, rows int) ([]*request, int) {
	i := 0
	for ; i < len(w.queue); i++ {
		r := w.queue[i]
		if len(batch) > 0 && rows+r.rows > w.opts.MaxBatch {
			break
		}
		if r.state.CompareAndSwap(stateQueued, stateTaken) {
			batch = append(batch, r)
			rows += r.rows
		}
	}
	clear(w.queue[:i])
	w.queue = w.queue[i:]
	w.metrics.queued.Sub(float64(i))
	return batch, rows
}

// execute commits batch, retrying it on retryable errors, and answers every
// caller in it exactly once.
func (w *Writer) execute(batch []*request) {
	start := time.Now()
	rows := 0
	for _, r := range batch {
		rows += r.rows
	}
	span := w.batchSpan(batch, rows)
	results, err := w.commitWithRetry(batch)
	if span != nil {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "group commit failed")
		}
		span.End()
	}
	w.mu.Lock()
	w.busy.Store(len(w.queue) > 0)
	w.mu.Unlock()
	w.metrics.batchSize.Observe(float64(rows))
	w.metrics.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		w.metrics.errors.WithLabelValues("batch").Inc()
		w.log.Warn("group commit failed", "requests", len(batch), "rows", rows, "error", err)
		err = fmt.Errorf("persistence: group commit of %d rows: %w", rows, classify(err))
	}
	for i, r := range batch {
		if err != nil {
			r.done <- err
			continue
		}
		if results[i] != nil {
			w.metrics.errors.WithLabelValues(opErrorReason(results[i])).Inc()
		}
		r.done <- results[i]
	}
}

// batchSpan starts the span of one batch commit, or returns nil with tracing off.
// Its parent is the first caller with a span; the other callers' spans are links,
// so each caller's trace leads to the batch that made its write durable.
func (w *Writer) batchSpan(batch []*request, rows int) trace.Span {
	if w.tracer == nil {
		return nil
	}
	ctx := context.Background()
	var links []trace.Link
	for _, r := range batch {
		if !r.span.IsValid() {
			continue
		}
		if !trace.SpanContextFromContext(ctx).IsValid() {
			ctx = trace.ContextWithSpanContext(ctx, r.span)
			continue
		}
		links = append(links, trace.Link{SpanContext: r.span})
	}
	_, span := w.tracer.Start(ctx, "group_commit", trace.WithLinks(links...), trace.WithAttributes(
		attribute.String("db.system.name", w.db.Dialect),
		attribute.Int("kowai.group_commit.requests", len(batch)),
		attribute.Int("kowai.group_commit.rows", rows)))
	return span
}

func opErrorReason(err error) string {
	switch {
	case errors.Is(err, ErrDuplicate):
		return "duplicate"
	case errors.Is(err, ErrConflict):
		return "conflict"
	default:
		return "op"
	}
}

// errCommit marks a failed COMMIT. Its outcome is unknown (the connection
// may have died after the server committed), so it is never retried: a retry
// could apply the batch twice.
var errCommit = errors.New("commit")

// errIsolate asks for the batch to be run again with every Op in its own
// savepoint, because one Op failed and the transaction cannot be trusted.
var errIsolate = errors.New("persistence: op failed, isolating")

func (w *Writer) commitWithRetry(batch []*request) ([]error, error) {
	isolated := false
	backoff := w.opts.RetryBackoff
	for retries := 0; ; {
		results, err := w.attempt(batch, isolated)
		switch {
		case err == nil:
			return results, nil
		case errors.Is(err, errIsolate):
			isolated = true
			w.isolations.Add(1)
		case IsRetryable(err) && !errors.Is(err, errCommit) && retries < w.opts.MaxRetries:
			retries++
			w.metrics.errors.WithLabelValues("retried").Inc()
			w.log.Info("group commit retrying", "attempt", retries, "error", err)
			time.Sleep(backoff)
			backoff *= 2
		default:
			return nil, err
		}
	}
}

// attempt runs batch in one transaction. In the fast path the Inserts of the
// batch are merged; any Op error aborts it with errIsolate. On MariaDB the fast
// path sends all the batch's statements in one request when every Op can be
// expressed as statements (attemptMulti). In the isolated path each Op runs
// inside a savepoint and its own error becomes its result.
func (w *Writer) attempt(batch []*request, isolated bool) ([]error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.BatchTimeout)
	defer cancel()
	if !isolated && w.db.batch != nil {
		err := w.attemptMulti(ctx, batch)
		if !errors.Is(err, errNotStatements) {
			if err != nil {
				return nil, err
			}
			w.multiCommits.Add(1)
			return make([]error, len(batch)), nil
		}
	}
	tx, err := w.db.Goqu.BeginTx(ctx, nil)
	if err != nil {
		return nil, wrap(err, "begin")
	}
	results := make([]error, len(batch))
	if isolated {
		err = applyIsolated(ctx, tx, batch, results)
	} else {
		err = applyMerged(ctx, tx, batch)
	}
	if err != nil {
		// A transaction whose context ended was rolled back by database/sql.
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			err = errors.Join(err, wrap(rbErr, "rollback"))
		}
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("%w: %w", errCommit, classify(err))
	}
	return results, nil
}

// insertTarget holds the rows of a batch's Inserts into one table and columns.
type insertTarget struct {
	table string
	cols  []string
	rows  [][]any
}

// touchTarget holds the Touches of a batch of one table and column, one per ID
// (the last wins).
type touchTarget struct {
	table, column string
	touches       []Touch
	index         map[string]int // ID -> position in touches
}

// mergeBatch lists the steps that apply the batch: one *insertTarget per
// distinct Insert target and one *touchTarget per distinct Touch target, in the
// order each target first appears, and every other Op in its place, except that
// leader Ops (a new conversation's row) come first and the batch's UsageCharges,
// as one *usageTarget, come last; the members of an Ops take part one by one. Ops in one batch come from concurrent callers, so no order
// between them is promised beyond that.
func mergeBatch(batch []*request) []any {
	var (
		steps   []any // *insertTarget, *touchTarget or Op
		targets = map[string]*insertTarget{}
		touched = map[string]*touchTarget{}
		// leading are the leader Ops, applied before every other step.
		leading []any
		// usage holds the batch's charges, applied after every other step.
		usage *usageTarget
	)
	var ops []Op
	for _, r := range batch {
		ops = flatten(ops[:0], r.op)
		for _, op := range ops {
			switch op := op.(type) {
			case leadInsert:
				mergeInsert(targets, &leading, "\x00lead\x00", op.Insert)
			case leader:
				leading = append(leading, op)
			case Insert:
				mergeInsert(targets, &steps, "", op)
			case fencedInsert:
				// Its fenced row is an ordinary row with a subquery for a value.
				mergeInsert(targets, &steps, "", op.Insert)
			case Touch:
				key := op.Table + "\x00" + op.Column
				t := touched[key]
				if t == nil {
					t = &touchTarget{table: op.Table, column: op.Column, index: map[string]int{}}
					touched[key] = t
					steps = append(steps, t)
				}
				if i, ok := t.index[op.ID]; ok {
					t.touches[i] = op
					continue
				}
				t.index[op.ID] = len(t.touches)
				t.touches = append(t.touches, op)
			case usageCharge:
				if usage == nil {
					usage = &usageTarget{}
				}
				usage.entries = append(usage.entries, op...)
			default:
				steps = append(steps, op)
			}
		}
	}
	if leading != nil {
		steps = append(leading, steps...)
	}
	if usage != nil {
		steps = append(steps, usage)
	}
	return steps
}

// leader is an Op that creates a row other rows may name by foreign key (such as
// ConversationCreate), so mergeBatch puts it ahead of every merged Insert of its
// batch: the rows submitted with it, in one Ops, then merge with the batch's other
// rows instead of failing their foreign key and costing the batch its merging.
type leader interface {
	Op
	leads()
}

// leadInsert is an Insert of rows that other rows may name by foreign key (RunInsert):
// mergeBatch merges the leadInserts of a batch into one statement per table, ahead
// of every other Insert.
type leadInsert struct{ Insert }

func (leadInsert) leads() {}

// applyMerged applies the steps of mergeBatch in one transaction, one statement
// per step.
func applyMerged(ctx context.Context, tx *goqu.TxDatabase, batch []*request) error {
	for _, s := range mergeBatch(batch) {
		var err error
		switch s := s.(type) {
		case *insertTarget:
			err = insertRows(ctx, tx, s.table, s.cols, s.rows)
		case *touchTarget:
			err = touchRows(ctx, tx, s.table, s.column, s.touches)
		case *usageTarget:
			err = applyUsage(ctx, tx, tx.Dialect(), s.entries)
		case Op:
			err = s.Apply(ctx, tx)
		}
		if err != nil {
			// Retryable and timed-out batches are retried or failed whole;
			// only an error one Op may have caused is worth isolating.
			if IsRetryable(err) || errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return fmt.Errorf("%w: %w", errIsolate, err)
		}
	}
	return nil
}

// Savepoint statements carry no values, so they are plain SQL. One name is
// reused because each savepoint is released before the next is set.
const (
	savepointSet      = "SAVEPOINT kowai_op"
	savepointRollback = "ROLLBACK TO SAVEPOINT kowai_op"
	savepointRelease  = "RELEASE SAVEPOINT kowai_op"
)

func applyIsolated(ctx context.Context, tx *goqu.TxDatabase, batch []*request, results []error) error {
	for i, r := range batch {
		if _, err := tx.ExecContext(ctx, savepointSet); err != nil {
			return wrap(err, "savepoint")
		}
		opErr := r.op.Apply(ctx, tx)
		if opErr != nil && IsRetryable(opErr) {
			return opErr
		}
		if opErr != nil {
			// SQLite keeps a savepoint that was rolled back to, so it is
			// released in both cases.
			if _, err := tx.ExecContext(ctx, savepointRollback); err != nil {
				return errors.Join(opErr, wrap(err, "rollback to savepoint"))
			}
			results[i] = opErr
		}
		if _, err := tx.ExecContext(ctx, savepointRelease); err != nil {
			return wrap(err, "release savepoint")
		}
	}
	return nil
}

// snapshotCAS is the compare-and-swap save of one snapshot.
type snapshotCAS struct {
	snap     Snapshot
	expected int64
}

func (op snapshotCAS) Apply(ctx context.Context, tx *goqu.TxDatabase) error {
	return saveSnapshotTx(ctx, tx, op.snap, op.expected)
}

type writerMetrics struct {
	queued    prometheus.Gauge
	batchSize prometheus.Histogram
	duration  prometheus.Histogram
	errors    *prometheus.CounterVec
}

func newWriterMetrics(reg prometheus.Registerer, log *slog.Logger) writerMetrics {
	m := writerMetrics{
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kowai_db_group_commit_queued",
			Help: "Writes waiting to be taken into a group-commit batch (withdrawn ones until skipped).",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kowai_db_group_commit_batch_size",
			Help:    "Rows committed per group-commit batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kowai_db_group_commit_duration_seconds",
			Help:    "Time to commit one group-commit batch, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kowai_db_group_commit_errors_total",
			Help: "Group-commit errors by reason: batch (every caller of a batch failed), retried (a batch attempt was retried), duplicate, conflict or op (one caller failed).",
		}, []string{"reason"}),
	}
	if reg == nil {
		return m
	}
	m.queued = register(reg, m.queued, log)
	m.batchSize = register(reg, m.batchSize, log)
	m.duration = register(reg, m.duration, log)
	m.errors = register(reg, m.errors, log)
	return m
}

// register registers c, or returns the collector already registered under
// its name so that writers sharing a registry share their metrics.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, log *slog.Logger) C {
	c, err := promreg.Register(reg, c)
	if err != nil {
		log.Error("group commit metric not registered", "error", err)
	}
	return c
}

// mergeInsert adds op's rows to the merged INSERT of its table and columns
// (under prefix, which keeps leading inserts apart from the others), appending
// a new target to list the first time that INSERT is seen.
func mergeInsert(targets map[string]*insertTarget, list *[]any, prefix string, op Insert) {
	key := prefix + op.Table + "\x00" + strings.Join(op.Cols, "\x00")
	t := targets[key]
	if t == nil {
		t = &insertTarget{table: op.Table, cols: op.Cols}
		targets[key] = t
		*list = append(*list, t)
	}
	t.rows = append(t.rows, op.Rows...)
}
