package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
}

// MetricsServer serves GET /metrics in the Prometheus text format on a
// listener of its own, never on the public API port: series names, routes
// and counts tell an outsider more than they should, and scraping need not
// pass the API's rate limits.
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError), MaxRequestsInFlight: 4, Timeout: 10 * time.Second,
	}))
	return &MetricsServer{opts: opts, log: log, bound: newBoundAddr(), srv: &http.Server{
		Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 15 * time.Second,
		IdleTimeout: time.Minute, MaxHeaderBytes: 8 << 10, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}, nil
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
