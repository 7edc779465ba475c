package actors

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/kowai/kowai/persistence"
)

// runCreate is the insert of a new run's row while its first execution starts. The
// row's write goes to the group-commit writer after WorkflowDeps.WriteLinger; the execution's
// event pump, when it needs its first write (a journal row, a durable attempt, a
// flush) while the writer has not yet taken the row, withdraws the row's write (or
// keeps it from being submitted) and carries the row in its own, so that a run's
// creation and its first journal rows share a commit. Either way the
// pump writes nothing before the row is durable, and the grain answers the trigger
// only once it is (done).
type runCreate struct {
	op       persistence.Op
	withdraw context.CancelFunc
	// claimed is closed by claim, when the pump asks for the row: a row not
	// submitted yet is the pump's, and a row's write withdrawn after it too.
	claimed chan struct{}

	mu sync.Mutex
	// pumpOwns: the row's own write was withdrawn for the pump, which now
	// writes the row and settles.
	pumpOwns bool
	// submitted is closed once the row's own write has returned.
	submitted chan struct{}
	// watchers are called once the row's fate is known.
	watchers []func()

	once sync.Once
	done chan struct{}
	// err is nil when the row is durable; set before done closes.
	err error
}

// DefaultWriteLinger is how long a new run's row waits for its execution's first
// write to carry it, and events that nobody waits for (a plain task's "running")
// wait for the write of a result, before either is written alone
// (WorkflowDeps.WriteLinger). An execution whose first task ends within it (or
// that records an attempt first) writes the row with that task's result: one
// commit, where a row the writer took first cost the run a commit of its own
// before its first result's; a task that ends within it writes its events with its
// result, where their own write made the result's wait for it. A run whose first
// write comes later is answered this much later, and a longer task's events are
// readable this much later.
const DefaultWriteLinger = 10 * time.Millisecond

// newRunCreate starts the write of op, the new run's row, through w after linger.
func newRunCreate(w LogWriter, op persistence.Op, linger time.Duration) *runCreate {
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	c := &runCreate{op: op, withdraw: cancel, claimed: make(chan struct{}), submitted: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer cancel()
		wait := time.NewTimer(linger)
		select {
		case <-c.claimed:
			// The pump asked first: the row is its to write.
			wait.Stop()
			c.mu.Lock()
			c.pumpOwns = true
			c.mu.Unlock()
			close(c.submitted)
			return
		case <-wait.C:
		}
		err := w.Submit(ctx, op)
		c.mu.Lock()
		c.pumpOwns = c.isClaimed() && errors.Is(err, persistence.ErrWithdrawn)
		owned := c.pumpOwns
		c.mu.Unlock()
		close(c.submitted)
		if !owned {
			c.settle(err)
		}
	}()
	return c
}

// claim is the pump's, before its first write. It returns the row's Op when the
// writer had not taken the row yet: the pump then writes it ahead of its own rows
// and must report that write's outcome with settle. Otherwise it waits for the
// row's own write and returns its error (nil: the row is durable, the pump writes
// as usual).
func (c *runCreate) claim() (persistence.Op, error) {
	close(c.claimed)
	c.withdraw()
	<-c.submitted
	c.mu.Lock()
	owned := c.pumpOwns
	c.mu.Unlock()
	if owned {
		return c.op, nil
	}
	<-c.done
	return nil, c.err
}

// isClaimed reports whether the pump has asked for the row.
func (c *runCreate) isClaimed() bool {
	select {
	case <-c.claimed:
		return true
	default:
		return false
	}
}

// settle records whether the row is durable (nil) and wakes the watchers; only the
// first call counts.
func (c *runCreate) settle(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
		c.mu.Lock()
		ws := c.watchers
		c.watchers = nil
		c.mu.Unlock()
		for _, f := range ws {
			f()
		}
	})
}

// settled reports whether the row's fate is known.
func (c *runCreate) settled() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// watch calls f once the row's fate is known (at once if it is).
func (c *runCreate) watch(f func()) {
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		f()
		return
	default:
	}
	c.watchers = append(c.watchers, f)
	c.mu.Unlock()
}
