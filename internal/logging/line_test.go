package logging

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// timeField matches the time of a JSON or text record, which differs
// between two records written one after the other.
var timeField = regexp.MustCompile(`^(\{"time":"[^"]*"|time=\S*)`)

func withoutTime(s string) string {
	var out []string
	for l := range strings.Lines(s) {
		out = append(out, timeField.ReplaceAllString(l, "TIME"))
	}
	return strings.Join(out, "")
}

// TestLineMatchesSlog writes the same record through a Line and through
// slog's LogAttrs on loggers made by New, and wants the same bytes (but the
// time): the access log must not change shape when it bypasses slog.
func TestLineMatchesSlog(t *testing.T) {
	traced := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, SpanID: trace.SpanID{0xa, 0xb, 0xc, 0xd, 1, 2, 3, 4},
		TraceFlags: trace.FlagsSampled,
	}))
	strs := []string{"", "plain", "two words", "a=b", `quote " and \ backslash`, "line\nbreak\ttab\r", "ctrl \x01\x1f\x7f",
		"héllo wörld", "bad \xff utf8", "sep \u2028 \u2029", "<html>&amp;", "日本語", "non-breaking\u00a0space", "zero\u200bwidth"}
	floats := []float64{0, 0.001, 0.123, 1.5, 12345.678, 1e-7, -2.5e-9, 1e21, 123456789012345678901234.0, math.MaxFloat64, -0.0}
	ints := []int64{0, 1, -1, math.MaxInt64, math.MinInt64}
	ctxs := []context.Context{context.Background(), WithCorrelationID(context.Background(), "req-1"),
		WithCorrelationID(traced, `odd "id"`)}
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var lineOut, slogOut bytes.Buffer
			lineLog := New(&lineOut, slog.LevelInfo, format).With("component", "gateway", "n", 7, "u", uint64(9), "ok", true)
			slogLog := New(&slogOut, slog.LevelInfo, format).With("component", "gateway", "n", 7, "u", uint64(9), "ok", true)
			for i, ctx := range ctxs {
				for j, s := range strs {
					f, n := floats[(i+j)%len(floats)], ints[(i+j)%len(ints)]
					ln := Start(ctx, lineLog, slog.LevelInfo, s)
					if ln == nil || ln.fast == nil {
						t.Fatal("a logger made by New does not take the fast path")
					}
					ln.String(s, s)
					ln.Int("int", n)
					ln.Float("float", f)
					ln.End()
					slogLog.LogAttrs(ctx, slog.LevelInfo, s, slog.String(s, s), slog.Int64("int", n), slog.Float64("float", f))
				}
			}
			if got, want := withoutTime(lineOut.String()), withoutTime(slogOut.String()); got != want {
				t.Fatalf("Line wrote\n%s\nslog wrote\n%s", got, want)
			}
		})
	}
}

// TestLineTime checks the time formats against slog's: the rest of a
// record is compared by TestLineMatchesSlog.
func TestLineTime(t *testing.T) {
	for format, want := range map[string]*regexp.Regexp{
		"json": regexp.MustCompile(`^\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)",`),
		"text": regexp.MustCompile(`^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d) `),
	} {
		var out bytes.Buffer
		ln := Start(context.Background(), New(&out, slog.LevelInfo, format), slog.LevelWarn, "m")
		ln.End()
		if !want.MatchString(out.String()) {
			t.Errorf("%s: %q does not start with a time as slog writes it", format, out.String())
		}
	}
}

