package actors

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/google/uuid"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/offline"
)

const (
	// benchConcurrency is the number of conversations driven at once.
	benchConcurrency = 64
	// benchRounds and benchPhase: a comparative benchmark alternates its measurement
	// and its baseline, benchPhase each per round, so that background load and table
	// growth weigh on both alike.
	benchRounds = 3
	benchPhase  = time.Second
)

func offlineLM() lm.LM { return lm.NewProvider("offline", "kowai-offline", offline.New()) }

// newConversations creates n conversations of user u and returns their IDs.
func (h *harness) newConversations(n, u int) []string {
	h.t.Helper()
	repo := persistence.NewConversationStore(h.db)
	ids := make([]string, n)
	for i := range ids {
		c, err := repo.Create(context.Background(), persistence.Conversation{OwnerID: h.users[u], AgentID: agents.DefaultAgentID()})
		if err != nil {
			h.t.Fatal(err)
		}
		ids[i] = c.ID
	}
	return ids
}

// parallel runs f(worker, i) for i in [0, n) on workers goroutines and returns the
// elapsed time.
func parallel(workers, n int, f func(worker, i int)) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(w, i)
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// comparison accumulates a benchmark's measurement and baseline over its rounds.
type comparison struct {
	ours, base         int
	oursTime, baseTime time.Duration
}

// report reports both rates, each under its unit, and their ratio.
func (c comparison) report(b *testing.B, unit, baseUnit string) {
	ours, base := float64(c.ours)/c.oursTime.Seconds(), float64(c.base)/c.baseTime.Seconds()
	b.ReportMetric(ours, unit)
	b.ReportMetric(base, baseUnit)
	b.ReportMetric(ours/base, "x-vs-baseline")
}

// BenchmarkTurns measures chat turns per second on one node (offline model, MariaDB,
// 64 concurrent conversations) against the group-commit writer's durable rows per
// second divided by 2, since a turn writes two messages: 64 writers each appending one
// message after the other to a conversation of its own, through the same writer,
// alternating with the turns in this run.
// Goal: x-vs-baseline >= 0.6.
func BenchmarkTurns(b *testing.B) {
	h := newHarness(b, persisttest.MySQL(b), harnessOptions{model: offlineLM()})
	baseConvs := h.newConversations(benchConcurrency, 0)
	var seqs [benchConcurrency]int64
	appendRow := func(w int) error {
		seqs[w]++
		return h.writer.AppendMessages(context.Background(), persistence.Message{ConversationID: baseConvs[w],
			Seq: seqs[w], Role: roleUser, Content: "baseline message of typical length for a chat turn"})
	}
	convs := make([]string, benchConcurrency)
	for i := range convs {
		convs[i] = uuid.Must(uuid.NewV7()).String()
	}
	turn := func(w int) error {
		_, err := h.send(context.Background(), convs[w], 0, "what is the weather like", "")
		return err
	}
	var (
		c              comparison
		mallocs, turns uint64
		ms             runtime.MemStats
	)
	for b.Loop() {
		for range benchRounds {
			n, d := testenv.Throughput(b, benchConcurrency, benchPhase, appendRow)
			c.base, c.baseTime = c.base+n, c.baseTime+2*d
			runtime.ReadMemStats(&ms)
			before := ms.Mallocs
			n, d = testenv.Throughput(b, benchConcurrency, benchPhase, turn)
			runtime.ReadMemStats(&ms)
			mallocs, turns = mallocs+ms.Mallocs-before, turns+uint64(n)
			c.ours, c.oursTime = c.ours+n, c.oursTime+d
		}
	}
	c.report(b, "turns/s", "baseline-turns/s")
	// Every allocation of the process while turns ran (the writer and the database
	// driver included), per turn.
	b.ReportMetric(float64(mallocs)/float64(max(turns, 1)), "allocs/turn")
}

// echo is the bare protoactor baseline: it answers every request with the request.
type echo struct{}

func (echo) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*actorpb.CancelTurn); ok {
		ctx.Respond(ctx.Message())
	}
}

