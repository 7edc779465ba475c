package main

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"
)

func TestPlainHandler(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  func(l *slog.Logger)
		want string
	}{
		{"info with attributes", func(l *slog.Logger) { l.Info("migration applied", "version", 1, "name", "init") }, "migration applied: version=1 name=init\n"},
		{"no attributes", func(l *slog.Logger) { l.Info("done") }, "done\n"},
		{"warning", func(l *slog.Logger) { l.Warn("file tightened", "file", "k.db") }, "warning: file tightened: file=k.db\n"},
		{"error", func(l *slog.Logger) { l.Error("failed", "error", errors.New("boom")) }, "error: failed: error=boom\n"},
		{"component dropped, other attributes kept", func(l *slog.Logger) { l.With("component", "migrate", "db", "x").Info("m", "v", 2) }, "m: db=x v=2\n"},
		{"groups", func(l *slog.Logger) { l.WithGroup("g").With("a", 1).Info("m", "b", 2) }, "m: g.a=1 g.b=2\n"},
		{"below the level", func(l *slog.Logger) { l.Debug("noise") }, ""},
	} {
		var buf bytes.Buffer
		tc.log(slog.New(newPlainHandler(&buf, slog.LevelInfo)))
		if buf.String() != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, buf.String(), tc.want)
		}
	}
}
