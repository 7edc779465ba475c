package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/workflows"
)

// wfHarness is a harness with the workflow runtime's run grains.
type wfHarness struct {
	*harness
	wf   *Workflows
	runs *persistence.WorkflowStore
	reg  *workflows.Registry
}

func newWFHarness(t *testing.T, db *persistence.DB, register func(*workflows.Registry)) *wfHarness {
	t.Helper()
	return newWFHarnessWith(t, db, harnessOptions{}, nil, register)
}

// newWFHarnessWith is newWFHarness with the grains' harness options and a tweak of
// the workflow runtime's deps (either may be zero).
func newWFHarnessWith(t *testing.T, db *persistence.DB, opts harnessOptions, tweak func(*WorkflowDeps), register func(*workflows.Registry)) *wfHarness {
	t.Helper()
	h := newHarness(t, db, opts)
	reg := workflows.NewRegistry()
	register(reg)
	runs := persistence.NewWorkflowStore(db)
	deps := WorkflowDeps{Runs: runs, Writer: h.writer, Registry: reg, Caller: h.grains,
		Lease: 300 * time.Millisecond, RecoveryInterval: 100 * time.Millisecond, ClaimLease: time.Second, NodeID: "node-test"}
	if tweak != nil {
		tweak(&deps)
	}
	wf, err := NewWorkflows(deps)
	if err != nil {
		t.Fatal(err)
	}
	h.grains.props[KindWorkflowRun] = wf.RunProps
	return &wfHarness{harness: h, wf: wf, runs: runs, reg: reg}
}

func (h *wfHarness) trigger(t *testing.T, name, params string) string {
	t.Helper()
	id := uuid.NewString()
	if _, err := actorpb.As[*actorpb.RunAck](h.grains.Call(t.Context(), KindWorkflowRun, id, &actorpb.StartRun{
		CorrelationId: "t", RunId: id, Workflow: name, OwnerId: h.users[0], ParametersJson: params})); err != nil {
		t.Fatalf("trigger %s: %v", name, err)
	}
	return id
}

func (h *wfHarness) waitStatus(t *testing.T, id, status string, within time.Duration) persistence.WorkflowRun {
	t.Helper()
	var run persistence.WorkflowRun
	testenv.Eventually(t, within, func() error {
		var err error
		if run, err = h.runs.GetRun(t.Context(), id); err != nil {
			return err
		}
		if run.Status != status {
			return fmt.Errorf("run is %s (%s), want %s", run.Status, run.Error, status)
		}
		return nil
	})
	return run
}

type noParams struct{}

func TestRunGrainExecutesJournalsAndRecordsEvents(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		var calls atomic.Int32
		h := newWFHarness(t, db, func(reg *workflows.Registry) {
			must(t, workflows.Register(reg, "greet", func(c *workflows.Context, p struct {
				Name string `json:"name"`
			}) (string, error) {
				upper, err := workflows.Task(c, "upper", func(context.Context) (string, error) {
					calls.Add(1)
					return strings.ToUpper(p.Name), nil
				})
				if err != nil {
					return "", err
				}
				reply, err := workflows.Agent(c, "ask", workflows.AgentRequest{Agent: "chat", Message: "hi " + upper})
				return reply.Content, err
			}))
		})
		id := h.trigger(t, "greet", `{"name":"ada"}`)
		run := h.waitStatus(t, id, persistence.StatusCompleted, 10*time.Second)
		if string(run.Result) != `"echo: hi ADA"` || run.OwnerID != h.users[0] || run.FinishedAt.IsZero() || !run.DueAt.IsZero() {
			t.Fatalf("run = %+v (%s)", run, run.Result)
		}
		var spend struct {
			Calls int `json:"calls"`
		}
		if err := json.Unmarshal(run.Spend, &spend); err != nil || spend.Calls != 1 {
			t.Errorf("spend %s: %v", run.Spend, err)
		}
		steps, err := h.runs.Steps(t.Context(), id)
		if err != nil || len(steps) != 2 || steps[0].Name != "upper" || steps[1].Kind != "agent" || len(steps[1].Spend) == 0 {
			t.Fatalf("steps = %+v, %v", steps, err)
		}
		evs, err := h.runs.Events(t.Context(), id, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for i, e := range evs {
			if e.Seq != int64(i+1) {
				t.Fatalf("event %d has seq %d", i, e.Seq)
			}
			seen = append(seen, fmt.Sprintf("%d:%s", e.StepSeq, e.Status))
		}
		if want := "0:running 1:running 1:completed 2:running 2:completed 0:completed"; strings.Join(seen, " ") != want {
			t.Errorf("events %v, want %s", seen, want)
		}
		// Another StartRun (a duplicate trigger, a recovery poke) changes nothing.
		h.trigger2(t, id)
		if calls.Load() != 1 {
			t.Errorf("task ran %d times", calls.Load())
		}
	})
}

