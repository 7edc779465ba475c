package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kowai/kowai/signatures"
	"github.com/kowai/kowai/signatures/lm"
	"github.com/kowai/kowai/signatures/lm/offline"
	"github.com/kowai/kowai/workflows"
)

// counter counts calls per task name.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) inc(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[name]++
	return c.n[name]
}

func (c *counter) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

// recorder keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []workflows.Event
}

func (r *recorder) Observe(e workflows.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) statuses(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Name == name {
			out = append(out, e.Status)
		}
	}
	return out
}

type env struct {
	reg     *workflows.Registry
	journal *workflows.MemoryJournal
	exec    *workflows.Executor
	events  *recorder
}

func newEnv(t *testing.T, svc workflows.Services, lim workflows.Limits) *env {
	t.Helper()
	e := &env{reg: workflows.NewRegistry(), journal: workflows.NewMemoryJournal(), events: &recorder{}}
	if svc.Journal == nil {
		svc.Journal = e.journal
	}
	svc.Observer = e.events
	if svc.Jitter == nil {
		svc.Jitter = func() float64 { return 0 }
	}
	exec, err := workflows.NewExecutor(e.reg, svc, lim)
	if err != nil {
		t.Fatal(err)
	}
	e.exec = exec
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) run(ctx context.Context, name, id string, params string) workflows.Outcome {
	return e.exec.Run(ctx, workflows.RunRequest{RunID: id, Workflow: name, OwnerID: "u1", Params: json.RawMessage(params)})
}

type none struct{}

func TestReplaySkipsCompletedTasks(t *testing.T) {
	e := newEnv(t, workflows.Services{}, workflows.Limits{})
	var calls counter
	failStep3 := true
	must(t, workflows.Register(e.reg, "three", func(c *workflows.Context, p struct {
		N int `json:"n"`
	}) (int, error) {
		sum := 0
		for i := 1; i <= 3; i++ {
			v, err := workflows.Task(c, fmt.Sprintf("step%d", i), func(context.Context) (int, error) {
				calls.inc(fmt.Sprintf("step%d", i))
				if i == 3 && failStep3 {
					return 0, errors.New("step 3 is broken")
				}
				return i * p.N, nil
			})
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	}))
	out := e.run(t.Context(), "three", "r1", `{"n":10}`)
	if out.Status != workflows.StatusFailed || !strings.Contains(out.Err.Error(), "step 3 is broken") {
		t.Fatalf("first run = %+v", out)
	}
	var te *workflows.TaskError
	if !errors.As(out.Err, &te) || te.Name != "step3" || te.Seq != 3 {
		t.Fatalf("err = %v, want a TaskError of step3 #3", out.Err)
	}
	// Retry from the first failed task: completed ones are kept.
	failStep3 = false
	must(t, e.journal.DeleteFailed(t.Context(), "r1"))
	out = e.run(t.Context(), "three", "r1", `{"n":10}`)
	if out.Status != workflows.StatusCompleted || string(out.Result) != "60" {
		t.Fatalf("second run = %+v", out)
	}
	for name, want := range map[string]int{"step1": 1, "step2": 1, "step3": 2} {
		if got := calls.get(name); got != want {
			t.Errorf("%s ran %d times, want %d", name, got, want)
		}
	}
	// A third execution replays everything and calls nothing.
	out = e.run(t.Context(), "three", "r1", `{"n":10}`)
	if out.Status != workflows.StatusCompleted || string(out.Result) != "60" || calls.get("step1") != 1 || calls.get("step3") != 2 {
		t.Fatalf("replay = %+v, calls %v", out, calls.n)
	}
}

func TestRetriesBackoffJitterAndCap(t *testing.T) {
	for _, tc := range []struct {
		name   string
		retry  workflows.Retry
		jitter float64
		fails  int
		want   []time.Duration // offsets of the attempts from the first
		status string
	}{
		{"exponential", workflows.Retry{Attempts: 4, Initial: time.Second, Multiplier: 2}, 0, 3, []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}, workflows.StatusCompleted},
		{"capped", workflows.Retry{Attempts: 4, Initial: time.Second, Multiplier: 10, Max: 5 * time.Second}, 0, 3, []time.Duration{0, time.Second, 6 * time.Second, 11 * time.Second}, workflows.StatusCompleted},
		{"jitter halves at most", workflows.Retry{Attempts: 3, Initial: 4 * time.Second, Multiplier: 2, Jitter: 0.5}, 1, 2, []time.Duration{0, 2 * time.Second, 6 * time.Second}, workflows.StatusCompleted},
		{"exhausted", workflows.Retry{Attempts: 2, Initial: time.Second}, 0, 5, []time.Duration{0, time.Second}, workflows.StatusFailed},
		{"no policy runs once", workflows.Retry{}, 0, 5, []time.Duration{0}, workflows.StatusFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, workflows.Services{Jitter: func() float64 { return tc.jitter }}, workflows.Limits{})
				var at []time.Time
				must(t, workflows.Register(e.reg, "flaky", func(c *workflows.Context, _ none) (string, error) {
					return workflows.Task(c, "call", func(context.Context) (string, error) {
						at = append(at, time.Now())
						if len(at) <= tc.fails {
							return "", errors.New("transient")
						}
						return "ok", nil
					}, workflows.WithRetry(tc.retry))
				}))
				out := e.run(t.Context(), "flaky", "r", `{}`)
				if out.Status != tc.status {
					t.Fatalf("status = %s (%v), want %s", out.Status, out.Err, tc.status)
				}
				var got []time.Duration
				for _, a := range at {
					got = append(got, a.Sub(at[0]))
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("attempts at %v, want %v", got, tc.want)
				}
				if st := e.events.statuses("call"); tc.fails > 0 && len(tc.want) > 1 && st[1] != workflows.StatusRetrying {
					t.Errorf("events = %v, want running, retrying, ...", st)
				}
			})
		})
	}
}

