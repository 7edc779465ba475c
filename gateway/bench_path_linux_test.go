package gateway

import (
	"io"
	"log/slog"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/internal/logging"
	"github.com/kowai/kowai/persistence/persisttest"
)

// pathSide is one handler called in process, with the request it answers.
type pathSide struct {
	handler fasthttp.RequestHandler
	req     fasthttp.Request
	ctx     fasthttp.RequestCtx
	// measured so far
	n             int
	elapsed       time.Duration
	allocs, bytes uint64
}

func newPathSide(b *testing.B, h fasthttp.RequestHandler, uri, token string) *pathSide {
	b.Helper()
	s := &pathSide{handler: h}
	s.req.Header.SetMethod(fiber.MethodGet)
	s.req.SetRequestURI(uri)
	s.req.Header.Set(fiber.HeaderUserAgent, "kowai-bench/1.0")
	if token != "" {
		s.req.Header.Set(fiber.HeaderAuthorization, "Bearer "+token)
	}
	s.ctx.Init(&s.req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	s.call(b)
	return s
}

// call serves the request once; it must answer 200.
func (s *pathSide) call(b *testing.B) {
	// What fasthttp resets between two requests of a connection.
	s.req.CopyTo(&s.ctx.Request)
	s.ctx.Response.Reset()
	s.ctx.ResetUserValues()
	s.handler(&s.ctx)
	if code := s.ctx.Response.StatusCode(); code != fiber.StatusOK {
		b.Fatalf("%s answered %d: %s", s.req.URI(), code, s.ctx.Response.Body())
	}
}

// run serves the request n times and adds the CPU time of the calling
// thread (locked by the caller) and the allocations: on a shared machine the
// thread's CPU time does not count the time other processes took.
func (s *pathSide) run(b *testing.B, n int) {
	b.Helper()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := threadCPU(b)
	for range n {
		s.call(b)
	}
	s.elapsed += threadCPU(b) - start
	runtime.ReadMemStats(&m1)
	s.n += n
	s.allocs += m1.Mallocs - m0.Mallocs
	s.bytes += m1.TotalAlloc - m0.TotalAlloc
}

// threadCPU is the CPU time the calling OS thread has used, from
// CLOCK_THREAD_CPUTIME_ID: getrusage's thread times advance only when the
// scheduler accounts them (ticks, switches), too coarse for a chunk of
// Fiber hello calls.
func threadCPU(b *testing.B) time.Duration {
	b.Helper()
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		b.Fatalf("clock_gettime: %v", errno)
	}
	return time.Duration(ts.Nano())
}

// clockThreadCPUTimeID is CLOCK_THREAD_CPUTIME_ID, which package syscall
// does not name.
const clockThreadCPUTimeID = 3

func (s *pathSide) nsPerRequest() float64 { return float64(s.elapsed.Nanoseconds()) / float64(s.n) }

// BenchmarkRequestPath measures the CPU kowai spends on a request between
// fasthttp's parsing and its writing, that is its whole middleware chain
// (client address, request ID, metrics, JSON access log, panic guard,
// security headers, body guard, route label, authentication, rate limit)
// and the handler, called in process without the network, against a bare
// Fiber hello world called the same way, alternating rounds. The access log
// is encoded in full and discarded. Routes: GET /health/live, GET
// /api/v1/auth/me and GET /api/v1/chat/conversations (SQLite).
//
// Times are the CPU time of the thread serving the requests, so the
// machine's load inflates them less than wall time; garbage collection done
// by other threads is not in them, and allocs/req and B/req stand for it.
//
// Read it with BenchmarkAuthenticatedRead and make bench-http, which add the
// network: this is the part of a request's cost that is kowai's own, where
// a cut shows without the noise of sockets and a shared machine.
// x-vs-baseline is kowai's time per request over Fiber's (lower is better).
func BenchmarkRequestPath(b *testing.B) {
	db := persisttest.SQLite(b)
	api, svc := restAPI(b, db, restConfig{limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{}),
		rateLimit: ratelimit.Limit{Rate: 10_000_000, Period: time.Minute}}, nil)
	s, err := New(Options{Addr: "127.0.0.1:0", Logger: logging.New(io.Discard, slog.LevelInfo, "json"), Registry: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Mount(api); err != nil {
		b.Fatal(err)
	}
	s.finishRoutes()
	if _, err := svc.CreateUser(b.Context(), auth.NewUser{Email: "bench@example.com", Password: "bench password"}); err != nil {
		b.Fatal(err)
	}
	pair, err := svc.Login(b.Context(), "bench@example.com", "bench password", "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	hello := fiber.New(fiber.Config{DisableStartupMessage: true})
	hello.Get("/", func(c *fiber.Ctx) error { return c.SendString("hello") })
	for _, route := range []struct{ name, uri, token string }{
		{"live", "/health/live", ""},
		{"me", "/api/v1/auth/me", pair.AccessToken},
		{"conversations", "/api/v1/chat/conversations", pair.AccessToken},
	} {
		b.Run(route.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			k := newPathSide(b, s.app.Handler(), "http://127.0.0.1"+route.uri, route.token)
			h := newPathSide(b, hello.Handler(), "http://127.0.0.1/", "")
			const chunk = 500
			for b.Loop() {
				for round := range 4 {
					if round%2 == 0 {
						k.run(b, chunk)
						h.run(b, chunk)
					} else {
						h.run(b, chunk)
						k.run(b, chunk)
					}
				}
			}
			b.ReportMetric(k.nsPerRequest(), "ns/req")
			b.ReportMetric(h.nsPerRequest(), "baseline-ns/req")
			b.ReportMetric(k.nsPerRequest()/h.nsPerRequest(), "x-vs-baseline")
			b.ReportMetric(float64(k.allocs)/float64(k.n), "allocs/req")
			b.ReportMetric(float64(k.bytes)/float64(k.n), "B/req")
		})
	}
}