func (h *wfHarness) trigger2(t *testing.T, id string) {
	t.Helper()
	if _, err := actorpb.As[*actorpb.RunAck](h.grains.Call(t.Context(), KindWorkflowRun, id, &actorpb.StartRun{RunId: id})); err != nil {
		t.Fatal(err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRunGrainCancelStopsTasksWithinASecond(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		started := make(chan struct{})
		var taskErr atomic.Value
		var later atomic.Bool
		h := newWFHarness(t, db, func(reg *workflows.Registry) {
			must(t, workflows.Register(reg, "long", func(c *workflows.Context, _ noParams) (int, error) {
				if _, err := workflows.Task(c, "block", func(ctx context.Context) (int, error) {
					close(started)
					<-ctx.Done()
					taskErr.Store(ctx.Err())
					return 0, ctx.Err()
				}); err != nil {
					return 0, err
				}
				return workflows.Task(c, "later", func(context.Context) (int, error) { later.Store(true); return 1, nil })
			}))
		})
		id := h.trigger(t, "long", `{}`)
		<-started
		begin := time.Now()
		if _, err := actorpb.As[*actorpb.RunAck](h.grains.Call(t.Context(), KindWorkflowRun, id, &actorpb.CancelRun{RunId: id})); err != nil {
			t.Fatal(err)
		}
		run := h.waitStatus(t, id, persistence.StatusCancelled, 2*time.Second)
		if d := time.Since(begin); d > time.Second {
			t.Errorf("cancel took %v", d)
		}
		if err, _ := taskErr.Load().(error); !errors.Is(err, context.Canceled) || later.Load() {
			t.Errorf("task ctx err %v; later task ran %v", err, later.Load())
		}
		if run.FinishedAt.IsZero() || !run.DueAt.IsZero() {
			t.Errorf("cancelled run = %+v", run)
		}
		// A paused run is cancelled at once too.
	})
}

type decision struct {
	Approved bool   `json:"approved"`
	Note     string `json:"note,omitempty"`
}

func TestRunGrainResumeAndRetry(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		var drafts, finals atomic.Int32
		var broken atomic.Bool
		broken.Store(true)
		h := newWFHarness(t, db, func(reg *workflows.Registry) {
			must(t, workflows.Register(reg, "approve", func(c *workflows.Context, _ noParams) (string, error) {
				draft, err := workflows.Task(c, "draft", func(context.Context) (string, error) { drafts.Add(1); return "draft", nil })
				if err != nil {
					return "", err
				}
				d, err := workflows.WaitForInput[decision](c, "review")
				if err != nil {
					return "", err
				}
				return workflows.Task(c, "final", func(context.Context) (string, error) {
					finals.Add(1)
					if broken.Load() {
						return "", workflows.Permanent(errors.New("the printer is on fire"))
					}
					return fmt.Sprintf("%s approved=%v %s", draft, d.Approved, d.Note), nil
				})
			}))
		})
		id := h.trigger(t, "approve", `{}`)
		run := h.waitStatus(t, id, persistence.StatusPaused, 5*time.Second)
		if !strings.Contains(string(run.Waiting), `"review"`) || !run.DueAt.IsZero() {
			t.Fatalf("paused run = %+v (%s)", run, run.Waiting)
		}
		resume := func(input string) error {
			_, err := actorpb.As[*actorpb.RunAck](h.grains.Call(t.Context(), KindWorkflowRun, id, &actorpb.ResumeRun{RunId: id, InputJson: input}))
			return err
		}
		if err := resume(`{"approved":"yes"}`); actorpb.CodeOf(err) != actorpb.Code_CODE_INVALID_ARGUMENT || !strings.Contains(err.Error(), "approved must be a boolean") {
			t.Fatalf("bad input: %v", err)
		}
		if err := resume(`{"approved":true,"note":"ok"}`); err != nil {
			t.Fatal(err)
		}
		run = h.waitStatus(t, id, persistence.StatusFailed, 5*time.Second)
		if !strings.Contains(run.Error, "printer is on fire") {
			t.Fatalf("failed run = %+v", run)
		}
		if err := resume(`{"approved":true}`); actorpb.CodeOf(err) != actorpb.Code_CODE_CONFLICT {
			t.Fatalf("resume of a failed run: %v", err)
		}
		broken.Store(false)
		if _, err := actorpb.As[*actorpb.RunAck](h.grains.Call(t.Context(), KindWorkflowRun, id, &actorpb.RetryRun{RunId: id})); err != nil {
			t.Fatal(err)
		}
		run = h.waitStatus(t, id, persistence.StatusCompleted, 5*time.Second)
		if string(run.Result) != `"draft approved=true ok"` || drafts.Load() != 1 || finals.Load() != 2 {
			t.Fatalf("retried run = %s, drafts %d, finals %d", run.Result, drafts.Load(), finals.Load())
		}
	})
}

