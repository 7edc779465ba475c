package logging

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"unsafe"

	"go.opentelemetry.io/otel/trace"
)

type ctxKey struct{}

// WithCorrelationID returns a context carrying id; every record logged with
// that context (slog's *Context methods) gets a correlation_id attribute.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return &correlationCtx{Context: ctx, id: id}
}

// WithCorrelationIDBytes is WithCorrelationID for an ID given as bytes,
// which may alias a buffer that is reused later: it copies them and returns
// the ID as a string too. An ID of up to 36 bytes (a UUID's text) is kept in
// the context itself, so the context and the string are one allocation: the
// gateway makes one per request.
func WithCorrelationIDBytes(ctx context.Context, id []byte) (context.Context, string) {
	c := &correlationCtx{Context: ctx}
	if len(id) > 0 && len(id) <= len(c.buf) {
		n := copy(c.buf[:], id)
		// c.buf is never written again: the string is immutable.
		c.id = unsafe.String(&c.buf[0], n)
	} else {
		c.id = string(id)
	}
	return c, c.id
}

// correlationCtx is context.WithValue(parent, ctxKey{}, id) in one
// allocation instead of two (WithValue's and the boxed string's): the
// gateway makes one per request. Its value is itself, a pointer, which
// needs no box.
type correlationCtx struct {
	context.Context
	id string
	// buf holds id when WithCorrelationIDBytes copied it here.
	buf [36]byte
}

// Value implements context.Context.
func (c *correlationCtx) Value(key any) any {
	if key == (ctxKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// CorrelationID returns the correlation ID carried by ctx, or "".
func CorrelationID(ctx context.Context) string {
	if c, ok := ctx.Value(ctxKey{}).(*correlationCtx); ok {
		return c.id
	}
	return ""
}

// ParseLevel maps debug, info, warn and error to slog levels.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, errors.New("want debug, info, warn or error")
	}
	return l, nil
}

// New returns a logger writing JSON (format "json") or logfmt-like text
// (format "text") at level and above, which adds the context's correlation ID
// to every record, and its span's trace_id and span_id when it carries a
// sampled span (tracing on).
//
// Lines (Start) on it and on its With children are encoded without slog's
// machinery, in the same form.
func New(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	lw := lockWriter(w)
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(lw, opts)
	} else {
		h = slog.NewJSONHandler(lw, opts)
	}
	return slog.New(correlationHandler{Handler: h, fast: &fastSink{w: lw, json: format != "text"}})
}

// correlationHandler decorates records with the correlation ID and the
// trace and span IDs of their context, so call sites never have to pass them
// by hand. fast, when set, lets Lines bypass the handler (see Line).
type correlationHandler struct {
	slog.Handler
	fast *fastSink
}

func (h correlationHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx == nil {
		return h.Handler.Handle(ctx, r)
	}
	if id := CorrelationID(ctx); id != "" {
		r.AddAttrs(slog.String("correlation_id", id))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h correlationHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return correlationHandler{Handler: h.Handler.WithAttrs(attrs), fast: h.fast.withAttrs(attrs)}
}

func (h correlationHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	// Lines write no groups: a grouped logger's Lines go through slog.
	return correlationHandler{Handler: h.Handler.WithGroup(name)}
}

// Quiet returns a logger that writes l's Info records at Debug level, for
// chatty libraries whose routine messages (member joined, topology hashes)
// would drown kowai's own at the default level. Warnings and errors keep
// their level.
func Quiet(l *slog.Logger) *slog.Logger {
	return slog.New(quietHandler{l.Handler()})
}

type quietHandler struct{ slog.Handler }

func quieted(level slog.Level) slog.Level {
	if level < slog.LevelWarn && level >= slog.LevelInfo {
		return slog.LevelDebug
	}
	return level
}

func (h quietHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.Handler.Enabled(ctx, quieted(level))
}

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = quieted(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(attrs)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}
