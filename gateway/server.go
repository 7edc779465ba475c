package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/kowai/kowai/gateway/clientaddr"
	"github.com/kowai/kowai/internal/tracing"
)

// Check is one dependency probe reported by the health endpoints.
type Check struct {
	// Name labels the check in /health output, e.g. "database".
	Name string
	// Probe returns nil when the dependency is usable. It gets a context
	// with a short deadline.
	Probe func(ctx context.Context) error
}

// Options configures a Server. Logger and Registry are required.
type Options struct {
	// Addr is the listen address, e.g. ":8080" or "127.0.0.1:0".
	Addr string
	// Logger receives access logs and errors.
	Logger *slog.Logger
	// Registry receives the gateway's metrics. They are not served on Addr:
	// a MetricsServer serves them on an address of their own.
	Registry prometheus.Registerer
	// TrustedProxies are the networks whose X-Forwarded-For and Forwarded
	// headers give the client address (KOWAI_TRUSTED_PROXIES); empty
	// believes nobody's. See package clientaddr.
	TrustedProxies []netip.Prefix
	// Checks are probed by /health/ready and /health.
	Checks []Check
	// Draining, when it returns true, makes /health/ready fail so load
	// balancers stop sending new work while the node leaves the cluster.
	Draining func() bool
	// CORSOrigins are the origins allowed to call the API from a browser;
	// empty means same-origin only (no CORS headers at all).
	CORSOrigins []string
	// BodyLimit caps request bodies in bytes (default 1 MiB), before and
	// after decompression.
	BodyLimit int
	// RequestTimeout bounds reads and writes of one request (default 60 s);
	// an idle keep-alive connection is closed after twice as long. Both fire
	// up to a hundredth of RequestTimeout late, at most half a second (see
	// deadlineListener).
	RequestTimeout time.Duration
	// ShutdownTimeout bounds the wait for in-flight requests on shutdown
	// (default 15 s).
	ShutdownTimeout time.Duration
	// Tracing records a server span for every HTTP request (joining the
	// caller's trace when it sends a W3C traceparent header) and one for every
	// WebSocket message; nil turns tracing off.
	Tracing trace.TracerProvider
}

// Server is kowai's HTTP gateway.
//
// Lifecycle: New builds the routes; Run listens and serves until its context
// is cancelled, then stops accepting connections and waits up to
// ShutdownTimeout for in-flight requests. Run may be called once.
type Server struct {
	app     *fiber.App
	opts    Options
	log     *slog.Logger
	clients *clientaddr.Resolver
	metrics *httpMetrics
	onError fiber.ErrorHandler
	// tracer is nil when tracing is off.
	tracer trace.Tracer
	// anonymous counts requests without accepted credentials per client
	// address; Mount sets it, before Run. Nil means no limit.
	anonymous func(c *fiber.Ctx) error

	bound boundAddr

	docsMu sync.Mutex
	docs   []documented
}