func TestRetryClassification(t *testing.T) {
	for _, tc := range []struct {
		err      error
		attempts int
	}{
		{errors.New("plain"), 3},
		{workflows.Permanent(errors.New("bad")), 1},
		{&workflows.ValidationError{What: "input"}, 1},
		{fmt.Errorf("model: %w", lm.ErrBudgetExceeded), 1},
		{fmt.Errorf("model: %w", lm.ErrBadRequest), 1},
		{fmt.Errorf("model: %w", lm.ErrRateLimited), 3},
		{context.DeadlineExceeded, 3},
		{workflows.Retryable(fmt.Errorf("x: %w", lm.ErrBadRequest)), 3},
	} {
		synctest.Test(t, func(t *testing.T) {
			e := newEnv(t, workflows.Services{}, workflows.Limits{})
			n := 0
			must(t, workflows.Register(e.reg, "w", func(c *workflows.Context, _ none) (int, error) {
				return workflows.Task(c, "t", func(context.Context) (int, error) { n++; return 0, tc.err },
					workflows.WithRetry(workflows.Retry{Attempts: 3}))
			}))
			if out := e.run(t.Context(), "w", "r", `{}`); out.Status != workflows.StatusFailed || n != tc.attempts {
				t.Errorf("%v: status %s after %d attempts, want failed after %d", tc.err, out.Status, n, tc.attempts)
			}
		})
	}
}

func TestPerAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, workflows.Services{}, workflows.Limits{})
		var ends []time.Duration
		start := time.Now()
		must(t, workflows.Register(e.reg, "slow", func(c *workflows.Context, _ none) (int, error) {
			return workflows.Task(c, "hang", func(ctx context.Context) (int, error) {
				<-ctx.Done()
				ends = append(ends, time.Since(start))
				return 0, ctx.Err()
			}, workflows.WithTimeout(2*time.Second), workflows.WithRetry(workflows.Retry{Attempts: 2, Initial: time.Second}))
		}))
		out := e.run(t.Context(), "slow", "r", `{}`)
		if out.Status != workflows.StatusFailed || !errors.Is(out.Err, context.DeadlineExceeded) {
			t.Fatalf("outcome = %+v", out)
		}
		if want := []time.Duration{2 * time.Second, 5 * time.Second}; fmt.Sprint(ends) != fmt.Sprint(want) {
			t.Errorf("attempts ended at %v, want %v", ends, want)
		}
	})
}

