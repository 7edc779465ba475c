package actors

import (
	"context"
	"errors"
	"sync"

	"github.com/kowai/kowai/persistence"
)

// runCreate is the insert of a new run's row while its first execution starts. The
// row's write goes to the group-commit writer at once; the execution's event pump,
// when it needs its first write (a journal row, a durable attempt, a flush) while
// the writer has not yet taken the row, withdraws the row's write and carries the
// row in its own, so that a run's creation and its first journal rows share a
// commit. Either way the pump writes nothing before the row is durable, and the
// grain answers the trigger only once it is (done).
type runCreate struct {
	op       persistence.Op
	withdraw context.CancelFunc

	mu sync.Mutex
	// claimed: the pump asked for the row before the writer answered its write.
	claimed bool
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

// newRunCreate starts the write of op, the new run's row, through w.
func newRunCreate(w LogWriter, op persistence.Op) *runCreate {
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	c := &runCreate{op: op, withdraw: cancel, submitted: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer cancel()
		err := w.Submit(ctx, op)
		c.mu.Lock()
		c.pumpOwns = c.claimed && errors.Is(err, persistence.ErrWithdrawn)
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
	c.mu.Lock()
	c.claimed = true
	c.mu.Unlock()
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
