package gateway

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of a lingering close (see lingerListener).
const (
	// lingerTime is the longest a refused client is given to finish sending.
	lingerTime = 5 * time.Second
	// lingerBytes is the most read and discarded from it.
	lingerBytes = 16 << 20
	// maxLingering bounds the connections lingering at once; beyond it a
	// connection is closed at once, as before.
	maxLingering = 1024
)

// lingerListener gives refused requests a lingering close, as nginx does.
// When the server answers before reading the whole request (a body over the
// limit, headers too large) and closes the connection, the bytes the client
// is still sending arrive at a closed socket and the kernel answers with a
// reset, which makes many clients (Python's urllib, Node's fetch) lose the
// response they have not read yet. A connection marked with lingerOnClose
// instead half-closes after the response, reads and discards what the client
// still sends, up to lingerBytes for at most lingerTime, and only then
// closes. Other connections close at once.
type lingerListener struct {
	net.Listener

	sem chan struct{}

	mu       sync.Mutex
	stopped  bool
	draining map[*lingerConn]struct{}
	wg       sync.WaitGroup
}

func newLingerListener(ln net.Listener) *lingerListener {
	return &lingerListener{Listener: ln, sem: make(chan struct{}, maxLingering), draining: map[*lingerConn]struct{}{}}
}

// Accept wraps the accepted connection.
func (l *lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c, l: l}, nil
}

// begin registers c as draining, or reports false when the listener has
// stopped or too many connections drain already.
func (l *lingerListener) begin(c *lingerConn) bool {
	select {
	case l.sem <- struct{}{}:
	default:
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		<-l.sem
		return false
	}
	l.draining[c] = struct{}{}
	l.wg.Add(1)
	return true
}

func (l *lingerListener) end(c *lingerConn) {
	l.mu.Lock()
	delete(l.draining, c)
	l.mu.Unlock()
	<-l.sem
	l.wg.Done()
}

// stop ends every drain at once and waits for them; later closes do not
// linger. It is safe to call more than once.
func (l *lingerListener) stop() {
	l.mu.Lock()
	l.stopped = true
	for c := range l.draining {
		// Wakes the drain's blocked read; its error ends the drain.
		_ = c.Conn.SetReadDeadline(time.Now())
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// lingerConn is a connection of a lingerListener.
type lingerConn struct {
	net.Conn
	l      *lingerListener
	linger atomic.Bool
	once   sync.Once
	err    error
}

// lingerOnClose makes the next Close linger.
func (c *lingerConn) lingerOnClose() { c.linger.Store(true) }

// Close closes the connection, first draining it when it was marked.
func (c *lingerConn) Close() error {
	c.once.Do(func() {
		if !c.linger.Load() || !c.l.begin(c) {
			c.err = c.Conn.Close()
			return
		}
		go c.drain()
	})
	return c.err
}

// drain half-closes, discards what the client still sends and closes. Its
// errors are not reported: a reset, a timeout or the client's EOF are all
// how a drain is meant to end, and nobody is left to tell.
func (c *lingerConn) drain() {
	defer c.l.end(c)
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite() // the response is written; send FIN after it
	}
	c.l.mu.Lock()
	deadline := time.Now().Add(lingerTime)
	if c.l.stopped {
		deadline = time.Now()
	}
	_ = c.Conn.SetReadDeadline(deadline)
	c.l.mu.Unlock()
	_, _ = io.CopyN(io.Discard, c.Conn, lingerBytes)
	_ = c.Conn.Close()
}