func TestCancelStopsRunningTaskAndNoLaterTaskStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, workflows.Services{}, workflows.Limits{})
		var later atomic.Bool
		var taskErr error
		must(t, workflows.Register(e.reg, "long", func(c *workflows.Context, _ none) (int, error) {
			if _, err := workflows.Task(c, "block", func(ctx context.Context) (int, error) {
				<-ctx.Done()
				taskErr = ctx.Err()
				return 0, ctx.Err()
			}); err != nil {
				// A workflow that ignores the error still cannot start more tasks.
				_, _ = workflows.Task(c, "after", func(context.Context) (int, error) { later.Store(true); return 1, nil })
				return 0, err
			}
			return 1, nil
		}))
		ctx, cancel := context.WithCancelCause(t.Context())
		time.AfterFunc(time.Second, func() { cancel(workflows.ErrCancelled) })
		start := time.Now()
		out := e.run(ctx, "long", "r", `{}`)
		if out.Status != workflows.StatusCancelled || !errors.Is(out.Err, workflows.ErrCancelled) {
			t.Fatalf("outcome = %+v", out)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("cancel took %v", d)
		}
		if !errors.Is(taskErr, context.Canceled) || later.Load() {
			t.Errorf("task ctx err %v, later task started %v", taskErr, later.Load())
		}
		if e.journal.Appends() != 0 {
			t.Errorf("a cancelled task was journaled")
		}
	})
}

func TestFanOutPartialFailureRedoesOnlyFailedBranches(t *testing.T) {
	e := newEnv(t, workflows.Services{}, workflows.Limits{MaxParallel: 2})
	var calls counter
	var running, peak atomic.Int32
	broken := true
	must(t, workflows.Register(e.reg, "fan", func(c *workflows.Context, _ none) ([]int, error) {
		return workflows.Map(c, "square", []int{1, 2, 3, 4, 5}, func(_ context.Context, x int) (int, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			calls.inc(fmt.Sprint(x))
			if x == 3 && broken {
				return 0, workflows.Permanent(errors.New("three is bad"))
			}
			return x * x, nil
		})
	}))
	out := e.run(t.Context(), "fan", "r", `{}`)
	if out.Status != workflows.StatusFailed || !strings.Contains(out.Err.Error(), "three is bad") {
		t.Fatalf("first = %+v", out)
	}
	if p := peak.Load(); p > 2 {
		t.Errorf("%d branches ran at once, limit 2", p)
	}
	broken = false
	must(t, e.journal.DeleteFailed(t.Context(), "r"))
	out = e.run(t.Context(), "fan", "r", `{}`)
	if out.Status != workflows.StatusCompleted || string(out.Result) != "[1,4,9,16,25]" {
		t.Fatalf("retry = %+v (%s)", out, out.Result)
	}
	for x, want := range map[string]int{"1": 1, "2": 1, "3": 2, "4": 1, "5": 1} {
		if got := calls.get(x); got != want {
			t.Errorf("branch %s ran %d times, want %d", x, got, want)
		}
	}
}

func TestCrashMidFanOutRedoesOnlyUnfinishedBranches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, workflows.Services{}, workflows.Limits{})
		var calls counter
		crash := true
		must(t, workflows.Register(e.reg, "fan", func(c *workflows.Context, _ none) (int, error) {
			pre, err := workflows.Task(c, "pre", func(context.Context) (int, error) { calls.inc("pre"); return 1, nil })
			if err != nil {
				return 0, err
			}
			// Started in program order: the future's sequence numbers are fixed.
			fs := []*workflows.Future[int]{}
			for i := range 4 {
				fs = append(fs, workflows.Go(c, fmt.Sprintf("b%d", i), func(ctx context.Context) (int, error) {
					calls.inc(fmt.Sprintf("b%d", i))
					if crash && i >= 2 {
						<-ctx.Done() // the node dies while these run
						return 0, ctx.Err()
					}
					return i, nil
				}))
			}
			sum := pre
			for _, f := range fs {
				v, err := f.Get()
				if err != nil {
					return 0, err
				}
				sum += v
			}
			return sum, nil
		}))
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			synctest.Wait()
			cancel()
		}()
		e.run(ctx, "fan", "r", `{}`)
		crash = false
		out := e.run(t.Context(), "fan", "r", `{}`)
		if out.Status != workflows.StatusCompleted || string(out.Result) != "7" {
			t.Fatalf("resumed = %+v", out)
		}
		for name, want := range map[string]int{"pre": 1, "b0": 1, "b1": 1, "b2": 2, "b3": 2} {
			if got := calls.get(name); got != want {
				t.Errorf("%s ran %d times, want %d", name, got, want)
			}
		}
	})
}

