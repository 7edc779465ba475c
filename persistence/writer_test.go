package persistence_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/doug-martin/goqu/v9"
	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// writerHarness is a Writer under test with its own registry, so metrics can
// be read back, and a way to start Run later than construction: writes
// queued before Run form the first batch in their submission order.
type writerHarness struct {
	t   *testing.T
	db  *persistence.DB
	w   *persistence.Writer
	reg *prometheus.Registry
}

func newHarness(t *testing.T, db *persistence.DB, opts persistence.WriterOptions) *writerHarness {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Metrics = reg
	return &writerHarness{t: t, db: db, w: persistence.NewWriter(db, opts), reg: reg}
}

// run starts the writer until ctx ends or the test is cleaned up, and returns
// a function that stops it and waits for Run to return.
func (h *writerHarness) run(ctx context.Context) (stop func()) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- h.w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				h.t.Errorf("Run: %v", err)
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

// submit calls fn in a goroutine and waits until the writer has queued one
// more write, so that successive calls are queued in order.
func (h *writerHarness) submit(fn func() error) <-chan error {
	h.t.Helper()
	before := h.gauge("kowai_db_group_commit_queued")
	errc := make(chan error, 1)
	go func() { errc <- fn() }()
	h.waitQueued(before + 1)
	return errc
}

func (h *writerHarness) appendAsync(msgs ...persistence.Message) <-chan error {
	h.t.Helper()
	return h.submit(func() error { return h.w.AppendMessages(context.Background(), msgs...) })
}

func (h *writerHarness) waitQueued(n float64) {
	h.t.Helper()
	testenv.Eventually(h.t, 10*time.Second, func() error {
		if got := h.gauge("kowai_db_group_commit_queued"); got != n {
			return fmt.Errorf("queued = %v, want %v", got, n)
		}
		return nil
	})
}

func (h *writerHarness) metric(name string) []*dto.Metric {
	h.t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		h.t.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()
		}
	}
	return nil
}

func (h *writerHarness) gauge(name string) float64 {
	h.t.Helper()
	var v float64
	for _, m := range h.metric(name) {
		v += m.GetGauge().GetValue()
	}
	return v
}

