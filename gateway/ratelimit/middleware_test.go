package ratelimit_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/kowai/kowai/gateway/ratelimit"
)

func newApp(t *testing.T, cfg ratelimit.MiddlewareConfig) *fiber.App {
	t.Helper()
	app := fiber.New()
	app.Get("/a", ratelimit.Middleware(cfg), func(c *fiber.Ctx) error { return c.SendString("a") })
	app.Get("/b", ratelimit.Middleware(cfg), func(c *fiber.Ctx) error { return c.SendString("b") })
	return app
}

func get(t *testing.T, app *fiber.App, path, user string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if user != "" {
		req.Header.Set("X-User", user)
	}
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// TestMiddleware walks one bucket through its states, with the key given as
// a string (Key) and appended on the stack (AppendKey, Memory's bytes path).
func TestMiddleware(t *testing.T) {
	for _, appendKey := range []bool{false, true} {
		t.Run(map[bool]string{false: "Key", true: "AppendKey"}[appendKey], func(t *testing.T) {
			testMiddleware(t, appendKey)
		})
	}
}

func testMiddleware(t *testing.T, appendKey bool) {
	clock := newFakeClock()
	cfg := ratelimit.MiddlewareConfig{
		Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{Clock: clock.Now}),
		Limit:   ratelimit.Limit{Rate: 1, Period: 10 * time.Second, Burst: 2},
		Key:     func(c *fiber.Ctx) string { return c.Get("X-User", c.IP()) },
	}
	if appendKey {
		cfg.AppendKey = func(dst []byte, c *fiber.Ctx) []byte { return append(dst, c.Get("X-User", c.IP())...) }
	}
	app := newApp(t, cfg)
	type want struct {
		status                      int
		limit, remaining, reset, ra string
	}
	steps := []struct {
		name    string
		advance time.Duration
		path    string
		user    string
		want    want
	}{
		{"first", 0, "/a", "alice", want{200, "2", "1", "10", ""}},
		{"second", 0, "/a", "alice", want{200, "2", "0", "20", ""}},
		{"third is refused", 0, "/a", "alice", want{429, "2", "0", "20", "10"}},
		{"other route has its own bucket", 0, "/b", "alice", want{200, "2", "1", "10", ""}},
		{"other user has their own bucket", 0, "/a", "bob", want{200, "2", "1", "10", ""}},
		{"anonymous falls back to IP", 0, "/a", "", want{200, "2", "1", "10", ""}},
		{"retry after rounds up", 500 * time.Millisecond, "/a", "alice", want{429, "2", "0", "20", "10"}},
		{"after the wait", 9500 * time.Millisecond, "/a", "alice", want{200, "2", "0", "20", ""}},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		resp := get(t, app, s.path, s.user)
		got := want{resp.StatusCode, resp.Header.Get("RateLimit-Limit"), resp.Header.Get("RateLimit-Remaining"),
			resp.Header.Get("RateLimit-Reset"), resp.Header.Get("Retry-After")}
		if got != s.want {
			t.Fatalf("%s: got %+v, want %+v", s.name, got, s.want)
		}
	}
}

func TestMiddlewareLimiterFailure(t *testing.T) {
	boom := errors.New("backend down")
	failing := ratelimit.LimiterFunc(func(context.Context, string, ratelimit.Limit) (ratelimit.Result, error) {
		return ratelimit.Result{}, boom
	})
	var seen error
	app := fiber.New(fiber.Config{ErrorHandler: func(c *fiber.Ctx, err error) error {
		seen = err
		return c.SendStatus(fiber.StatusServiceUnavailable)
	}})
	app.Get("/closed", ratelimit.Middleware(ratelimit.MiddlewareConfig{Limiter: failing, Limit: ratelimit.PerSecond(1)}),
		func(c *fiber.Ctx) error { return c.SendString("ok") })
	app.Get("/open", ratelimit.Middleware(ratelimit.MiddlewareConfig{Limiter: failing, Limit: ratelimit.PerSecond(1), FailOpen: true}),
		func(c *fiber.Ctx) error { return c.SendString("ok") })

	if resp := get(t, app, "/closed", ""); resp.StatusCode != fiber.StatusServiceUnavailable || !errors.Is(seen, boom) {
		t.Fatalf("fail closed: status %d, error %v", resp.StatusCode, seen)
	}
	if resp := get(t, app, "/open", ""); resp.StatusCode != fiber.StatusOK {
		t.Fatalf("fail open: status %d", resp.StatusCode)
	}
}

