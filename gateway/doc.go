// Package gateway is kowai's HTTP and WebSocket front door, built on Fiber.
//
// # Request pipeline
//
// Every request passes, in order: client address (ClientAddr: the peer, or
// the client a trusted proxy forwarded for; see package clientaddr), request
// ID (X-Request-ID in and out, and the correlation ID of every log line
// written for it), with tracing on (Options.Tracing) a server span named
// after the route template that joins a caller's W3C traceparent, observation
// (one access-log line with the client address
// and user agent, kowai_http_* metrics by route template), panic recovery,
// security headers, and bounded decompression (a gzip or deflate body is
// decoded up to the body limit, 413 beyond it). Handlers return errors; the
// one ErrorHandler renders them as application/problem+json (RFC 9457) with
// the correlation ID and the security headers, and a handler never writes
// an error body itself. Requests refused before routing (body or headers too
// large) get the same answer, log line and metrics, and their connection
// closes with a lingering close so the client can read it.
//
// # Limits
//
// Routes registered with Op.Auth draw from a bucket per user and route;
// every request without accepted credentials (anonymous routes, unknown
// routes, missing or refused tokens) draws from one bucket per client
// address; the credential routes (Op.AddrLimited) have a stricter bucket per
// address and route.
//
// # Metrics
//
// Metrics are not served on the API port: MetricsServer serves the
// registry on an address of its own (KOWAI_METRICS_ADDR).
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
// lists both and tries requests with a bearer token. /console serves the
// browser console (package console) under the same kind of policy.
//
//	s.Route(fiber.MethodGet, "/api/v1/things/:id", gateway.Op{Summary: "One thing", Auth: true, Response: Thing{}}, handler)
//
// # Health
//
// /health/live answers while the process runs. /health/ready probes the
// configured checks (database, cache, cluster) and fails while the node
// drains. /health reports every check with its error.
package gateway