func (h *writerHarness) errorsTotal(reason string) float64 {
	h.t.Helper()
	for _, m := range h.metric("kowai_db_group_commit_errors_total") {
		for _, l := range m.GetLabel() {
			if l.GetName() == "reason" && l.GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// batches returns how many batches ran and how many rows they held.
func (h *writerHarness) batches() (count uint64, rows float64) {
	h.t.Helper()
	for _, m := range h.metric("kowai_db_group_commit_batch_size") {
		count += m.GetHistogram().GetSampleCount()
		rows += m.GetHistogram().GetSampleSum()
	}
	return count, rows
}

func recv(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("no answer from the writer within 30s")
		return nil
	}
}

// newConversation creates a user and a conversation that messages can
// reference, and returns the conversation ID.
func newConversation(t *testing.T, db *persistence.DB) string {
	t.Helper()
	now := time.Now().UTC()
	userID, convID := newUUID(), newUUID()
	inserts := []*goqu.InsertDataset{
		db.Goqu.Insert("users").Prepared(true).Rows(goqu.Record{
			"id": userID, "email": userID + "@example.com", "roles": "[]", "created_at": now, "updated_at": now,
		}),
		db.Goqu.Insert("conversations").Prepared(true).Rows(goqu.Record{
			"id": convID, "owner_id": userID, "created_at": now, "updated_at": now,
		}),
	}
	for _, ins := range inserts {
		if _, err := ins.Executor().ExecContext(t.Context()); err != nil {
			t.Fatalf("create conversation: %v", err)
		}
	}
	return convID
}

func newUUID() string { return uuid.Must(uuid.NewV7()).String() }

func message(conv string, seq int64) persistence.Message {
	return persistence.Message{
		ID:             newUUID(),
		ConversationID: conv,
		Seq:            seq,
		Role:           "user",
		Content:        fmt.Sprintf("message %d", seq),
	}
}

// storedIDs returns the IDs of conv's messages by seq.
func storedIDs(t *testing.T, db *persistence.DB, conv string) map[int64]string {
	t.Helper()
	rows, err := db.Goqu.From("messages").Prepared(true).Select("seq", "id").
		Where(goqu.C("conversation_id").Eq(conv)).Executor().QueryContext(t.Context())
	if err != nil {
		t.Fatalf("read messages: %v", err)
	}
	defer rows.Close()
	ids := map[int64]string{}
	for rows.Next() {
		var (
			seq int64
			id  string
		)
		if err := rows.Scan(&seq, &id); err != nil {
			t.Fatalf("scan message: %v", err)
		}
		ids[seq] = id
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read messages: %v", err)
	}
	return ids
}

func countMessages(t *testing.T, db *persistence.DB) int {
	t.Helper()
	var n int
	if _, err := db.Goqu.From("messages").Select(goqu.COUNT("*")).ScanValContext(t.Context(), &n); err != nil {
		t.Fatalf("count messages: %v", err)
	}
	return n
}

// deadlock is the error MariaDB returns for a deadlock victim; the writer
// must treat it as retryable on either dialect.
var deadlock = &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock"}

// failingOp fails its first n applications with err, then succeeds. It
// inserts a message before failing, so a failure that is not rolled back
// shows up as a stray row.
type failingOp struct {
	msg   persistence.Message
	err   error
	mu    sync.Mutex
	fails int
	calls int
}

func (op *failingOp) Apply(ctx context.Context, tx *goqu.TxDatabase) error {
	op.mu.Lock()
	op.calls++
	fail := op.calls <= op.fails
	op.mu.Unlock()
	ins := tx.Insert("messages").Prepared(true).Rows(goqu.Record{
		"id": op.msg.ID, "conversation_id": op.msg.ConversationID, "seq": op.msg.Seq,
		"role": op.msg.Role, "content": op.msg.Content, "created_at": time.Now().UTC(),
	})
	if _, err := ins.Executor().ExecContext(ctx); err != nil {
		return err
	}
	if fail {
		return op.err
	}
	return nil
}

func TestWriterConcurrentAppendsAreDurable(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, persistence.WriterOptions{})
		h.run(t.Context())
		const writers, perWriter = 100, 10
		convs := make([]string, 10)
		for i := range convs {
			convs[i] = newConversation(t, db)
		}
		var wg sync.WaitGroup
		errs := make(chan error, writers*perWriter)
		for g := range writers {
			wg.Go(func() {
				for i := range perWriter {
					errs <- h.w.AppendMessages(t.Context(), message(convs[g%len(convs)], int64(g*perWriter+i)))
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("AppendMessages: %v", err)
			}
		}
		if got := countMessages(t, db); got != writers*perWriter {
			t.Fatalf("stored %d messages, want %d", got, writers*perWriter)
		}
		if count, rows := h.batches(); rows != writers*perWriter || count > writers*perWriter {
			t.Fatalf("batches = %d holding %v rows, want %d rows", count, rows, writers*perWriter)
		}
	})
}

func TestWriterCommitsQueuedWritesAsOneBatch(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, persistence.WriterOptions{MaxDelay: -1})
		conv := newConversation(t, db)
		var answers []<-chan error
		for i := range 30 {
			answers = append(answers, h.appendAsync(message(conv, int64(i)), message(conv, int64(100+i))))
		}
		for i := range 5 {
			answers = append(answers, h.submit(func() error {
				snap := persistence.Snapshot{Kind: "session", Identity: fmt.Sprint(i), Version: 1, State: []byte("s")}
				return h.w.SaveSnapshot(context.Background(), snap, 0)
			}))
		}
		h.run(t.Context())
		for _, a := range answers {
			if err := recv(t, a); err != nil {
				t.Fatalf("write: %v", err)
			}
		}
		if count, rows := h.batches(); count != 1 || rows != 65 {
			t.Fatalf("batches = %d holding %v rows, want 1 batch of 65 rows", count, rows)
		}
		if got := len(storedIDs(t, db, conv)); got != 60 {
			t.Fatalf("stored %d messages, want 60", got)
		}
	})
}