// TestLineFallback covers loggers the fast path does not know: another
// handler, a group, an attribute kind it does not encode. Their Lines go
// through slog with the same fields.
func TestLineFallback(t *testing.T) {
	var out bytes.Buffer
	for name, l := range map[string]*slog.Logger{
		"other handler": slog.New(slog.NewJSONHandler(&out, nil)).With("component", "gateway"),
		"group":         New(&out, slog.LevelInfo, "json").WithGroup("g"),
		"any attribute": New(&out, slog.LevelInfo, "json").With("component", struct{ A int }{1}),
	} {
		out.Reset()
		ln := Start(WithCorrelationID(context.Background(), "req-9"), l, slog.LevelInfo, "http request")
		if ln.fast != nil {
			t.Fatalf("%s: took the fast path", name)
		}
		buf := []byte("aliased")
		ln.String("route", string(buf)) // copied: the buffer may be reused before slog keeps the value
		ln.Int("status", 200)
		ln.Float("duration_ms", 0.5)
		ln.End()
		got := out.String()
		for _, want := range []string{`"msg":"http request"`, `"route":"aliased"`, `"status":200`, `"duration_ms":0.5`} {
			if !strings.Contains(got, want) {
				t.Errorf("%s: %s lacks %s", name, got, want)
			}
		}
		if name != "other handler" && !strings.Contains(got, `"correlation_id":"req-9"`) {
			t.Errorf("%s: %s lacks the correlation ID", name, got)
		}
	}
}

// TestLineDisabled: a level the logger drops gives a nil Line, on which
// every method does nothing.
func TestLineDisabled(t *testing.T) {
	var out bytes.Buffer
	ln := Start(context.Background(), New(&out, slog.LevelWarn, "json"), slog.LevelInfo, "http request")
	if ln != nil {
		t.Fatal("Start returned a Line for a level the logger drops")
	}
	ln.String("k", "v")
	ln.Int("k", 1)
	ln.Float("k", 1)
	ln.End()
	if out.Len() != 0 {
		t.Fatalf("wrote %q", out.String())
	}
}

// TestLineAllocations: the access log's record costs no allocation on the
// fast path, correlation and trace IDs included.
func TestLineAllocations(t *testing.T) {
	l := New(io.Discard, slog.LevelInfo, "json").With("component", "gateway")
	ctx := WithCorrelationID(trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}})), "0f1e2d3c")
	allocs := testing.AllocsPerRun(1000, func() {
		ln := Start(ctx, l, slog.LevelInfo, "http request")
		ln.String("method", "GET")
		ln.String("route", "/api/v1/auth/me")
		ln.Int("status", 200)
		ln.Float("duration_ms", 0.123)
		ln.String("user_agent", "Mozilla/5.0 (X11; Linux x86_64) \"quoted\"")
		ln.End()
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per record, want 0", allocs)
	}
}

// BenchmarkAccessLine compares an access-log record written through a Line
// with the same record through slog's LogAttrs on the same logger; both
// write to io.Discard, so this is the encoding alone.
func BenchmarkAccessLine(b *testing.B) {
	l := New(io.Discard, slog.LevelInfo, "json").With("component", "gateway")
	ctx := WithCorrelationID(context.Background(), "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
	b.Run("line", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ln := Start(ctx, l, slog.LevelInfo, "http request")
			ln.String("method", "GET")
			ln.String("route", "/api/v1/auth/me")
			ln.Int("status", 200)
			ln.Float("duration_ms", 0.123)
			ln.String("client_addr", "127.0.0.1")
			ln.String("user_agent", "fasthttp")
			ln.String("user_id", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
			ln.End()
		}
	})
	b.Run("slog", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			l.LogAttrs(ctx, slog.LevelInfo, "http request", slog.String("method", "GET"), slog.String("route", "/api/v1/auth/me"),
				slog.Int("status", 200), slog.Float64("duration_ms", 0.123), slog.String("client_addr", "127.0.0.1"),
				slog.String("user_agent", "fasthttp"), slog.String("user_id", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"))
		}
	})
}