func TestRecoveryResumesARunWithoutARequest(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		var calls sync.Map
		count := func(name string) int32 {
			v, _ := calls.LoadOrStore(name, new(atomic.Int32))
			return v.(*atomic.Int32).Load()
		}
		h := newWFHarness(t, db, func(reg *workflows.Registry) {
			must(t, workflows.Register(reg, "five", func(c *workflows.Context, _ noParams) (int, error) {
				sum := 0
				for i := 1; i <= 3; i++ {
					v, err := workflows.Task(c, fmt.Sprint("t", i), func(context.Context) (int, error) {
						n, _ := calls.LoadOrStore(fmt.Sprint("t", i), new(atomic.Int32))
						n.(*atomic.Int32).Add(1)
						return i, nil
					}, workflows.WithRetry(workflows.Retry{Attempts: 5}))
					if err != nil {
						return 0, err
					}
					sum += v
				}
				return sum, nil
			}))
		})
		// A node died while executing the run: step 1 journaled, step 2's first
		// attempt in flight, its heartbeat lapsed a moment ago. Another node,
		// alive, executes a run of its own.
		ctx := t.Context()
		now := time.Now()
		must(t, h.runs.Heartbeat(ctx, "dead-node", 7, now.Add(-100*time.Millisecond)))
		must(t, h.runs.Heartbeat(ctx, "live-node", 1, now.Add(time.Hour)))
		run, err := h.runs.CreateRun(ctx, persistence.WorkflowRun{Name: "five", OwnerID: h.users[0], Status: persistence.StatusRunning,
			Parameters: json.RawMessage(`{}`), StartedAt: now.Add(-time.Minute), LeaseOwner: "dead-node", LeaseEpoch: 7})
		must(t, err)
		// The same node name under a live epoch does not cover the dead one's runs.
		must(t, h.runs.Heartbeat(ctx, "dead-node", 8, now.Add(time.Hour)))
		alive, err := h.runs.CreateRun(ctx, persistence.WorkflowRun{Name: "five", OwnerID: h.users[0], Status: persistence.StatusRunning,
			Parameters: json.RawMessage(`{}`), StartedAt: now.Add(-time.Minute), LeaseOwner: "live-node", LeaseEpoch: 1})
		must(t, err)
		must(t, h.runs.AppendStep(ctx, persistence.WorkflowStep{RunID: run.ID, Seq: 1, Name: "t1", Kind: "task", Status: persistence.StatusCompleted,
			Output: json.RawMessage(`1`), Attempts: 1}))
		must(t, h.writer.Submit(ctx, persistence.EventInsert(
			persistence.WorkflowEvent{RunID: run.ID, Seq: 1, Status: persistence.StatusRunning},
			persistence.WorkflowEvent{RunID: run.ID, Seq: 2, StepSeq: 1, Status: persistence.StatusRunning, Attempt: 1},
			persistence.WorkflowEvent{RunID: run.ID, Seq: 3, StepSeq: 1, Status: persistence.StatusCompleted, Attempt: 1},
			persistence.WorkflowEvent{RunID: run.ID, Seq: 4, StepSeq: 2, Status: persistence.StatusRunning, Attempt: 1},
		)))
		// No client asks: the recovery loop finds and finishes it.
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- h.wf.Run(rctx) }()
		t.Cleanup(func() { stop(); <-done })
		got := h.waitStatus(t, run.ID, persistence.StatusCompleted, 5*time.Second)
		if string(got.Result) != "6" || got.LeaseOwner != "node-test" {
			t.Fatalf("recovered run = %+v (%s)", got, got.Result)
		}
		if count("t1") != 0 || count("t2") != 1 || count("t3") != 1 {
			t.Errorf("calls t1=%d t2=%d t3=%d; a journaled task ran again or an unfinished one did not", count("t1"), count("t2"), count("t3"))
		}
		steps, err := h.runs.Steps(ctx, run.ID)
		if err != nil || len(steps) != 3 || steps[1].Attempts != 2 || steps[2].Attempts != 1 {
			t.Fatalf("steps = %+v, %v; the crashed attempt must be counted", steps, err)
		}
		if got, err := h.runs.GetRun(ctx, alive.ID); err != nil || got.Version != alive.Version || !got.DueAt.IsZero() || got.LeaseOwner != "live-node" {
			t.Fatalf("the run of a live node was taken: %+v, %v", got, err)
		}
		owned, err := h.runs.OwnedRuns(ctx, "live-node", 1)
		if err != nil || len(owned) != 1 || owned[alive.ID] != alive.Version {
			t.Fatalf("OwnedRuns(live-node) = %v, %v", owned, err)
		}
	})
}