func TestWriterDuplicateFailsOnlyItsCaller(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		conv := newConversation(t, db)
		existing := message(conv, 1)
		existing.IdempotencyKey = "turn-1"
		setup := newHarness(t, db, persistence.WriterOptions{})
		stopSetup := setup.run(t.Context())
		if err := setup.w.AppendMessages(t.Context(), existing); err != nil {
			t.Fatalf("setup append: %v", err)
		}
		stopSetup()

		h := newHarness(t, db, persistence.WriterOptions{MaxDelay: -1})
		sameKey := message(conv, 7)
		sameKey.IdempotencyKey = "turn-1"
		cases := []struct {
			name string
			msgs []persistence.Message
			dup  bool
		}{
			{"new seq 2", []persistence.Message{message(conv, 2)}, false},
			{"stored seq 1", []persistence.Message{message(conv, 1)}, true},
			{"new seq 3", []persistence.Message{message(conv, 3)}, false},
			{"seq 3 again in the same batch", []persistence.Message{message(conv, 3)}, true},
			{"stored idempotency key", []persistence.Message{sameKey}, true},
			{"two rows, one a duplicate", []persistence.Message{message(conv, 5), message(conv, 2)}, true},
			{"new seqs 4 and 6", []persistence.Message{message(conv, 4), message(conv, 6)}, false},
		}
		answers := make([]<-chan error, len(cases))
		for i, c := range cases {
			answers[i] = h.appendAsync(c.msgs...)
		}
		h.run(t.Context())
		want := map[int64]string{1: existing.ID}
		for i, c := range cases {
			err := recv(t, answers[i])
			if got := errors.Is(err, persistence.ErrDuplicate); got != c.dup || (!c.dup && err != nil) {
				t.Errorf("%s: err = %v, want duplicate=%v", c.name, err, c.dup)
			}
			for _, m := range c.msgs {
				if !c.dup {
					want[m.Seq] = m.ID
				}
			}
		}
		if got := storedIDs(t, db, conv); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("stored messages = %v, want %v", got, want)
		}
		if got := h.errorsTotal("duplicate"); got != 4 {
			t.Fatalf("duplicate errors metric = %v, want 4", got)
		}
		if count, _ := h.batches(); count != 1 {
			t.Fatalf("batches = %d, want 1", count)
		}
	})
}

func TestWriterBatchFailureReachesExactlyItsCallers(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, persistence.WriterOptions{MaxBatch: 3, MaxDelay: -1, MaxRetries: 2, RetryBackoff: time.Millisecond})
		conv := newConversation(t, db)
		poison := &failingOp{msg: message(conv, 99), err: deadlock, fails: 1 << 30}
		first := []<-chan error{
			h.appendAsync(message(conv, 1)),
			h.appendAsync(message(conv, 2)),
			h.submit(func() error { return h.w.Submit(context.Background(), poison) }),
		}
		second := []<-chan error{
			h.appendAsync(message(conv, 3)),
			h.appendAsync(message(conv, 4)),
			h.appendAsync(message(conv, 5)),
		}
		h.run(t.Context())
		for i, a := range first {
			if err := recv(t, a); !persistence.IsRetryable(err) {
				t.Errorf("caller %d of the failed batch: err = %v, want the retryable batch error", i, err)
			}
		}
		for i, a := range second {
			if err := recv(t, a); err != nil {
				t.Errorf("caller %d of the next batch: %v", i, err)
			}
		}
		if got := storedIDs(t, db, conv); len(got) != 3 || got[3] == "" || got[4] == "" || got[5] == "" {
			t.Fatalf("stored seqs %v, want exactly 3, 4 and 5", got)
		}
		if poison.calls != 3 {
			t.Fatalf("failing batch ran %d times, want 1 + 2 retries", poison.calls)
		}
		if got, want := h.errorsTotal("retried"), 2.0; got != want {
			t.Fatalf("retried metric = %v, want %v", got, want)
		}
		if got := h.errorsTotal("batch"); got != 1 {
			t.Fatalf("batch errors metric = %v, want 1", got)
		}
	})
}

func TestWriterOpErrorIsIsolated(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, persistence.WriterOptions{MaxDelay: -1})
		conv := newConversation(t, db)
		boom := errors.New("boom")
		bad := &failingOp{msg: message(conv, 2), err: boom, fails: 1 << 30}
		answers := []<-chan error{
			h.appendAsync(message(conv, 1)),
			h.submit(func() error { return h.w.Submit(context.Background(), bad) }),
			h.appendAsync(message(conv, 3)),
		}
		h.run(t.Context())
		for i, want := range []error{nil, boom, nil} {
			if err := recv(t, answers[i]); !errors.Is(err, want) || (want == nil && err != nil) {
				t.Errorf("caller %d: err = %v, want %v", i, err, want)
			}
		}
		got := storedIDs(t, db, conv)
		if _, stray := got[2]; stray || len(got) != 2 {
			t.Fatalf("stored seqs %v, want 1 and 3 only (the failed op's row rolled back)", got)
		}
	})
}

func TestWriterRetriesRetryableErrors(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, persistence.WriterOptions{MaxDelay: -1, MaxRetries: 3, RetryBackoff: time.Millisecond})
		conv := newConversation(t, db)
		flaky := &failingOp{msg: message(conv, 2), err: deadlock, fails: 2}
		answers := []<-chan error{
			h.appendAsync(message(conv, 1)),
			h.submit(func() error { return h.w.Submit(context.Background(), flaky) }),
		}
		h.run(t.Context())
		for i, a := range answers {
			if err := recv(t, a); err != nil {
				t.Fatalf("caller %d: %v", i, err)
			}
		}
		if got := storedIDs(t, db, conv); len(got) != 2 {
			t.Fatalf("stored seqs %v, want 1 and 2 once each", got)
		}
		if got := h.errorsTotal("retried"); got != 2 {
			t.Fatalf("retried metric = %v, want 2", got)
		}
	})
}

