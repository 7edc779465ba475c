package gateway

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/clientaddr"
	"github.com/kowai/kowai/internal/logging"
)

// saneRequestID accepts client-supplied request IDs that are safe to echo and
// log: short, printable, no separators that could forge log fields. (Also
// used for idempotency keys, so kept as a pattern; requestID checks the same
// rule with isSaneRequestID, without the regexp engine.)
var saneRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// isSaneRequestID is saneRequestID.MatchString, hand-written: it runs on
// every request.
func isSaneRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// requestID takes X-Request-ID from the request when it is sane, otherwise
// makes one, and puts it in the response and in the request's context as
// the correlation ID.
func requestID() fiber.Handler {
	return func(c *fiber.Ctx) error {
		assignRequestID(c)
		return c.Next()
	}
}

// headerRequestID is X-Request-ID as fasthttp spells it once normalized, so
// setting it skips the normalization.
var headerRequestID = []byte("X-Request-Id")

// assignRequestID is requestID's work, for answers outside the chain too.
func assignRequestID(c *fiber.Ctx) {
	// A sane ID is at most 128 bytes.
	var buf [128]byte
	id := c.Request().Header.PeekBytes(headerRequestID)
	if !isSaneRequestID(string(id)) {
		id = appendRequestID(buf[:0])
	}
	c.Response().Header.SetCanonical(headerRequestID, id)
	// Fiber's header bytes alias a reused buffer and the ID outlives the
	// request: the context keeps a copy, a generated ID in the same
	// allocation as the context.
	ctx, _ := logging.WithCorrelationIDBytes(c.UserContext(), id)
	c.SetUserContext(ctx)
}

// appendRequestID appends a random (version 4) UUID's 36 bytes. A request ID
// need not be secret, only unique: math/rand/v2's generator (ChaCha8, seeded
// by the runtime from the system) costs no system call and no lock, where
// uuid.NewString read crypto/rand on every request.
func appendRequestID(dst []byte) []byte {
	var u [16]byte
	binary.LittleEndian.PutUint64(u[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(u[8:], rand.Uint64())
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	var b [36]byte
	j := 0
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hexDigits[x>>4], hexDigits[x&0x0f]
		j += 2
	}
	return append(dst, b[:]...)
}

// hexDigits are the lower-case hex digits.
const hexDigits = "0123456789abcdef"

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
		setSecurityHeaders(c)
		return c.Next()
	}
}

// setSecurityHeaders is securityHeaders' work; ErrorHandler repeats it so
// that answers given before the chain ran (413, 431) carry them too.
func setSecurityHeaders(c *fiber.Ctx) {
	h := &c.Response().Header
	for _, kv := range securityHeaderValues {
		h.SetCanonical(kv[0], kv[1])
	}
}

// securityHeaderValues are the headers every response carries, keys as
// fasthttp normalizes them, so setting them skips the normalization and the
// string conversions of fiber's Set.
var securityHeaderValues = [][2][]byte{
	{[]byte("Strict-Transport-Security"), []byte("max-age=63072000; includeSubDomains")},
	{[]byte("X-Content-Type-Options"), []byte("nosniff")},
	{[]byte("X-Frame-Options"), []byte("DENY")},
	{[]byte("Referrer-Policy"), []byte("no-referrer")},
	{[]byte("Content-Security-Policy"), []byte("default-src 'none'; frame-ancestors 'none'")},
}

// httpMetrics are the gateway's own Prometheus series.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge

	// Resolving label values hashes them on every call; the set of
	// (route template, method, status) is small, so each child is looked up
	// once and kept, in a map that is copied on the rare insert and read
	// without a lock (a read lock's counter bounced between the cores on
	// every request).
	mu        sync.Mutex // serializes inserts
	observers atomic.Pointer[map[observerKey]routeObserver]
}

type observerKey struct {
	route, method string
	status        int
}

type routeObserver struct {
	requests prometheus.Counter
	duration prometheus.Observer
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
	m.observers.Store(&map[observerKey]routeObserver{})
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register http metrics: %w", err)
		}
	}
	return m, nil
}

