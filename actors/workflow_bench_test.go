package actors

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/workflows"
)

// wfBench is a node's run grains with a way to wait for a run: the runtime's
// WatchFinish says when a run's final state is durable.
type wfBench struct {
	*harness
	wf   *Workflows
	runs *persistence.WorkflowStore
	// commits times the run grains' writes (not the baseline's).
	commits *timedWriter
}

func newWFBench(b *testing.B, db *persistence.DB, register func(*workflows.Registry)) *wfBench {
	b.Helper()
	h := newHarness(b, db, harnessOptions{})
	wb := &wfBench{harness: h, runs: persistence.NewWorkflowStore(db), commits: &timedWriter{LogWriter: h.writer}}
	reg := workflows.NewRegistry()
	register(reg)
	wf, err := NewWorkflows(WorkflowDeps{Runs: wb.runs, Writer: wb.commits, Registry: reg, Caller: h.grains,
		NodeID: "node-bench", IdleTimeout: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	wb.wf = wf
	h.grains.props[KindWorkflowRun] = wf.RunProps
	return wb
}

// benchRun is a run the benchmark starts: its ID and the watch of its finish,
// made before the run starts, so it cannot miss it.
type benchRun struct {
	id   string
	done <-chan string
	stop func()
}

// prepare returns a new run ID with the watch of its finish.
func (wb *wfBench) prepare() benchRun {
	id := uuid.Must(uuid.NewV7()).String()
	done, stop := wb.wf.WatchFinish(id)
	return benchRun{id: id, done: done, stop: stop}
}

// start starts run id of name.
func (wb *wfBench) start(ctx context.Context, id, name, params string) error {
	_, err := actorpb.As[*actorpb.RunAck](wb.grains.Call(ctx, KindWorkflowRun, id, &actorpb.StartRun{
		CorrelationId: "bench", RunId: id, Workflow: name, OwnerId: wb.users[0], ParametersJson: params}))
	return err
}

// await waits until r's final state is durable and checks it is status. The
// runtime tells its watchers once the commit that finishes the run returned, so
// the benchmark neither polls the grain nor reads the row.
func (wb *wfBench) await(r benchRun, status string) error {
	defer r.stop()
	select {
	case got := <-r.done:
		if got != status {
			return fmt.Errorf("run %s is %s, want %s", r.id, got, status)
		}
		return nil
	case <-time.After(time.Minute):
		return fmt.Errorf("run %s did not finish within a minute", r.id)
	}
}

// timedWriter is a LogWriter that sums how long its Submits wait. A Submit withdrawn
// before its batch (a new run's row that its first journal write carried instead)
// is no write: it is not counted.
type timedWriter struct {
	LogWriter
	n, total atomic.Int64
}

func (w *timedWriter) Submit(ctx context.Context, op persistence.Op) error {
	start := time.Now()
	err := w.LogWriter.Submit(ctx, op)
	if errors.Is(err, persistence.ErrWithdrawn) {
		return err
	}
	w.total.Add(int64(time.Since(start)))
	w.n.Add(1)
	return err
}

// mean returns the mean wait in milliseconds and how many writes it covers.
func (w *timedWriter) mean() (float64, int64) {
	n := w.n.Load()
	if n == 0 {
		return 0, 0
	}
	return float64(w.total.Load()) / float64(n) / float64(time.Millisecond), n
}

// latencies collects durations from several goroutines.
type latencies struct {
	mu sync.Mutex
	ds []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.ds = append(l.ds, d)
	l.mu.Unlock()
}

// quantile returns the q-quantile in milliseconds.
func (l *latencies) quantile(q float64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ds) == 0 {
		return 0
	}
	s := slices.Clone(l.ds)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(q*float64(len(s))))]) / float64(time.Millisecond)
}

// benchTasks is the number of tasks of the benchmark workflow.
const benchTasks = 5