func TestDeterminismViolationFailsTheRun(t *testing.T) {
	e := newEnv(t, workflows.Services{}, workflows.Limits{})
	second := "b"
	must(t, workflows.Register(e.reg, "w", func(c *workflows.Context, _ none) (int, error) {
		if _, err := workflows.Task(c, "a", func(context.Context) (int, error) { return 1, nil }); err != nil {
			return 0, err
		}
		return workflows.Task(c, second, func(context.Context) (int, error) { return 2, nil })
	}))
	if out := e.run(t.Context(), "w", "r", `{}`); out.Status != workflows.StatusCompleted {
		t.Fatalf("first = %+v", out)
	}
	second = "c" // the code changed between executions
	out := e.run(t.Context(), "w", "r", `{}`)
	if out.Status != workflows.StatusFailed || !errors.Is(out.Err, workflows.ErrNondeterministic) {
		t.Fatalf("replay = %+v, want ErrNondeterministic", out)
	}
	if !strings.Contains(out.Err.Error(), `task "b" in the journal but task "c" now`) {
		t.Errorf("message %q does not say what differs", out.Err)
	}
}

type approval struct {
	Approved bool   `json:"approved"`
	Text     string `json:"text,omitempty"`
}

func TestWaitForInputPausesAndResumes(t *testing.T) {
	e := newEnv(t, workflows.Services{}, workflows.Limits{})
	var drafts, finals counter
	must(t, workflows.Register(e.reg, "approve", func(c *workflows.Context, _ none) (string, error) {
		draft, err := workflows.Task(c, "draft", func(context.Context) (string, error) { drafts.inc("d"); return "hello", nil })
		if err != nil {
			return "", err
		}
		in, err := workflows.WaitForInput[approval](c, "review")
		if err != nil {
			return "", err
		}
		return workflows.Task(c, "final", func(context.Context) (string, error) {
			finals.inc("f")
			if !in.Approved {
				return "rejected", nil
			}
			if in.Text != "" {
				return in.Text, nil
			}
			return draft, nil
		})
	}))
	out := e.run(t.Context(), "approve", "r", `{}`)
	if out.Status != workflows.StatusPaused || out.Waiting == nil || out.Waiting.Name != "review" || out.Waiting.Seq != 2 {
		t.Fatalf("first = %+v", out)
	}
	if !strings.Contains(string(out.Waiting.Schema), `"approved"`) {
		t.Errorf("schema %s", out.Waiting.Schema)
	}
	// Paused again when re-activated without input (e.g. after a restart).
	if again := e.run(t.Context(), "approve", "r", `{}`); again.Status != workflows.StatusPaused || drafts.get("d") != 1 {
		t.Fatalf("re-activation = %+v, drafts %d", again, drafts.get("d"))
	}
	err := e.exec.SupplyInput(t.Context(), "r", *out.Waiting, json.RawMessage(`{"approved":"yes","extra":1}`))
	var ve *workflows.ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) != 2 || ve.Fields[0].Field != "approved" || ve.Fields[1].Field != "extra" {
		t.Fatalf("bad input: %v", err)
	}
	must(t, e.exec.SupplyInput(t.Context(), "r", *out.Waiting, json.RawMessage(`{"approved":true,"text":"edited"}`)))
	if err := e.exec.SupplyInput(t.Context(), "r", *out.Waiting, json.RawMessage(`{"approved":false}`)); !errors.Is(err, workflows.ErrDuplicateEntry) {
		t.Fatalf("second input: %v, want ErrDuplicateEntry", err)
	}
	out = e.run(t.Context(), "approve", "r", `{}`)
	if out.Status != workflows.StatusCompleted || string(out.Result) != `"edited"` || drafts.get("d") != 1 || finals.get("f") != 1 {
		t.Fatalf("resumed = %+v (%s)", out, out.Result)
	}
}

func TestDurableSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, workflows.Services{}, workflows.Limits{SuspendSleepsOver: time.Minute})
		var ranAt []time.Time
		must(t, workflows.Register(e.reg, "nap", func(c *workflows.Context, p struct {
			For string `json:"for"`
		}) (int, error) {
			d, err := time.ParseDuration(p.For)
			if err != nil {
				return 0, workflows.Permanent(err)
			}
			if err := workflows.Sleep(c, "nap", d); err != nil {
				return 0, err
			}
			return workflows.Task(c, "after", func(context.Context) (int, error) { ranAt = append(ranAt, time.Now()); return 1, nil })
		}))
		start := time.Now()
		// A short sleep holds the execution.
		if out := e.run(t.Context(), "nap", "short", `{"for":"10s"}`); out.Status != workflows.StatusCompleted || ranAt[0].Sub(start) != 10*time.Second {
			t.Fatalf("short = %+v at %v", out, ranAt)
		}
		// A long one suspends with its wake-up time; a re-activation before
		// then pauses again at the same (journaled) time.
		out := e.run(t.Context(), "nap", "long", `{"for":"1h"}`)
		if out.Status != workflows.StatusPaused || out.WakeAt != start.Add(10*time.Second+time.Hour) {
			t.Fatalf("long = %+v", out)
		}
		time.Sleep(30 * time.Minute)
		if again := e.run(t.Context(), "nap", "long", `{"for":"1h"}`); again.WakeAt != out.WakeAt {
			t.Fatalf("re-activation wakes at %v, want %v", again.WakeAt, out.WakeAt)
		}
		time.Sleep(time.Until(out.WakeAt))
		if done := e.run(t.Context(), "nap", "long", `{"for":"1h"}`); done.Status != workflows.StatusCompleted || len(ranAt) != 2 {
			t.Fatalf("after wake-up = %+v", done)
		}
	})
}