func TestStaleRunActivationStops(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		started := make(chan struct{})
		var taskErr atomic.Value
		h := newWFHarness(t, db, func(reg *workflows.Registry) {
			must(t, workflows.Register(reg, "hold", func(c *workflows.Context, _ noParams) (int, error) {
				return workflows.Task(c, "hold", func(ctx context.Context) (int, error) {
					close(started)
					<-ctx.Done()
					taskErr.Store(ctx.Err())
					return 0, ctx.Err()
				})
			}))
		})
		id := h.trigger(t, "hold", `{}`)
		<-started
		// The ownership check of the recovery ticks tells the grain.
		rctx, stop := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- h.wf.Run(rctx) }()
		t.Cleanup(func() { stop(); <-done })
		// Another activation of the run (after a membership change) took it over.
		cur, err := h.runs.GetRun(t.Context(), id)
		must(t, err)
		other := cur
		other.Version, other.LeaseOwner, other.DueAt = cur.Version+1, "other-node", time.Now().Add(time.Hour)
		must(t, h.runs.SaveRun(t.Context(), other, cur.Version))
		testenv.Eventually(t, 3*time.Second, func() error {
			if err, _ := taskErr.Load().(error); err == nil {
				return errors.New("the stale activation's task still runs")
			}
			if h.alive(KindWorkflowRun, id) {
				return errors.New("the stale grain is still alive")
			}
			return nil
		})
		after, err := h.runs.GetRun(t.Context(), id)
		if err != nil || after.Version != other.Version || after.LeaseOwner != "other-node" {
			t.Fatalf("the stale activation wrote over the owner: %+v, %v", after, err)
		}
	})
}

