package clustertest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/cluster/clustertest/testpb"
	"github.com/kowai/kowai/internal/testenv"
)

// TestGrainCallSpansAcrossNodes calls an echo grain on another node: the
// calling node records a client span under the caller's span, the grain's
// node a server span whose parent is that client span, in the same trace.
// The trace context can only get there inside the message's header.
func TestGrainCallSpansAcrossNodes(t *testing.T) {
	t.Parallel()
	recs := []*tracetest.SpanRecorder{tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()}
	tps := []*sdktrace.TracerProvider{sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recs[0])),
		sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recs[1]))}
	nodes := clustertest.Start(t, clustertest.Options{Nodes: 2, Configure: func(i int, cfg *cluster.Config) {
		cfg.Tracing = tps[i]
		if i == 0 {
			cfg.Kinds = []*pcluster.Kind{} // the echo grains all live on node 1
		}
	}})
	ctx, parent := tps[0].Tracer("test").Start(context.Background(), "caller")
	reply, err := nodes[0].Client().Call(ctx, clustertest.EchoKind, "traced", &testpb.EchoRequest{Text: "hi"})
	parent.End()
	if err != nil {
		t.Fatal(err)
	}
	if got := reply.(*testpb.EchoReply).NodeAddress; got != nodes[1].Address() {
		t.Fatalf("the grain ran on %s, want node 1 (%s)", got, nodes[1].Address())
	}
	client := ended(t, recs[0], "echo/EchoRequest")
	server := ended(t, recs[1], "echo/EchoRequest")
	if client.SpanKind() != trace.SpanKindClient || client.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("client span %v under %v, want a client span under the caller", client.SpanKind(), client.Parent().SpanID())
	}
	if server.SpanKind() != trace.SpanKindServer || !server.Parent().IsRemote() ||
		server.Parent().SpanID() != client.SpanContext().SpanID() || server.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("server span %v with parent %v (remote %v) in trace %v; want a server span under client span %v in trace %v",
			server.SpanKind(), server.Parent().SpanID(), server.Parent().IsRemote(), server.SpanContext().TraceID(),
			client.SpanContext().SpanID(), parent.SpanContext().TraceID())
	}
}

// ended returns the one span named name that rec saw end. A server span ends
// when its grain's Receive returns, which may be just after the reply arrived.
func ended(t *testing.T, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	testenv.Eventually(t, 5*time.Second, func() error {
		found = found[:0]
		for _, s := range rec.Ended() {
			if s.Name() == name {
				found = append(found, s)
			}
		}
		if len(found) != 1 {
			return fmt.Errorf("%d spans named %s ended, want 1", len(found), name)
		}
		return nil
	})
	return found[0]
}
