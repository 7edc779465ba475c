package tracing

import (
	"context"
	"errors"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestNewFromEnvironment(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		enabled bool
		err     bool
	}{
		{"nothing set: off", map[string]string{}, false, false},
		{"service name alone: off", map[string]string{"OTEL_SERVICE_NAME": "kowai"}, false, false},
		{"endpoint: on", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, false},
		{"traces endpoint: on", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true, false},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_SDK_DISABLED": "true"}, false, false},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_TRACES_EXPORTER": "none"}, false, false},
		{"exporter otlp", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_TRACES_EXPORTER": "otlp"}, true, false},
		{"exporter zipkin refused", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_TRACES_EXPORTER": "zipkin"}, false, true},
		{"grpc refused", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, true},
		{"traces grpc refused", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, false, true},
		{"http/protobuf", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(t.Context(), env(tt.env), Options{Exporter: tracetest.NewInMemoryExporter()})
			if tt.err {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("err = %v, want ErrConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := p.Shutdown(context.Background()); err != nil {
					t.Error(err)
				}
			}()
			if p.Enabled() != tt.enabled || (p.TracerProvider() != nil) != tt.enabled {
				t.Fatalf("enabled = %v, provider %v; want %v", p.Enabled(), p.TracerProvider(), tt.enabled)
			}
			if Tracer(p.TracerProvider(), "x") == nil && tt.enabled {
				t.Fatal("no tracer from an enabled provider")
			}
		})
	}
}

func TestResourceNamesServiceAndInstance(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	p, err := New(t.Context(), env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}),
		Options{Version: "v1.2.3", InstanceID: "10.0.0.7:7000", Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.TracerProvider().Tracer("test").Start(context.Background(), "s")
	span.End()
	// The in-memory exporter forgets its spans at shutdown: flush and read first.
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	t.Cleanup(func() {
		if err := p.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if len(spans) != 1 {
		t.Fatalf("%d spans exported, want 1", len(spans))
	}
	got := map[string]string{}
	for _, kv := range spans[0].Resource.Attributes() {
		got[string(kv.Key)] = kv.Value.Emit()
	}
	for k, v := range map[string]string{"service.name": DefaultServiceName, "service.version": "v1.2.3", "service.instance.id": "10.0.0.7:7000"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestInjectExtractRoundTrip(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, span := tp.Tracer("test").Start(context.Background(), "caller")
	defer span.End()

	header := map[string]string{}
	Inject(context.Background(), header)
	if len(header) != 0 {
		t.Fatalf("a context without a span injected %v", header)
	}
	Inject(ctx, header)
	if header[HeaderTraceParent] == "" {
		t.Fatalf("no traceparent in %v", header)
	}
	got := trace.SpanContextFromContext(Extract(context.Background(), mapGetter(header)))
	if !got.IsRemote() || got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() {
		t.Fatalf("extracted %v, want the caller's span %v as remote parent", got, span.SpanContext())
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-0000000000000000-01"} {
		if sc := trace.SpanContextFromContext(Extract(context.Background(), mapGetter{HeaderTraceParent: bad})); sc.IsValid() {
			t.Errorf("traceparent %q gave a valid span context %v", bad, sc)
		}
	}
}

type mapGetter map[string]string

func (m mapGetter) Get(k string) string { return m[k] }
