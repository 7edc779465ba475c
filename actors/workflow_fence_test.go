package actors

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
	"github.com/kowai/kowai/workflows"
)

// Two activations of one run (a split brain): the one that moved the run on (a claim,
// version 1 -> 2) numbers its events after the log's last seq, read after its claim.
// A stale activation's writes numbered from an earlier read must not commit, whether
// its events go into a journal row (which the events table's key does not see) or
// into rows of their own next to events folded by the new one: every seq stays
// unique. Without the version fence on the pump's writes both stale writes commit
// and a seq appears twice.
func TestStaleActivationNeverDuplicatesAnEventSeq(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		h := newWFHarness(t, db, func(*workflows.Registry) {})
		ctx := t.Context()
		id := uuid.NewString()
		now := time.Now()
		run, err := h.runs.CreateRun(ctx, persistence.WorkflowRun{ID: id, Name: "x", OwnerID: h.users[0],
			Status: persistence.StatusRunning, CreatedAt: now})
		must(t, err)
		step := func(seq int) persistence.WorkflowStep {
			return persistence.WorkflowStep{RunID: id, Seq: seq, Name: "t", Kind: "task", Status: persistence.StatusCompleted,
				Output: []byte("1"), Attempts: 1, StartedAt: now, FinishedAt: now}
		}
		ev := func(seq int, status string) workflows.Event {
			return workflows.Event{RunID: id, Seq: seq, Name: "t", Kind: workflows.KindTask, Status: status, Attempt: 1, Time: now}
		}
		// Activation A (version 1) journals step 1 with its events (seq 1, 2).
		a := newEventPump(h.wf, id, run.Version, 0, nil)
		a.Observe(ev(1, workflows.StatusRunning))
		a.Observe(ev(1, workflows.StatusCompleted))
		must(t, a.appendStep(ctx, step(1)))
		a.close()
		// Two executions of A still running, stale from here on.
		stale1 := newEventPump(h.wf, id, run.Version, 2, nil)
		defer stale1.close()
		stale2 := newEventPump(h.wf, id, run.Version, 3, nil)
		defer stale2.close()

		// Activation B claims the run and numbers after the log's last seq.
		claimed := run
		claimed.Version = run.Version + 1
		must(t, h.runs.SaveRun(ctx, claimed, run.Version))
		last, err := h.runs.LastEventSeq(ctx, id)
		must(t, err)
		b := newEventPump(h.wf, id, claimed.Version, last, nil)
		defer b.close()
		must(t, b.RecordAttempt(ctx, ev(2, workflows.StatusRunning))) // seq 3, a row

		// A stale journal row with its event (seq 3) folded in.
		stale1.Observe(ev(2, workflows.StatusRunning))
		if err := stale1.appendStep(ctx, step(2)); !errors.Is(err, errRunFenced) || !errors.Is(err, persistence.ErrConflict) {
			t.Errorf("stale journal write = %v, want it fenced", err)
		}
		// B journals step 2 with its completion folded in (seq 4).
		b.Observe(ev(2, workflows.StatusCompleted))
		must(t, b.appendStep(ctx, step(2)))
		// A stale event row (seq 4) next to B's folded seq 4.
		if err := stale2.RecordAttempt(ctx, ev(3, workflows.StatusRunning)); !errors.Is(err, errRunFenced) {
			t.Errorf("stale event write = %v, want it fenced", err)
		}

		evs, err := h.runs.Events(ctx, id, 0, 100)
		must(t, err)
		for i, e := range evs {
			if e.Seq != int64(i+1) {
				t.Fatalf("event %d has seq %d (events %+v)", i, e.Seq, evs)
			}
		}
		if len(evs) != 4 {
			t.Errorf("%d events, want A's 2 and B's 2", len(evs))
		}
		steps, err := h.runs.Steps(ctx, id)
		if err != nil || len(steps) != 2 {
			t.Fatalf("steps = %+v, %v", steps, err)
		}
	})
}
