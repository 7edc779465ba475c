package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kowai/kowai/internal/logging"
)

// Every request is a server span named after its route template; a caller's
// W3C traceparent makes it a child of the caller's span.
func TestRequestSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	s, err := New(Options{Addr: "127.0.0.1:0", Logger: logging.New(io.Discard, slog.LevelInfo, "json"),
		Registry: prometheus.NewRegistry(), Tracing: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))})
	if err != nil {
		t.Fatal(err)
	}
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		path, traceparent, name string
		status                  int
	}{
		{"/health/live", caller, "GET /health/live", http.StatusOK},
		{"/health/live", "", "GET /health/live", http.StatusOK},
		{"/no/such/route/42", "", "GET unmatched", http.StatusNotFound},
		{"/health/live", "not-a-traceparent", "GET /health/live", http.StatusOK},
	} {
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		if tc.traceparent != "" {
			req.Header.Set("traceparent", tc.traceparent)
		}
		res, err := s.App().Test(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		spans := rec.Ended()
		sp := spans[len(spans)-1]
		attrs := map[attribute.Key]attribute.Value{}
		for _, kv := range sp.Attributes() {
			attrs[kv.Key] = kv.Value
		}
		if sp.Name() != tc.name || sp.SpanKind() != trace.SpanKindServer || attrs["http.response.status_code"].AsInt64() != int64(tc.status) {
			t.Errorf("%s: span %q kind %v status %v, want %q, server, %d", tc.path, sp.Name(), sp.SpanKind(), attrs["http.response.status_code"].Emit(), tc.name, tc.status)
		}
		if attrs["kowai.correlation_id"].AsString() != res.Header.Get("X-Request-ID") || res.Header.Get("X-Request-ID") == "" {
			t.Errorf("%s: span's correlation ID %q, response's X-Request-ID %q", tc.path, attrs["kowai.correlation_id"].Emit(), res.Header.Get("X-Request-ID"))
		}
		joined := sp.Parent().IsValid() && sp.Parent().TraceID().String() == "4bf92f3577b34da6a3ce929d0e0e4736" &&
			sp.Parent().SpanID().String() == "00f067aa0ba902b7" && sp.SpanContext().TraceID() == sp.Parent().TraceID()
		if joined != (tc.traceparent == caller) {
			t.Errorf("%s with traceparent %q: parent %v, joined the caller's trace: %v", tc.path, tc.traceparent, sp.Parent(), joined)
		}
	}
}

// WebSocket frame spans are named only after the frame types kowai knows:
// the client chooses the type, and span names must stay few.
func TestFrameSpanNames(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	h := &wsHandler{tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")}
	for kind, want := range map[string]string{"message": "WS message", "resume": "WS resume", "subscribe": "WS subscribe",
		"x' OR 1=1": "WS other", "": "WS other"} {
		_, span := h.frameSpan(t.Context(), trace.SpanContext{}, kind, "id-1")
		span.End()
		if got := rec.Ended()[len(rec.Ended())-1].Name(); got != want {
			t.Errorf("frame type %q: span %q, want %q", kind, got, want)
		}
	}
	if ctx, span := (&wsHandler{}).frameSpan(t.Context(), trace.SpanContext{}, "message", "id"); span != nil || ctx != t.Context() {
		t.Error("with tracing off a frame must get no span")
	}
}
