package persistence_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// A batch serving three callers, two of them traced, is one span: the child
// of the first traced caller's span, linked to the other's, counting every
// request and row.
func TestWriterBatchSpan(t *testing.T) {
	db := persisttest.SQLite(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h := newHarness(t, db, persistence.WriterOptions{MaxDelay: -1, Tracing: tp})
	conv := newConversation(t, db)
	tracer := tp.Tracer("test")
	ctxA, a := tracer.Start(context.Background(), "caller a")
	ctxB, b := tracer.Start(context.Background(), "caller b")
	answers := []<-chan error{
		h.submit(func() error { return h.w.AppendMessages(ctxA, message(conv, 1), message(conv, 2)) }),
		h.submit(func() error { return h.w.AppendMessages(context.Background(), message(conv, 3)) }),
		h.submit(func() error { return h.w.AppendMessages(ctxB, message(conv, 4)) }),
	}
	h.run(t.Context())
	for _, ans := range answers {
		if err := recv(t, ans); err != nil {
			t.Fatal(err)
		}
	}
	a.End()
	b.End()
	var batches []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "group_commit" {
			batches = append(batches, s)
		}
	}
	if len(batches) != 1 {
		t.Fatalf("%d batch spans, want 1", len(batches))
	}
	batch := batches[0]
	if batch.Parent().SpanID() != a.SpanContext().SpanID() || batch.SpanContext().TraceID() != a.SpanContext().TraceID() {
		t.Errorf("batch span's parent %v, want caller a's span %v", batch.Parent().SpanID(), a.SpanContext().SpanID())
	}
	if links := batch.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != b.SpanContext().SpanID() {
		t.Errorf("batch links %v, want caller b's span only", links)
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range batch.Attributes() {
		attrs[kv.Key] = kv.Value
	}
	if attrs["kowai.group_commit.requests"].AsInt64() != 3 || attrs["kowai.group_commit.rows"].AsInt64() != 4 {
		t.Errorf("batch attributes %v, want 3 requests of 4 rows", batch.Attributes())
	}
	if batch.SpanKind() != trace.SpanKindInternal {
		t.Errorf("batch span kind %v", batch.SpanKind())
	}
}