// BenchmarkActorLayer measures a request through the session grain (a CancelTurn of
// its owner with nothing running: identity and ownership checks, answer from memory,
// the cheapest request the gateway sends) against a bare protoactor RequestFuture round
// trip to an actor that only answers, sequentially on one local actor system,
// alternating the two benchRounds times per iteration (swapping which goes first) so
// that background load weighs on both alike.
// Goal: x-vs-baseline >= 0.75.
func BenchmarkActorLayer(b *testing.B) {
	h := newHarness(b, persisttest.SQLite(b), harnessOptions{})
	h.mustSend(conv1, 0, "hi", "")
	session, err := h.grains.pid(KindSession, conv1)
	if err != nil {
		b.Fatal(err)
	}
	bare := h.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return echo{} }))
	req := &actorpb.CancelTurn{ConversationId: conv1, UserId: h.users[0]}
	roundTrips := func(pid *actor.PID, n int) time.Duration {
		start := time.Now()
		for range n {
			res, err := h.sys.Root.RequestFuture(pid, req, 5*time.Second).Result()
			if err != nil {
				b.Fatal(err)
			}
			if _, ok := res.(*actorpb.ErrorReply); ok {
				b.Fatalf("reply %v", res)
			}
		}
		return time.Since(start)
	}
	const per = 5000
	roundTrips(bare, 1000) // warm up
	roundTrips(session, 1000)
	var c comparison
	for b.Loop() {
		for round := range benchRounds {
			ours := func() { c.ours, c.oursTime = c.ours+per, c.oursTime+roundTrips(session, per) }
			base := func() { c.base, c.baseTime = c.base+per, c.baseTime+roundTrips(bare, per) }
			if round%2 == 0 {
				ours()
				base()
			} else {
				base()
				ours()
			}
		}
	}
	c.report(b, "req/s", "baseline-req/s")
}

// sessionSnapshots writes n session snapshots of a typical small conversation (two
// messages in the tail) for user u, through the group-commit writer, and returns their
// conversation IDs.
func (h *harness) sessionSnapshots(n, u int) []string {
	h.t.Helper()
	st := sessionState{OwnerID: h.users[u], AgentID: agents.DefaultAgentID(), Title: "a question", BusyPolicy: agents.BusyEnqueue,
		Turns: 1, LastSeq: 2, Tail: []tailEntry{
			{ID: uuid.Must(uuid.NewV7()).String(), Seq: 1, HistoryEntry: &actorpb.HistoryEntry{Role: roleUser, Content: "a question"}},
			newEntry(&actorpb.HistoryEntry{Role: roleAssistant, Content: "an answer"}, uuid.Must(uuid.NewV7()).String(), 2, "", "", "", &actorpb.Usage{PromptTokens: 10, CompletionTokens: 5}),
		}}
	state, err := encodeState(st)
	if err != nil {
		h.t.Fatal(err)
	}
	ids := make([]string, n)
	parallel(benchConcurrency, n, func(_, i int) {
		ids[i] = uuid.Must(uuid.NewV7()).String()
		if err := h.writer.SaveSnapshot(context.Background(), persistence.Snapshot{Kind: KindSession, Identity: ids[i], Version: st.LastSeq, State: state}, 0); err != nil {
			h.t.Error(err)
		}
	})
	return ids
}

// BenchmarkColdActivation measures cold session activations per second (spawn,
// snapshot load with its log check, first reply) against MariaDB primary-key reads per
// second (the same snapshots' loads through the snapshot store), both with 64
// concurrent callers, alternating in this run.
// Goal: x-vs-baseline >= 0.6.
func BenchmarkColdActivation(b *testing.B) {
	h := newHarness(b, persisttest.MySQL(b), harnessOptions{})
	ids := h.sessionSnapshots(2000, 0)
	snaps := persistence.NewSnapshotStore(h.db)
	var next atomic.Int64
	read := func(int) error {
		_, err := snaps.Load(context.Background(), KindSession, ids[int(next.Add(1))%len(ids)])
		return err
	}
	activate := func(int) error {
		i := next.Add(1)
		id := ids[int(i)%len(ids)]
		pid, err := h.sys.Root.SpawnNamed(h.rt.SessionProps(id), fmt.Sprintf("cold-%d", i))
		if err != nil {
			return err
		}
		defer h.sys.Root.Stop(pid)
		// The conversations exist only as snapshots, so an answer other than not found
		// means the session loaded its owner from the snapshot.
		res, err := h.sys.Root.RequestFuture(pid, &actorpb.CancelTurn{ConversationId: id, UserId: h.users[0]}, 10*time.Second).Result()
		if r, ok := res.(*actorpb.CancelResult); err != nil || !ok || r.Canceled {
			return fmt.Errorf("activation answered %v, %v", res, err)
		}
		return nil
	}
	var c comparison
	for b.Loop() {
		for range benchRounds {
			n, d := testenv.Throughput(b, benchConcurrency, benchPhase, read)
			c.base, c.baseTime = c.base+n, c.baseTime+d
			n, d = testenv.Throughput(b, benchConcurrency, benchPhase, activate)
			c.ours, c.oursTime = c.ours+n, c.oursTime+d
		}
	}
	c.report(b, "activations/s", "baseline-reads/s")
}

