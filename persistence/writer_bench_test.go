package persistence_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doug-martin/goqu/v9"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

const (
	// benchWriters is the concurrency of the benchmark.
	benchWriters = 1000
	// benchRounds and benchPhase: the three measurements take turns, each
	// running benchPhase per round, so that a change in background load or
	// table size weighs on all three alike.
	benchRounds = 3
	benchPhase  = time.Second
	// benchMultiRow is the row count of the raw multi-row INSERT baseline.
	benchMultiRow = 100
	// benchPool is the MariaDB pool the autocommit baseline may use: enough
	// connections for the server's own group commit to work for it, below
	// MariaDB's default max_connections of 151.
	benchPool = 100
)

// BenchmarkGroupCommitMySQL measures durable rows per second through the
// Writer with 1,000 concurrent writers on MariaDB, and in the same run two
// baselines: the same 1,000 writers each doing single-row autocommit INSERTs
// over a pool of 100 connections, and one connection doing raw 100-row
// multi-row INSERTs back to back.
//
// Goals (issue 2): x-vs-autocommit >= 5, x-vs-multirow100 >= 0.8.
//
// Run it with: go test -run '^$' -bench GroupCommit ./persistence/
func BenchmarkGroupCommitMySQL(b *testing.B) {
	db := persisttest.MySQL(b)
	db.SQL.SetMaxOpenConns(benchPool)
	db.SQL.SetMaxIdleConns(benchPool)
	benchmarkGroupCommit(b, db)
}

// BenchmarkGroupCommitSQLite is BenchmarkGroupCommitMySQL on the embedded
// SQLite database, whose pool has one connection: there the autocommit
// baseline is 1,000 writers queueing for one fsync each.
func BenchmarkGroupCommitSQLite(b *testing.B) {
	benchmarkGroupCommit(b, persisttest.SQLite(b))
}

func benchmarkGroupCommit(b *testing.B, db *persistence.DB) {
	convs := benchConversations(b, db, benchWriters)
	var (
		writerRows, autoRows, multiRows float64
		writerTime, autoTime, multiTime time.Duration
		phase                           int64
	)
	for b.Loop() {
		for range benchRounds {
			phase++
			n, d := throughWriter(b, db, convs, phase)
			writerRows, writerTime = writerRows+float64(n), writerTime+d
			phase++
			n, d = autocommitInserts(b, db, convs, phase)
			autoRows, autoTime = autoRows+float64(n), autoTime+d
			phase++
			n, d = multiRowInserts(b, db, convs, phase)
			multiRows, multiTime = multiRows+float64(n), multiTime+d
		}
	}
	writerRate := writerRows / writerTime.Seconds()
	autoRate := autoRows / autoTime.Seconds()
	multiRate := multiRows / multiTime.Seconds()
	b.ReportMetric(writerRate, "writer-rows/s")
	b.ReportMetric(autoRate, "autocommit-rows/s")
	b.ReportMetric(multiRate, "multirow100-rows/s")
	b.ReportMetric(writerRate/autoRate, "x-vs-autocommit")
	b.ReportMetric(writerRate/multiRate, "x-vs-multirow100")

	var stored int64
	if _, err := db.Goqu.From("messages").Select(goqu.COUNT("*")).ScanValContext(b.Context(), &stored); err != nil {
		b.Fatalf("count messages: %v", err)
	}
	if want := int64(writerRows + autoRows + multiRows); stored != want {
		b.Fatalf("%d messages stored, but %d inserts reported success", stored, want)
	}
}

