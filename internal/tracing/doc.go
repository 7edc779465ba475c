// Package tracing sets up kowai's OpenTelemetry tracing from the standard OTEL_*
// environment variables.
//
// # Off by default
//
// Tracing is on only when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (and OTEL_SDK_DISABLED is not
// true, and OTEL_TRACES_EXPORTER is not "none"). Off, New returns a Provider
// whose TracerProvider is nil: every component given a nil TracerProvider
// skips its span work entirely, so tracing off costs a nil check.
//
// # Export
//
// Spans are exported in batches over OTLP/HTTP with protobuf bodies; the
// exporter reads the other standard variables itself (OTEL_EXPORTER_OTLP_HEADERS,
// _TIMEOUT, _COMPRESSION, _CERTIFICATE, ...), the SDK reads the sampler
// (OTEL_TRACES_SAMPLER, default parentbased_always_on) and the batch settings
// (OTEL_BSP_*), and the resource takes OTEL_SERVICE_NAME (default "kowai")
// and OTEL_RESOURCE_ATTRIBUTES.
//
//	p, err := tracing.New(ctx, os.Getenv, tracing.Options{Version: version, InstanceID: addr})
//	if err != nil { ... }
//	defer p.Shutdown(context.Background())
//	node, err := cluster.New(cluster.Config{..., Tracing: p.TracerProvider()})
//
// # Propagation
//
// The W3C trace context (traceparent, tracestate) is the only format: it is
// read from incoming HTTP requests and carried in grain message headers
// across nodes (package cluster/clusterpb).
package tracing
