package actors

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/workflows"
)

// heldWriter is a LogWriter whose first Submit of a lone Op (a new run's row on its
// own, in these tests: the event pump submits Ops) stays queued until its caller
// withdraws it, like a busy writer that has not taken it yet; every other Submit
// goes through. It records what each write carried.
type heldWriter struct {
	LogWriter
	mu     sync.Mutex
	first  bool
	writes []string
}

func (w *heldWriter) Submit(ctx context.Context, op persistence.Op) error {
	_, batched := op.(persistence.Ops)
	w.mu.Lock()
	held := !w.first && !batched
	w.first = w.first || !batched
	w.mu.Unlock()
	if held {
		<-ctx.Done()
		return fmt.Errorf("held: %w: %w", persistence.ErrWithdrawn, ctx.Err())
	}
	err := w.LogWriter.Submit(ctx, op)
	w.mu.Lock()
	w.writes = append(w.writes, fmt.Sprintf("%T", op))
	w.mu.Unlock()
	return err
}

// newHeldWFHarness is newWFHarness whose run grains write through a heldWriter.
func newHeldWFHarness(t *testing.T, db *persistence.DB, register func(*workflows.Registry)) (*wfHarness, *heldWriter) {
	t.Helper()
	h := newHarness(t, db, harnessOptions{})
	reg := workflows.NewRegistry()
	register(reg)
	runs := persistence.NewWorkflowStore(db)
	hw := &heldWriter{LogWriter: h.writer}
	// The row's own write is submitted at once (no linger), to be held, unless
	// the pump claims the row first.
	wf, err := NewWorkflows(WorkflowDeps{Runs: runs, Writer: hw, Registry: reg, Caller: h.grains, NodeID: "node-test",
		IdleTimeout: time.Minute, WriteLinger: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	h.grains.props[KindWorkflowRun] = wf.RunProps
	return &wfHarness{harness: h, wf: wf, runs: runs, reg: reg}, hw
}

// A fresh run's row, still queued when the run's first journal write is due, is
// withdrawn and committed with that write: the trigger is answered once the row is
// durable, and a two-task run costs two commits. Without the carrying, the row's
// write stays held and the trigger fails.
func TestFreshRunRowCommitsWithItsFirstJournalWrite(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h, hw := newHeldWFHarness(t, db, func(reg *workflows.Registry) {
			must(t, workflows.Register(reg, "two", func(c *workflows.Context, _ noParams) (int, error) {
				a, err := workflows.Task(c, "a", func(context.Context) (int, error) { return 1, nil })
				if err != nil {
					return 0, err
				}
				b, err := workflows.Task(c, "b", func(context.Context) (int, error) { return 2, nil })
				return a + b, err
			}))
		})
		id := uuid.NewString()
		done, stop := h.wf.WatchFinish(id)
		defer stop()
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		ack, err := actorpb.As[*actorpb.RunAck](h.grains.Call(ctx, KindWorkflowRun, id, &actorpb.StartRun{
			CorrelationId: "t", RunId: id, Workflow: "two", OwnerId: h.users[0], ParametersJson: `{}`}))
		if err != nil {
			t.Fatalf("trigger: %v", err)
		}
		// The answer says the row is durable: it can be read at once.
		if run, err := h.runs.GetRun(t.Context(), id); err != nil || run.ID != id || ack.GetRunId() != id {
			t.Fatalf("run after the trigger's answer: %+v, %v", run, err)
		}
		select {
		case status := <-done:
			if status != persistence.StatusCompleted {
				t.Fatalf("run finished %s", status)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("run did not finish")
		}
		steps, err := h.runs.Steps(t.Context(), id)
		if err != nil || len(steps) != 2 {
			t.Fatalf("steps = %+v, %v", steps, err)
		}
		hw.mu.Lock()
		writes := hw.writes
		hw.mu.Unlock()
		// The row with task a's result, then task b's result and the outcome:
		// together when the outcome is ready before the pump takes b's result,
		// apart when the function is slower to return (seen under -race on a
		// loaded machine). The row's own write is held for good, so it can
		// only have been committed by being carried.
		if len(writes) < 2 || len(writes) > 3 {
			t.Fatalf("writes = %v, want the carried row with the first result, then the second result and the outcome", writes)
		}
	})
}

// When the carried row cannot be written (its ID is taken), nothing of the
// execution that started with it is written: the trigger gets the run that holds
// the ID, and the journal keeps that run's rows only.
func TestFreshRunWhoseRowFailsWritesNothing(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		var calls atomic.Int32
		h, _ := newHeldWFHarness(t, db, func(reg *workflows.Registry) {
			must(t, workflows.Register(reg, "two", func(c *workflows.Context, _ noParams) (int, error) {
				for _, name := range []string{"a", "b"} {
					if _, err := workflows.Task(c, name, func(context.Context) (int, error) { calls.Add(1); return 1, nil }); err != nil {
						return 0, err
					}
				}
				return 2, nil
			}))
		})
		id := uuid.NewString()
		// Another node created the run and finished it, unknown to this grain.
		now := time.Now()
		if _, err := h.runs.CreateRun(t.Context(), persistence.WorkflowRun{ID: id, Name: "two", OwnerID: h.users[0],
			Status: persistence.StatusCompleted, Result: []byte("7"), CreatedAt: now, FinishedAt: now}); err != nil {
			t.Fatal(err)
		}
		ack, err := actorpb.As[*actorpb.RunAck](h.grains.Call(t.Context(), KindWorkflowRun, id, &actorpb.StartRun{
			CorrelationId: "t", RunId: id, Workflow: "two", OwnerId: h.users[0], ParametersJson: `{}`}))
		if err != nil {
			t.Fatalf("trigger: %v", err)
		}
		if ack.GetStatus() != persistence.StatusCompleted {
			t.Fatalf("trigger answered %s, want the existing run's completed", ack.GetStatus())
		}
		if calls.Load() == 0 {
			t.Fatal("the execution never ran a task: the test does not cover a write before the row")
		}
		steps, err := h.runs.Steps(t.Context(), id)
		if err != nil || len(steps) != 0 {
			t.Fatalf("steps of the other run = %+v, %v; want none", steps, err)
		}
		evs, err := h.runs.Events(t.Context(), id, 0, 100)
		if err != nil || len(evs) != 0 {
			t.Fatalf("events of the other run = %+v, %v; want none", evs, err)
		}
		run, err := h.runs.GetRun(t.Context(), id)
		if err != nil || run.Status != persistence.StatusCompleted || string(run.Result) != "7" {
			t.Fatalf("run = %+v, %v", run, err)
		}
	})
}

