package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kowai/kowai/internal/logging"
	"github.com/kowai/kowai/internal/testenv"
)

type testServer struct {
	url  string
	logs *testenv.LogBuffer
	reg  *prometheus.Registry
}

// start runs a gateway on 127.0.0.1:0 until the test ends; routes adds
// test-only handlers before it starts.
func start(t *testing.T, opts Options, routes func(app *fiber.App)) testServer {
	t.Helper()
	return startWith(t, opts, func(s *Server) {
		if routes != nil {
			routes(s.App())
		}
	})
}

// startWith is start with full access to the server before it listens.
func startWith(t *testing.T, opts Options, setup func(s *Server)) testServer {
	t.Helper()
	logs := &testenv.LogBuffer{}
	reg := prometheus.NewRegistry()
	opts.Addr = "127.0.0.1:0"
	opts.Logger = logging.New(logs, slog.LevelInfo, "json")
	opts.Registry = reg
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	setup(s)
	return testServer{url: runServer(t, s), logs: logs, reg: reg}
}

// runServer serves s until the test ends and returns its base URL.
func runServer(tb testing.TB, s *Server) string {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		tb.Fatalf("gateway did not start: %v", err)
	}
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("gateway run: %v", err)
		}
	})
	return "http://" + s.Addr().String()
}

