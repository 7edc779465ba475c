// Package gopool runs functions on goroutines kept between calls.
//
// A goroutine starts with a small stack and doubles it, copying the whole stack
// each time, whenever a call chain needs more. Work that runs a deep call chain
// on a fresh goroutine each time (a chat turn, an actor's mailbox run) pays for
// that growth on every run: in a profile of continuing chat turns it was about
// 5% of the process's CPU (runtime.newstack and copystack). A Pool hands each
// function to a goroutine that has finished an earlier one, whose stack has
// grown already, and starts a new goroutine only when none is idle. Idle
// goroutines end after an idle time, so a pool costs nothing once its load is
// gone.
package gopool

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// DefaultIdle is how long an idle goroutine of a Pool waits for work before it
// ends.
const DefaultIdle = 10 * time.Second

// Pool runs functions on reused goroutines. The zero value is not usable; call
// New. A Pool is safe for concurrent use and needs no closing: its goroutines
// end by themselves once idle for the pool's idle time.
type Pool struct {
	// work is unbuffered: a send succeeds only when an idle goroutine takes
	// the function at once, so Go never waits behind running work.
	work chan func()
	idle time.Duration
}

// New returns a Pool whose goroutines end after idle without work (DefaultIdle
// when idle <= 0).
func New(idle time.Duration) *Pool {
	if idle <= 0 {
		idle = DefaultIdle
	}
	return &Pool{work: make(chan func()), idle: idle}
}

// Go runs fn on an idle goroutine of the pool, or on a new one when none is
// idle. Like the go statement, it returns without waiting for fn; fn's panic
// is not recovered, as with the go statement.
func (p *Pool) Go(fn func()) {
	select {
	case p.work <- fn:
	default:
		go p.serve(fn)
	}
}

// serve runs fn, then every function handed to it until it has been idle for
// the pool's idle time. It holds no function between runs, so an idle goroutine
// keeps nothing of the work it did alive.
func (p *Pool) serve(fn func()) {
	var t *time.Timer
	for {
		fn()
		fn = nil
		if t == nil {
			t = time.NewTimer(p.idle)
		} else {
			t.Reset(p.idle)
		}
		select {
		case fn = <-p.work:
		case <-t.C:
			return
		}
	}
}

// Dispatcher is a protoactor Dispatcher that runs mailboxes on a Pool instead
// of a new goroutine per run, with the library's default throughput (300
// messages per run).
func (p *Pool) Dispatcher() actor.Dispatcher { return dispatcher{p} }

// dispatcherThroughput is protoactor's default: messages a mailbox processes
// before it yields its goroutine.
const dispatcherThroughput = 300

type dispatcher struct{ p *Pool }

// Schedule implements actor.Dispatcher.
func (d dispatcher) Schedule(fn func()) { d.p.Go(fn) }

// Throughput implements actor.Dispatcher.
func (dispatcher) Throughput() int { return dispatcherThroughput }