// inlineChildren runs children on the same executor, like the runtime
// does with child grains.
type inlineChildren struct {
	exec func() *workflows.Executor
	ids  []string
}

func (ic *inlineChildren) RunChild(ctx context.Context, req workflows.ChildRequest) (json.RawMessage, error) {
	ic.ids = append(ic.ids, req.RunID)
	out := ic.exec().Run(ctx, workflows.RunRequest{RunID: req.RunID, Workflow: req.Workflow, OwnerID: req.OwnerID, Params: req.Params})
	if out.Status != workflows.StatusCompleted {
		return nil, fmt.Errorf("child %s: %s: %w", req.RunID, out.Status, out.Err)
	}
	return out.Result, nil
}

func TestSubWorkflow(t *testing.T) {
	children := &inlineChildren{}
	e := newEnv(t, workflows.Services{Children: children}, workflows.Limits{})
	children.exec = func() *workflows.Executor { return e.exec }
	var childCalls counter
	type childP struct {
		X int `json:"x"`
	}
	must(t, workflows.Register(e.reg, "double", func(c *workflows.Context, p childP) (int, error) {
		return workflows.Task(c, "mul", func(context.Context) (int, error) { childCalls.inc("mul"); return 2 * p.X, nil })
	}))
	must(t, workflows.Register(e.reg, "parent", func(c *workflows.Context, _ none) (int, error) {
		a, err := workflows.Child[childP, int](c, "first", "double", childP{X: 3})
		if err != nil {
			return 0, err
		}
		b, err := workflows.Child[childP, int](c, "second", "double", childP{X: a})
		return a + b, err
	}))
	out := e.run(t.Context(), "parent", "p", `{}`)
	if out.Status != workflows.StatusCompleted || string(out.Result) != "18" {
		t.Fatalf("parent = %+v (%s)", out, out.Result)
	}
	if len(children.ids) != 2 || children.ids[0] != workflows.ChildRunID("p", 1) || children.ids[0] == children.ids[1] {
		t.Errorf("child IDs %v", children.ids)
	}
	e.run(t.Context(), "parent", "p", `{}`)
	if len(children.ids) != 2 || childCalls.get("mul") != 2 {
		t.Errorf("replay re-ran children: %v, %d", children.ids, childCalls.get("mul"))
	}
}

func TestAgentAndProgramTasksRecordUsage(t *testing.T) {
	var agentCalls atomic.Int32
	agents := workflows.AgentCallerFunc(func(_ context.Context, req workflows.AgentRequest) (workflows.AgentReply, error) {
		agentCalls.Add(1)
		if req.RunID != "r" || req.OwnerID != "u1" || req.Task != "ask" {
			return workflows.AgentReply{}, workflows.Permanent(fmt.Errorf("bad request %+v", req))
		}
		return workflows.AgentReply{Content: "answer to " + req.Message, Usage: lm.Usage{PromptTokens: 7, CompletionTokens: 3, Calls: 1, CostUSD: 0.01}}, nil
	})
	e := newEnv(t, workflows.Services{Agents: agents, Model: lm.NewProvider("offline", "kowai-offline", offline.New())}, workflows.Limits{})
	type reportIn struct {
		Data string `json:"data"`
	}
	type reportOut struct {
		Report string `json:"report"`
	}
	prog, err := signatures.NewTyped[reportIn, reportOut](func(s signatures.Signature) (signatures.Module, error) {
		return signatures.NewPredict(s, signatures.PredictOptions{}), nil
	})
	must(t, err)
	must(t, workflows.Register(e.reg, "w", func(c *workflows.Context, _ none) (string, error) {
		rep, err := workflows.Agent(c, "ask", workflows.AgentRequest{Agent: "analysis", Message: "q"})
		if err != nil {
			return "", err
		}
		out, err := workflows.Program(c, "report", prog, reportIn{Data: rep.Content})
		return out.Report, err
	}))
	out := e.run(t.Context(), "w", "r", `{}`)
	if out.Status != workflows.StatusCompleted || out.Usage.CostUSD != 0.01 || out.Usage.Calls != 2 {
		t.Fatalf("outcome = %+v", out)
	}
	entries, _ := e.journal.Load(t.Context(), "r")
	if len(entries) != 2 || entries[0].Kind != workflows.KindAgent || entries[0].Usage.PromptTokens != 7 || entries[1].Kind != workflows.KindProgram || entries[1].Usage.Calls != 1 {
		t.Fatalf("journal = %+v", entries)
	}
	e.run(t.Context(), "w", "r", `{}`)
	if agentCalls.Load() != 1 {
		t.Errorf("the agent was called %d times; a journaled call must not be paid twice", agentCalls.Load())
	}
}