func TestWriterSnapshotCompareAndSwap(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, persistence.WriterOptions{})
		h.run(t.Context())
		steps := []struct {
			version, expected int64
			conflict          bool
		}{
			{1, 0, false},
			{1, 0, true}, // created by someone else first
			{2, 1, false},
			{3, 1, true}, // stale expectation
			{3, 2, false},
		}
		for _, s := range steps {
			snap := persistence.Snapshot{Kind: "session", Identity: "c1", Version: s.version, State: fmt.Appendf(nil, "v%d", s.version)}
			err := h.w.SaveSnapshot(t.Context(), snap, s.expected)
			if errors.Is(err, persistence.ErrConflict) != s.conflict || (!s.conflict && err != nil) {
				t.Fatalf("save v%d expecting %d: err = %v, want conflict=%v", s.version, s.expected, err, s.conflict)
			}
		}
		assertSnapshot(t, db, "c1", 3, "v3")
	})
}

func TestWriterSnapshotRaceInOneBatchHasOneWinner(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, persistence.WriterOptions{MaxDelay: -1})
		const racers = 6
		answers := make([]<-chan error, racers)
		for i := range answers {
			answers[i] = h.submit(func() error {
				snap := persistence.Snapshot{Kind: "session", Identity: "c1", Version: 1, State: fmt.Appendf(nil, "racer %d", i)}
				return h.w.SaveSnapshot(context.Background(), snap, 0)
			})
		}
		h.run(t.Context())
		for i, a := range answers {
			err := recv(t, a)
			if i == 0 && err != nil {
				t.Errorf("first racer: %v", err)
			}
			if i > 0 && !errors.Is(err, persistence.ErrConflict) {
				t.Errorf("racer %d: err = %v, want ErrConflict", i, err)
			}
		}
		assertSnapshot(t, db, "c1", 1, "racer 0")
		if count, _ := h.batches(); count != 1 {
			t.Fatalf("batches = %d, want 1", count)
		}
	})
}

func assertSnapshot(t *testing.T, db *persistence.DB, identity string, version int64, state string) {
	t.Helper()
	var got struct {
		Version int64  `db:"version"`
		State   []byte `db:"state"`
	}
	found, err := db.Goqu.From("snapshots").Prepared(true).Select("version", "state").
		Where(goqu.C("kind").Eq("session"), goqu.C("identity").Eq(identity)).ScanStructContext(t.Context(), &got)
	if err != nil || !found {
		t.Fatalf("load snapshot: found=%v err=%v", found, err)
	}
	if got.Version != version || string(got.State) != state {
		t.Fatalf("snapshot = v%d %q, want v%d %q", got.Version, got.State, version, state)
	}
}

func TestWriterCancelWhileQueuedWithdrawsTheWrite(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, persistence.WriterOptions{MaxDelay: -1})
		conv := newConversation(t, db)
		kept := h.appendAsync(message(conv, 1))
		ctx, cancel := context.WithCancel(t.Context())
		withdrawn := h.submit(func() error { return h.w.AppendMessages(ctx, message(conv, 2)) })
		cancel()
		if err := recv(t, withdrawn); !errors.Is(err, context.Canceled) || !errors.Is(err, persistence.ErrWithdrawn) {
			t.Fatalf("canceled append: err = %v, want ErrWithdrawn and context.Canceled", err)
		}
		h.run(t.Context())
		if err := recv(t, kept); err != nil {
			t.Fatalf("kept append: %v", err)
		}
		if got := storedIDs(t, db, conv); len(got) != 1 || got[1] == "" {
			t.Fatalf("stored seqs %v, want only 1", got)
		}
		if err := h.w.AppendMessages(ctx, message(conv, 3)); !errors.Is(err, context.Canceled) || !errors.Is(err, persistence.ErrWithdrawn) {
			t.Fatalf("append with a canceled context: err = %v, want ErrWithdrawn and context.Canceled", err)
		}
	})
}