func TestRunGrainSubWorkflowAndSleep(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newWFHarness(t, db, func(reg *workflows.Registry) {
			type in struct {
				X int `json:"x"`
			}
			must(t, workflows.Register(reg, "double", func(c *workflows.Context, p in) (int, error) {
				if err := workflows.Sleep(c, "nap", 50*time.Millisecond); err != nil {
					return 0, err
				}
				return workflows.Task(c, "mul", func(context.Context) (int, error) { return 2 * p.X, nil })
			}))
			must(t, workflows.Register(reg, "parent", func(c *workflows.Context, _ noParams) (int, error) {
				return workflows.Child[in, int](c, "child", "double", in{X: 21})
			}))
		})
		id := h.trigger(t, "parent", `{}`)
		run := h.waitStatus(t, id, persistence.StatusCompleted, 10*time.Second)
		if string(run.Result) != "42" {
			t.Fatalf("parent = %s", run.Result)
		}
		child, err := h.runs.GetRun(t.Context(), workflows.ChildRunID(id, 1))
		if err != nil || child.ParentID != id || child.Status != persistence.StatusCompleted || child.OwnerID != h.users[0] {
			t.Fatalf("child = %+v, %v", child, err)
		}
	})
}

func TestConcurrencyCapKeepsRunsPending(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		release := make(chan struct{})
		var running atomic.Int32
		h := newWFHarness(t, db, func(reg *workflows.Registry) {
			must(t, workflows.Register(reg, "capped", func(c *workflows.Context, _ noParams) (int, error) {
				return workflows.Task(c, "work", func(ctx context.Context) (int, error) {
					running.Add(1)
					defer running.Add(-1)
					select {
					case <-release:
						return 1, nil
					case <-ctx.Done():
						return 0, ctx.Err()
					}
				})
			}, workflows.Concurrency(0, 1)))
		})
		rctx, stop := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- h.wf.Run(rctx) }()
		t.Cleanup(func() { stop(); <-done })
		first := h.trigger(t, "capped", `{}`)
		h.waitStatus(t, first, persistence.StatusRunning, 5*time.Second)
		testenv.Eventually(t, 5*time.Second, func() error {
			if running.Load() != 1 {
				return errors.New("the first run's task has not started")
			}
			return nil
		})
		second := h.trigger(t, "capped", `{}`)
		// The owner's cap is 1: the second run waits as pending while the first
		// runs, through at least one more attempt of recovery to start it.
		created, err := h.runs.GetRun(t.Context(), second)
		must(t, err)
		testenv.Eventually(t, 5*time.Second, func() error {
			run, err := h.runs.GetRun(t.Context(), second)
			switch {
			case err != nil:
				return err
			case run.Status != persistence.StatusPending || running.Load() != 1:
				t.Fatalf("second run is %s with %d tasks running; the cap is 1", run.Status, running.Load())
			case run.Version < created.Version+2:
				return errors.New("recovery has not retried the held-back run yet")
			}
			return nil
		})
		close(release)
		h.waitStatus(t, first, persistence.StatusCompleted, 5*time.Second)
		h.waitStatus(t, second, persistence.StatusCompleted, 10*time.Second)
	})
}

// lostCreateRuns is a run store in which every run is missing on read and taken on
// create: the grain loses the create race and then cannot read the winner's row
// (the test stores the row, so the grain's insert through the writer loses too).
type lostCreateRuns struct{ *persistence.WorkflowStore }

func (lostCreateRuns) GetRun(_ context.Context, id string) (persistence.WorkflowRun, error) {
	return persistence.WorkflowRun{}, fmt.Errorf("get run %s: %w", id, persistence.ErrNotFound)
}

func (lostCreateRuns) CreateRun(_ context.Context, r persistence.WorkflowRun) (persistence.WorkflowRun, error) {
	return persistence.WorkflowRun{}, fmt.Errorf("create run %s: %w", r.ID, persistence.ErrDuplicate)
}

