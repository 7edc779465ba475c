package clustertest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/cluster/clustertest/testpb"
)

// BenchmarkGrainCallRemoteVsLocal measures sequential grain calls through the typed client
// on a two-node loopback cluster: to a grain owned by the calling node and to one owned by
// the other node, interleaved so both see the same machine state. It reports each latency
// and remote calls per second as a fraction of local ones (issue goal: report only).
func BenchmarkGrainCallRemoteVsLocal(b *testing.B) {
	nodes := clustertest.Start(b, clustertest.Options{Nodes: 2})
	c := nodes[0].Client()
	var local, remote string
	for i := 0; local == "" || remote == ""; i++ {
		id := fmt.Sprintf("bench-%d", i)
		r, err := actorpb.As[*testpb.EchoReply](c.Call(b.Context(), clustertest.EchoKind, id, &testpb.EchoRequest{}))
		if err != nil {
			b.Fatal(err)
		}
		if r.NodeAddress == nodes[0].Address() {
			local = id
		} else {
			remote = id
		}
	}
	req := &testpb.EchoRequest{Text: "ping"}
	var localTime, remoteTime time.Duration
	for b.Loop() {
		for _, tc := range []struct {
			id  string
			acc *time.Duration
		}{{local, &localTime}, {remote, &remoteTime}} {
			start := time.Now()
			if _, err := actorpb.As[*testpb.EchoReply](c.Call(b.Context(), clustertest.EchoKind, tc.id, req)); err != nil {
				b.Fatal(err)
			}
			*tc.acc += time.Since(start)
		}
	}
	b.ReportMetric(float64(localTime.Nanoseconds())/float64(b.N), "local-ns/call")
	b.ReportMetric(float64(remoteTime.Nanoseconds())/float64(b.N), "remote-ns/call")
	b.ReportMetric(float64(localTime)/float64(remoteTime), "x-vs-baseline")
}

// discard is a span exporter that drops what it is given, so that the tracing
// benchmark measures kowai's and the SDK's work, not a collector's.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkGrainCallTraced measures remote grain calls with tracing on (client and
// server spans, the trace context in the message header, a batching SDK exporting to
// nowhere) against the same calls with tracing off, each on a two-node loopback
// cluster of its own, interleaved. x-vs-baseline is traced calls per second as a
// fraction of untraced ones (report only: tracing off is the default).
func BenchmarkGrainCallTraced(b *testing.B) {
	remoteCaller := func(tracing bool) (*cluster.Client, string) {
		var tp *sdktrace.TracerProvider
		if tracing {
			tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		}
		nodes := clustertest.Start(b, clustertest.Options{Nodes: 2, Configure: func(i int, cfg *cluster.Config) {
			if tp != nil {
				cfg.Tracing = tp
			}
			if i == 0 {
				cfg.Kinds = []*pcluster.Kind{}
			}
		}})
		return nodes[0].Client(), "bench"
	}
	plain, plainID := remoteCaller(false)
	traced, tracedID := remoteCaller(true)
	req := &testpb.EchoRequest{Text: "ping"}
	var plainTime, tracedTime time.Duration
	for b.Loop() {
		for _, tc := range []struct {
			c   *cluster.Client
			id  string
			acc *time.Duration
		}{{plain, plainID, &plainTime}, {traced, tracedID, &tracedTime}} {
			start := time.Now()
			if _, err := actorpb.As[*testpb.EchoReply](tc.c.Call(b.Context(), clustertest.EchoKind, tc.id, req)); err != nil {
				b.Fatal(err)
			}
			*tc.acc += time.Since(start)
		}
	}
	b.ReportMetric(float64(plainTime.Nanoseconds())/float64(b.N), "untraced-ns/call")
	b.ReportMetric(float64(tracedTime.Nanoseconds())/float64(b.N), "traced-ns/call")
	b.ReportMetric(float64(plainTime)/float64(tracedTime), "x-vs-baseline")
}
