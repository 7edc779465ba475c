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
// # API documents
//
// Every route is registered with Server.Route and an Op, so /openapi.json
// (OpenAPI 3.1) describes them all; an Op needs only a Summary, and the
// generator derives the description, tag, operationId and security API
// linters require. /asyncapi.json (AsyncAPI 3.0) describes the chat
// WebSocket's frames, read by reflection from the frame structs' json, frame
// and doc tags. /docs is an embedded page (no inline script, strict CSP) that
// lists both and tries requests with a bearer token.
//
//	s.Route(fiber.MethodGet, "/api/v1/things/:id", gateway.Op{Summary: "One thing", Auth: true, Response: Thing{}}, handler)
//
// # Health
//
// /health/live answers while the process runs. /health/ready probes the
// configured checks (database, cache, cluster) and fails while the node
// drains. /health reports every check with its error.
package gateway