func TestRunGrainErrorsCarryTheCorrelationID(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newWFHarness(t, db, func(reg *workflows.Registry) {
			must(t, workflows.Register(reg, "noop", func(*workflows.Context, noParams) (string, error) { return "", nil }))
		})
		wf, err := NewWorkflows(WorkflowDeps{Runs: lostCreateRuns{h.runs}, Writer: h.writer, Registry: h.reg, Caller: h.grains,
			NodeID: "node-test"})
		if err != nil {
			t.Fatal(err)
		}
		h.grains.props[KindWorkflowRun] = wf.RunProps
		id := uuid.NewString()
		// The run exists, so the grain's create through the writer is a duplicate too.
		if _, err := h.runs.CreateRun(t.Context(), persistence.WorkflowRun{ID: id, Name: "noop"}); err != nil {
			t.Fatal(err)
		}
		for _, req := range []interface {
			GetCorrelationId() string
		}{
			&actorpb.StartRun{CorrelationId: "corr-start", RunId: id, Workflow: "noop", ParametersJson: "{}"},
			&actorpb.CancelRun{CorrelationId: "corr-cancel", RunId: id},
		} {
			reply, err := h.grains.Call(t.Context(), KindWorkflowRun, id, req.(proto.Message))
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			e, ok := reply.(*actorpb.ErrorReply)
			if !ok {
				t.Fatalf("reply = %T, want an ErrorReply", reply)
			}
			if e.GetCorrelationId() != req.GetCorrelationId() {
				t.Errorf("%T error correlation ID = %q, want %q", req, e.GetCorrelationId(), req.GetCorrelationId())
			}
		}
	})
}

func TestStoppedRunGrainHandsItsRunBack(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		var starts atomic.Int32
		h := newWFHarness(t, db, func(reg *workflows.Registry) {
			must(t, workflows.Register(reg, "hold", func(c *workflows.Context, _ noParams) (int, error) {
				return workflows.Task(c, "hold", func(ctx context.Context) (int, error) {
					if starts.Add(1) == 1 {
						<-ctx.Done() // the first attempt runs until its grain stops
						return 0, ctx.Err()
					}
					return 1, nil
				})
			}))
		})
		id := h.trigger(t, "hold", `{}`)
		testenv.Eventually(t, 3*time.Second, func() error {
			if starts.Load() == 0 {
				return errors.New("the task has not started")
			}
			return nil
		})
		before, err := h.runs.GetRun(t.Context(), id)
		must(t, err)
		if !before.DueAt.IsZero() || before.LeaseOwner != "node-test" {
			t.Fatalf("an executing run = %+v; want no due_at and this node as owner", before)
		}
		// The grain stops (a graceful leave, a move) while its node lives on: the
		// node's heartbeat would cover the run forever, so the grain hands it back.
		pid, err := h.grains.pid(KindWorkflowRun, id)
		must(t, err)
		h.sys.Root.Poison(pid)
		testenv.Eventually(t, 3*time.Second, func() error {
			r, err := h.runs.GetRun(t.Context(), id)
			if err != nil {
				return err
			}
			if r.Status != persistence.StatusRunning || r.DueAt.IsZero() || r.Version != before.Version+1 {
				return fmt.Errorf("run = %s, due %v, version %d; want running, due, handed back", r.Status, r.DueAt, r.Version)
			}
			return nil
		})
		rctx, stop := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- h.wf.Run(rctx) }()
		t.Cleanup(func() { stop(); <-done })
		got := h.waitStatus(t, id, persistence.StatusCompleted, 5*time.Second)
		if string(got.Result) != "1" || starts.Load() != 2 {
			t.Fatalf("resumed run = %s after %d starts", got.Result, starts.Load())
		}
	})
}

