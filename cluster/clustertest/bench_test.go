package clustertest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kowai/kowai/actors/actorpb"
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
