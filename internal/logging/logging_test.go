package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

func TestCorrelationIDOnEveryLine(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelInfo, "json").With("component", "test")
	ctx := WithCorrelationID(context.Background(), "req-42")
	log.InfoContext(ctx, "first", "k", 1)
	log.WithGroup("g").WarnContext(ctx, "second", "k", 2)
	log.DebugContext(ctx, "hidden")
	log.Info("no context")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got %d: %s", len(lines), buf.String())
	}
	for i, line := range lines[:2] {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d not JSON: %v", i, err)
		}
		if !strings.Contains(line, `"correlation_id":"req-42"`) || m["component"] != "test" {
			t.Fatalf("line %d lacks correlation id or component: %s", i, line)
		}
	}
	if strings.Contains(lines[2], "correlation_id") {
		t.Fatalf("line without context has a correlation id: %s", lines[2])
	}
}

func TestTextFormatAndLevels(t *testing.T) {
	var buf bytes.Buffer
	lvl, err := ParseLevel("warn")
	if err != nil {
		t.Fatal(err)
	}
	log := New(&buf, lvl, "text")
	log.Info("dropped")
	log.Warn("kept", "a", "b")
	if out := buf.String(); strings.Contains(out, "dropped") || !strings.Contains(out, "msg=kept a=b") {
		t.Fatalf("unexpected output %q", out)
	}
	if _, err := ParseLevel("loud"); err == nil {
		t.Fatal("want an error for an unknown level")
	}
}

func TestQuiet(t *testing.T) {
	var buf bytes.Buffer
	log := Quiet(New(&buf, slog.LevelInfo, "json")).With("component", "lib")
	log.Info("member joined")
	log.Warn("member lost")
	out := buf.String()
	if strings.Contains(out, "member joined") || !strings.Contains(out, `"level":"WARN","msg":"member lost","component":"lib"`) {
		t.Fatalf("unexpected output %q", out)
	}
	buf.Reset()
	Quiet(New(&buf, slog.LevelDebug, "json")).Info("routine")
	if !strings.Contains(buf.String(), `"level":"DEBUG","msg":"routine"`) {
		t.Fatalf("info not demoted to debug: %q", buf.String())
	}
}

func TestTraceIDsOnLines(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelInfo, "json")
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(WithCorrelationID(context.Background(), "req-7"), sc)
	log.InfoContext(ctx, "traced")
	log.InfoContext(context.Background(), "untraced")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", buf.String())
	}
	if !strings.Contains(lines[0], `"correlation_id":"req-7","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"`) {
		t.Fatalf("traced line lacks its IDs: %s", lines[0])
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Fatalf("untraced line has a trace ID: %s", lines[1])
	}
}

// A correlation ID is found under the contexts derived from its own, which
// still see their parent's values and cancellation.
func TestCorrelationIDThroughDerivedContexts(t *testing.T) {
	type otherKey struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), otherKey{}, "other"))
	ctx := WithCorrelationID(parent, "req-7")
	derived, stop := context.WithTimeout(context.WithValue(ctx, otherKey{}, "shadow"), time.Hour)
	defer stop()
	if got := CorrelationID(derived); got != "req-7" {
		t.Fatalf("CorrelationID = %q through derived contexts", got)
	}
	if got := ctx.Value(otherKey{}); got != "other" {
		t.Fatalf("the parent's value = %v", got)
	}
	if got := CorrelationID(WithCorrelationID(ctx, "req-8")); got != "req-8" {
		t.Fatalf("the innermost ID = %q", got)
	}
	if CorrelationID(parent) != "" {
		t.Fatal("an ID without WithCorrelationID")
	}
	cancel()
	select {
	case <-derived.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the parent did not reach a derived context")
	}
}

// TestWithCorrelationIDBytes: the ID is copied (the bytes given may be
// reused), reads back as WithCorrelationID's would, and a UUID-sized one
// costs a single allocation with its context.
func TestWithCorrelationIDBytes(t *testing.T) {
	for _, id := range []string{"0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0", "a", strings.Repeat("x", 36), strings.Repeat("y", 37), strings.Repeat("z", 128)} {
		buf := []byte(id)
		ctx, got := WithCorrelationIDBytes(context.Background(), buf)
		for i := range buf {
			buf[i] = '!'
		}
		if got != id || CorrelationID(ctx) != id {
			t.Errorf("%q: returned %q, context carries %q", id, got, CorrelationID(ctx))
		}
	}
	if _, got := WithCorrelationIDBytes(context.Background(), nil); got != "" {
		t.Errorf("an empty ID reads %q", got)
	}
	uuid := []byte("0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0")
	if n := testing.AllocsPerRun(100, func() { _, _ = WithCorrelationIDBytes(context.Background(), uuid) }); n != 1 {
		t.Errorf("a UUID's context allocated %v times, want 1", n)
	}
}
