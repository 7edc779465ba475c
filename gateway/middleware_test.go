package gateway

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/valyala/fasthttp"
)

// TestIsSaneRequestID: the hand-written check accepts exactly what the
// saneRequestID pattern accepts.
func TestIsSaneRequestID(t *testing.T) {
	for _, id := range []string{"", "a", "abc-123", "req_7.x:y", strings.Repeat("a", 128), strings.Repeat("a", 129),
		"bad id", "forged=1", "a\nb", "quote\"", "ünï", "a/b", "a,b", "{x}", "\x00", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"} {
		if got, want := isSaneRequestID(id), saneRequestID.MatchString(id); got != want {
			t.Errorf("isSaneRequestID(%q) = %v, the pattern says %v", id, got, want)
		}
	}
}

// TestNewRequestID: generated IDs are version 4 UUIDs, sane by the rule
// client IDs are held to, and do not repeat.
func TestNewRequestID(t *testing.T) {
	seen := make(map[string]bool)
	for range 10_000 {
		id := string(appendRequestID(nil))
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 4 || u.Variant() != uuid.RFC4122 || u.String() != id {
			t.Fatalf("request ID %q is not a canonical version 4 UUID (%v)", id, err)
		}
		if !isSaneRequestID(id) {
			t.Fatalf("request ID %q is not sane", id)
		}
		if seen[id] {
			t.Fatalf("request ID %q repeated", id)
		}
		seen[id] = true
	}
}

// TestRequestStart: the access log and the duration metric time a request
// from fasthttp's own clock read before the handler, and from now when the
// handler is called without one.
func TestRequestStart(t *testing.T) {
	app := fiber.New()
	var got, want time.Time
	app.Get("/", func(c *fiber.Ctx) error {
		got, want = requestStart(c), c.Context().Time()
		return nil
	})
	res, err := app.Test(httptest.NewRequest(fiber.MethodGet, "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if want.IsZero() || !got.Equal(want) {
		t.Errorf("requestStart = %v, want fasthttp's request time %v", got, want)
	}
	var fctx fasthttp.RequestCtx
	c := app.AcquireCtx(&fctx)
	defer app.ReleaseCtx(c)
	before := time.Now()
	if s := requestStart(c); s.Before(before) || time.Since(s) > time.Minute {
		t.Errorf("without fasthttp's time: %v, want now (%v)", s, before)
	}
}
