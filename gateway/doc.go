// Package gateway is kowai's HTTP and WebSocket front door, built on Fiber.
//
// # Request pipeline
//
// Every request passes, in order: request ID (X-Request-ID in and out, and
// the correlation ID of every log line written for it), observation (one
// access-log line, kowai_http_* metrics by route template), panic recovery,
// and security headers. Handlers return errors; the one ErrorHandler renders
// them as application/problem+json (RFC 9457) with the correlation ID, and a
// handler never writes an error body itself.
//
// # Errors
//
// Return an *Error for anything a client should see:
//
//	return gateway.NewError(http.StatusNotFound, "conversation not found")
//	return gateway.Validation(gateway.FieldError{Field: "content", Message: "must not be empty"})
//
// Any other error becomes a 500 whose detail reveals nothing.
//
// # Health
//
// /health/live answers while the process runs. /health/ready probes the
// configured checks (database, cache, cluster) and fails while the node
// drains. /health reports every check with its error.
package gateway
