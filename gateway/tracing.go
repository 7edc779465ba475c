package gateway

import (
	"context"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kowai/kowai/internal/logging"
	"github.com/kowai/kowai/internal/tracing"
)

// fiberHeaders reads request headers for the trace propagator.
type fiberHeaders struct{ c *fiber.Ctx }

func (h fiberHeaders) Get(key string) string { return h.c.Get(key) }

// traceRequests wraps the rest of the chain in a server span, a child of the
// caller's span when the request has a W3C traceparent header. It runs after
// the error rendering of observe, so the span sees the final status; the
// span is named after the matched route template, never the raw path.
func traceRequests(tracer trace.Tracer) fiber.Handler {
	return func(c *fiber.Ctx) error {
		method := knownMethod(c.Method())
		ctx := tracing.Extract(c.UserContext(), fiberHeaders{c})
		ctx, span := tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("http.request.method", method),
			attribute.String("url.path", string(c.Request().URI().Path())),
			attribute.String("kowai.correlation_id", logging.CorrelationID(ctx))))
		defer span.End()
		c.SetUserContext(ctx)
		err := c.Next()
		route := routeLabel(c)
		status := c.Response().StatusCode()
		span.SetName(method + " " + route)
		span.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", status))
		if status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		return err
	}
}

// wsLocalSpan is the Locals key of the upgrade request's span context, which
// every WebSocket message span links to.
const wsLocalSpan = "kowai.ws.span"

// frameSpan starts the span of one WebSocket message of type kind, or returns
// ctx and nil with tracing off. Each message is a trace of its own (the
// connection outlives any sensible trace), linked to the upgrade request's.
func (h *wsHandler) frameSpan(ctx context.Context, upgrade trace.SpanContext, kind, id string) (context.Context, trace.Span) {
	if h.tracer == nil {
		return ctx, nil
	}
	opts := []trace.SpanStartOption{trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("kowai.ws.type", truncate(kind, 64)), attribute.String("kowai.ws.id", truncate(id, 128)),
			attribute.String("kowai.correlation_id", logging.CorrelationID(ctx)))}
	if upgrade.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: upgrade}))
	}
	name := "WS other"
	switch kind {
	case "message", "auth", "resume", "subscribe", "unsubscribe":
		// The client names the frame type: only known ones name the span.
		name = "WS " + kind
	}
	return h.tracer.Start(ctx, name, opts...)
}

// endSpan ends span, when there is one.
func endSpan(span trace.Span) {
	if span != nil {
		span.End()
	}
}

// truncate cuts a client-supplied attribute value to n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "")
	}
	return s
}