// countingWriter is a LogWriter that counts the writes that reach the writer.
type countingWriter struct {
	LogWriter
	n atomic.Int32
}

func (w *countingWriter) Submit(ctx context.Context, op persistence.Op) error {
	w.n.Add(1)
	return w.LogWriter.Submit(ctx, op)
}

// A run of five tasks that each take a moment writes five times: its row waits
// for the first result's write to carry it, and each task's "running" event for
// its result's write, however the goroutines are scheduled (WriteLinger, long
// here). Without the linger the writer takes the row at once, and a task's event
// is written alone while the task runs, each a commit the next result waits for.
func TestRunWritesOncePerTask(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		var cw *countingWriter
		h := newWFHarnessWith(t, db, harnessOptions{}, func(d *WorkflowDeps) {
			cw = &countingWriter{LogWriter: d.Writer}
			d.Writer, d.WriteLinger = cw, time.Minute
		}, func(reg *workflows.Registry) {
			must(t, workflows.Register(reg, "five", func(c *workflows.Context, _ noParams) (int, error) {
				sum := 0
				for i := range 5 {
					n, err := workflows.Task(c, fmt.Sprintf("t%d", i), func(context.Context) (int, error) {
						time.Sleep(2 * time.Millisecond) // long enough for the event pump to run
						return i, nil
					})
					if err != nil {
						return 0, err
					}
					sum += n
				}
				return sum, nil
			}))
		})
		id := uuid.NewString()
		done, stop := h.wf.WatchFinish(id)
		defer stop()
		if _, err := actorpb.As[*actorpb.RunAck](h.grains.Call(t.Context(), KindWorkflowRun, id, &actorpb.StartRun{
			CorrelationId: "t", RunId: id, Workflow: "five", OwnerId: h.users[0], ParametersJson: `{}`})); err != nil {
			t.Fatalf("trigger: %v", err)
		}
		select {
		case status := <-done:
			if status != persistence.StatusCompleted {
				t.Fatalf("run finished %s", status)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("run did not finish")
		}
		if n := cw.n.Load(); n != 5 {
			t.Errorf("writes = %d, want 5: the row with the first result, one per result after, the last with the outcome", n)
		}
		steps, err := h.runs.Steps(t.Context(), id)
		if err != nil || len(steps) != 5 {
			t.Fatalf("steps = %+v, %v", steps, err)
		}
		// Every event is in the log: each task's running and completed, the run's
		// running and completed.
		evs, err := h.runs.Events(t.Context(), id, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for i, e := range evs {
			if e.Seq != int64(i+1) {
				t.Fatalf("event %d has seq %d: %+v", i, e.Seq, evs)
			}
			count[e.Status]++
		}
		if count[persistence.StatusRunning] != 6 || count[persistence.StatusCompleted] != 6 {
			t.Fatalf("events by status = %v, want 6 running and 6 completed", count)
		}
	})
}
