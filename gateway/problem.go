package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/kowai/kowai/internal/logging"
)

// FieldError is one validation failure, reported in a problem's errors list.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is the gateway's one typed HTTP error. Handlers and middleware return
// it; ErrorHandler renders it as application/problem+json (RFC 9457).
type Error struct {
	Status int
	Title  string
	Detail string
	// Fields lists validation failures (status 400 or 422).
	Fields []FieldError
	// Headers are set on the response (Retry-After, WWW-Authenticate, ...).
	Headers map[string]string
	// Err is the cause, logged but never shown to the client.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.Status, e.Title, e.Detail, e.Err)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Title, e.Detail)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// NewError returns an *Error with the standard title for status.
func NewError(status int, detail string) *Error {
	return &Error{Status: status, Title: http.StatusText(status), Detail: detail}
}

// Validation returns a 400 problem listing the failing fields.
func Validation(fields ...FieldError) *Error {
	e := NewError(http.StatusBadRequest, "the request is invalid; see errors")
	e.Fields = fields
	return e
}

// problem is the JSON body of an error response.
type problem struct {
	Type          string       `json:"type"`
	Title         string       `json:"title"`
	Status        int          `json:"status"`
	Detail        string       `json:"detail,omitempty"`
	Instance      string       `json:"instance"`
	CorrelationID string       `json:"correlation_id"`
	Errors        []FieldError `json:"errors,omitempty"`
}

// asError is the client's view of err, as every error path renders it (the
// HTTP error handler, SSE problem events, WebSocket error frames): an *Error
// as it is, a fiber.Error as its status (with no detail that only repeats
// the status text), anything else as a 500 that reveals nothing, keeping
// err for the log.
func asError(err error) *Error {
	var e *Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &e):
	case errors.As(err, &fe):
		e = NewError(fe.Code, fe.Message)
		if fe.Message == http.StatusText(fe.Code) || fe.Message == "" {
			e.Detail = ""
		}
	default:
		e = &Error{Status: http.StatusInternalServerError, Title: http.StatusText(http.StatusInternalServerError),
			Detail: "an internal error occurred; quote the correlation_id when reporting it", Err: err}
	}
	if e.Title == "" {
		e.Title = http.StatusText(e.Status)
	}
	return e
}

// ErrorHandler renders every error returned by a handler as problem+json.
// Unknown errors become a 500 whose detail reveals nothing; they are logged
// with the correlation ID so an operator can find the cause.
func ErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		e := asError(err)
		ctx := c.UserContext()
		if e.Status >= 500 {
			log.ErrorContext(ctx, "request failed", "status", e.Status, "path", c.Path(), "error", err)
		}
		setSecurityHeaders(c)
		for k, v := range e.Headers {
			c.Set(k, v)
		}
		correlationID := logging.CorrelationID(ctx)
		if correlationID == "" {
			// The server refused the request before any middleware ran (a body
			// over the limit, say); it still gets an ID to quote.
			correlationID = uuid.NewString()
			c.Set(fiber.HeaderXRequestID, correlationID)
		}
		c.Status(e.Status)
		c.Set(fiber.HeaderContentType, "application/problem+json")
		return c.JSON(problem{
			Type:          "about:blank",
			Title:         e.Title,
			Status:        e.Status,
			Detail:        e.Detail,
			Instance:      c.Path(),
			CorrelationID: correlationID,
			Errors:        e.Fields,
		}, "application/problem+json")
	}
}