func TestWriterShutdownDrainsThenRefuses(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, persistence.WriterOptions{})
		conv := newConversation(t, db)
		var answers []<-chan error
		for i := range 20 {
			answers = append(answers, h.appendAsync(message(conv, int64(i))))
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		// Run sees a finished context at once and must still drain the queue.
		h.run(ctx)()
		for i, a := range answers {
			if err := recv(t, a); err != nil {
				t.Fatalf("queued append %d: %v", i, err)
			}
		}
		if got := len(storedIDs(t, db, conv)); got != 20 {
			t.Fatalf("stored %d messages, want 20", got)
		}
		if err := h.w.AppendMessages(t.Context(), message(conv, 100)); !errors.Is(err, persistence.ErrClosed) {
			t.Fatalf("append after shutdown: err = %v, want ErrClosed", err)
		}
		if err := h.w.Run(t.Context()); err == nil {
			t.Fatal("second Run returned nil, want an error")
		}
	})
}

// TestWriterSequentialAppendsAreOrderedAndVisible checks that a caller that
// appends one message after another sees each committed before the next
// starts, while other callers keep the writer busy.
func TestWriterSequentialAppendsAreOrderedAndVisible(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, persistence.WriterOptions{})
		h.run(t.Context())
		conv, noise := newConversation(t, db), newConversation(t, db)
		ctx, stopNoise := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					if err := h.w.AppendMessages(ctx, message(noise, int64(g*1_000_000+i))); err != nil && ctx.Err() == nil {
						t.Errorf("noise append: %v", err)
						return
					}
				}
			})
		}
		const n = 40
		for seq := int64(1); seq <= n; seq++ {
			if err := h.w.AppendMessages(t.Context(), message(conv, seq)); err != nil {
				t.Fatalf("append %d: %v", seq, err)
			}
			var maxSeq int64
			if _, err := db.Goqu.From("messages").Prepared(true).Select(goqu.MAX("seq")).
				Where(goqu.C("conversation_id").Eq(conv)).ScanValContext(t.Context(), &maxSeq); err != nil {
				t.Fatalf("read max seq: %v", err)
			}
			if maxSeq != seq {
				t.Fatalf("after append %d returned, stored max seq is %d", seq, maxSeq)
			}
		}
		stopNoise()
		wg.Wait()
		if got := len(storedIDs(t, db, conv)); got != n {
			t.Fatalf("stored %d messages, want %d", got, n)
		}
	})
}

// TestWriterIdleWriteIsNotDelayed checks the batching rule that an idle
// writer commits at once: with an hour-long MaxDelay a lone append would
// otherwise not return.
func TestWriterIdleWriteIsNotDelayed(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, persistence.WriterOptions{MaxDelay: time.Hour})
		h.run(t.Context())
		conv := newConversation(t, db)
		for seq := range int64(3) {
			errc := make(chan error, 1)
			go func() { errc <- h.w.AppendMessages(t.Context(), message(conv, seq)) }()
			if err := recv(t, errc); err != nil {
				t.Fatalf("append %d: %v", seq, err)
			}
		}
	})
}

func TestWriterFailsEveryCallerOfABatchWhenTheDatabaseIsGone(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newHarness(t, db, persistence.WriterOptions{MaxDelay: -1})
		conv := newConversation(t, db)
		var answers []<-chan error
		for i := range 5 {
			answers = append(answers, h.appendAsync(message(conv, int64(i))))
		}
		if err := db.Close(); err != nil {
			t.Fatalf("close database: %v", err)
		}
		h.run(t.Context())
		for i, a := range answers {
			if err := recv(t, a); err == nil || errors.Is(err, persistence.ErrDuplicate) {
				t.Errorf("append %d on a closed database: err = %v, want the batch error", i, err)
			}
		}
		if got := h.errorsTotal("batch"); got != 1 {
			t.Fatalf("batch errors metric = %v, want 1", got)
		}
	})
}

// ExampleWriter runs a Writer beside the rest of a node and appends a
// message through it. (Compiled, not run: it needs a migrated database.)
func ExampleWriter() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	db, err := persistence.Open(ctx, "sqlite://./data/kowai.db", persistence.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	w := persistence.NewWriter(db, persistence.WriterOptions{Metrics: prometheus.NewRegistry()})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	err = w.AppendMessages(ctx, persistence.Message{ConversationID: "0190c1d2-…", Seq: 1, Role: "user", Content: "hello"})
	switch {
	case errors.Is(err, persistence.ErrDuplicate):
		fmt.Println("seq 1 was written by another activation")
	case err != nil:
		fmt.Println("not stored:", err)
	}

	stop() // Run commits what is queued, then returns.
	if err := <-done; err != nil {
		fmt.Println(err)
	}
}

