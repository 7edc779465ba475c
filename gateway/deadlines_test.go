package gateway

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/internal/logging"
)

// deadlinePipe is a connection of a deadlineListener with the given tick,
// over net.Pipe, and its peer.
func deadlinePipe(t *testing.T, tick time.Duration) (*deadlineConn, net.Conn) {
	t.Helper()
	l := newDeadlineListener(nil, tick)
	t.Cleanup(l.stop)
	a, b := net.Pipe()
	c := l.wrap(a)
	t.Cleanup(func() { _ = c.Close(); _ = b.Close() })
	return c, b
}

// readAfter reads one byte from c while the peer writes it after delay, and
// returns the read's error and how long it took.
func readAfter(c net.Conn, peer net.Conn, delay time.Duration) (error, time.Duration) {
	go func() {
		time.Sleep(delay)
		_, _ = peer.Write([]byte{1})
	}()
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	return err, time.Since(start)
}

func TestDeadlineConn(t *testing.T) {
	const tick = 20 * time.Millisecond
	for _, tc := range []struct {
		name string
		// prepare sets the deadlines before the read; it may wait.
		prepare func(c *deadlineConn)
		// peer writes after this long.
		peerDelay   time.Duration
		wantTimeout bool
		// a timeout must not come before this
		notBefore time.Duration
	}{
		{"a far read deadline fires", func(c *deadlineConn) { _ = c.SetReadDeadline(time.Now().Add(10 * tick)) },
			2 * time.Second, true, 10 * tick},
		{"a near read deadline fires", func(c *deadlineConn) { _ = c.SetReadDeadline(time.Now().Add(tick)) },
			2 * time.Second, true, tick},
		{"a past read deadline fires at once", func(c *deadlineConn) { _ = c.SetReadDeadline(time.Now().Add(-time.Second)) },
			2 * time.Second, true, 0},
		{"no deadline, no timeout", func(*deadlineConn) {}, 30 * tick, false, 0},
		{"a far deadline not reached", func(c *deadlineConn) { _ = c.SetReadDeadline(time.Now().Add(time.Minute)) },
			30 * tick, false, 0},
		{"a cleared far deadline", func(c *deadlineConn) {
			_ = c.SetReadDeadline(time.Now().Add(10 * tick))
			_ = c.SetReadDeadline(time.Time{})
		}, 30 * tick, false, 0},
		{"a cleared near deadline", func(c *deadlineConn) {
			_ = c.SetReadDeadline(time.Now().Add(tick))
			_ = c.SetReadDeadline(time.Time{})
		}, 30 * tick, false, 0},
		{"a near deadline pushed far", func(c *deadlineConn) {
			_ = c.SetReadDeadline(time.Now().Add(tick))
			_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		}, 30 * tick, false, 0},
		{"an expired deadline renewed", func(c *deadlineConn) {
			_ = c.SetReadDeadline(time.Now().Add(5 * tick))
			time.Sleep(20 * tick) // the sweeper hands it to the connection
			_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		}, 10 * tick, false, 0},
		{"a far deadline pulled near", func(c *deadlineConn) {
			_ = c.SetReadDeadline(time.Now().Add(time.Minute))
			_ = c.SetReadDeadline(time.Now().Add(tick))
		}, 2 * time.Second, true, tick},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, peer := deadlinePipe(t, tick)
			tc.prepare(c)
			err, took := readAfter(c, peer, tc.peerDelay)
			switch {
			case tc.wantTimeout && !errors.Is(err, os.ErrDeadlineExceeded):
				t.Fatalf("read = %v after %v, want a timeout", err, took)
			case tc.wantTimeout && took < tc.notBefore-time.Millisecond:
				t.Fatalf("timed out after %v, before the deadline %v", took, tc.notBefore)
			case !tc.wantTimeout && err != nil:
				t.Fatalf("read = %v after %v, want the peer's byte", err, took)
			}
		})
	}
}

