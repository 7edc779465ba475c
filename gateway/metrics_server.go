package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsOptions configures a MetricsServer. Addr, Gatherer and Logger are
// required.
type MetricsOptions struct {
	// Addr is the listen address (KOWAI_METRICS_ADDR), e.g. "127.0.0.1:9090"
	// or "127.0.0.1:0".
	Addr string
	// Gatherer is what /metrics serves (normally the node's registry).
	Gatherer prometheus.Gatherer
	// Logger receives the server's start, stop and errors.
	Logger *slog.Logger
	// Pprof serves the runtime's profiles (net/http/pprof) under /debug/pprof/
	// as well (KOWAI_PPROF); off by default. They show the program's code,
	// command line and memory, so the address must be reachable only by
	// operators.
	Pprof bool
}

// metricsWriteTimeout bounds the writing of a scrape's answer; a profile's answer
// gets its duration on top.
const metricsWriteTimeout = 15 * time.Second

// MetricsServer serves GET /metrics in the Prometheus text format on a
// listener of its own, never on the public API port: series names, routes
// and counts tell an outsider more than they should, and scraping need not
// pass the API's rate limits.
//
// With MetricsOptions.Pprof it also serves net/http/pprof's handlers under
// /debug/pprof/ (the index, cmdline, profile, symbol, trace and the named
// profiles such as heap, allocs and goroutine), again never on the API port.
//
// Lifecycle: NewMetricsServer validates; Run listens, serves until its
// context ends, then shuts down (waiting up to 5 s for a scrape in flight).
// Run may be called once.
type MetricsServer struct {
	opts MetricsOptions
	srv  *http.Server
	log  *slog.Logger

	bound boundAddr
}

// NewMetricsServer returns a metrics server that is not yet listening.
func NewMetricsServer(opts MetricsOptions) (*MetricsServer, error) {
	if opts.Addr == "" || opts.Gatherer == nil || opts.Logger == nil {
		return nil, errors.New("gateway: MetricsOptions needs Addr, Gatherer and Logger")
	}
	log := opts.Logger.With("component", "metrics")
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", writeDeadline(promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError), MaxRequestsInFlight: 4, Timeout: 10 * time.Second,
	})))
	if opts.Pprof {
		// Registered on this mux only: the package's own registration is on
		// http.DefaultServeMux, which nothing in kowai serves.
		mux.Handle("GET /debug/pprof/", writeDeadline(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/cmdline", writeDeadline(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("GET /debug/pprof/profile", writeDeadline(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/symbol", writeDeadline(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("POST /debug/pprof/symbol", writeDeadline(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("GET /debug/pprof/trace", writeDeadline(http.HandlerFunc(pprof.Trace)))
		log.Warn("pprof enabled on the metrics address", "path", "/debug/pprof/")
	}
	// The write deadline is set per request (writeDeadline): a server-wide
	// WriteTimeout would cut a CPU profile, whose answer takes its duration.
	return &MetricsServer{opts: opts, log: log, bound: newBoundAddr(), srv: &http.Server{
		Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		IdleTimeout: time.Minute, MaxHeaderBytes: 8 << 10, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}, nil
}

// writeDeadline gives h's answer metricsWriteTimeout to be written, plus the
// duration a profile or trace asks for in its seconds parameter.
func writeDeadline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := metricsWriteTimeout
		// The query only: a symbol lookup's POST body is pprof's to read.
		if s, err := strconv.ParseInt(r.URL.Query().Get("seconds"), 10, 64); err == nil && s > 0 {
			d += time.Duration(min(s, 24*3600)) * time.Second
		} else if r.URL.Path == "/debug/pprof/profile" {
			// pprof's default CPU profile lasts 30 s.
			d += 30 * time.Second
		}
		if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d)); err != nil {
			http.Error(w, "cannot set a write deadline", http.StatusInternalServerError)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Addr returns the bound address once Run is listening, or nil.
func (m *MetricsServer) Addr() net.Addr { return m.bound.get() }

// Ready is closed once Run is listening.
func (m *MetricsServer) Ready() <-chan struct{} { return m.bound.up }

// Run listens on MetricsOptions.Addr and serves until ctx is done. It
// returns nil after a clean shutdown.
func (m *MetricsServer) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", m.opts.Addr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s (set KOWAI_METRICS_ADDR, or off): %w", m.opts.Addr, err)
	}
	m.bound.set(ln.Addr())
	m.log.Info("metrics listening", "addr", ln.Addr().String())
	served := make(chan error, 1)
	go func() { served <- m.srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("metrics: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("metrics: shutdown: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: serve: %w", err)
	}
	m.log.Info("metrics stopped")
	return nil
}
