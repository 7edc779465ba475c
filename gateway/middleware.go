package gateway

import (
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/internal/logging"
)

// saneRequestID accepts client-supplied request IDs that are safe to echo and
// log: short, printable, no separators that could forge log fields.
var saneRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requestID takes X-Request-ID from the request when it is sane, otherwise
// makes one, and puts it in the response and in the request's context as
// the correlation ID.
func requestID() fiber.Handler {
	return func(c *fiber.Ctx) error {
		// Fiber's header strings alias a reused buffer; the ID outlives the request.
		id := strings.Clone(c.Get(fiber.HeaderXRequestID))
		if !saneRequestID.MatchString(id) {
			id = uuid.NewString()
		}
		c.Set(fiber.HeaderXRequestID, id)
		c.SetUserContext(logging.WithCorrelationID(c.UserContext(), id))
		return c.Next()
	}
}

// recoverPanics turns a handler panic into a 500 problem; the stack goes to
// the log, never to the client.
func recoverPanics(log *slog.Logger) fiber.Handler {
	return func(c *fiber.Ctx) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(c.UserContext(), "handler panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = &Error{Status: http.StatusInternalServerError, Title: http.StatusText(http.StatusInternalServerError),
					Detail: "an internal error occurred; quote the correlation_id when reporting it", Err: fmt.Errorf("panic: %v", r)}
			}
		}()
		return c.Next()
	}
}

// securityHeaders sets the headers every response carries.
func securityHeaders() fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		c.Set(fiber.HeaderXFrameOptions, "DENY")
		c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
		c.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'; frame-ancestors 'none'")
		return c.Next()
	}
}

// httpMetrics are the gateway's own Prometheus series.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kowai_http_requests_total", Help: "HTTP requests by route template, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kowai_http_request_duration_seconds", Help: "HTTP request latency by route template and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kowai_http_requests_in_flight", Help: "HTTP requests being served.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register http metrics: %w", err)
		}
	}
	return m, nil
}

// observe wraps the rest of the chain: it renders errors (so the status is
// final), then writes one access-log line and the metrics. The route label is
// the matched template, never the raw path, so IDs cannot blow up cardinality.
func observe(log *slog.Logger, m *httpMetrics, onError fiber.ErrorHandler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		if err := c.Next(); err != nil {
			if herr := onError(c, err); herr != nil {
				return herr
			}
		}
		route := "unmatched"
		if r := c.Route(); r != nil && r.Path != "" && c.Response().StatusCode() != http.StatusNotFound {
			route = r.Path
		}
		status := c.Response().StatusCode()
		elapsed := time.Since(start)
		method := c.Method()
		m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
		m.duration.WithLabelValues(route, method).Observe(elapsed.Seconds())
		attrs := []any{"method", method, "route", route, "status", status,
			"duration_ms", float64(elapsed.Microseconds()) / 1000}
		if p, ok := auth.PrincipalFrom(c); ok {
			attrs = append(attrs, "user_id", p.UserID)
		}
		log.InfoContext(c.UserContext(), "http request", attrs...)
		return nil
	}
}
