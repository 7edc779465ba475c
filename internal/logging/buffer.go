package logging

import (
	"errors"
	"io"
	"sync"
	"time"
)

// Defaults of a Buffer: 64 KiB hold about 200 access-log lines, and 100 ms
// is well below the time anyone tails a log within.
const (
	DefaultBufferSize    = 64 << 10
	DefaultFlushInterval = 100 * time.Millisecond
)

// ErrBufferClosed is returned by a Write after Close.
var ErrBufferClosed = errors.New("logging: buffer closed")

// Buffer is a bounded write buffer for a log: it collects whole records (slog
// handlers write one record per Write) and hands them to the underlying
// writer when they would overflow it, every flush interval, on Flush and on
// Close. A busy node then makes one write system call per few hundred lines
// instead of one per request. A record larger than the buffer is written
// through.
//
// A flush swaps in a second buffer and writes the full one outside the lock
// that Write takes, so the requests logging meanwhile wait for a copy of
// their line, not for the system call (the access log's Write was 40% of the
// gateway's mutex wait while flushes held it). Flushes are written in order;
// at most three buffers exist at a time.
//
// A clean exit loses nothing: Close flushes and stops the timer. A crash
// loses at most one interval's lines. A failed write drops the bytes it
// carried (the buffer stays bounded) and its error is returned by the next
// Write, Flush or Close.
type Buffer struct {
	// Lock order: mu, then wmu, then errMu; nothing is taken under wmu but
	// errMu.
	mu     sync.Mutex // guards buf and closed
	buf    []byte
	size   int
	closed bool

	wmu   sync.Mutex // held while writing to w: keeps flushes in order
	w     io.Writer
	spare []byte // guarded by wmu: the buffer the last flush wrote, emptied

	errMu sync.Mutex
	err   error

	stop chan struct{}
	done chan struct{}
}

// NewBuffer returns a Buffer of size bytes over w that flushes every
// interval; size and interval <= 0 take the defaults. It starts the flush
// timer: Close it.
func NewBuffer(w io.Writer, size int, interval time.Duration) *Buffer {
	if size <= 0 {
		size = DefaultBufferSize
	}
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	b := &Buffer{w: w, buf: make([]byte, 0, size), size: size, stop: make(chan struct{}), done: make(chan struct{})}
	go b.tick(interval)
	return b
}

func (b *Buffer) tick(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			// An error here is kept and reported by the next Write.
			b.mu.Lock()
			b.flushUnlock(nil)
		}
	}
}

// Write buffers p, first flushing what is buffered when p would not fit.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, ErrBufferClosed
	}
	switch {
	case len(b.buf)+len(p) <= cap(b.buf):
		b.buf = append(b.buf, p...)
		b.mu.Unlock()
	case len(p) > b.size:
		b.flushUnlock(p)
	default:
		b.flushUnlock(nil)
		// Another Write may have filled the fresh buffer meanwhile: loop as
		// a new call would.
		return b.Write(p)
	}
	return len(p), b.takeErr()
}

// Flush writes what is buffered.
func (b *Buffer) Flush() error {
	b.mu.Lock()
	b.flushUnlock(nil)
	return b.takeErr()
}

// flushUnlock, called with mu held, swaps the buffer for the spare one,
// releases mu and writes the full buffer, then through, which may be nil (a
// record larger than the buffer). Errors are kept for takeErr.
func (b *Buffer) flushUnlock(through []byte) {
	if len(b.buf) == 0 && through == nil {
		b.mu.Unlock()
		return
	}
	b.wmu.Lock() // the previous flush, if any, is done: its buffer is the spare
	full := b.buf
	b.buf = b.spare
	if b.buf == nil {
		b.buf = make([]byte, 0, b.size)
	}
	b.spare = nil
	b.mu.Unlock()
	for _, p := range [][]byte{full, through} {
		if len(p) == 0 {
			continue
		}
		if _, err := b.w.Write(p); err != nil {
			b.errMu.Lock()
			if b.err == nil {
				b.err = err
			}
			b.errMu.Unlock()
		}
	}
	b.spare = full[:0]
	b.wmu.Unlock()
}

// takeErr returns and clears the first error a write returned.
func (b *Buffer) takeErr() error {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	err := b.err
	b.err = nil
	return err
}

// Close stops the timer and flushes. Later Writes fail with
// ErrBufferClosed; Close is safe to call twice.
func (b *Buffer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.stop)
	b.flushUnlock(nil)
	<-b.done
	return b.takeErr()
}