// TestWriterRunSaveConflictInABatchFailsOnlyItsCaller batches two runs' journal rows,
// events and version compare-and-swaps, one of them stale: on MariaDB the batch goes
// out as one multi-statement request, whose lost compare-and-swap must reach only its
// caller while the other run's writes commit.
func TestWriterRunSaveConflictInABatchFailsOnlyItsCaller(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		ctx := t.Context()
		store := persistence.NewWorkflowStore(db)
		var runs [2]persistence.WorkflowRun
		for i := range runs {
			r := seedRun(t, store)
			runs[i] = r
		}
		write := func(r persistence.WorkflowRun, expected int64) persistence.Ops {
			next := r
			next.Status, next.Version = persistence.StatusCompleted, expected+1
			return persistence.Ops{
				persistence.StepInsert(persistence.WorkflowStep{RunID: r.ID, Seq: 1, Name: "t", Kind: "task", Status: persistence.StatusCompleted}),
				persistence.EventInsert(persistence.WorkflowEvent{RunID: r.ID, Seq: 1, Status: persistence.StatusCompleted}),
				persistence.SaveRunOp(next, expected),
			}
		}
		h := newHarness(t, db, persistence.WriterOptions{MaxDelay: -1})
		good := h.submit(func() error { return h.w.Submit(context.Background(), write(runs[0], runs[0].Version)) })
		stale := h.submit(func() error { return h.w.Submit(context.Background(), write(runs[1], runs[1].Version+5)) })
		h.run(ctx)
		if err := recv(t, good); err != nil {
			t.Fatalf("current save: %v", err)
		}
		if err := recv(t, stale); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("stale save: err = %v, want ErrConflict", err)
		}
		for i, want := range []struct {
			status string
			steps  int
		}{{persistence.StatusCompleted, 1}, {persistence.StatusRunning, 0}} {
			r, err := store.GetRun(ctx, runs[i].ID)
			if err != nil {
				t.Fatal(err)
			}
			steps, err := store.Steps(ctx, runs[i].ID)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != want.status || len(steps) != want.steps {
				t.Errorf("run %d: %s with %d steps, want %s with %d", i, r.Status, len(steps), want.status, want.steps)
			}
		}
		if count, _ := h.batches(); count != 1 {
			t.Fatalf("batches = %d, want 1", count)
		}
	})
}

// TestWriterRunSavesInABatchShareOneUpdate batches three runs' compare-and-swaps,
// which MariaDB receives as one UPDATE of three rows: each run gets its own
// values and version.
func TestWriterRunSavesInABatchShareOneUpdate(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		ctx := t.Context()
		store := persistence.NewWorkflowStore(db)
		var runs [3]persistence.WorkflowRun
		h := newHarness(t, db, persistence.WriterOptions{MaxDelay: -1})
		var done [3]<-chan error
		for i := range runs {
			r := seedRun(t, store)
			runs[i] = r
			next := r
			next.Version, next.Error = r.Version+1, fmt.Sprintf("error %d", i)
			next.Status = []string{persistence.StatusCompleted, persistence.StatusFailed, persistence.StatusPaused}[i]
			done[i] = h.submit(func() error { return h.w.Submit(context.Background(), persistence.SaveRunOp(next, r.Version)) })
		}
		h.run(ctx)
		for i := range runs {
			if err := recv(t, done[i]); err != nil {
				t.Fatalf("save %d: %v", i, err)
			}
			r, err := store.GetRun(ctx, runs[i].ID)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{persistence.StatusCompleted, persistence.StatusFailed, persistence.StatusPaused}[i]
			if r.Status != want || r.Error != fmt.Sprintf("error %d", i) || r.Version != runs[i].Version+1 {
				t.Errorf("run %d: %s %q version %d, want %s at version %d", i, r.Status, r.Error, r.Version, want, runs[i].Version+1)
			}
		}
		if count, _ := h.batches(); count != 1 {
			t.Fatalf("batches = %d, want 1", count)
		}
	})
}

