package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/internal/logging"
	"github.com/kowai/kowai/persistence/persisttest"
)

// Load generator settings: the same for every server compared.
const (
	benchWorkers  = 16
	benchRequests = 4000
)

// serveBench runs a kowai gateway built by setup on 127.0.0.1:0 until the
// benchmark ends, with its access log written (as JSON) and discarded.
func serveBench(b *testing.B, setup func(s *Server)) string {
	b.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(Options{Addr: "127.0.0.1:0", Logger: logging.New(io.Discard, slog.LevelInfo, "json"), Registry: reg, Gatherer: reg})
	if err != nil {
		b.Fatal(err)
	}
	setup(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		b.Fatalf("gateway did not start: %v", err)
	}
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("gateway run: %v", err)
		}
	})
	return "http://" + s.Addr().String()
}

// serveHello runs the baseline: a bare Fiber hello world.
func serveHello(b *testing.B) string {
	b.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/", func(c *fiber.Ctx) error { return c.SendString("hello") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	b.Cleanup(func() { _ = app.Shutdown() })
	return "http://" + ln.Addr().String() + "/"
}

// kowaiMe runs the REST API over SQLite with limiter and returns the URL of
// GET /api/v1/auth/me and a valid access token for it.
func kowaiMe(b *testing.B, limiter ratelimit.Limiter) (string, string) {
	b.Helper()
	db := persisttest.SQLite(b)
	api, svc := restAPI(b, db, restConfig{limiter: limiter}, nil)
	url := serveBench(b, func(s *Server) {
		if err := s.Mount(api); err != nil {
			b.Fatal(err)
		}
	})
	if _, err := svc.CreateUser(b.Context(), auth.NewUser{Email: "bench@example.com", Password: "bench password"}); err != nil {
		b.Fatal(err)
	}
	pair, err := svc.Login(b.Context(), "bench@example.com", "bench password", "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	return url + "/api/v1/auth/me", pair.AccessToken
}

// loadResult is what one load run measured.
type loadResult struct {
	perSecond float64
	p99       time.Duration
}

// load sends benchRequests GETs to url from benchWorkers concurrent clients
// over kept-alive connections and measures throughput and p99 latency.
func load(b *testing.B, url, token string) loadResult {
	b.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchWorkers, MaxConnsPerHost: benchWorkers}}
	defer client.CloseIdleConnections()
	latencies := make([]time.Duration, benchRequests)
	var next, failures atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range benchWorkers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= benchRequests {
					return
				}
				req, err := http.NewRequest(http.MethodGet, url, nil)
				if err != nil {
					failures.Add(1)
					return
				}
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				t0 := time.Now()
				res, err := client.Do(req)
				if err != nil {
					failures.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				latencies[i] = time.Since(t0)
				if res.StatusCode != http.StatusOK {
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d of %d requests to %s failed", n, benchRequests, url)
	}
	slices.Sort(latencies)
	return loadResult{perSecond: benchRequests / elapsed.Seconds(), p99: latencies[benchRequests*99/100]}
}

// compare loads both targets alternately once per iteration and reports
// the candidate's throughput and p99 against the baseline's.
func compare(b *testing.B, candidate, baseline func() loadResult, unit string) {
	var c, base loadResult
	var n float64
	for b.Loop() {
		cr, br := candidate(), baseline()
		c.perSecond += cr.perSecond
		base.perSecond += br.perSecond
		c.p99 += cr.p99
		base.p99 += br.p99
		n++
	}
	b.ReportMetric(c.perSecond/n, "req/s")
	b.ReportMetric(base.perSecond/n, "baseline-req/s")
	b.ReportMetric(c.perSecond/base.perSecond, unit)
	b.ReportMetric(float64(c.p99)/float64(base.p99), "p99-x-vs-baseline")
}

// BenchmarkAuthenticatedRead measures GET /api/v1/auth/me through the whole
// gateway (JWT verification, revocation check behind its cache, per-user
// rate limit, metrics, JSON access log, a user read from SQLite) against a
// bare Fiber hello world, both loaded by benchWorkers concurrent keep-alive
// clients in this process.
//
// Goals (issue 5): x-vs-baseline (requests per second) >= 0.6 and
// p99-x-vs-baseline <= 2.
func BenchmarkAuthenticatedRead(b *testing.B) {
	me, token := kowaiMe(b, ratelimit.NewMemory(ratelimit.MemoryOptions{}))
	hello := serveHello(b)
	load(b, me, token) // warm connections, caches and the database page cache
	load(b, hello, "")
	compare(b, func() loadResult { return load(b, me, token) }, func() loadResult { return load(b, hello, "") }, "x-vs-baseline")
}

// BenchmarkAuthenticatedReadRedisLimiter measures the same read with the
// Redis rate limiter (one EVALSHA per request) against the in-process
// limiter. It needs KOWAI_TEST_REDIS_URL.
//
// Goal (issue 5): x-vs-baseline (requests per second) >= 0.8.
func BenchmarkAuthenticatedReadRedisLimiter(b *testing.B) {
	redisMe, redisToken := kowaiMe(b, testRedisLimiter(b))
	memMe, memToken := kowaiMe(b, ratelimit.NewMemory(ratelimit.MemoryOptions{}))
	load(b, redisMe, redisToken)
	load(b, memMe, memToken)
	compare(b, func() loadResult { return load(b, redisMe, redisToken) }, func() loadResult { return load(b, memMe, memToken) }, "x-vs-baseline")
}
