package logging

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"

	"github.com/kowai/kowai/internal/jsontext"
)

// Line is one log record built field by field, for a call site that logs on
// every request (the gateway's access log). On a logger made by New (and its
// With children) it encodes the record straight into a pooled buffer, in the
// same JSON or text form slog's handlers write, correlation and trace IDs
// included, and hands it to the writer in one Write: no attribute slice, no
// reflection, no allocation. On any other logger it collects slog
// attributes and logs them with LogAttrs.
//
// Start a Line, add fields, then End it; a Line must not be used after End.
// Every method is a no-op on a nil *Line, which Start returns when the
// logger does not log the level, so the caller pays nothing for a record
// nobody keeps.
type Line struct {
	ctx   context.Context
	log   *slog.Logger
	level slog.Level
	msg   string
	time  time.Time
	// fast, when set, is where the encoded record in buf goes; otherwise the
	// fields are collected in attrs.
	fast  *fastSink
	buf   []byte
	attrs []slog.Attr
}

var linePool = sync.Pool{New: func() any { return &Line{buf: make([]byte, 0, 512)} }}

// maxPooledLine keeps an occasional huge record from pinning its buffer.
const maxPooledLine = 16 << 10

// Start begins a record of level with msg on l, timed now, or returns nil
// when l does not log level.
func Start(ctx context.Context, l *slog.Logger, level slog.Level, msg string) *Line {
	return StartAt(ctx, l, level, msg, time.Time{})
}

// StartAt is Start for a record timed at t (the zero time means now), for a
// caller that has just read the clock: the access log's record is timed when
// the request's duration is measured, one clock read for both.
func StartAt(ctx context.Context, l *slog.Logger, level slog.Level, msg string, t time.Time) *Line {
	if ctx == nil {
		ctx = context.Background()
	}
	if !l.Enabled(ctx, level) {
		return nil
	}
	if t.IsZero() {
		t = time.Now()
	}
	ln := linePool.Get().(*Line)
	ln.ctx, ln.log, ln.level, ln.msg, ln.time = ctx, l, level, msg, t
	if h, ok := l.Handler().(correlationHandler); ok && h.fast != nil {
		ln.fast = h.fast
		ln.buf = h.fast.begin(ln.buf[:0], t, level, msg)
	}
	return ln
}

// String adds a string field. value may alias a buffer that is reused after
// End returns: it is copied.
func (ln *Line) String(key, value string) {
	if ln == nil {
		return
	}
	if ln.fast == nil {
		ln.attrs = append(ln.attrs, slog.String(key, strings.Clone(value)))
		return
	}
	ln.buf = ln.fast.key(ln.buf, key)
	ln.buf = ln.fast.str(ln.buf, value)
}

// Int adds an integer field.
func (ln *Line) Int(key string, value int64) {
	if ln == nil {
		return
	}
	if ln.fast == nil {
		ln.attrs = append(ln.attrs, slog.Int64(key, value))
		return
	}
	ln.buf = ln.fast.key(ln.buf, key)
	ln.buf = strconv.AppendInt(ln.buf, value, 10)
}

// Float adds a floating-point field.
func (ln *Line) Float(key string, value float64) {
	if ln == nil {
		return
	}
	if ln.fast == nil {
		ln.attrs = append(ln.attrs, slog.Float64(key, value))
		return
	}
	ln.buf = ln.fast.key(ln.buf, key)
	ln.buf = ln.fast.float(ln.buf, value)
}

// End adds the context's correlation and trace IDs, writes the record and
// recycles the Line. Like slog.Logger's methods it reports nothing: a log
// that cannot be written has nowhere to say so (a Buffer keeps its writer's
// error for its next Flush or Close).
func (ln *Line) End() {
	if ln == nil {
		return
	}
	if ln.fast == nil {
		r := slog.NewRecord(ln.time, ln.level, ln.msg, 0)
		r.AddAttrs(ln.attrs...)
		// As slog.Logger's methods, a handler's error is not reported.
		_ = ln.log.Handler().Handle(ln.ctx, r)
	} else {
		ln.buf = ln.fast.end(ln.buf, ln.ctx)
		ln.fast.write(ln.buf)
	}
	clear(ln.attrs)
	*ln = Line{buf: ln.buf[:0], attrs: ln.attrs[:0]}
	if cap(ln.buf) <= maxPooledLine {
		linePool.Put(ln)
	}
}

