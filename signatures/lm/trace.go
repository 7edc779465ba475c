package lm

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// WithTracerProvider makes New put a Traced layer on top of its stack (above the
// cache, the fallback and the retries, so one span is one call as the program sees
// it). Nil, the default, adds no layer.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracing = tp }
}

// Traced records an OpenTelemetry span for every call of the model it wraps, a child
// of the span in the call's context, after the GenAI semantic conventions: the
// requested and the answering model, the input and output tokens, and kowai's cost
// in US dollars and cache hit. It never changes the call.
type Traced struct {
	next   LM
	tracer trace.Tracer
	name   string
	system string
	model  string
}

var _ LM = (*Traced)(nil)

// NewTraced wraps next with spans from tp; a nil tp returns next unwrapped.
func NewTraced(next LM, tp trace.TracerProvider) LM {
	if tp == nil {
		return next
	}
	system, model := splitName(next.Name())
	return &Traced{next: next, tracer: tp.Tracer("github.com/kowai/kowai/signatures/lm"), name: "chat " + model,
		system: system, model: model}
}

// Name returns the wrapped model's name.
func (t *Traced) Name() string { return t.next.Name() }

// Generate calls the wrapped model inside a span.
func (t *Traced) Generate(ctx context.Context, req *Request) (*Response, error) {
	ctx, span := t.tracer.Start(ctx, t.name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "chat"),
		attribute.String("gen_ai.system", t.system),
		attribute.String("gen_ai.request.model", t.model),
		attribute.Int("kowai.llm.messages", len(req.Messages)),
		attribute.Bool("kowai.llm.stream", req.Stream != nil)))
	defer span.End()
	resp, err := t.next.Generate(ctx, req)
	if err != nil {
		span.RecordError(err)
		span.SetAttributes(attribute.String("error.type", Kind(err)))
		span.SetStatus(codes.Error, Kind(err))
		return resp, err
	}
	if resp != nil {
		_, model := splitName(resp.Model)
		span.SetAttributes(
			attribute.String("gen_ai.response.model", model),
			attribute.Int("gen_ai.usage.input_tokens", resp.Usage.PromptTokens),
			attribute.Int("gen_ai.usage.output_tokens", resp.Usage.CompletionTokens),
			attribute.Float64("kowai.llm.cost_usd", resp.Usage.CostUSD),
			attribute.Bool("kowai.llm.cache_hit", resp.CacheHit))
		if resp.StopReason != "" {
			span.SetAttributes(attribute.StringSlice("gen_ai.response.finish_reasons", []string{resp.StopReason}))
		}
	}
	return resp, nil
}
