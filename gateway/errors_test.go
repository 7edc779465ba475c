package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// TestErrorPathsAgree checks that the WebSocket error frame and the SSE
// problem say what the HTTP error handler's problem+json says: one mapping
// (asError) for every error path.
func TestErrorPathsAgree(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		title  string
		detail string
	}{
		{"fiber error repeating its status text has no detail", fiber.ErrNotFound, http.StatusNotFound, "Not Found", ""},
		{"fiber error with its own message keeps it", fiber.NewError(http.StatusConflict, "taken"), http.StatusConflict, "Conflict", "taken"},
		{"problem without a title gets the status text", &Error{Status: http.StatusTooManyRequests, Detail: "slow down"},
			http.StatusTooManyRequests, "Too Many Requests", "slow down"},
		{"unknown error reveals nothing", errors.New("db password is hunter2"), http.StatusInternalServerError,
			"Internal Server Error", "an internal error occurred; quote the correlation_id when reporting it"},
	}
	log := slog.New(slog.DiscardHandler)
	c := &conn{h: &wsHandler{log: log}, ctx: context.Background()}
	cs := &chatStreams{log: log}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := c.errorFrame("id-1", tt.err)
			if f.Type != "error" || f.Status != tt.status || f.Title != tt.title || f.Detail != tt.detail {
				t.Errorf("frame = %+v, want status %d, title %q, detail %q", f, tt.status, tt.title, tt.detail)
			}
			app := fiber.New(fiber.Config{ErrorHandler: ErrorHandler(log)})
			app.Get("/", func(*fiber.Ctx) error { return tt.err })
			res, err := app.Test(httptest.NewRequest(http.MethodGet, "/", nil))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var h problem
			if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.status || h.Status != tt.status || h.Title != tt.title || h.Detail != tt.detail {
				t.Errorf("HTTP %d problem = %+v, want status %d, title %q, detail %q", res.StatusCode, h, tt.status, tt.title, tt.detail)
			}
			p := cs.problemOf(context.Background(), tt.err)
			if p.Status != tt.status || p.Title != tt.title || p.Detail != tt.detail {
				t.Errorf("problem = %+v, want status %d, title %q, detail %q", p, tt.status, tt.title, tt.detail)
			}
		})
	}
}