func TestTaskCacheByInputHash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, workflows.Services{Cache: workflows.NewMemoryCache()}, workflows.Limits{})
		var calls counter
		must(t, workflows.Register(e.reg, "w", func(c *workflows.Context, p struct {
			Q string `json:"q"`
		}) (string, error) {
			return workflows.Task(c, "lookup", func(context.Context) (string, error) { calls.inc(p.Q); return "v-" + p.Q, nil },
				workflows.WithCache(p.Q, time.Minute))
		}))
		for i, tc := range []struct {
			q     string
			wait  time.Duration
			calls int
		}{{"a", 0, 1}, {"a", 0, 1}, {"b", 0, 1}, {"a", 2 * time.Minute, 2}} {
			time.Sleep(tc.wait)
			out := e.run(t.Context(), "w", fmt.Sprint("r", i), fmt.Sprintf(`{"q":%q}`, tc.q))
			if out.Status != workflows.StatusCompleted || string(out.Result) != fmt.Sprintf(`"v-%s"`, tc.q) || calls.get(tc.q) != tc.calls {
				t.Errorf("run %d (%s): %+v, calls %d, want %d", i, tc.q, out, calls.get(tc.q), tc.calls)
			}
		}
	})
}

func TestPriorAttemptsCountAndAtLeastOnce(t *testing.T) {
	e := newEnv(t, workflows.Services{}, workflows.Limits{})
	n := 0
	must(t, workflows.Register(e.reg, "w", func(c *workflows.Context, _ none) (int, error) {
		return workflows.Task(c, "t", func(context.Context) (int, error) { n++; return n, nil }, workflows.WithRetry(workflows.Retry{Attempts: 2}))
	}))
	// Two attempts were started before a crash: the in-flight one is still
	// retried once, and the count goes on.
	out := e.exec.Run(t.Context(), workflows.RunRequest{RunID: "r", Workflow: "w", Params: json.RawMessage(`{}`), PriorAttempts: map[int]int{1: 2}})
	entries, _ := e.journal.Load(t.Context(), "r")
	if out.Status != workflows.StatusCompleted || n != 1 || entries[0].Attempts != 3 {
		t.Fatalf("outcome %+v, calls %d, entries %+v", out, n, entries)
	}
}

// fencedJournal fails appends as if another activation had written them.
type fencedJournal struct{ *workflows.MemoryJournal }

func (f fencedJournal) Append(ctx context.Context, e workflows.Entry) error {
	return fmt.Errorf("%w: taken", workflows.ErrDuplicateEntry)
}

func TestStaleActivationIsInterrupted(t *testing.T) {
	e := newEnv(t, workflows.Services{Journal: fencedJournal{workflows.NewMemoryJournal()}}, workflows.Limits{})
	must(t, workflows.Register(e.reg, "w", func(c *workflows.Context, _ none) (int, error) {
		if _, err := workflows.Task(c, "a", func(context.Context) (int, error) { return 1, nil }); err != nil {
			return 0, err
		}
		return workflows.Task(c, "b", func(context.Context) (int, error) { t.Error("a stale activation went on"); return 2, nil })
	}))
	out := e.run(t.Context(), "w", "r", `{}`)
	if !out.Interrupted() || out.Status != "" || !errors.Is(out.Err, workflows.ErrDuplicateEntry) {
		t.Fatalf("outcome = %+v, want interrupted", out)
	}
}

func TestWorkflowTimeoutAndLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, workflows.Services{}, workflows.Limits{MaxTasks: 3, MaxResultBytes: 10})
		must(t, workflows.Register(e.reg, "slow", func(c *workflows.Context, _ none) (int, error) {
			return workflows.Task(c, "t", func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
		}, workflows.Timeout(time.Minute)))
		must(t, workflows.Register(e.reg, "many", func(c *workflows.Context, _ none) (int, error) {
			for i := range 5 {
				if _, err := workflows.Task(c, fmt.Sprint(i), func(context.Context) (int, error) { return i, nil }); err != nil {
					return 0, err
				}
			}
			return 0, nil
		}))
		must(t, workflows.Register(e.reg, "big", func(c *workflows.Context, _ none) (string, error) {
			return strings.Repeat("x", 100), nil
		}))
		for _, tc := range []struct {
			name string
			want error
		}{{"slow", workflows.ErrWorkflowTimeout}, {"many", workflows.ErrTooManyTasks}, {"big", workflows.ErrResultTooLarge}, {"nope", workflows.ErrUnknownWorkflow}} {
			if out := e.run(t.Context(), tc.name, "r-"+tc.name, `{}`); out.Status != workflows.StatusFailed || !errors.Is(out.Err, tc.want) {
				t.Errorf("%s: %+v, want failed with %v", tc.name, out, tc.want)
			}
		}
	})
}

func TestValidateParams(t *testing.T) {
	reg := workflows.NewRegistry()
	type params struct {
		Topic string   `json:"topic"`
		Depth int      `json:"depth,omitempty"`
		Tags  []string `json:"tags,omitempty"`
	}
	must(t, workflows.Register(reg, "w", func(c *workflows.Context, p params) (int, error) { return 0, nil }, workflows.Describe("d")))
	if err := workflows.Register(reg, "w", func(c *workflows.Context, p params) (int, error) { return 0, nil }); !errors.Is(err, workflows.ErrDuplicateWorkflow) {
		t.Errorf("duplicate: %v", err)
	}
	if err := workflows.Register(reg, "scalar", func(c *workflows.Context, p int) (int, error) { return 0, nil }); err == nil {
		t.Error("non-struct parameters accepted")
	}
	d, err := reg.Lookup("w")
	must(t, err)
	for _, tc := range []struct {
		in     string
		fields string
	}{
		{`{"topic":"go"}`, ""},
		{`{"topic":"go","depth":2,"tags":["a"]}`, ""},
		{``, "[{topic is required}]"},
		{`{"topic":3,"depth":"x","more":true}`, "[{depth must be an integer} {more is not a known field} {topic must be a string}]"},
		{`{"topic":"go","tags":[1]}`, "[{tags[0] must be a string}]"},
		{`[1]`, "[{ must be an object}]"},
	} {
		_, err := d.ValidateParams(json.RawMessage(tc.in))
		var ve *workflows.ValidationError
		got := ""
		if errors.As(err, &ve) {
			got = fmt.Sprint(ve.Fields)
		} else if err != nil {
			got = err.Error()
		}
		if got != tc.fields {
			t.Errorf("ValidateParams(%s) = %s, want %s", tc.in, got, tc.fields)
		}
	}
}

func TestMemoryCacheIsBounded(t *testing.T) {
	c := workflows.NewMemoryCache()
	for i := range 10_050 {
		must(t, c.Put(t.Context(), fmt.Sprint(i), json.RawMessage(`1`), time.Hour))
	}
	if n := c.Len(); n > 10_000 {
		t.Fatalf("cache holds %d entries, bound 10000", n)
	}
	if _, ok, _ := c.Get(t.Context(), "10049"); !ok {
		t.Error("the newest entry was dropped")
	}
}

// attemptLog is an AttemptRecorder that notes which attempts were waited for.
type attemptLog struct {
	recorder
	durable []string
}

func (a *attemptLog) RecordAttempt(_ context.Context, e workflows.Event) error {
	a.mu.Lock()
	a.durable = append(a.durable, e.Name)
	a.mu.Unlock()
	a.Observe(e)
	return nil
}