// observer returns the series of one route template, method and status.
// route and method must not alias a request buffer: they are kept.
func (m *httpMetrics) observer(route, method string, status int) routeObserver {
	k := observerKey{route: route, method: method, status: status}
	if o, ok := (*m.observers.Load())[k]; ok {
		return o
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.observers.Load()
	if o, ok := old[k]; ok {
		return o
	}
	o := routeObserver{requests: m.requests.WithLabelValues(route, method, strconv.Itoa(status)),
		duration: m.duration.WithLabelValues(route, method)}
	next := maps.Clone(old)
	next[k] = o
	m.observers.Store(&next)
	return o
}

// routeUnmatched is the route label of requests no route template matched:
// 404 and 405 from the router, and requests refused before routing (413,
// 431, malformed HTTP).
const routeUnmatched = "unmatched"

// routeKey keeps the template of the route that matched, set by Server.Route.
type routeKey struct{}

// matchedRoute returns a handler recording that route matched.
func matchedRoute(template string) fiber.Handler {
	// Boxed once here: converting the string to an interface on every
	// request allocated.
	var boxed any = template
	return func(c *fiber.Ctx) error {
		c.Locals(routeKey{}, boxed)
		return c.Next()
	}
}

// routeLabel is the matched route template, or routeUnmatched.
func routeLabel(c *fiber.Ctx) string {
	if r, ok := c.Locals(routeKey{}).(string); ok {
		return r
	}
	return routeUnmatched
}

// observe wraps the rest of the chain: it renders errors (so the status is
// final), then writes one access-log line and the metrics. The route label is
// the matched template, never the raw path, so IDs cannot blow up cardinality.
func observe(log *slog.Logger, m *httpMetrics, onError fiber.ErrorHandler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := requestStart(c)
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		if err := c.Next(); err != nil {
			if herr := onError(c, err); herr != nil {
				return herr
			}
		}
		end := time.Now()
		m.record(c, log, routeLabel(c), end, end.Sub(start))
		return nil
	}
}

// requestStart is when the server started handling the request: fasthttp
// reads the clock just before it calls the handler (RequestCtx.Time), so the
// chain need not read it again; now when the handler was called some other
// way.
func requestStart(c *fiber.Ctx) time.Time {
	if t := c.Context().Time(); !t.IsZero() {
		return t
	}
	return time.Now()
}

// maxUserAgent bounds the user agent written to the access log.
const maxUserAgent = 256

// record counts one answered request and writes its access-log line: method,
// route template, status, duration, client address, user agent and, when
// authenticated, the user. Nothing secret is in it. The line is timed at
// end, the clock read that measured elapsed. The line is encoded by
// logging.Line, without slog's attribute slice and reflection: through slog
// it was a seventh of the CPU of an authenticated read.
func (m *httpMetrics) record(c *fiber.Ctx, log *slog.Logger, route string, end time.Time, elapsed time.Duration) {
	status := c.Response().StatusCode()
	method := knownMethod(c.Method())
	o := m.observer(route, method, status)
	o.requests.Inc()
	o.duration.Observe(elapsed.Seconds())
	ln := logging.StartAt(c.UserContext(), log, slog.LevelInfo, "http request", end)
	if ln == nil {
		return
	}
	ua := c.Get(fiber.HeaderUserAgent)
	if len(ua) > maxUserAgent {
		ua = strings.ToValidUTF8(ua[:maxUserAgent], "")
	}
	ln.String("method", method)
	ln.String("route", route)
	ln.Int("status", int64(status))
	ln.Float("duration_ms", float64(elapsed.Microseconds())/1000)
	ln.String("client_addr", clientaddr.From(c))
	ln.String("user_agent", ua)
	if p, ok := auth.PrincipalFrom(c); ok {
		ln.String("user_id", p.UserID)
	}
	ln.End()
}

// knownMethod returns the constant equal to method, or "other": label values
// are kept by Prometheus, and the request's method string aliases a buffer
// that is reused.
func knownMethod(method string) string {
	for _, m := range knownMethods {
		if m == method {
			return m
		}
	}
	return "other"
}

// knownMethods are the methods metrics label by name.
var knownMethods = []string{fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut,
	fiber.MethodPatch, fiber.MethodDelete, fiber.MethodOptions}