// TestWriterSaveRunChanges saves runs with SaveRunChangesOp, two alike in one batch
// and one stale: each stored row equals the run it saved, column for column (those
// not written kept their values), and the stale save alone fails with ErrConflict.
func TestWriterSaveRunChanges(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		ctx := t.Context()
		store := persistence.NewWorkflowStore(db)
		started := time.Now().Add(-time.Minute)
		var runs [3]persistence.WorkflowRun
		for i := range runs {
			r, err := store.CreateRun(ctx, persistence.WorkflowRun{Name: "w", Status: persistence.StatusRunning,
				Parameters: []byte(`{"n":1}`), LeaseOwner: "node-a", LeaseEpoch: 7, Spend: []byte(`{"calls":1}`)})
			if err != nil {
				t.Fatal(err)
			}
			// The grain's copy: the row as read back at its version.
			r.StartedAt = started
			if err := store.SaveRun(ctx, func() persistence.WorkflowRun { n := r; n.Version++; return n }(), r.Version); err != nil {
				t.Fatal(err)
			}
			if runs[i], err = store.GetRun(ctx, r.ID); err != nil {
				t.Fatal(err)
			}
		}
		finish := func(r persistence.WorkflowRun) persistence.WorkflowRun {
			next := r
			next.Status, next.Result, next.FinishedAt, next.UpdatedAt = persistence.StatusCompleted, []byte("10"), time.Now(), time.Now()
			next.Version = r.Version + 1
			return next
		}
		h := newHarness(t, db, persistence.WriterOptions{MaxDelay: -1})
		var done [3]<-chan error
		var want [3]persistence.WorkflowRun
		for i, r := range runs {
			prev := r
			if i == 2 {
				prev.Version-- // a grain whose copy is stale
			}
			want[i] = finish(prev)
			done[i] = h.submit(func() error { return h.w.Submit(context.Background(), persistence.SaveRunChangesOp(prev, want[i])) })
		}
		h.run(ctx)
		for i, ch := range done {
			err := recv(t, ch)
			if stale := i == 2; stale != errors.Is(err, persistence.ErrConflict) || !stale && err != nil {
				t.Fatalf("save %d (stale %v): %v", i, stale, err)
			}
			got, err := store.GetRun(ctx, runs[i].ID)
			if err != nil {
				t.Fatal(err)
			}
			if i == 2 {
				want[i] = runs[i]
			}
			if got.Status != want[i].Status || string(got.Result) != string(want[i].Result) || got.Version != want[i].Version ||
				!got.FinishedAt.Equal(want[i].FinishedAt.UTC().Truncate(time.Microsecond)) || !got.StartedAt.Equal(runs[i].StartedAt) ||
				got.LeaseOwner != "node-a" || got.LeaseEpoch != 7 || string(got.Spend) != `{"calls":1}` ||
				string(got.Parameters) != `{"n":1}` || got.Error != "" || !got.DueAt.IsZero() {
				t.Errorf("run %d stored %+v, want %+v", i, got, want[i])
			}
		}
	})
}

// TestWriterMergedRunSaves saves three runs, each at a version of its own, in one
// batch, then again with one save stale. On MariaDB the first batch commits in one
// multi-statement request, its saves merged into one UPDATE that must match every
// row at its own version: a wrong version there would not lose data, the Writer
// would run the batch again with a savepoint per save, so the test counts the
// paths. In the second batch the merged UPDATE matches two rows of three, the batch
// is isolated and the stale save alone fails with ErrConflict. On SQLite, which
// applies the saves one by one, the outcomes are the same.
func TestWriterMergedRunSaves(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		ctx := t.Context()
		store := persistence.NewWorkflowStore(db)
		var runs [3]persistence.WorkflowRun
		for i := range runs {
			r := seedRun(t, store)
			for range i { // run i at version 1+i: one version for all would match one row
				next := r
				next.Version++
				if err := store.SaveRun(ctx, next, r.Version); err != nil {
					t.Fatal(err)
				}
				r = next
			}
			runs[i] = r
		}
		// saveAll saves every run with a new lease epoch in one batch of a new
		// Writer, the save of run stale from a copy one version behind (-1: none).
		saveAll := func(epoch int64, stale int) (errs [3]error, multiCommits, isolations int64) {
			t.Helper()
			h := newHarness(t, db, persistence.WriterOptions{MaxDelay: -1})
			var done [3]<-chan error
			for i, r := range runs {
				prev := r
				if i == stale {
					prev.Version--
				}
				next := prev
				next.Version++
				next.LeaseEpoch = epoch
				done[i] = h.submit(func() error { return h.w.Submit(context.Background(), persistence.SaveRunOp(next, prev.Version)) })
			}
			stop := h.run(ctx)
			for i, ch := range done {
				errs[i] = recv(t, ch)
			}
			stop()
			if count, _ := h.batches(); count != 1 {
				t.Fatalf("batches = %d, want 1", count)
			}
			multiCommits, isolations = persistence.WriterPaths(h.w)
			return errs, multiCommits, isolations
		}
		check := func(stale int, epoch int64) {
			t.Helper()
			for i, r := range runs {
				got, err := store.GetRun(ctx, r.ID)
				if err != nil {
					t.Fatal(err)
				}
				want := r
				if i != stale {
					want.Version++
					want.LeaseEpoch = epoch
				}
				if got.Version != want.Version || got.LeaseEpoch != want.LeaseEpoch {
					t.Errorf("run %d stored at version %d, epoch %d; want %d, %d", i, got.Version, got.LeaseEpoch, want.Version, want.LeaseEpoch)
				}
				runs[i] = got
			}
		}
		wantMulti := int64(0) // SQLite has no multi-statement path
		if db.Dialect == persistence.DialectMySQL {
			wantMulti = 1
		}

		errs, multi, isolations := saveAll(1, -1)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("save %d: %v", i, err)
			}
		}
		if multi != wantMulti || isolations != 0 {
			t.Errorf("saves at their versions: %d multi-statement commits, %d isolations; want %d and 0", multi, isolations, wantMulti)
		}
		check(-1, 1)

		errs, multi, isolations = saveAll(2, 1)
		for i, err := range errs {
			if stale := i == 1; stale != errors.Is(err, persistence.ErrConflict) || !stale && err != nil {
				t.Fatalf("save %d (stale %v): %v", i, stale, err)
			}
		}
		if isolations != 1 || multi != 0 {
			t.Errorf("one save stale: %d multi-statement commits, %d isolations; want 0 and 1", multi, isolations)
		}
		check(1, 2)
	})
}