func TestRunContinuesAsNew(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		type page struct {
			Page  int `json:"page"`
			Pages int `json:"pages"`
			Total int `json:"total,omitempty"`
		}
		h := newWFHarness(t, db, func(reg *workflows.Registry) {
			must(t, workflows.Register(reg, "pages", func(c *workflows.Context, p page) (int, error) {
				n, err := workflows.Task(c, "count", func(context.Context) (int, error) { return p.Page * 10, nil })
				if err != nil {
					return 0, err
				}
				if p.Page < p.Pages {
					return 0, workflows.ContinueAsNew(c, page{Page: p.Page + 1, Pages: p.Pages, Total: p.Total + n})
				}
				return p.Total + n, nil
			}))
			must(t, workflows.Register(reg, "parent", func(c *workflows.Context, _ noParams) (int, error) {
				return workflows.Child[page, int](c, "pages", "pages", page{Page: 1, Pages: 2})
			}))
		})
		first := h.trigger(t, "pages", `{"page":1,"pages":3}`)
		// The chain: first -> second -> third, each linked both ways.
		chain := []string{first, workflows.ContinuedRunID(first), workflows.ContinuedRunID(workflows.ContinuedRunID(first))}
		last := h.waitStatus(t, chain[2], persistence.StatusCompleted, 10*time.Second)
		if string(last.Result) != "60" || last.ContinuedAs != "" || last.ContinuedFrom != chain[1] || last.OwnerID != h.users[0] {
			t.Fatalf("last run = %+v (%s)", last, last.Result)
		}
		for i, id := range chain[:2] {
			r, err := h.runs.GetRun(t.Context(), id)
			if err != nil || r.Status != persistence.StatusCompleted || r.ContinuedAs != chain[i+1] || r.Result != nil {
				t.Fatalf("run %d = %+v, %v; want completed, continued as %s, no result", i, r, err, chain[i+1])
			}
			if steps, err := h.runs.Steps(t.Context(), id); err != nil || len(steps) != 1 {
				t.Fatalf("run %d journal = %+v, %v; want its own single task", i, steps, err)
			}
			evs, err := h.runs.Events(t.Context(), id, 0, 100)
			if err != nil || len(evs) == 0 || !strings.Contains(string(evs[len(evs)-1].Data), `"continued_as":"`+chain[i+1]+`"`) {
				t.Fatalf("run %d last event = %+v, %v; want it to name the next run", i, evs, err)
			}
		}
		// A parent awaiting a child that continues as new gets the last run's result.
		parent := h.trigger(t, "parent", `{}`)
		if got := h.waitStatus(t, parent, persistence.StatusCompleted, 10*time.Second); string(got.Result) != "30" {
			t.Fatalf("parent result = %s, want 30 (the child's last run)", got.Result)
		}
	})
}

func TestWatchFinishTellsTheDurableFinalStatus(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newWFHarness(t, db, func(reg *workflows.Registry) {
			must(t, workflows.Register(reg, "ok", func(c *workflows.Context, _ noParams) (int, error) {
				return workflows.Task(c, "one", func(context.Context) (int, error) { return 1, nil })
			}))
			must(t, workflows.Register(reg, "bad", func(c *workflows.Context, _ noParams) (int, error) {
				return 0, errors.New("no")
			}))
		})
		for name, want := range map[string]string{"ok": persistence.StatusCompleted, "bad": persistence.StatusFailed} {
			id := uuid.NewString()
			done, stop := h.wf.WatchFinish(id)
			// A second watch of the same run, released before the finish, gets nothing.
			other, stopOther := h.wf.WatchFinish(id)
			stopOther()
			if _, err := actorpb.As[*actorpb.RunAck](h.grains.Call(t.Context(), KindWorkflowRun, id, &actorpb.StartRun{
				CorrelationId: "t", RunId: id, Workflow: name, OwnerId: h.users[0], ParametersJson: `{}`})); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-done:
				if got != want {
					t.Fatalf("%s: watch says %s, want %s", name, got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: no finish within 10 s", name)
			}
			// The status is told once the final state is durable.
			if run, err := h.runs.GetRun(t.Context(), id); err != nil || run.Status != want {
				t.Fatalf("%s: row is %+v, %v", name, run.Status, err)
			}
			select {
			case got := <-other:
				t.Fatalf("%s: released watch got %s", name, got)
			default:
			}
			stop()
			h.wf.watchMu.Lock()
			n := len(h.wf.watchers)
			h.wf.watchMu.Unlock()
			if n != 0 {
				t.Fatalf("%s: %d runs still watched", name, n)
			}
		}
	})
}

