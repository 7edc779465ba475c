package tracing

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ErrConfig is wrapped by New's errors for OTEL_* values kowai cannot honour.
var ErrConfig = errors.New("tracing configuration")

// DefaultServiceName is the service.name of kowai's spans when OTEL_SERVICE_NAME is unset.
const DefaultServiceName = "kowai"

// Options add what the environment does not say.
type Options struct {
	// Version is the service.version resource attribute; empty leaves it out.
	Version string
	// InstanceID is the service.instance.id resource attribute, which tells the
	// nodes of one cluster apart; empty leaves it out. OTEL_RESOURCE_ATTRIBUTES
	// overrides it.
	InstanceID string
	// Exporter replaces the OTLP/HTTP exporter, for tests; nil uses OTLP/HTTP.
	Exporter sdktrace.SpanExporter
}

// Provider is the process's tracer provider, or nothing when tracing is off.
//
// Lifecycle: New builds it (no network traffic until the first batch);
// Shutdown flushes the spans still buffered and stops the exporter. Shutdown is
// safe on a Provider that is off, and more than once.
type Provider struct {
	sdk *sdktrace.TracerProvider
}

// Enabled reports whether getenv's OTEL_* variables turn tracing on.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")), "none") {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// New returns the tracer provider the OTEL_* variables describe: off (see
// Enabled), or an SDK provider exporting over OTLP/HTTP. The exporter reads the
// process environment itself; getenv decides only whether tracing is on and
// validates the choices kowai does not support (another exporter or protocol).
func New(ctx context.Context, getenv func(string) string, opts Options) (*Provider, error) {
	if !Enabled(getenv) {
		return &Provider{}, nil
	}
	if e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e != "" && e != "otlp" {
		return nil, fmt.Errorf("%w: OTEL_TRACES_EXPORTER=%q: kowai exports traces with otlp only (or none)", ErrConfig, e)
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := strings.TrimSpace(getenv(k)); p != "" && p != "http/protobuf" {
			return nil, fmt.Errorf("%w: %s=%q: kowai speaks OTLP over HTTP with protobuf bodies only (http/protobuf)", ErrConfig, k, p)
		}
	}
	exp := opts.Exporter
	if exp == nil {
		var err error
		if exp, err = otlptracehttp.New(ctx); err != nil {
			return nil, fmt.Errorf("%w: OTLP/HTTP trace exporter: %w", ErrConfig, err)
		}
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", DefaultServiceName)}
	if opts.Version != "" {
		attrs = append(attrs, attribute.String("service.version", opts.Version))
	}
	if opts.InstanceID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", opts.InstanceID))
	}
	// Later detectors win: the environment overrides kowai's defaults.
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("%w: OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES: %w", ErrConfig, err)
	}
	return &Provider{sdk: sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))}, nil
}

// TracerProvider returns the provider to hand to kowai's components, or nil when
// tracing is off (each component then skips its span work).
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil || p.sdk == nil {
		return nil
	}
	return p.sdk
}

// Enabled reports whether spans are recorded and exported.
func (p *Provider) Enabled() bool { return p != nil && p.sdk != nil }

// ForceFlush exports the spans ended so far.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if !p.Enabled() {
		return nil
	}
	if err := p.sdk.ForceFlush(ctx); err != nil {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

// Shutdown exports the spans still buffered within ctx and stops exporting.
func (p *Provider) Shutdown(ctx context.Context) error {
	if !p.Enabled() {
		return nil
	}
	if err := p.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down tracing: %w", err)
	}
	return nil
}

// Tracer returns tp's tracer for the named instrumentation scope, or nil when tp
// is nil (tracing off). Components keep the result and skip span work when it
// is nil.
func Tracer(tp trace.TracerProvider, scope string) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(scope)
}
