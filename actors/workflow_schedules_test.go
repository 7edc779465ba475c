package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/workflows"
)

// countingCaller counts the StartRun messages per run ID on their way to the grains.
type countingCaller struct {
	next GrainCaller
	mu   sync.Mutex
	runs map[string]int
}

func (c *countingCaller) Call(ctx context.Context, kind, identity string, req proto.Message) (proto.Message, error) {
	if _, ok := req.(*actorpb.StartRun); ok {
		c.mu.Lock()
		c.runs[identity]++
		c.mu.Unlock()
	}
	return c.next.Call(ctx, kind, identity, req)
}

func (c *countingCaller) starts(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[id]
}

func registerTick(reg *workflows.Registry) {
	if err := workflows.Register(reg, "tick", func(c *workflows.Context, p struct {
		N int `json:"n"`
	}) (int, error) {
		return p.N, nil
	}); err != nil {
		panic(err)
	}
}

func TestScheduleRunIDIsDeterministic(t *testing.T) {
	tick := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	a := ScheduleRunID("s1", tick)
	if a != ScheduleRunID("s1", tick.In(time.FixedZone("x", 3600))) {
		t.Fatal("the same instant in another zone gives another run ID")
	}
	if a == ScheduleRunID("s1", tick.Add(time.Second)) || a == ScheduleRunID("s2", tick) {
		t.Fatal("different ticks or schedules share a run ID")
	}
}

// TestStartRunOfAnExistingRunIsIdempotent: a second StartRun with the same run ID
// (a double-fired schedule tick) neither creates a second run nor changes the first.
func TestStartRunOfAnExistingRunIsIdempotent(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newWFHarness(t, db, registerTick)
		id := "6f1a3a9e-0000-4000-8000-000000000001"
		for i, params := range []string{`{"n":1}`, `{"n":2}`} {
			if _, err := actorpb.As[*actorpb.RunAck](h.grains.Call(t.Context(), KindWorkflowRun, id, &actorpb.StartRun{
				CorrelationId: "t", RunId: id, Workflow: "tick", OwnerId: h.users[0], ParametersJson: params})); err != nil {
				t.Fatalf("StartRun %d: %v", i, err)
			}
		}
		run := h.waitStatus(t, id, persistence.StatusCompleted, 5*time.Second)
		if string(run.Result) != "1" {
			t.Fatalf("result = %s, want the first trigger's 1", run.Result)
		}
		page, err := h.runs.ListRuns(t.Context(), persistence.RunFilter{OwnerID: h.users[0]}, persistence.PageRequest{})
		if err != nil || len(page.Items) != 1 {
			t.Fatalf("runs = %d, %v; want 1", len(page.Items), err)
		}
	})
}

// TestSchedulesFireEachTickExactlyOnceAcrossNodes races three schedulers (three nodes
// on one database) over an @every 1s schedule; one node stops mid-way and a fourth
// claims a tick and dies holding it. Every tick in the window has exactly one run,
// and no other run exists.
func TestSchedulesFireEachTickExactlyOnceAcrossNodes(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newWFHarness(t, db, registerTick)
		store := persistence.NewWorkflowScheduleStore(db)
		counter := &countingCaller{next: h.grains, runs: map[string]int{}}
		start := time.Now().Truncate(time.Second).Add(time.Second)
		sc, err := store.CreateSchedule(t.Context(), persistence.WorkflowSchedule{OwnerID: h.users[0], Workflow: "tick",
			Parameters: json.RawMessage(`{"n":7}`), Spec: "@every 1s", Enabled: true, NextFireAt: start, DueAt: start})
		if err != nil {
			t.Fatal(err)
		}
		// A live scheduler's claim must outlast its own work on a loaded machine
		// (claim, start the run, advance the schedule); a shorter lease lets a
		// second scheduler start the same tick's run (harmless: the run ID is
		// the tick's, but it is not what this test pins).
		const lease = 3 * time.Second
		ctx, stopAll := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		stops := make([]context.CancelFunc, 3)
		for i := range stops {
			s, err := NewScheduler(SchedulerDeps{Schedules: store, Caller: counter, NodeID: fmt.Sprintf("node-%d", i),
				Interval: 50 * time.Millisecond, Lease: lease})
			if err != nil {
				t.Fatal(err)
			}
			nctx, stop := context.WithCancel(ctx)
			stops[i] = stop
			wg.Go(func() { _ = s.Run(nctx) })
		}
		t.Cleanup(func() { stopAll(); wg.Wait() })

		// Node 0 stops after about two ticks.
		testenv.Eventually(t, 10*time.Second, func() error {
			if time.Now().Before(start.Add(2 * time.Second)) {
				return fmt.Errorf("waiting")
			}
			return nil
		})
		stops[0]()
		// A node claims the next tick and dies before starting its run.
		var dead []persistence.WorkflowSchedule
		testenv.Eventually(t, 10*time.Second, func() error {
			var err error
			// It looks a tick ahead, so it wins the next tick before the live
			// schedulers (polling every 50 ms) see it due, however loaded the machine.
			dead, err = store.ClaimDueSchedules(t.Context(), time.Now().Add(time.Second), "dead-node", lease, 10)
			if err != nil {
				return err
			}
			if len(dead) == 0 {
				return fmt.Errorf("no tick claimed yet")
			}
			return nil
		})
		deadTick := dead[0].NextFireAt
		end := deadTick.Add(3 * time.Second)
		// When the dead claim lapses, a survivor fires the dead tick and every
		// tick that came due meanwhile at once (catch-up): on a loaded machine the
		// schedule may lag the clock, so the window reaches past that burst.
		if lapse := time.Now().Add(lease).Truncate(time.Second).Add(3 * time.Second); lapse.After(end) {
			end = lapse
		}
		// Every tick from start to end fires (the dead node's tick after its lease).
		testenv.Eventually(t, 15*time.Second, func() error {
			cur, err := store.GetSchedule(t.Context(), sc.ID)
			if err != nil {
				return err
			}
			if !cur.NextFireAt.After(end) {
				return fmt.Errorf("schedule at tick %s, waiting for %s", cur.NextFireAt, end)
			}
			return nil
		})
		stopAll()
		wg.Wait()

		ticks := map[string]time.Time{}
		for tick := start; !tick.After(end); tick = tick.Add(time.Second) {
			ticks[ScheduleRunID(sc.ID, tick)] = tick
		}
		runs, err := h.runs.ListRuns(t.Context(), persistence.RunFilter{OwnerID: h.users[0]}, persistence.PageRequest{Limit: persistence.MaxPageLimit})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, r := range runs.Items {
			if _, ok := ticks[r.ID]; !ok {
				continue
			}
			seen[r.ID] = true
		}
		for id, tick := range ticks {
			if !seen[id] {
				t.Errorf("tick %s has no run", tick.Format(time.RFC3339))
			}
			// A tick is started once, except the dead node's, which the claim's
			// expiry hands to a survivor (the run ID is the same).
			if n := counter.starts(id); n != 1 && !(n == 2 && tick.Equal(deadTick)) {
				t.Errorf("tick %s started %d times", tick.Format(time.RFC3339), n)
			}
		}
		if extra := len(runs.Items) - len(seen); extra > 1 {
			// At most the tick after end, fired while the test stopped the nodes.
			t.Errorf("%d runs outside the ticks %s..%s", extra, start, end)
		}
	})
}