// premiumCatalog serves the harness's model under every name and prices
// "test:premium" as premium.
type premiumCatalog struct{ model lm.LM }

func (c premiumCatalog) Model(string) (lm.LM, error) { return c.model, nil }

func (c premiumCatalog) Lookup(name string) (lm.ModelInfo, bool) {
	return lm.ModelInfo{Name: name, Premium: name == "test:premium"}, true
}

// An agent task on a premium model asks WorkflowDeps.Premium about the run's owner at
// every call: without an answer (nil) or with a no, the task fails at its first
// attempt although it may retry; a yes runs it; a failed look-up is retried like
// any transient error.
func TestAgentTaskPremiumAccess(t *testing.T) {
	for _, tc := range []struct {
		name     string
		premium  func(calls int) (bool, error) // nil: WorkflowDeps.Premium unset
		status   string
		attempts int
	}{
		{"not wired", nil, persistence.StatusFailed, 1},
		{"owner lacks it", func(int) (bool, error) { return false, nil }, persistence.StatusFailed, 1},
		{"owner holds it", func(int) (bool, error) { return true, nil }, persistence.StatusCompleted, 1},
		{"look-up fails once", func(calls int) (bool, error) {
			if calls == 1 {
				return false, errors.New("injected: users table unreachable")
			}
			return true, nil
		}, persistence.StatusCompleted, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked atomic.Int32
			var owners sync.Map
			h := newWFHarnessWith(t, persisttest.SQLite(t), harnessOptions{deps: func(d *Deps) { d.Models = premiumCatalog{d.LM} }},
				func(d *WorkflowDeps) {
					if tc.premium != nil {
						d.Premium = PremiumAccessFunc(func(_ context.Context, userID string) (bool, error) {
							owners.Store(userID, true)
							return tc.premium(int(asked.Add(1)))
						})
					}
				},
				func(reg *workflows.Registry) {
					must(t, workflows.Register(reg, "ask", func(c *workflows.Context, p struct {
						Agent string `json:"agent"`
					}) (string, error) {
						r, err := workflows.Agent(c, "ask", workflows.AgentRequest{Agent: p.Agent, Message: "hello"},
							workflows.WithRetry(workflows.Retry{Attempts: 3, Initial: 10 * time.Millisecond}))
						return r.Content, err
					}))
				})
			agent := actorpb.DefinitionOf(persistence.Agent{ID: uuid.NewString(), OwnerID: h.users[0], Name: "fancy", Type: "chat",
				Model: "test:premium", Config: []byte("{}")})
			if _, err := actorpb.As[*actorpb.AgentDefinition](h.grains.Call(t.Context(), KindAgent, agent.GetId(),
				&actorpb.PutAgent{Agent: agent, Create: true})); err != nil {
				t.Fatal(err)
			}
			id := h.trigger(t, "ask", fmt.Sprintf(`{"agent":%q}`, agent.GetId()))
			run := h.waitStatus(t, id, tc.status, 10*time.Second)
			steps, err := h.runs.Steps(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, st := range steps {
				got = append(got, fmt.Sprintf("%s %s %d", st.Name, st.Status, st.Attempts))
			}
			if want := fmt.Sprintf("ask %s %d", tc.status, tc.attempts); len(got) != 1 || got[0] != want {
				t.Fatalf("steps %q, want [%s]", got, want)
			}
			if tc.status == persistence.StatusFailed && !strings.Contains(run.Error, "models:premium") {
				t.Fatalf("run error %q does not name models:premium", run.Error)
			}
			if _, ok := owners.Load(h.users[0]); tc.premium != nil && !ok {
				t.Fatal("the run's owner was not asked about")
			}
		})
	}
}
