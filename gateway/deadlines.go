package gateway

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of a deadline listener's tick (see deadlineListener).
const (
	minDeadlineTick = 10 * time.Millisecond
	maxDeadlineTick = 500 * time.Millisecond
)

// deadlineTick is the tick of a server whose timeouts are timeout: a
// hundredth of it, within [minDeadlineTick, maxDeadlineTick]. With the
// default 60 s request timeout a deadline fires at most half a second late.
func deadlineTick(timeout time.Duration) time.Duration {
	return min(max(timeout/100, minDeadlineTick), maxDeadlineTick)
}

// heldDeadline marks a deadline handed to the connection itself: set
// exactly (it was near, or in the past) or expired by the sweeper.
const heldDeadline = -1

// expiredDeadline is a time in the past: set on a connection, it makes the
// pending and the next reads or writes fail with os.ErrDeadlineExceeded.
var expiredDeadline = time.Unix(1, 0)

// deadlineListener makes the deadlines fasthttp sets on every request cheap.
// fasthttp sets three per keep-alive request (the idle timeout, the read
// timeout once the request starts, the write timeout), and each moved a
// runtime timer of the connection: 2.5% of the CPU of an authenticated read
// from outside. A connection of this listener keeps a deadline that is more
// than three ticks away in an atomic, and a sweeper, once a tick, hands the
// deadlines that have passed to their connections as a deadline in the past,
// which fails the pending read or write as the runtime's timer would. So a
// far deadline fires up to a tick late (deadlineTick); a near one, a past
// one and clearing a deadline that was handed over go to the connection at
// once, as before.
type deadlineListener struct {
	net.Listener
	tick time.Duration
	// base is when the listener was made; times are kept as durations since
	// it, on the monotonic clock.
	base time.Time
	// now is the sweeper's clock: the duration since base at its last tick.
	now     atomic.Int64
	stopped atomic.Bool

	mu    sync.Mutex
	conns map[*deadlineConn]struct{}

	stopc chan struct{}
	done  chan struct{}
}

// newDeadlineListener wraps ln and starts its sweeper: stop it.
func newDeadlineListener(ln net.Listener, tick time.Duration) *deadlineListener {
	l := &deadlineListener{Listener: ln, tick: tick, base: time.Now(), conns: map[*deadlineConn]struct{}{},
		stopc: make(chan struct{}), done: make(chan struct{})}
	go l.sweep()
	return l
}

// Accept wraps the accepted connection.
func (l *deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.wrap(c), nil
}

// wrap registers c with the sweeper.
func (l *deadlineListener) wrap(c net.Conn) *deadlineConn {
	dc := &deadlineConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[dc] = struct{}{}
	l.mu.Unlock()
	return dc
}

// stop ends the sweeper; later deadlines all go to their connections at
// once. The deadlines it holds are handed over first. Safe to call twice.
func (l *deadlineListener) stop() {
	if l.stopped.Swap(true) {
		return
	}
	close(l.stopc)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.handOver()
	}
}

func (l *deadlineListener) sweep() {
	defer close(l.done)
	t := time.NewTicker(l.tick)
	defer t.Stop()
	for {
		select {
		case <-l.stopc:
			return
		case now := <-t.C:
			at := int64(now.Sub(l.base))
			l.now.Store(at)
			l.mu.Lock()
			for c := range l.conns {
				c.expire(at)
			}
			l.mu.Unlock()
		}
	}
}

// far reports whether t (since base) is far enough ahead for the sweeper:
// more than three ticks after its clock, which lags by up to a tick.
func (l *deadlineListener) far(at int64) bool {
	return !l.stopped.Load() && at-l.now.Load() > int64(3*l.tick)
}

// deadlineConn is a connection of a deadlineListener.
type deadlineConn struct {
	net.Conn
	l *deadlineListener
	// read and write are the far deadlines the sweeper watches (durations
	// since l.base), 0 for none, or heldDeadline.
	read, write atomic.Int64
	// mu serializes what is done to the connection's own deadlines.
	mu sync.Mutex
}

// SetReadDeadline implements net.Conn.
func (c *deadlineConn) SetReadDeadline(t time.Time) error { return c.set(&c.read, true, t) }

// SetWriteDeadline implements net.Conn.
func (c *deadlineConn) SetWriteDeadline(t time.Time) error { return c.set(&c.write, false, t) }

// SetDeadline implements net.Conn.
func (c *deadlineConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// CloseWrite half-closes the connection when it can (a lingering close
// needs it).
func (c *deadlineConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close unregisters the connection and closes it.
func (c *deadlineConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

func (c *deadlineConn) set(d *atomic.Int64, read bool, t time.Time) error {
	if !t.IsZero() {
		if at := int64(t.Sub(c.l.base)); c.l.far(at) {
			old := d.Swap(at)
			if c.l.stopped.Load() {
				// The sweeper stopped meanwhile; its hand-over may have
				// missed this deadline.
				c.mu.Lock()
				defer c.mu.Unlock()
				if d.CompareAndSwap(at, heldDeadline) {
					return c.apply(read, t)
				}
				return nil
			}
			if old != heldDeadline {
				return nil
			}
			// The connection holds an earlier deadline (or an expired one):
			// clear it, unless a later call replaced this one meanwhile.
			c.mu.Lock()
			defer c.mu.Unlock()
			if d.Load() == at {
				return c.apply(read, time.Time{})
			}
			return nil
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.IsZero() {
		if d.Swap(0) == heldDeadline {
			return c.apply(read, t)
		}
		return nil
	}
	d.Store(heldDeadline)
	return c.apply(read, t)
}

func (c *deadlineConn) apply(read bool, t time.Time) error {
	if read {
		return c.Conn.SetReadDeadline(t)
	}
	return c.Conn.SetWriteDeadline(t)
}

// expire hands the deadlines that have passed at now to the connection.
// Errors are not reported: the only one is a closed connection's, which
// needs no deadline.
func (c *deadlineConn) expire(now int64) {
	for _, dir := range []struct {
		d    *atomic.Int64
		read bool
	}{{&c.read, true}, {&c.write, false}} {
		if at := dir.d.Load(); at > 0 && at <= now {
			c.mu.Lock()
			if dir.d.CompareAndSwap(at, heldDeadline) {
				_ = c.apply(dir.read, expiredDeadline)
			}
			c.mu.Unlock()
		}
	}
}

// handOver gives the connection the far deadlines the sweeper held, when
// the sweeper stops. Errors are not reported, as in expire.
func (c *deadlineConn) handOver() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, dir := range []struct {
		d    *atomic.Int64
		read bool
	}{{&c.read, true}, {&c.write, false}} {
		if at := dir.d.Load(); at > 0 && dir.d.CompareAndSwap(at, heldDeadline) {
			_ = c.apply(dir.read, c.l.base.Add(time.Duration(at)))
		}
	}
}
