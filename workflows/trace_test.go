package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kowai/kowai/workflows"
)

// An execution is a span, each attempt of a task a child of it: a task that
// fails once and then succeeds shows as two attempts, the first failed.
func TestRunAndTaskAttemptSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e := newEnv(t, workflows.Services{Tracing: tp}, workflows.Limits{})
	calls := 0
	must(t, workflows.Register(e.reg, "flaky", func(c *workflows.Context, _ none) (string, error) {
		return workflows.Task(c, "call", func(context.Context) (string, error) {
			if calls++; calls == 1 {
				return "", errors.New("transient")
			}
			return "ok", nil
		}, workflows.WithRetry(workflows.Retry{Attempts: 2, Initial: time.Millisecond}))
	}))
	ctx, parent := tp.Tracer("test").Start(context.Background(), "start run")
	out := e.run(ctx, "flaky", "r1", `{}`)
	parent.End()
	if out.Status != workflows.StatusCompleted {
		t.Fatalf("run = %+v", out)
	}
	var run sdktrace.ReadOnlySpan
	var attempts []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "workflow.run flaky":
			run = s
		case "workflow.task call":
			attempts = append(attempts, s)
		}
	}
	if run == nil || run.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("run span %v, want a child of the caller's span", run)
	}
	if len(attempts) != 2 {
		t.Fatalf("%d attempt spans, want 2", len(attempts))
	}
	for i, a := range attempts {
		attrs := map[attribute.Key]attribute.Value{}
		for _, kv := range a.Attributes() {
			attrs[kv.Key] = kv.Value
		}
		if a.Parent().SpanID() != run.SpanContext().SpanID() || attrs["kowai.workflow.attempt"].AsInt64() != int64(i+1) ||
			attrs["kowai.workflow.run_id"].AsString() != "r1" {
			t.Errorf("attempt %d: parent %v attributes %v", i+1, a.Parent().SpanID(), a.Attributes())
		}
	}
	if attempts[0].Status().Code != codes.Error || attempts[1].Status().Code == codes.Error {
		t.Errorf("attempt statuses %v, %v; want the first failed, the second not", attempts[0].Status(), attempts[1].Status())
	}
}