// TestLineConcurrent writes Lines and slog records from many goroutines to
// a writer that does not lock itself: every record arrives whole (and the
// race detector sees no unguarded write).
func TestLineConcurrent(t *testing.T) {
	var out bytes.Buffer
	l := New(&out, slog.LevelInfo, "json")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if g%2 == 0 {
					ln := Start(context.Background(), l, slog.LevelInfo, "line")
					ln.Int("i", int64(i))
					ln.End()
				} else {
					l.Info("slog", "i", i)
				}
			}
		})
	}
	wg.Wait()
	n := 0
	for line := range strings.Lines(out.String()) {
		n++
		if !strings.HasPrefix(line, `{"time":`) || !strings.HasSuffix(line, "}\n") {
			t.Fatalf("torn record %q", line)
		}
	}
	if n != 8*200 {
		t.Fatalf("%d records, want %d", n, 8*200)
	}
}

// appendMillis writes exactly what strconv does, or declines.
func TestAppendMillis(t *testing.T) {
	values := []float64{0.001, 0.01, 0.1, 0.5, 0.999, 1, 1.05, 1.23, 1.234, 12.3, 999.999, 1000, 123456.789,
		-0.001, -1.5, 999999999999.999, 1e12, -1e12, 1e-7, 0.0005, 1.2345, 0.1 + 0.2, math.MaxFloat64, 1e300}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		values = append(values, float64(rng.Int64N(1e9))/1000, float64(rng.Int64N(1e15))/1000, float64(rng.Int64N(1e18))/1000, rng.Float64()*1e6)
	}
	claimed := 0
	for _, v := range values {
		want := strconv.AppendFloat(nil, v, 'f', -1, 64)
		got, ok := appendMillis(nil, v)
		if !ok {
			continue
		}
		claimed++
		if string(got) != string(want) {
			t.Fatalf("appendMillis(%v) = %s, strconv writes %s", v, got, want)
		}
	}
	if claimed < 199_000 {
		t.Fatalf("appendMillis wrote only %d of %d whole thousandths", claimed, len(values))
	}
}

// TestAppendRFC3339Nano compares the access line's time with
// time.RFC3339Nano over fractions with and without trailing zeros, whole
// seconds, zones and seconds met again after another one.
func TestAppendRFC3339Nano(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("east", 5*3600+30*60), time.FixedZone("west", -7*3600), time.Local}
	base := time.Date(2026, 12, 7, 21, 27, 42, 0, time.UTC)
	nanos := []int{0, 1, 10, 100_000, 123_456_789, 500_000_000, 999_999_999, 120_000_000, 7}
	var times []time.Time
	for i := range 400 {
		for _, loc := range zones {
			times = append(times, base.Add(time.Duration(i%7)*time.Second+time.Duration(nanos[i%len(nanos)])).In(loc))
		}
	}
	times = append(times, time.Now(), time.Now().Add(-time.Hour), time.Unix(0, 0).UTC(), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC))
	var last atomic.Pointer[second]
	for _, tm := range times {
		if got, want := string(appendRFC3339Nano([]byte("x"), tm, &last)), tm.AppendFormat([]byte("x"), time.RFC3339Nano); got != string(want) {
			t.Fatalf("%v: got %s, want %s", tm, got, want)
		}
	}
}

// TestStartAt: a record started at a given time carries it, on the fast
// path and through slog.
func TestStartAt(t *testing.T) {
	at := time.Date(2026, 12, 7, 21, 27, 42, 123_400_000, time.UTC)
	var out bytes.Buffer
	for name, l := range map[string]*slog.Logger{
		"fast": New(&out, slog.LevelInfo, "json"),
		"slog": slog.New(slog.NewJSONHandler(&out, nil)),
	} {
		out.Reset()
		ln := StartAt(context.Background(), l, slog.LevelInfo, "http request", at)
		ln.Int("status", 200)
		ln.End()
		if want := `{"time":"2026-12-07T21:27:42.1234Z",`; !strings.HasPrefix(out.String(), want) {
			t.Errorf("%s: %q does not start with %s", name, out.String(), want)
		}
	}
}
