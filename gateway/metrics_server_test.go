package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/internal/logging"
)

// runMetrics runs a MetricsServer with opts on a free loopback port until the test
// ends and returns its base URL.
func runMetrics(t *testing.T, opts MetricsOptions) string {
	t.Helper()
	opts.Addr, opts.Logger = "127.0.0.1:0", logging.New(io.Discard, slog.LevelInfo, "json")
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.NewRegistry()
	}
	ms, err := NewMetricsServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ms.Run(ctx) }()
	select {
	case <-ms.Ready():
	case err := <-done:
		t.Fatalf("metrics server did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("metrics server: %v", err)
		}
	})
	return "http://" + ms.Addr().String()
}

// With Pprof the metrics address serves the runtime's profiles, /metrics still;
// without it (the default) /debug/pprof/ is not found there. The API port never
// serves them.
func TestMetricsServerPprof(t *testing.T) {
	on := runMetrics(t, MetricsOptions{Pprof: true})
	for path, want := range map[string]string{
		"/debug/pprof/":                     "goroutine",
		"/debug/pprof/heap?debug=1":         "heap profile",
		"/debug/pprof/goroutine?debug=1":    "goroutine profile",
		"/debug/pprof/cmdline":              "",
		"/debug/pprof/profile?seconds=1":    "",
		"/debug/pprof/trace?seconds=0.1":    "",
		"/debug/pprof/allocs?debug=1":       "heap profile",
		"/debug/pprof/threadcreate?debug=1": "threadcreate profile",
	} {
		res, body := get(t, on+path, nil)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s with pprof on: %d, %d bytes, want %q in it", path, res.StatusCode, len(body), want)
		}
	}
	if res, body := get(t, on+"/metrics", nil); res.StatusCode != http.StatusOK {
		t.Errorf("GET /metrics with pprof on: %d %s", res.StatusCode, body)
	}
	off := runMetrics(t, MetricsOptions{})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof/cmdline"} {
		if res, body := get(t, off+path, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s with pprof off: %d, %d bytes", path, res.StatusCode, len(body))
		}
	}
	ts := start(t, Options{}, nil)
	if res, body := get(t, ts.url+"/debug/pprof/", nil); res.StatusCode != http.StatusNotFound || strings.Contains(string(body), "goroutine") {
		t.Errorf("GET /debug/pprof/ on the API port: %d %s", res.StatusCode, body)
	}
}