// New returns a gateway with its middleware chain and the routes that exist
// on every node (health, API documents).
func New(opts Options) (*Server, error) {
	if opts.Logger == nil || opts.Registry == nil {
		return nil, errors.New("gateway: Logger and Registry are required")
	}
	if opts.BodyLimit == 0 {
		opts.BodyLimit = 1 << 20
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 60 * time.Second
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 15 * time.Second
	}
	if opts.Draining == nil {
		opts.Draining = func() bool { return false }
	}
	log := opts.Logger.With("component", "gateway")
	metrics, err := newHTTPMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	onError := ErrorHandler(log)
	app := fiber.New(fiber.Config{
		AppName:               "kowai",
		DisableStartupMessage: true,
		BodyLimit:             opts.BodyLimit,
		ReadTimeout:           opts.RequestTimeout,
		WriteTimeout:          opts.RequestTimeout,
		IdleTimeout:           2 * opts.RequestTimeout,
		ErrorHandler:          onError,
		// Behind a proxy the operator decides; by default trust nothing.
		EnableTrustedProxyCheck: true,
	})
	s := &Server{app: app, opts: opts, log: log, clients: clientaddr.New(opts.TrustedProxies), metrics: metrics,
		onError: onError, bound: newBoundAddr(), tracer: tracing.Tracer(opts.Tracing, "github.com/kowai/kowai/gateway")}
	// Requests fasthttp refuses before any handler runs (body over the
	// limit, headers too large, malformed) are answered by serverError.
	app.Server().ErrorHandler = s.serverError
	app.Use(s.clients.Middleware(), requestID())
	if s.tracer != nil {
		app.Use(traceRequests(s.tracer))
	}
	app.Use(observe(log, metrics, onError), recoverPanics(log), securityHeaders(), decompressBody(opts.BodyLimit))
	if len(opts.CORSOrigins) > 0 {
		app.Use(cors.New(cors.Config{
			AllowOrigins:  strings.Join(opts.CORSOrigins, ","),
			AllowMethods:  "GET,POST,PUT,PATCH,DELETE",
			AllowHeaders:  "Authorization,Content-Type,Idempotency-Key,X-Request-ID,X-Kowai-Conversation-Id",
			ExposeHeaders: "X-Request-ID,Retry-After,RateLimit-Limit,RateLimit-Remaining,RateLimit-Reset,X-Kowai-Stream-Id,X-Kowai-Conversation-Id,Idempotency-Key",
			MaxAge:        600,
		}))
	}

	s.Route(fiber.MethodGet, "/health/live", Op{Summary: "The process is up", Tag: "Health", Response: healthReport{}},
		sendLive)
	s.Route(fiber.MethodGet, "/health/ready", Op{Summary: "The node can serve: database, cache and cluster reachable, not draining", Tag: "Health",
		Response: healthReport{}, Errors: []int{http.StatusServiceUnavailable}}, s.health(false))
	s.Route(fiber.MethodGet, "/health", Op{Summary: "Every check with its detail", Tag: "Health",
		Response: healthReport{}, Errors: []int{http.StatusServiceUnavailable}}, s.health(true))
	s.registerDocs()
	if err := s.registerConsole(); err != nil {
		return nil, err
	}
	return s, nil
}

// App exposes the Fiber app so feature packages can add routes before Run.
func (s *Server) App() *fiber.App { return s.app }

type checkResult struct {
	Status     string  `json:"status"`
	Error      string  `json:"error,omitempty"`
	DurationMS float64 `json:"duration_ms"`
}

// healthReport is the body of the health endpoints.
type healthReport struct {
	Status   string                 `json:"status" doc:"ok, unavailable or draining"`
	Draining bool                   `json:"draining,omitempty"`
	Checks   map[string]checkResult `json:"checks,omitempty"`
}

// liveBody is /health/live's answer, healthReport{Status: "ok"} encoded once
// (TestLiveBody): probes and load balancers call it all the time.
var liveBody = []byte(`{"status":"ok"}`)

// sendLive answers /health/live: the process is up.
func sendLive(c *fiber.Ctx) error {
	c.Response().Header.SetContentType(fiber.MIMEApplicationJSON)
	c.Response().SetBody(liveBody) // copied
	return nil
}

// health serves readiness (detail=false) and the full report (detail=true).
// Both answer 503 when a check fails or the node is draining; only the full
// report includes error texts.
func (s *Server) health(detail bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
		defer cancel()
		results := make(map[string]checkResult, len(s.opts.Checks))
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, chk := range s.opts.Checks {
			wg.Go(func() {
				start := time.Now()
				err := chk.Probe(ctx)
				r := checkResult{Status: "ok", DurationMS: float64(time.Since(start).Microseconds()) / 1000}
				if err != nil {
					r.Status = "unavailable"
					if detail {
						r.Error = err.Error()
					}
				}
				mu.Lock()
				results[chk.Name] = r
				mu.Unlock()
			})
		}
		wg.Wait()
		status, code := "ok", http.StatusOK
		for _, r := range results {
			if r.Status != "ok" {
				status, code = "unavailable", http.StatusServiceUnavailable
			}
		}
		draining := s.opts.Draining()
		if draining {
			status, code = "draining", http.StatusServiceUnavailable
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Status(code).JSON(healthReport{Status: status, Draining: draining, Checks: results})
	}
}

// Addr returns the bound address once Run is listening, or nil.
func (s *Server) Addr() net.Addr { return s.bound.get() }

// boundAddr publishes the address a server's Run listens on: addr is
// written once, before up is closed, and read only after.
type boundAddr struct {
	addr net.Addr
	up   chan struct{}
}