// fastSink is where Lines of one logger made by New go: the writer its
// handler writes to, its format, and the attributes added with With, already
// encoded.
type fastSink struct {
	w    *lockedWriter
	json bool
	// pre are the With attributes, encoded with a leading separator each.
	pre []byte
	// second is the last second a record was timed in, formatted.
	second atomic.Pointer[second]
}

// lockedWriter serializes the Writes of a logger's slog handler and of its
// Lines: slog's handlers lock their own writes only, and the writer given to
// New need not be safe for concurrent use. A nil mu means w is safe already.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

// lockWriter wraps w, with a lock unless w is known to lock itself (a
// Buffer, io.Discard): the access log takes that lock on every request.
func lockWriter(w io.Writer) *lockedWriter {
	if _, ok := w.(*Buffer); ok || w == io.Discard {
		return &lockedWriter{w: w}
	}
	return &lockedWriter{mu: new(sync.Mutex), w: w}
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	if l.mu == nil {
		return l.w.Write(p)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// withAttrs returns the sink of a With child, or nil when an attribute is of
// a kind the Line encoder does not write the way slog does (then that
// logger's Lines go through slog).
func (f *fastSink) withAttrs(attrs []slog.Attr) *fastSink {
	if f == nil {
		return nil
	}
	g := &fastSink{w: f.w, json: f.json, pre: append([]byte(nil), f.pre...)}
	for _, a := range attrs {
		if a.Key == "" {
			return nil
		}
		g.pre = g.key(g.pre, a.Key)
		switch v := a.Value.Resolve(); v.Kind() {
		case slog.KindString:
			g.pre = g.str(g.pre, v.String())
		case slog.KindInt64:
			g.pre = strconv.AppendInt(g.pre, v.Int64(), 10)
		case slog.KindUint64:
			g.pre = strconv.AppendUint(g.pre, v.Uint64(), 10)
		case slog.KindBool:
			g.pre = strconv.AppendBool(g.pre, v.Bool())
		default:
			return nil
		}
	}
	return g
}

// begin starts a record as slog's handler does: time, level, message and the
// With attributes.
func (f *fastSink) begin(b []byte, now time.Time, level slog.Level, msg string) []byte {
	if f.json {
		b = append(b, `{"time":"`...)
		b = appendRFC3339Nano(b, now, &f.second)
		b = append(b, `","level":`...)
		b = f.str(b, level.String())
		b = append(b, `,"msg":`...)
		b = f.str(b, msg)
	} else {
		b = append(b, "time="...)
		b = appendRFC3339Millis(b, now)
		b = append(b, " level="...)
		b = f.str(b, level.String())
		b = append(b, " msg="...)
		b = f.str(b, msg)
	}
	return append(b, f.pre...)
}

// key writes the separator and a field's key.
func (f *fastSink) key(b []byte, k string) []byte {
	if f.json {
		b = append(b, ',')
		b = f.str(b, k)
		return append(b, ':')
	}
	b = append(b, ' ')
	b = f.str(b, k)
	return append(b, '=')
}

// str writes a string value as slog does: a JSON string, or in text bare
// when it needs no quotes.
func (f *fastSink) str(b []byte, s string) []byte {
	if f.json {
		return jsontext.AppendString(b, s, jsontext.Slog)
	}
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// float writes a float as slog does: in JSON as encoding/json would (which
// has no NaN or infinity; those are written as strings), in text in the
// shortest 'g' form.
func (f *fastSink) float(b []byte, v float64) []byte {
	if !f.json {
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return f.str(b, strconv.FormatFloat(v, 'g', -1, 64))
	}
	if out, ok := appendMillis(b, v); ok {
		return out
	}
	return jsontext.AppendFloat(b, v)
}

// appendMillis writes v as strconv.AppendFloat(b, v, 'f', -1, 64) would
// when v is a whole number of thousandths below 1e12, such as the access
// log's duration_ms (microseconds / 1000), without the shortest-decimal
// search (4% of an authenticated read's CPU in process). Such a v's shortest
// decimal is that number of thousandths: any other decimal of as many
// digits is at least a thousandth away, far more than half the float's
// spacing below 1e12. ok is false for any other v.
func appendMillis(b []byte, v float64) ([]byte, bool) {
	const limit = 1e12
	if v == 0 || v <= -limit || v >= limit {
		return b, false
	}
	n := int64(math.Round(v * 1000))
	if float64(n)/1000 != v {
		return b, false
	}
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	b = strconv.AppendInt(b, n/1000, 10)
	frac := n % 1000
	if frac == 0 {
		return b, true
	}
	b = append(b, '.', byte('0'+frac/100))
	if frac%100 != 0 {
		b = append(b, byte('0'+frac/10%10))
		if frac%10 != 0 {
			b = append(b, byte('0'+frac%10))
		}
	}
	return b, true
}

// end adds what correlationHandler adds and closes the record.
func (f *fastSink) end(b []byte, ctx context.Context) []byte {
	if id := CorrelationID(ctx); id != "" {
		b = f.key(b, "correlation_id")
		b = f.str(b, id)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		tid, sid := sc.TraceID(), sc.SpanID()
		b = f.key(b, "trace_id")
		b = f.hexValue(b, tid[:])
		b = f.key(b, "span_id")
		b = f.hexValue(b, sid[:])
	}
	if f.json {
		b = append(b, '}')
	}
	return append(b, '\n')
}

// hexValue writes bytes as a lower-case hex string value (never needs
// quoting in text, always quoted in JSON).
func (f *fastSink) hexValue(b, id []byte) []byte {
	if f.json {
		b = append(b, '"')
		b = hex.AppendEncode(b, id)
		return append(b, '"')
	}
	return hex.AppendEncode(b, id)
}

// write hands one record to the writer; errors are the writer's to keep
// (see Line.End).
func (f *fastSink) write(b []byte) {
	_, _ = f.w.Write(b)
}

// appendRFC3339Millis is slog's text time format: RFC 3339 with exactly
// three fractional digits.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	// RFC3339Nano trims trailing zeros; adding a tenth of a millisecond keeps
	// four digits, and the fourth is dropped.
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}

// jsonSafe reports whether an ASCII byte goes into a JSON string as is.
func jsonSafe(c byte) bool { return c >= 0x20 && c != '"' && c != '\\' }

// needsQuoting is slog's text rule: empty strings, spaces, '=', anything a
// JSON string would escape (but a backslash), invalid UTF-8 and unprintable
// runes are quoted.
func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != '\\' && (c == ' ' || c == '=' || !jsonSafe(c)) {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// second is the RFC 3339 text of one second in one location: the date and
// time up to the seconds, and the zone.
type second struct {
	unix         int64
	loc          *time.Location
	prefix, zone []byte
}

// appendRFC3339Nano is t.AppendFormat(b, time.RFC3339Nano), slog's JSON
// time, without formatting the date and time again for every record of the
// same second (a tenth of a microsecond of each access line): last keeps the
// second formatted last, and only the fraction is written per call.
func appendRFC3339Nano(b []byte, t time.Time, last *atomic.Pointer[second]) []byte {
	s := last.Load()
	if s == nil || s.unix != t.Unix() || s.loc != t.Location() {
		s = &second{unix: t.Unix(), loc: t.Location(),
			prefix: t.AppendFormat(nil, "2006-01-02T15:04:05"), zone: t.AppendFormat(nil, "Z07:00")}
		last.Store(s)
	}
	b = append(b, s.prefix...)
	if ns := t.Nanosecond(); ns != 0 {
		// RFC3339Nano's fraction: nine digits, trailing zeros trimmed.
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := len(frac)
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, s.zone...)
}
