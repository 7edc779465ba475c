package lm

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestTracedRecordsModelTokensAndCost(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	calls := 0
	inner := Func{ID: "openai:gpt-4o-mini", Fn: func(context.Context, *Request) (*Response, error) {
		calls++
		if calls == 2 {
			return nil, fmt.Errorf("call: %w", ErrRateLimited)
		}
		return &Response{Text: "hi", Model: "openai:gpt-4o-mini", StopReason: "stop",
			Usage: Usage{PromptTokens: 12, CompletionTokens: 3, Calls: 1, CostUSD: 0.0025}}, nil
	}}
	m := NewTraced(inner, tp)
	parentCtx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	if _, err := m.Generate(parentCtx, &Request{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Generate(parentCtx, &Request{}); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("error %v, want ErrRateLimited unchanged", err)
	}
	parent.End()
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	ok, failed := spans[0], spans[1]
	if ok.Name() != "chat gpt-4o-mini" || ok.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("span %q parent %v, want chat gpt-4o-mini under the caller's span", ok.Name(), ok.Parent().SpanID())
	}
	want := map[attribute.Key]attribute.Value{
		"gen_ai.system":              attribute.StringValue("openai"),
		"gen_ai.request.model":       attribute.StringValue("gpt-4o-mini"),
		"gen_ai.response.model":      attribute.StringValue("gpt-4o-mini"),
		"gen_ai.usage.input_tokens":  attribute.IntValue(12),
		"gen_ai.usage.output_tokens": attribute.IntValue(3),
		"kowai.llm.cost_usd":         attribute.Float64Value(0.0025),
	}
	got := map[attribute.Key]attribute.Value{}
	for _, kv := range ok.Attributes() {
		got[kv.Key] = kv.Value
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k].Emit(), v.Emit())
		}
	}
	if failed.Status().Code != codes.Error || failed.Status().Description != "rate_limited" {
		t.Fatalf("failed call's status %+v", failed.Status())
	}
	if _, wrapped := NewTraced(inner, nil).(*Traced); wrapped {
		t.Fatal("a nil provider must leave the model unwrapped")
	}
}