func TestSchedulerCatchUp(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newWFHarness(t, db, registerTick)
		store := persistence.NewWorkflowScheduleStore(db)
		t0 := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
		cases := []struct {
			name, catchUp string
			late          time.Duration
			wantRun       bool
			wantNext      time.Time
		}{
			{"on time", persistence.CatchUpSkip, 5 * time.Second, true, t0.Add(time.Minute)},
			{"late within the grace fires that tick", persistence.CatchUpSkip, 50 * time.Second, true, t0.Add(time.Minute)},
			{"missed, skip", persistence.CatchUpSkip, 10*time.Minute + 30*time.Second, false, t0.Add(11 * time.Minute)},
			{"missed, run once", persistence.CatchUpRunOnce, 10*time.Minute + 30*time.Second, true, t0.Add(11 * time.Minute)},
		}
		for _, c := range cases {
			sc, err := store.CreateSchedule(t.Context(), persistence.WorkflowSchedule{OwnerID: h.users[0], Workflow: "tick",
				Parameters: json.RawMessage(`{"n":1}`), Spec: "@every 1m", CatchUp: c.catchUp, Enabled: true, NextFireAt: t0, DueAt: t0})
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewScheduler(SchedulerDeps{Schedules: store, Caller: h.grains, Now: func() time.Time { return t0.Add(c.late) }})
			if err != nil {
				t.Fatal(err)
			}
			if n, err := s.FireDue(t.Context()); err != nil || n < 1 {
				t.Fatalf("%s: FireDue = %d, %v", c.name, n, err)
			}
			outcome := "fired"
			if !c.wantRun {
				outcome = "skipped"
			}
			if got := testutil.ToFloat64(s.metrics.fires.WithLabelValues(outcome)); got != 1 {
				t.Errorf("%s: schedule fires{outcome=%q} = %v, want 1", c.name, outcome, got)
			}
			got, err := store.GetSchedule(t.Context(), sc.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !got.NextFireAt.Equal(c.wantNext) || !got.DueAt.Equal(c.wantNext) || got.ClaimOwner != "" {
				t.Errorf("%s: next %s due %s owner %q, want next %s", c.name, got.NextFireAt, got.DueAt, got.ClaimOwner, c.wantNext)
			}
			_, err = h.runs.GetRun(t.Context(), ScheduleRunID(sc.ID, t0))
			if ran := err == nil; ran != c.wantRun {
				t.Errorf("%s: run of the first tick exists = %v (%v), want %v", c.name, ran, err, c.wantRun)
			}
			if c.wantRun && got.LastRunID != ScheduleRunID(sc.ID, t0) {
				t.Errorf("%s: last run %q (last error %q)", c.name, got.LastRunID, got.LastError)
			}
			if err := store.DeleteSchedule(t.Context(), sc.ID); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestSchedulerRecordsARefusedTick: a tick whose run is refused (parameters that no
// longer validate) records why and moves on instead of retrying forever.
func TestSchedulerRecordsARefusedTick(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newWFHarness(t, db, registerTick)
		store := persistence.NewWorkflowScheduleStore(db)
		t0 := time.Now().Truncate(time.Second)
		sc, err := store.CreateSchedule(t.Context(), persistence.WorkflowSchedule{OwnerID: h.users[0], Workflow: "tick",
			Parameters: json.RawMessage(`{"n":"not a number"}`), Spec: "@every 1h", Enabled: true, NextFireAt: t0, DueAt: t0})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewScheduler(SchedulerDeps{Schedules: store, Caller: h.grains})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.FireDue(t.Context()); err != nil {
			t.Fatal(err)
		}
		got, err := store.GetSchedule(t.Context(), sc.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.LastError == "" || !got.NextFireAt.After(t0) {
			t.Fatalf("schedule after a refused tick = %+v", got)
		}
	})
}
