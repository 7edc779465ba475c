package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// plainHandler writes log records as short lines for a person at a terminal:
// "migration applied: version=1 name=init", with "warning: " or "error: "
// in front of records at those levels. The administrative commands use it
// unless KOWAI_LOG_FORMAT asks for json or text; serve always logs
// structured records.
type plainHandler struct {
	w     io.Writer
	mu    *sync.Mutex
	level slog.Leveler
	attrs []slog.Attr
	group string
}

func newPlainHandler(w io.Writer, level slog.Leveler) *plainHandler {
	return &plainHandler{w: w, mu: &sync.Mutex{}, level: level}
}

func (h *plainHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *plainHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	}
	b.WriteString(r.Message)
	sep := ": "
	write := func(a slog.Attr, prefix string) {
		// Which component logged is noise to the person who ran the command.
		if a.Key == "component" || a.Equal(slog.Attr{}) {
			return
		}
		b.WriteString(sep)
		sep = " "
		fmt.Fprintf(&b, "%s%s=%v", prefix, a.Key, a.Value.Resolve())
	}
	for _, a := range h.attrs {
		write(a, "")
	}
	prefix := ""
	if h.group != "" {
		prefix = h.group + "."
	}
	r.Attrs(func(a slog.Attr) bool {
		write(a, prefix)
		return true
	})
	b.WriteString("\n")
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *plainHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	prefix := ""
	if h.group != "" {
		prefix = h.group + "."
	}
	c.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range attrs {
		a.Key = prefix + a.Key
		c.attrs = append(c.attrs, a)
	}
	return &c
}

func (h *plainHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	if c.group != "" {
		c.group += "."
	}
	c.group += name
	return &c
}