func get(t *testing.T, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

func TestHealth(t *testing.T) {
	var dbDown, draining atomic.Bool
	ts := start(t, Options{
		Checks: []Check{{Name: "database", Probe: func(context.Context) error {
			if dbDown.Load() {
				return errors.New("connection refused")
			}
			return nil
		}}},
		Draining: draining.Load,
	}, nil)

	for _, tc := range []struct {
		path        string
		down, drain bool
		want        int
		wantStatus  string
		wantError   bool
	}{
		{"/health/live", true, true, 200, "ok", false},
		{"/health/ready", false, false, 200, "ok", false},
		{"/health/ready", true, false, 503, "unavailable", false},
		{"/health", true, false, 503, "unavailable", true},
		{"/health/ready", false, true, 503, "draining", false},
		{"/health", false, false, 200, "ok", false},
	} {
		dbDown.Store(tc.down)
		draining.Store(tc.drain)
		res, body := get(t, ts.url+tc.path, nil)
		var got struct {
			Status string                 `json:"status"`
			Checks map[string]checkResult `json:"checks"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s: %v: %s", tc.path, err, body)
		}
		if res.StatusCode != tc.want || got.Status != tc.wantStatus {
			t.Errorf("%s down=%v drain=%v: got %d %q, want %d %q", tc.path, tc.down, tc.drain, res.StatusCode, got.Status, tc.want, tc.wantStatus)
		}
		if hasErr := got.Checks["database"].Error != ""; hasErr != tc.wantError {
			t.Errorf("%s: error shown=%v, want %v (%s)", tc.path, hasErr, tc.wantError, body)
		}
	}
}

func TestProblemsRequestIDAndHeaders(t *testing.T) {
	ts := start(t, Options{}, func(app *fiber.App) {
		app.Get("/boom", func(c *fiber.Ctx) error { panic("secret internals") })
		app.Get("/fail", func(c *fiber.Ctx) error { return errors.New("db password wrong") })
		app.Get("/invalid/:id", func(c *fiber.Ctx) error {
			return Validation(FieldError{Field: "id", Message: "must be a UUID"})
		})
	})
	for _, tc := range []struct {
		path, requestID string
		status          int
		keepID          bool
		fields          int
	}{
		{"/boom", "abc-123", 500, true, 0},
		{"/fail", "bad id forged=1", 500, false, 0},
		{"/invalid/x", "", 400, false, 1},
		{"/no-such-route", strings.Repeat("a", 200), 404, false, 0},
	} {
		res, body := get(t, ts.url+tc.path, map[string]string{"X-Request-ID": tc.requestID})
		if res.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.path, res.StatusCode, tc.status)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			t.Errorf("%s: content type %q", tc.path, ct)
		}
		id := res.Header.Get("X-Request-ID")
		if tc.keepID != (id == tc.requestID) || id == "" {
			t.Errorf("%s: request id %q (sent %q)", tc.path, id, tc.requestID)
		}
		var p problem
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if p.Status != tc.status || p.CorrelationID != id || p.Instance != tc.path || len(p.Errors) != tc.fields || p.Title == "" {
			t.Errorf("%s: problem %+v", tc.path, p)
		}
		if strings.Contains(string(body), "secret internals") || strings.Contains(string(body), "password") || strings.Contains(string(body), "goroutine") {
			t.Errorf("%s: body leaks internals: %s", tc.path, body)
		}
		for h, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"} {
			if res.Header.Get(h) != want {
				t.Errorf("%s: header %s=%q", tc.path, h, res.Header.Get(h))
			}
		}
		if res.Header.Get("Strict-Transport-Security") == "" || res.Header.Get("Content-Security-Policy") == "" || res.Header.Get("Referrer-Policy") == "" {
			t.Errorf("%s: security headers missing: %v", tc.path, res.Header)
		}
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, `"msg":"handler panicked"`) || !strings.Contains(logs, `"correlation_id":"abc-123"`) {
		t.Errorf("panic not logged with correlation id: %s", logs)
	}
}

// scrapeMetrics serves reg on a MetricsServer of its own, as kowai serve
// does on KOWAI_METRICS_ADDR, and returns one scrape.
func scrapeMetrics(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	ms, err := NewMetricsServer(MetricsOptions{Addr: "127.0.0.1:0", Gatherer: reg, Logger: logging.New(io.Discard, slog.LevelInfo, "json")})
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
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("metrics server: %v", err)
		}
	}()
	res, body := get(t, "http://"+ms.Addr().String()+"/metrics", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %s", res.StatusCode, body)
	}
	return string(body)
}

func TestAccessLogAndMetrics(t *testing.T) {
	ts := startWith(t, Options{}, func(s *Server) {
		s.Route(fiber.MethodGet, "/items/:id", Op{Summary: "an item", Tag: "Test", Response: ""},
			func(c *fiber.Ctx) error { return c.SendString(c.Params("id")) })
	})
	get(t, ts.url+"/items/42", map[string]string{"X-Request-ID": "req-7", "User-Agent": "kowai-test/1.0"})
	metrics := scrapeMetrics(t, ts.reg)
	for _, want := range []string{
		`kowai_http_requests_total{method="GET",route="/items/:id",status="200"} 1`,
		`kowai_http_request_duration_seconds_count{method="GET",route="/items/:id"} 1`,
		`kowai_http_requests_in_flight 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	var line map[string]any
	for _, l := range strings.Split(ts.logs.String(), "\n") {
		if strings.Contains(l, `"msg":"http request"`) && strings.Contains(l, "/items/:id") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line["route"] != "/items/:id" || line["status"] != float64(200) || line["method"] != "GET" ||
		line["correlation_id"] != "req-7" || line["duration_ms"] == nil ||
		line["client_addr"] != "127.0.0.1" || line["user_agent"] != "kowai-test/1.0" {
		t.Errorf("access log line: %v", line)
	}
}

// TestRouteLabels: the route label is the template of the route that
// matched, even when its handler answers 404; requests no route matched (404,
// 405 from the router, refusals before routing) are all "unmatched".
func TestRouteLabels(t *testing.T) {
	ts := startWith(t, Options{BodyLimit: 64}, func(s *Server) {
		s.Route(fiber.MethodGet, "/things/:id", Op{Summary: "a thing", Tag: "Test", Response: ""},
			func(c *fiber.Ctx) error { return NewError(http.StatusNotFound, "no such thing") })
		s.Route(fiber.MethodPost, "/things", Op{Summary: "add a thing", Tag: "Test", Response: ""},
			func(c *fiber.Ctx) error { return c.SendStatus(http.StatusCreated) })
	})
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{http.MethodGet, "/things/1", "", 404},
		{http.MethodDelete, "/things/1", "", 405},
		{http.MethodGet, "/nothing/here", "", 404},
		{http.MethodPost, "/things", "{}", 201},
		{http.MethodPost, "/things", strings.Repeat("x", 100), 413},
	} {
		req, err := http.NewRequest(tc.method, ts.url+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.status {
			t.Fatalf("%s %s: %d, want %d", tc.method, tc.path, res.StatusCode, tc.status)
		}
	}
	metrics := scrapeMetrics(t, ts.reg)
	for _, want := range []string{
		`kowai_http_requests_total{method="GET",route="/things/:id",status="404"} 1`,
		`kowai_http_requests_total{method="DELETE",route="unmatched",status="405"} 1`,
		`kowai_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`kowai_http_requests_total{method="POST",route="/things",status="201"} 1`,
		`kowai_http_requests_total{method="POST",route="unmatched",status="413"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, `route="/"`) {
		t.Error(`a request is labelled route="/"`)
	}
}

// TestMetricsNotOnAPIPort: /metrics is served on the metrics address only;
// on the public port it is an unknown route.
func TestMetricsNotOnAPIPort(t *testing.T) {
	ts := start(t, Options{}, nil)
	res, body := get(t, ts.url+"/metrics", nil)
	if res.StatusCode != http.StatusNotFound || strings.Contains(string(body), "kowai_http_requests_total") {
		t.Fatalf("GET /metrics on the API port: %d %s", res.StatusCode, body)
	}
	if !strings.Contains(scrapeMetrics(t, ts.reg), `kowai_http_requests_total{method="GET",route="unmatched",status="404"} 1`) {
		t.Fatal("the metrics address does not serve the gateway's metrics")
	}
}

func TestShutdownWaitsForInFlight(t *testing.T) {
	logs := &testenv.LogBuffer{}
	reg := prometheus.NewRegistry()
	s, err := New(Options{Addr: "127.0.0.1:0", Logger: logging.New(logs, slog.LevelInfo, "json"), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	release := make(chan struct{})
	s.App().Get("/slow", func(c *fiber.Ctx) error {
		close(entered)
		<-release
		return c.SendString("done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	got := make(chan string, 1)
	go func() {
		res, err := http.Get("http://" + s.Addr().String() + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		got <- string(b)
	}()
	<-entered
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned before the in-flight request finished: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if body := <-got; body != "done" {
		t.Fatalf("in-flight request got %q", body)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRunCancelledAtOnce: a node whose other parts fail at start (its
// metrics port taken, say) cancels the gateway before it serves; Run must
// still return instead of serving forever.
func TestRunCancelledAtOnce(t *testing.T) {
	for i := range 20 {
		s := newTestServer(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("run %d: Run did not return after its context was cancelled", i)
		}
	}
}

// newTestServer returns a gateway that is built but not listening.
func newTestServer(t *testing.T) *Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(Options{Addr: "127.0.0.1:0", Logger: logging.New(io.Discard, slog.LevelInfo, "json"), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCORS(t *testing.T) {
	closed := start(t, Options{}, nil)
	open := start(t, Options{CORSOrigins: []string{"https://app.example"}}, nil)
	for _, tc := range []struct {
		url, origin, want string
	}{
		{closed.url, "https://app.example", ""},
		{open.url, "https://app.example", "https://app.example"},
		{open.url, "https://evil.example", ""},
	} {
		res, _ := get(t, tc.url+"/health/live", map[string]string{"Origin": tc.origin})
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != tc.want {
			t.Errorf("%s from %s: Access-Control-Allow-Origin %q, want %q", tc.url, tc.origin, got, tc.want)
		}
	}
}