// A far write deadline fails a write the peer does not take.
func TestDeadlineConnWrite(t *testing.T) {
	const tick = 20 * time.Millisecond
	c, peer := deadlinePipe(t, tick)
	// Should the deadline never fire, the write fails on a closed pipe.
	time.AfterFunc(5*time.Second, func() { _ = peer.Close() })
	if err := c.SetWriteDeadline(time.Now().Add(10 * tick)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Write([]byte{1}); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write = %v after %v, want a timeout", err, time.Since(start))
	}
	if took := time.Since(start); took < 10*tick-time.Millisecond {
		t.Fatalf("timed out after %v, before the deadline", took)
	}
}

// Deadlines set while the sweeper runs and a connection is read never fail a
// read whose deadline is far (run with -race).
func TestDeadlineConnConcurrent(t *testing.T) {
	const tick = time.Millisecond * 10
	c, peer := deadlinePipe(t, tick)
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 1)
		for range 200 {
			if _, err := peer.Read(buf); err != nil {
				t.Errorf("peer read: %v", err)
				return
			}
			if _, err := peer.Write(buf); err != nil {
				t.Errorf("peer write: %v", err)
				return
			}
		}
	})
	buf := []byte{7}
	for i := range 200 {
		// Alternate far deadlines, near ones that pass and clears, as
		// fasthttp's idle, read and write deadlines do.
		if err := c.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := c.SetWriteDeadline(time.Now().Add(time.Duration(i%3) * tick)); err != nil {
			t.Fatal(err)
		}
		if err := c.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(buf); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if i%10 == 0 {
			time.Sleep(2 * tick)
		}
	}
	wg.Wait()
}

// After the sweeper stops, the deadlines it held are the connection's own.
func TestDeadlineListenerStopHandsOver(t *testing.T) {
	const tick = time.Hour // the sweeper never ticks
	l := newDeadlineListener(nil, tick)
	a, b := net.Pipe()
	defer b.Close()
	c := l.wrap(a)
	defer c.Close()
	// Far for a sweeper that has not ticked: now is 0, and 3 ticks are 3 h.
	if err := c.SetReadDeadline(time.Now().Add(4 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if c.read.Load() <= 0 {
		t.Fatal("a far deadline went to the connection")
	}
	l.stop()
	if got := c.read.Load(); got != heldDeadline {
		t.Fatalf("deadline state %d after stop, want handed over", got)
	}
	// After stop, every deadline is exact.
	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err, took := readAfter(c, b, 2*time.Second); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read = %v after %v, want a timeout", err, took)
	}
}

// The server's request and idle timeouts still close slow and idle
// connections.
func TestServerTimeouts(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s, err := New(Options{Addr: "127.0.0.1:0", Logger: logging.New(io.Discard, slog.LevelInfo, "json"),
		Registry: prometheus.NewRegistry(), RequestTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	url := runServer(t, s)
	dial := func(t *testing.T) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if err := c.SetReadDeadline(time.Now().Add(20 * timeout)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("a request that never ends", func(t *testing.T) {
		c := dial(t)
		start := time.Now()
		if _, err := io.WriteString(c, "GET /health/live HTTP/1.1\r\nHost: kowai\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := io.ReadAll(c)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("read after %v: %v (the server did not time the request out)", took, err)
		}
		if took < timeout || !strings.HasPrefix(string(resp), "HTTP/1.1 408") {
			t.Fatalf("after %v the server answered %q; want a 408 after %v", took, resp, timeout)
		}
	})
	t.Run("an idle keep-alive connection", func(t *testing.T) {
		c := dial(t)
		if _, err := io.WriteString(c, "GET /health/live HTTP/1.1\r\nHost: kowai\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		status, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
			t.Fatalf("status %q, %v", status, err)
		}
		start := time.Now()
		rest, err := io.ReadAll(r) // the rest of the answer, then the close
		took := time.Since(start)
		if err != nil {
			t.Fatalf("read after %v: %v (the server kept the idle connection)", took, err)
		}
		if took < 2*timeout-50*time.Millisecond {
			t.Fatalf("closed after %v, before the idle timeout %v (%q)", took, 2*timeout, rest)
		}
	})
}