// benchConversations creates one owner and n conversations in one
// transaction, so that every writer appends to a conversation of its own as
// a session actor does.
func benchConversations(b *testing.B, db *persistence.DB, n int) []string {
	b.Helper()
	now := time.Now().UTC()
	owner := newUUID()
	convs := make([]string, n)
	rows := make([]any, n)
	for i := range convs {
		convs[i] = newUUID()
		rows[i] = goqu.Record{"id": convs[i], "owner_id": owner, "created_at": now, "updated_at": now}
	}
	err := db.Goqu.WithTx(func(tx *goqu.TxDatabase) error {
		user := goqu.Record{"id": owner, "email": owner + "@example.com", "roles": "[]", "created_at": now, "updated_at": now}
		if _, err := tx.Insert("users").Prepared(true).Rows(user).Executor().ExecContext(b.Context()); err != nil {
			return err
		}
		_, err := tx.Insert("conversations").Prepared(true).Rows(rows...).Executor().ExecContext(b.Context())
		return err
	})
	if err != nil {
		b.Fatalf("create conversations: %v", err)
	}
	return convs
}

// concurrently runs fn in benchWriters goroutines until benchPhase has
// passed, and returns how many calls succeeded and how long until the last
// one returned. fn gets its writer's index and a counter unique to it.
func concurrently(b *testing.B, fn func(writer int, i int64) error) (int64, time.Duration) {
	b.Helper()
	var (
		ok       atomic.Int64
		failed   atomic.Value
		wg       sync.WaitGroup
		start    = time.Now()
		deadline = start.Add(benchPhase)
	)
	for w := range benchWriters {
		wg.Go(func() {
			for i := int64(0); time.Now().Before(deadline); i++ {
				if err := fn(w, i); err != nil {
					failed.Store(err)
					return
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatalf("insert failed: %v", err)
	}
	return ok.Load(), time.Since(start)
}

// benchSeq keeps the seqs of each phase apart: phase p writes seqs p<<32 + i.
func benchSeq(phase, i int64) int64 { return phase<<32 + i }

func throughWriter(b *testing.B, db *persistence.DB, convs []string, phase int64) (int64, time.Duration) {
	b.Helper()
	w := persistence.NewWriter(db, persistence.WriterOptions{})
	ctx, stop := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	n, d := concurrently(b, func(writer int, i int64) error {
		return w.AppendMessages(b.Context(), benchMessage(convs[writer], benchSeq(phase, i)))
	})
	stop()
	if err := <-done; err != nil {
		b.Fatalf("Run: %v", err)
	}
	return n, d
}

func autocommitInserts(b *testing.B, db *persistence.DB, convs []string, phase int64) (int64, time.Duration) {
	b.Helper()
	return concurrently(b, func(writer int, i int64) error {
		m := benchMessage(convs[writer], benchSeq(phase, i))
		q := db.Goqu.Insert("messages").Prepared(true).Rows(benchRecord(m))
		_, err := q.Executor().ExecContext(b.Context())
		return err
	})
}

// multiRowInserts spreads its rows over the conversations like the writers
// do, so that all three measurements touch the indexes alike.
func multiRowInserts(b *testing.B, db *persistence.DB, convs []string, phase int64) (int64, time.Duration) {
	b.Helper()
	start := time.Now()
	var rows int64
	for time.Since(start) < benchPhase {
		records := make([]any, benchMultiRow)
		for j := range records {
			k := rows + int64(j)
			records[j] = benchRecord(benchMessage(convs[k%int64(len(convs))], benchSeq(phase, k)))
		}
		if _, err := db.Goqu.Insert("messages").Prepared(true).Rows(records...).Executor().ExecContext(b.Context()); err != nil {
			b.Fatalf("multi-row insert: %v", err)
		}
		rows += benchMultiRow
	}
	return rows, time.Since(start)
}

func benchMessage(conv string, seq int64) persistence.Message {
	return persistence.Message{
		ID:             newUUID(),
		ConversationID: conv,
		Seq:            seq,
		Role:           "user",
		Content:        "a short user message of typical chat length, about eighty characters long",
		CreatedAt:      time.Now(),
	}
}

// benchRecord is the row the Writer stores for m, for the raw baselines.
func benchRecord(m persistence.Message) goqu.Record {
	return goqu.Record{
		"id": m.ID, "conversation_id": m.ConversationID, "seq": m.Seq, "role": m.Role,
		"content": m.Content, "metadata": nil, "idempotency_key": nil, "created_at": m.CreatedAt.UTC().Truncate(time.Microsecond),
	}
}
