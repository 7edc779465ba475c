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
// A clean exit loses nothing: Close flushes and stops the timer. A crash
// loses at most one interval's lines. A failed write drops the bytes it
// carried (the buffer stays bounded) and its error is returned by the next
// Write, Flush or Close.
type Buffer struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	err    error
	closed bool
	stop   chan struct{}
	done   chan struct{}
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
	b := &Buffer{w: w, buf: make([]byte, 0, size), stop: make(chan struct{}), done: make(chan struct{})}
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
			_ = b.Flush()
		}
	}
}

// Write buffers p, first flushing what is buffered when p would not fit.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, ErrBufferClosed
	}
	if len(b.buf)+len(p) > cap(b.buf) {
		b.flushLocked()
	}
	if len(p) > cap(b.buf) {
		if _, err := b.w.Write(p); err != nil && b.err == nil {
			b.err = err
		}
	} else {
		b.buf = append(b.buf, p...)
	}
	if err := b.err; err != nil {
		b.err = nil
		return len(p), err
	}
	return len(p), nil
}

// Flush writes what is buffered.
func (b *Buffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	err := b.err
	b.err = nil
	return err
}

func (b *Buffer) flushLocked() {
	if len(b.buf) == 0 {
		return
	}
	if _, err := b.w.Write(b.buf); err != nil && b.err == nil {
		b.err = err
	}
	b.buf = b.buf[:0]
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
	b.flushLocked()
	err := b.err
	b.err = nil
	b.mu.Unlock()
	<-b.done
	return err
}
