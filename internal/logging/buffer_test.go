package logging

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// countingWriter records every Write call.
type countingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	fail   error
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if w.fail != nil {
		return 0, w.fail
	}
	return w.buf.Write(p)
}

func (w *countingWriter) snapshot() (string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String(), w.writes
}

// TestBufferLosesNoLineOnClose logs from many goroutines through a JSON
// handler and checks that after Close every line is there, whole, and that
// the lines took far fewer writes than there are lines.
func TestBufferLosesNoLineOnClose(t *testing.T) {
	var out countingWriter
	b := NewBuffer(&out, 4096, time.Hour)
	log := New(b, slog.LevelInfo, "json")
	const goroutines, lines = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range lines {
				log.Info("http request", "g", g, "i", i, "route", "/api/v1/auth/me")
			}
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	text, writes := out.snapshot()
	got := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(got) != goroutines*lines {
		t.Fatalf("%d lines after Close, want %d", len(got), goroutines*lines)
	}
	seen := make(map[string]bool)
	for _, l := range got {
		if !strings.HasPrefix(l, "{") || !strings.HasSuffix(l, "}") {
			t.Fatalf("torn line %q", l)
		}
		seen[l[strings.Index(l, `"g"`):]] = true
	}
	if len(seen) != goroutines*lines {
		t.Fatalf("%d distinct lines, want %d", len(seen), goroutines*lines)
	}
	if writes > goroutines*lines/10 {
		t.Fatalf("%d writes for %d lines: not buffered", writes, goroutines*lines)
	}
	if _, err := b.Write([]byte("late\n")); !errors.Is(err, ErrBufferClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// TestBufferFlushesOnTimer: a line written to an idle buffer reaches the
// writer within one interval, without Close.
func TestBufferFlushesOnTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out countingWriter
		b := NewBuffer(&out, 0, 0)
		defer b.Close()
		fmt.Fprintln(b, "one line")
		if text, _ := out.snapshot(); text != "" {
			t.Fatalf("written before the interval: %q", text)
		}
		time.Sleep(DefaultFlushInterval)
		synctest.Wait()
		if text, _ := out.snapshot(); text != "one line\n" {
			t.Fatalf("after one interval: %q", text)
		}
	})
}

// TestBufferBounded: the buffer never holds more than its size, and a record
// larger than it is written through whole.
func TestBufferBounded(t *testing.T) {
	var out countingWriter
	b := NewBuffer(&out, 16, time.Hour)
	defer b.Close()
	fmt.Fprint(b, "0123456789")
	fmt.Fprint(b, "abcdefghij") // would overflow: the first goes out
	if text, writes := out.snapshot(); text != "0123456789" || writes != 1 {
		t.Fatalf("after overflow: %q in %d writes", text, writes)
	}
	big := strings.Repeat("x", 40)
	fmt.Fprint(b, big)
	if text, _ := out.snapshot(); text != "0123456789abcdefghij"+big {
		t.Fatalf("after a large record: %q", text)
	}
}

// TestBufferReportsWriteErrors: a failed flush is reported by the next call.
func TestBufferReportsWriteErrors(t *testing.T) {
	out := countingWriter{fail: errors.New("disk full")}
	b := NewBuffer(&out, 8, time.Hour)
	if _, err := b.Write([]byte("12345")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte("67890")); err == nil || err.Error() != "disk full" {
		t.Fatalf("write after a failed flush: %v", err)
	}
	if _, err := b.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err == nil {
		t.Fatal("close with a failing writer reported nothing")
	}
}