// TestWriterRunFencesInABatch batches the journal writes of three runs, each fenced
// by the version its writer holds (RunFenced), one of them stale, with a new run's
// row and its first journal row in the same batch, and an events-only write of each
// kind: the stale writes alone fail with ErrConflict and write nothing, the others
// commit (on MariaDB in one multi-statement request whose fenced rows merge with
// the ordinary ones, the new run's row ahead of the rows that name it).
func TestWriterRunFencesInABatch(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		ctx := t.Context()
		store := persistence.NewWorkflowStore(db)
		var runs [3]persistence.WorkflowRun
		for i := range runs {
			r := seedRun(t, store)
			runs[i] = r
		}
		journal := func(id string, version int64) persistence.Ops {
			return persistence.Ops{
				persistence.StepInsertAt(id, version, persistence.WorkflowStep{RunID: id, Seq: 1, Name: "t", Kind: "task", Status: persistence.StatusCompleted,
					Events: []persistence.WorkflowEvent{{RunID: id, Seq: 1, StepSeq: 1, Status: persistence.StatusCompleted, Data: []byte("{}")}}}),
				persistence.EventInsert(persistence.WorkflowEvent{RunID: id, Seq: 2, Status: persistence.StatusRunning})}
		}
		events := func(id string, version int64) persistence.Op {
			return persistence.EventInsertAt(id, version, persistence.WorkflowEvent{RunID: id, Seq: 3, Status: persistence.StatusRunning},
				persistence.WorkflowEvent{RunID: id, Seq: 4, Status: persistence.StatusRunning})
		}
		fresh := persistence.WorkflowRun{ID: "0b9c6f4e-3c4e-4d7a-9a43-5f5d2c1e7a10", Name: "w", Status: persistence.StatusRunning, Version: 1,
			CreatedAt: time.Now()}
		h := newHarness(t, db, persistence.WriterOptions{MaxDelay: -1})
		var done, evDone [3]<-chan error
		for i, r := range runs {
			version := r.Version
			if i == 1 {
				version++ // another activation holds the run
			}
			done[i] = h.submit(func() error { return h.w.Submit(context.Background(), journal(r.ID, version)) })
			evDone[i] = h.submit(func() error { return h.w.Submit(context.Background(), events(r.ID, version)) })
		}
		created := h.submit(func() error {
			return h.w.Submit(context.Background(), append(persistence.Ops{persistence.RunInsert(fresh)}, journal(fresh.ID, 1)...))
		})
		h.run(ctx)
		for i := range done {
			for _, ch := range []<-chan error{done[i], evDone[i]} {
				err := recv(t, ch)
				if stale := i == 1; stale != errors.Is(err, persistence.ErrConflict) || !stale && err != nil {
					t.Fatalf("run %d (stale %v): %v", i, stale, err)
				}
			}
		}
		if err := recv(t, created); err != nil {
			t.Fatalf("new run with its first journal row: %v", err)
		}
		for i, id := range []string{runs[0].ID, runs[1].ID, runs[2].ID, fresh.ID} {
			steps, err := store.Steps(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			last, err := store.LastEventSeq(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			want := 1
			if i == 1 {
				want = 0
			}
			wantLast := int64(4)
			switch i {
			case 1:
				wantLast = 0
			case 3:
				wantLast = 2
			}
			if len(steps) != want || last != wantLast {
				t.Errorf("run %d: %d steps, last event %d; want %d and %d", i, len(steps), last, want, wantLast)
			}
		}
		if count, _ := h.batches(); count != 1 {
			t.Fatalf("batches = %d, want 1", count)
		}
	})
}
