package workflows_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/workflows"
)

// deferringJournal is a DeferredJournal over a MemoryJournal: deferred entries
// reach the memory journal (become durable) on Flush or the next Append.
type deferringJournal struct {
	*workflows.MemoryJournal
	mu      sync.Mutex
	pending []workflows.Entry
	flushes int
}

var _ workflows.DeferredJournal = (*deferringJournal)(nil)

func (j *deferringJournal) Defer(e workflows.Entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.pending = append(j.pending, e)
	return nil
}

func (j *deferringJournal) Flush(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.flushes++
	for _, e := range j.pending {
		if err := j.MemoryJournal.Append(ctx, e); err != nil {
			return err
		}
	}
	j.pending = nil
	return nil
}

func (j *deferringJournal) Append(ctx context.Context, e workflows.Entry) error {
	if err := j.Flush(ctx); err != nil {
		return err
	}
	return j.MemoryJournal.Append(ctx, e)
}

// durable returns how many entries are durable and how many wait.
func (j *deferringJournal) durable() (int, int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.Appends(), len(j.pending)
}

// TestDeferredResultsAreDurableBeforeTheNextTaskStarts: with a DeferredJournal,
// every earlier result is durable when a task starts, and the last task's result
// is left deferred for the commit of the outcome.
func TestDeferredResultsAreDurableBeforeTheNextTaskStarts(t *testing.T) {
	j := &deferringJournal{MemoryJournal: workflows.NewMemoryJournal()}
	e := newEnv(t, workflows.Services{Journal: j}, workflows.Limits{})
	must(t, workflows.Register(e.reg, "seq", func(c *workflows.Context, _ none) (int, error) {
		for i := range 4 {
			if _, err := workflows.Task(c, fmt.Sprintf("t%d", i), func(context.Context) (int, error) {
				if durable, waiting := j.durable(); durable != i || waiting != 0 {
					return 0, fmt.Errorf("task %d starts with %d results durable and %d waiting, want %d and 0", i, durable, waiting, i)
				}
				return i, nil
			}); err != nil {
				return 0, err
			}
		}
		return 0, nil
	}))
	out := e.run(t.Context(), "seq", "r1", `{}`)
	if out.Status != workflows.StatusCompleted {
		t.Fatalf("outcome = %+v", out)
	}
	if durable, waiting := j.durable(); durable != 3 || waiting != 1 {
		t.Fatalf("after the run: %d results durable and %d waiting, want 3 and 1 (the last, for the outcome's commit)", durable, waiting)
	}
}

// TestDeferredResultIsFlushedBeforeTheWorkflowWaits: a branch that finished while
// another runs is made durable as soon as the workflow waits for the other, not
// when the other ends (a crash then redoes only the unfinished branch).
func TestDeferredResultIsFlushedBeforeTheWorkflowWaits(t *testing.T) {
	j := &deferringJournal{MemoryJournal: workflows.NewMemoryJournal()}
	e := newEnv(t, workflows.Services{Journal: j}, workflows.Limits{})
	must(t, workflows.Register(e.reg, "fan", func(c *workflows.Context, _ none) (int, error) {
		started := make(chan struct{})
		slow := workflows.Go(c, "slow", func(ctx context.Context) (int, error) {
			close(started)
			// Ends once the fast branch's result is durable, which only the
			// workflow's wait for this branch asks for: this attempt started
			// before that result existed.
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				if durable, _ := j.durable(); durable == 1 {
					return 2, nil
				}
			}
			return 0, fmt.Errorf("the fast branch's result was not made durable while the workflow waited")
		})
		<-started
		fast := workflows.Go(c, "fast", func(context.Context) (int, error) { return 1, nil })
		if _, err := fast.Get(); err != nil {
			return 0, err
		}
		return slow.Get()
	}))
	out := e.run(t.Context(), "fan", "r1", `{}`)
	if out.Status != workflows.StatusCompleted {
		t.Fatalf("outcome = %+v", out)
	}
}
