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
	"github.com/redis/go-redis/v9"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/ratelimit"
	"github.com/kowai/kowai/internal/logging"
	"github.com/kowai/kowai/persistence/persisttest"
)

// Load generator settings: the same for every server compared. Each
// benchmark iteration alternates benchRounds pairs of runs, swapping which
// side goes first, so that background noise and the garbage one run leaves
// for the next fall on both sides alike.
//
// benchWorkers keep-alive clients are enough to keep every core of the
// server busy, so req/s compares capacity: what a node can serve. With few
// clients the comparison measures latency instead, and any work that waits
// on the network (the Redis limiter's round trip) leaves cores idle that a
// loaded node would use: with 16 clients on 2 cores the Redis limiter
// measured 0.69-0.72 of the in-process one, with 128 clients 0.84-0.87.
const (
	benchWorkers  = 128
	benchRequests = 3000 // per run
	benchRounds   = 6
)

// serveBench runs a kowai gateway built by setup on 127.0.0.1:0 until the
// benchmark ends, with its access log written (as JSON) and discarded.
func serveBench(b *testing.B, setup func(s *Server)) string {
	b.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(Options{Addr: "127.0.0.1:0", Logger: logging.New(io.Discard, slog.LevelInfo, "json"), Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	setup(s)
	return runServer(b, s)
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

// kowaiMe runs the REST API over SQLite with limiter, mounted by the same
// Mount as kowai serve, and returns the URL of GET /api/v1/auth/me and a
// valid access token for it.
func kowaiMe(b *testing.B, limiter ratelimit.Limiter) (string, string) {
	b.Helper()
	db := persisttest.SQLite(b)
	// A limit the load never reaches: every check runs, none refuses.
	api, svc := restAPI(b, db, restConfig{limiter: limiter, rateLimit: ratelimit.Limit{Rate: 10_000_000, Period: time.Minute}}, nil)
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

// target is one server under load, with its own kept-alive connections.
type target struct {
	url, token string
	client     *http.Client
}

func newTarget(b *testing.B, url, token string) *target {
	b.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchWorkers, MaxConnsPerHost: benchWorkers}}
	b.Cleanup(client.CloseIdleConnections)
	return &target{url: url, token: token, client: client}
}

// tally accumulates what the runs against one target measured.
type tally struct {
	requests  int
	elapsed   time.Duration
	latencies []time.Duration
}

func (t *tally) perSecond() float64 { return float64(t.requests) / t.elapsed.Seconds() }

func (t *tally) p99() time.Duration {
	slices.Sort(t.latencies)
	return t.latencies[len(t.latencies)*99/100]
}

// run sends benchRequests GETs from benchWorkers concurrent clients and adds
// throughput and latencies to into. Every request must answer 200.
func (t *target) run(b *testing.B, into *tally) {
	b.Helper()
	latencies := make([]time.Duration, benchRequests)
	var next, failures atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range benchWorkers {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodGet, t.url, nil)
			if err != nil {
				failures.Add(1)
				return
			}
			if t.token != "" {
				req.Header.Set("Authorization", "Bearer "+t.token)
			}
			for {
				i := next.Add(1) - 1
				if i >= benchRequests {
					return
				}
				t0 := time.Now()
				res, err := t.client.Do(req)
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
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d of %d requests to %s failed", n, benchRequests, t.url)
	}
	into.requests += benchRequests
	into.elapsed += time.Since(start)
	into.latencies = append(into.latencies, latencies...)
}

// compare loads candidate and baseline alternately and reports the
// candidate's throughput and p99 latency against the baseline's.
func compare(b *testing.B, candidate, baseline *target) {
	b.Helper()
	candidate.run(b, &tally{}) // warm connections, caches and the database page cache
	baseline.run(b, &tally{})
	var c, base tally
	for b.Loop() {
		for round := range benchRounds {
			if round%2 == 0 {
				candidate.run(b, &c)
				baseline.run(b, &base)
			} else {
				baseline.run(b, &base)
				candidate.run(b, &c)
			}
		}
	}
	b.ReportMetric(c.perSecond(), "req/s")
	b.ReportMetric(base.perSecond(), "baseline-req/s")
	b.ReportMetric(c.perSecond()/base.perSecond(), "x-vs-baseline")
	b.ReportMetric(float64(c.p99())/float64(base.p99()), "p99-x-vs-baseline")
}

// BenchmarkAuthenticatedRead measures GET /api/v1/auth/me through the whole
// gateway (JWT verification, revocation check behind its cache, per-user
// rate limit, metrics, JSON access log, the user read behind its cache)
// against a bare Fiber hello world, both loaded by benchWorkers concurrent
// keep-alive clients in this process.
//
// Goals (issue 5): x-vs-baseline (requests per second) >= 0.6 and
// p99-x-vs-baseline <= 2.
func BenchmarkAuthenticatedRead(b *testing.B) {
	me, token := kowaiMe(b, ratelimit.NewMemory(ratelimit.MemoryOptions{}))
	compare(b, newTarget(b, me, token), newTarget(b, serveHello(b), ""))
}

// BenchmarkAuthenticatedReadRedisLimiter measures the same read with the
// Redis rate limiter against the in-process limiter; everything else, the
// revocation store included, is the same on both sides. It reports
// redis-trips/req, the round trips per request: at most 1, and below 1 when
// concurrent checks share them. Every command on the path is a batch of
// rate-limit checks (redis-cmds/req equals redis-trips/req), so nothing else
// talks to Redis. It needs KOWAI_TEST_REDIS_URL.
//
// Goal (issue 5): x-vs-baseline (requests per second) >= 0.8.
func BenchmarkAuthenticatedReadRedisLimiter(b *testing.B) {
	client := testRedisClient(b)
	var cmds, trips atomic.Int64
	client.AddHook(countCommands{cmds: &cmds, trips: &trips})
	redisMe, redisToken := kowaiMe(b, testRedisLimiterOn(b, client))
	memMe, memToken := kowaiMe(b, ratelimit.NewMemory(ratelimit.MemoryOptions{}))
	candidate := newTarget(b, redisMe, redisToken)
	candidate.run(b, &tally{}) // loads the script
	cmds0, trips0 := cmds.Load(), trips.Load()
	candidate.run(b, &tally{})
	cmdsPerRequest := float64(cmds.Load()-cmds0) / benchRequests
	tripsPerRequest := float64(trips.Load()-trips0) / benchRequests
	if tripsPerRequest > 1 || cmdsPerRequest != tripsPerRequest {
		b.Fatalf("%.3f Redis commands in %.3f round trips per request, want one command per round trip and at most one round trip", cmdsPerRequest, tripsPerRequest)
	}
	compare(b, candidate, newTarget(b, memMe, memToken))
	b.ReportMetric(cmdsPerRequest, "redis-cmds/req")
	b.ReportMetric(tripsPerRequest, "redis-trips/req")
}

// countCommands is a go-redis hook counting the commands sent, pipelined
// ones included, and the round trips (a pipeline is one).
type countCommands struct{ cmds, trips *atomic.Int64 }

func (h countCommands) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.cmds.Add(1)
		h.trips.Add(1)
		return next(ctx, cmd)
	}
}

func (h countCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.cmds.Add(int64(len(cmds)))
		h.trips.Add(1)
		return next(ctx, cmds)
	}
}