// BenchmarkWorkflowTasks measures task completions per second of a five-task workflow
// of no-op tasks, 64 runs in flight on one node on MariaDB (a run counts when its final
// state is durable), against the group-commit writer's durable rows per second (64
// writers each appending one message after the other, through the same writer),
// alternating in this run. A task costs about one journal row. Goal: x-vs-baseline >=
// 0.5. It reports the p50 and p99 run latency (trigger to durable completion) and the
// per-task overhead (mean run latency over the five tasks, which do nothing), and the
// p50 latency of the trigger alone (StartRun: the row created, the run started), the
// writer requests per run and the mean wait of the runs' writes against the p50 wait of
// a baseline write (where the time of a run goes). A new run's row that its first
// journal write carried is no request of its own (five writes per run are the least:
// a task's result is durable before the next task starts, and the last one commits
// with the run's outcome).
func BenchmarkWorkflowTasks(b *testing.B) {
	wb := newWFBench(b, persisttest.MySQL(b), func(reg *workflows.Registry) {
		if err := workflows.Register(reg, "noop5", func(c *workflows.Context, _ struct{}) (int, error) {
			sum := 0
			for i := range benchTasks {
				n, err := workflows.Task(c, fmt.Sprintf("noop[%d]", i), func(context.Context) (int, error) { return i, nil })
				if err != nil {
					return 0, err
				}
				sum += n
			}
			return sum, nil
		}); err != nil {
			b.Fatal(err)
		}
	})
	baseConvs := wb.newConversations(benchConcurrency, 0)
	var seqs [benchConcurrency]int64
	var base latencies
	appendRow := func(w int) error {
		seqs[w]++
		start := time.Now()
		err := wb.writer.AppendMessages(context.Background(), persistence.Message{ConversationID: baseConvs[w],
			Seq: seqs[w], Role: roleUser, Content: "baseline message of typical length for a chat turn"})
		base.add(time.Since(start))
		return err
	}
	var lat, trigger latencies
	var total time.Duration
	runs := 0
	var totalMu sync.Mutex
	run := func(int) error {
		ctx := context.Background()
		start := time.Now()
		r := wb.prepare()
		if err := wb.start(ctx, r.id, "noop5", `{}`); err != nil {
			r.stop()
			return err
		}
		trigger.add(time.Since(start))
		if err := wb.await(r, persistence.StatusCompleted); err != nil {
			return err
		}
		d := time.Since(start)
		lat.add(d)
		totalMu.Lock()
		total, runs = total+d, runs+1
		totalMu.Unlock()
		return nil
	}
	var c comparison
	for b.Loop() {
		for range benchRounds {
			n, d := testenv.Throughput(b, benchConcurrency, benchPhase, appendRow)
			c.base, c.baseTime = c.base+n, c.baseTime+d
			n, d = testenv.Throughput(b, benchConcurrency, benchPhase, run)
			c.ours, c.oursTime = c.ours+benchTasks*n, c.oursTime+d
		}
	}
	c.report(b, "tasks/s", "baseline-rows/s")
	b.ReportMetric(lat.quantile(0.5), "p50-run-ms")
	b.ReportMetric(lat.quantile(0.99), "p99-run-ms")
	b.ReportMetric(trigger.quantile(0.5), "p50-trigger-ms")
	if runs > 0 {
		b.ReportMetric(float64(total)/float64(runs)/benchTasks/float64(time.Millisecond), "ms/task")
	}
	commit, writes := wb.commits.mean()
	b.ReportMetric(commit, "ms/run-write")
	b.ReportMetric(base.quantile(0.5), "p50-baseline-write-ms")
	if runs > 0 {
		b.ReportMetric(float64(writes)/float64(runs), "writes/run")
	}
}

// pausedRuns is how many runs BenchmarkPausedRuns holds paused at once.
const pausedRuns = 10_000

// BenchmarkPausedRuns starts 10k runs that wait for input on MariaDB, with their grains kept
// active (no idle passivation), and reports the heap each paused run holds (goal <=
// 8 KiB) and the goroutine stacks it holds, then resumes a sample of them and reports
// the resume latency (ResumeRun to durable completion).
func BenchmarkPausedRuns(b *testing.B) {
	type decision struct {
		OK bool `json:"ok"`
	}
	wb := newWFBench(b, persisttest.MySQL(b), func(reg *workflows.Registry) {
		if err := workflows.Register(reg, "await", func(c *workflows.Context, _ struct{}) (bool, error) {
			d, err := workflows.WaitForInput[decision](c, "decision")
			if err != nil {
				return false, err
			}
			return d.OK, nil
		}); err != nil {
			b.Fatal(err)
		}
	})
	ctx := context.Background()
	for b.Loop() {
		// The IDs and watches are the benchmark's, made before the measurement.
		ids := make([]string, pausedRuns)
		watches := make([]benchRun, pausedRuns)
		for i := range ids {
			watches[i] = wb.prepare()
			ids[i] = watches[i].id
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		parallel(benchConcurrency, pausedRuns, func(_, i int) {
			if err := wb.start(ctx, ids[i], "await", `{}`); err != nil {
				b.Error(err)
			}
		})
		// Paused means the pause is durable: the row says so.
		parallel(benchConcurrency, pausedRuns, func(_, i int) {
			for deadline := time.Now().Add(time.Minute); ; {
				run, err := wb.runs.GetRun(ctx, ids[i])
				if err != nil {
					b.Error(err)
					return
				}
				if run.Status == persistence.StatusPaused && len(run.Waiting) > 0 {
					return
				}
				if time.Now().After(deadline) {
					b.Errorf("run %s is %s", ids[i], run.Status)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		perRun := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / pausedRuns
		b.ReportMetric(perRun, "heap-B/paused-run")
		b.ReportMetric(perRun/8192, "x-of-goal")
		b.ReportMetric((float64(after.StackInuse)-float64(before.StackInuse))/pausedRuns, "stack-B/paused-run")

		var resume latencies
		const sample = 500
		parallel(benchConcurrency, sample, func(_, i int) {
			start := time.Now()
			if _, err := actorpb.As[*actorpb.RunAck](wb.grains.Call(ctx, KindWorkflowRun, ids[i], &actorpb.ResumeRun{
				CorrelationId: "bench", RunId: ids[i], InputJson: `{"ok":true}`})); err != nil {
				b.Error(err)
				return
			}
			if err := wb.await(watches[i], persistence.StatusCompleted); err != nil {
				b.Error(err)
				return
			}
			resume.add(time.Since(start))
		})
		b.ReportMetric(resume.quantile(0.5), "p50-resume-ms")
		b.ReportMetric(resume.quantile(0.99), "p99-resume-ms")
		runtime.KeepAlive(ids)
		for _, w := range watches[sample:] {
			w.stop()
		}
		runtime.KeepAlive(watches)
	}
}