func newBoundAddr() boundAddr { return boundAddr{up: make(chan struct{})} }

// set records the bound address and closes up; call it once.
func (b *boundAddr) set(a net.Addr) {
	b.addr = a
	close(b.up)
}

// get returns the bound address, or nil before set.
func (b *boundAddr) get() net.Addr {
	select {
	case <-b.up:
		return b.addr
	default:
		return nil
	}
}

// Ready is closed once Run is listening.
func (s *Server) Ready() <-chan struct{} { return s.bound.up }

// Run listens on Options.Addr and serves until ctx is done, then shuts down
// gracefully. It returns nil after a clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	s.finishRoutes()
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("gateway: listen on %s (set KOWAI_HTTP_ADDR): %w", s.opts.Addr, err)
	}
	s.bound.set(ln.Addr())
	s.log.Info("gateway listening", "addr", ln.Addr().String())
	deadlines := newDeadlineListener(ln, deadlineTick(s.opts.RequestTimeout))
	defer deadlines.stop()
	lingering := newLingerListener(deadlines)
	defer lingering.stop()
	served := make(chan error, 1)
	go func() { served <- s.app.Listener(lingering) }()
	select {
	case err := <-served:
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := s.app.ShutdownWithContext(sctx); err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	// Shutdown does nothing when Serve has not started yet (a context
	// cancelled at once); a closed listener makes a late Serve return.
	if err := lingering.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("gateway: close listener: %w", err)
	}
	if err := <-served; err != nil {
		return fmt.Errorf("gateway: serve: %w", err)
	}
	s.log.Info("gateway stopped")
	return nil
}

// finishRoutes ends the chain once every route is registered: requests no
// route matched are anonymous too (see limitAnonymous); registered after
// every route, only they reach it.
func (s *Server) finishRoutes() {
	s.app.Use(s.limitAnonymous)
}

// ClientAddr returns the address the request came from: the connection's
// peer, or the client a trusted proxy forwarded for (Options.TrustedProxies).
// Every per-address limit, throttle, log line and audit entry uses it.
func ClientAddr(c *fiber.Ctx) string { return clientaddr.From(c) }

// limitAnonymous counts a request that carries no accepted credentials
// against its client address's anonymous bucket, once Mount has set one.
func (s *Server) limitAnonymous(c *fiber.Ctx) error {
	if s.anonymous != nil {
		if err := s.anonymous(c); err != nil {
			return err
		}
	}
	return c.Next()
}

// serverError answers a request fasthttp refused before any handler ran, in
// the same problem+json, with the same headers, log line and metrics as
// every other answer. The connection closes after it with a lingering close,
// so a client still sending its body reads the answer instead of a reset.
func (s *Server) serverError(fctx *fasthttp.RequestCtx, err error) {
	start := time.Now()
	if lc, ok := fctx.Conn().(*lingerConn); ok {
		lc.lingerOnClose()
	}
	c := s.app.AcquireCtx(fctx)
	defer s.app.ReleaseCtx(c)
	s.clients.Store(c)
	assignRequestID(c)
	if herr := s.onError(c, refusal(err, s.opts.BodyLimit)); herr != nil {
		s.log.Error("rendering a refusal failed", "error", herr)
		c.Status(http.StatusInternalServerError)
	}
	end := time.Now()
	s.metrics.record(c, s.log, routeUnmatched, end, end.Sub(start))
}

// refusal turns fasthttp's reason for refusing a request into the problem
// the client gets; its text never reaches the client.
func refusal(err error, bodyLimit int) *Error {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &small):
		return &Error{Status: http.StatusRequestHeaderFieldsTooLarge, Detail: "the request's headers are too large", Err: err}
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return &Error{Status: http.StatusRequestEntityTooLarge, Detail: "the body exceeds " + strconv.Itoa(bodyLimit) + " bytes", Err: err}
	case errors.As(err, &netErr) && netErr.Timeout():
		return &Error{Status: http.StatusRequestTimeout, Detail: "the request was not received in time", Err: err}
	case errors.Is(err, fasthttp.ErrGetOnly):
		return &Error{Status: http.StatusMethodNotAllowed, Err: err}
	}
	return &Error{Status: http.StatusBadRequest, Detail: "the request is not valid HTTP/1.1", Err: err}
}
