package clustertest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/cluster/clustertest/testpb"
)

// TestInboxAcrossNodes pushes messages from one node's actor system to an
// inbox on another, as a grain streaming tokens to a remote caller does.
func TestInboxAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := clustertest.Start(t, clustertest.Options{Nodes: 2})
	in, err := nodes[0].Client().NewInbox(4)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if in.Address() != nodes[0].Address() || in.ID() == "" {
		t.Fatalf("inbox pid %s/%s, node %s", in.Address(), in.ID(), nodes[0].Address())
	}
	target := actor.NewPID(in.Address(), in.ID())
	root := nodes[1].Cluster().ActorSystem.Root
	const n = 50 // more than the buffer: the rest wait in the mailbox
	for i := range n {
		root.Send(target, &testpb.EchoReply{Text: fmt.Sprint(i)})
	}
	for i := range n {
		select {
		case m := <-in.C():
			if got := m.(*testpb.EchoReply).Text; got != fmt.Sprint(i) {
				t.Fatalf("message %d arrived as %q: order lost", i, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d never arrived", i)
		}
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	if err := in.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}