func TestMiddlewareReturnsFiberError(t *testing.T) {
	var seen error
	app := fiber.New(fiber.Config{ErrorHandler: func(c *fiber.Ctx, err error) error {
		seen = err
		return fiber.DefaultErrorHandler(c, err)
	}})
	app.Get("/", ratelimit.Middleware(ratelimit.MiddlewareConfig{
		Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{}),
		Limit:   ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 1},
	}), func(c *fiber.Ctx) error { return c.SendString("ok") })
	get(t, app, "/", "")
	resp := get(t, app, "/", "")
	var fe *fiber.Error
	if !errors.As(seen, &fe) || fe.Code != fiber.StatusTooManyRequests || resp.Header.Get("Retry-After") != "3600" {
		t.Fatalf("got error %v, Retry-After %q", seen, resp.Header.Get("Retry-After"))
	}
}

// TestMemoryBytesKeys: a key given as bytes (AppendKey's path) counts in
// the same bucket as the same key given as a string, is stored as a copy of
// the bytes, and a known key costs no allocation.
func TestMemoryBytesKeys(t *testing.T) {
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	limit := ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 5}
	cfg := ratelimit.MiddlewareConfig{Limiter: m, Limit: limit, Name: "bucket",
		Key:       func(c *fiber.Ctx) string { return "user:" + c.Get("X-User") },
		AppendKey: func(dst []byte, c *fiber.Ctx) []byte { return append(append(dst, "user:"...), c.Get("X-User")...) },
	}
	app := fiber.New()
	app.Get("/", ratelimit.Middleware(cfg), func(c *fiber.Ctx) error { return c.SendString("ok") })
	if r := get(t, app, "/", "alice"); r.Header.Get("RateLimit-Remaining") != "4" {
		t.Fatalf("first request: remaining %q", r.Header.Get("RateLimit-Remaining"))
	}
	// Fiber reuses the request's buffers: the stored key must not change with them.
	get(t, app, "/", "bobby")
	res, err := m.Allow(t.Context(), ratelimit.BucketKey("bucket", "user:alice"), limit)
	if err != nil || res.Remaining != 3 {
		t.Fatalf("the string key sees remaining %d (%v), want 3", res.Remaining, err)
	}
	if r := get(t, app, "/", "alice"); r.Header.Get("RateLimit-Remaining") != "2" {
		t.Fatalf("after the string key: remaining %q, want 2", r.Header.Get("RateLimit-Remaining"))
	}
	if m.Len() != 2 {
		t.Fatalf("%d keys, want 2", m.Len())
	}
	big := ratelimit.Limit{Rate: 1_000_000, Period: time.Second, Burst: 1_000_000}
	check := ratelimit.Checker(ratelimit.MiddlewareConfig{Limiter: m, Limit: big, Name: "n",
		Key:       func(*fiber.Ctx) string { return "k" },
		AppendKey: func(dst []byte, _ *fiber.Ctx) []byte { return append(dst, 'k') },
	})
	fapp := fiber.New()
	c := fapp.AcquireCtx(&fasthttp.RequestCtx{})
	defer fapp.ReleaseCtx(c)
	if err := check(c); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = check(c) }); n != 0 {
		t.Errorf("a known key allocated %v times per check, want 0", n)
	}
}