// BenchmarkIdleSessionHeap runs one chat turn (offline model, SQLite) in each of 100k new
// conversations and reports the live heap each idle session holds afterwards: what a
// node keeps per conversation that was used and is now waiting for its next message.
// Goal: <= 3072 B/session.
func BenchmarkIdleSessionHeap(b *testing.B) {
	const sessions = 100_000
	h := newHarness(b, persisttest.SQLite(b), harnessOptions{model: offlineLM(), deps: func(d *Deps) { d.IdleTimeout = time.Hour }})
	// The agent grain and everything a first turn sets up once are not per session.
	h.mustSend(uuid.Must(uuid.NewV7()).String(), 0, "warm up", "")
	for b.Loop() {
		ids := make([]string, sessions)
		for i := range ids {
			ids[i] = uuid.Must(uuid.NewV7()).String()
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var failed atomic.Value
		parallel(benchConcurrency, sessions, func(_, i int) {
			if _, err := h.send(context.Background(), ids[i], 0, "what is the weather like", ""); err != nil {
				failed.CompareAndSwap(nil, err)
			}
		})
		if err, ok := failed.Load().(error); ok {
			b.Fatal(err)
		}
		// The harness's PIDs of the sessions are the caller's memory, not the node's.
		h.grains.forget()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		// ids itself was allocated before the first reading.
		perSession := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / sessions
		b.ReportMetric(perSession, "B/session")
		b.ReportMetric(perSession/3072, "x-of-goal")
		for _, id := range ids {
			h.sys.Root.Stop(actor.NewPID(h.sys.Address(), KindSession+"/"+id))
		}
		runtime.KeepAlive(ids)
	}
}

// BenchmarkTurnCost measures what one continuing turn costs as its conversation
// ages (offline model, SQLite, one turn at a time): the allocation per turn, and the
// time of a turn past the 1,000th against one just past the history window (the 21st
// to the 30th of a new conversation), alternating the two benchRounds times per
// iteration. The window, the summary and the prompt are bounded, so an old
// conversation's turn should cost what a young one's does.
// Goals: B/turn <= 20,000; x-old-vs-young <= 1.2.
func BenchmarkTurnCost(b *testing.B) {
	h := newHarness(b, persisttest.SQLite(b), harnessOptions{model: offlineLM()})
	window := h.rt.deps.HistoryWindow
	turns := func(conv string, n int) {
		for i := range n {
			if _, err := h.send(context.Background(), conv, 0, fmt.Sprintf("message %d: what is the weather like tomorrow?", i), ""); err != nil {
				b.Fatal(err)
			}
		}
	}
	old := uuid.Must(uuid.NewV7()).String()
	turns(old, 1000)
	const per = 10
	type side struct {
		d, cpu time.Duration
		bytes  uint64
		n      int
	}
	measure := func(conv string, into *side) {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		cpu0 := processCPU(b)
		start := time.Now()
		turns(conv, per)
		into.d += time.Since(start)
		into.cpu += processCPU(b) - cpu0
		runtime.ReadMemStats(&m1)
		into.bytes += m1.TotalAlloc - m0.TotalAlloc
		into.n += per
	}
	var young, aged side
	for b.Loop() {
		for round := range benchRounds {
			conv := uuid.Must(uuid.NewV7()).String()
			// window turns: the measured ones are the 21st to the 30th with the default
			// window of 20 messages, each one past the window.
			turns(conv, window)
			if round%2 == 0 {
				measure(conv, &young)
				measure(old, &aged)
			} else {
				measure(old, &aged)
				measure(conv, &young)
			}
		}
	}
	b.ReportMetric(float64(young.bytes)/float64(young.n), "B/turn")
	b.ReportMetric(float64(aged.bytes)/float64(aged.n), "B/turn-after-1000")
	b.ReportMetric(float64(young.d.Microseconds())/float64(young.n), "us/turn")
	b.ReportMetric(float64(aged.d.Microseconds())/float64(aged.n), "us/turn-after-1000")
	b.ReportMetric((float64(aged.d)/float64(aged.n))/(float64(young.d)/float64(young.n)), "x-old-vs-young")
	// A turn here waits mostly for SQLite's commit (fsync), which other processes' disk
	// load stretches; CPU time is what the turn itself costs.
	b.ReportMetric((float64(aged.cpu)/float64(aged.n))/(float64(young.cpu)/float64(young.n)), "cpu-x-old-vs-young")
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