// Attempts are recorded durably before they run for steps that spend (agent,
// program, child) and for tasks that ask; a plain task's attempt is only
// announced, so it costs no commit of its own.
func TestDurableAttemptsOnlyWhereNeeded(t *testing.T) {
	log := &attemptLog{}
	e := newEnv(t, workflows.Services{}, workflows.Limits{})
	exec, err := workflows.NewExecutor(e.reg, workflows.Services{Journal: e.journal, Observer: log}, workflows.Limits{})
	must(t, err)
	e.exec = exec
	must(t, workflows.Register(e.reg, "w", func(c *workflows.Context, _ none) (int, error) {
		if _, err := workflows.Task(c, "plain", func(context.Context) (int, error) { return 1, nil }); err != nil {
			return 0, err
		}
		return workflows.Task(c, "counted", func(context.Context) (int, error) { return 2, nil }, workflows.WithDurableAttempts())
	}))
	if out := e.run(t.Context(), "w", "r", `{}`); out.Status != workflows.StatusCompleted {
		t.Fatalf("outcome %+v", out)
	}
	if len(log.durable) != 1 || log.durable[0] != "counted" {
		t.Fatalf("durable attempts %v, want only [counted]", log.durable)
	}
	if got := log.statuses("plain"); len(got) != 2 || got[0] != workflows.StatusRunning {
		t.Fatalf("plain task events %v: its attempt must still be announced", got)
	}
}

func TestContinueAsNewCarriesALoopPastTheTaskLimit(t *testing.T) {
	e := newEnv(t, workflows.Services{}, workflows.Limits{MaxTasks: 4})
	type page struct {
		Page  int `json:"page"`
		Pages int `json:"pages"`
		Total int `json:"total"`
	}
	var calls counter
	must(t, workflows.Register(e.reg, "pages", func(c *workflows.Context, p page) (int, error) {
		// Three tasks a run: the whole job (9 tasks) is past the limit of one run.
		for i := range 3 {
			n, err := workflows.Task(c, fmt.Sprint("item-", i), func(context.Context) (int, error) {
				calls.inc(fmt.Sprintf("%d/%d", p.Page, i))
				return p.Page*10 + i, nil
			})
			if err != nil {
				return 0, err
			}
			p.Total += n
		}
		if p.Page < p.Pages {
			return 0, workflows.ContinueAsNew(c, page{Page: p.Page + 1, Pages: p.Pages, Total: p.Total})
		}
		return p.Total, nil
	}))
	id, params := "r1", `{"page":1,"pages":3}`
	var chain []string
	for range 3 {
		chain = append(chain, id)
		out := e.run(t.Context(), "pages", id, params)
		if out.ContinueWith == nil {
			if out.Status != workflows.StatusCompleted || string(out.Result) != "189" {
				t.Fatalf("last run %s = %+v (%s), want completed with 189 (33+63+93)", id, out, out.Result)
			}
			break
		}
		if out.Status != workflows.StatusCompleted || out.Result != nil || out.Err != nil {
			t.Fatalf("run %s continued as new = %+v", id, out)
		}
		// A replay of a run that continued continues again, with the same parameters.
		if again := e.run(t.Context(), "pages", id, params); string(again.ContinueWith) != string(out.ContinueWith) {
			t.Fatalf("replay continued with %s, first with %s", again.ContinueWith, out.ContinueWith)
		}
		id, params = workflows.ContinuedRunID(id), string(out.ContinueWith)
	}
	if len(chain) != 3 || chain[1] == chain[0] || chain[2] == chain[1] || workflows.ContinuedRunID(chain[0]) != chain[1] {
		t.Fatalf("chain = %v", chain)
	}
	for pg := 1; pg <= 3; pg++ {
		for i := range 3 {
			if n := calls.get(fmt.Sprintf("%d/%d", pg, i)); n != 1 {
				t.Errorf("page %d item %d ran %d times", pg, i, n)
			}
		}
	}
	// Without continuing, the same job is past the limit.
	must(t, workflows.Register(e.reg, "flat", func(c *workflows.Context, _ none) (int, error) {
		for i := range 9 {
			if _, err := workflows.Task(c, fmt.Sprint("item-", i), func(context.Context) (int, error) { return i, nil }); err != nil {
				return 0, err
			}
		}
		return 0, nil
	}))
	if out := e.run(t.Context(), "flat", "r-flat", `{}`); !errors.Is(out.Err, workflows.ErrTooManyTasks) {
		t.Fatalf("flat run = %+v, want ErrTooManyTasks", out)
	}
	// Parameters that do not match the workflow's schema fail the run.
	must(t, workflows.Register(e.reg, "bad", func(c *workflows.Context, _ none) (int, error) {
		return 0, workflows.ContinueAsNew(c, map[string]int{"unknown": 1})
	}))
	var ve *workflows.ValidationError
	if out := e.run(t.Context(), "bad", "r-bad", `{}`); out.Status != workflows.StatusFailed || !errors.As(out.Err, &ve) || out.ContinueWith != nil {
		t.Fatalf("continue with bad parameters = %+v, want failed with a validation error", out)
	}
}
