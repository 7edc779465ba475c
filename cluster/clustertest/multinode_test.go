package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/cluster/clusterpb"
	"github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/cluster/clustertest/testpb"
	"github.com/kowai/kowai/internal/testenv"
)

// checkRemoteCalls calls grains from nodes[0] until some answer from every node, and
// checks that an error reply from a remote grain maps to its sentinel.
func checkRemoteCalls(t *testing.T, nodes []*cluster.Node) {
	t.Helper()
	c := nodes[0].Client()
	answeredBy := map[string]bool{}
	remote := ""
	for i := 0; i < 200 && len(answeredBy) < len(nodes); i++ {
		id := fmt.Sprintf("grain-%d", i)
		ctx := clusterpb.WithCorrelationID(t.Context(), "corr-"+id)
		r, err := echo(ctx, t, c, id, &testpb.EchoRequest{Text: id})
		if err != nil {
			t.Fatalf("call %s: %v", id, err)
		}
		if r.Text != id || r.CorrelationId != "corr-"+id {
			t.Fatalf("reply %v", r)
		}
		answeredBy[r.NodeAddress] = true
		if r.NodeAddress != nodes[0].Address() {
			remote = id
		}
	}
	if len(answeredBy) != len(nodes) {
		t.Fatalf("grains answered from %d nodes, want %d", len(answeredBy), len(nodes))
	}
	_, err := echo(t.Context(), t, c, remote, &testpb.EchoRequest{FailCode: actorpb.Code_CODE_CONFLICT, FailMessage: "stale version"})
	var ae *actorpb.Error
	if !errors.Is(err, actorpb.ErrConflict) || !errors.As(err, &ae) || ae.Message != "stale version" {
		t.Fatalf("remote error reply: %v", err)
	}
}

func TestAutomanagedNodes(t *testing.T) {
	t.Parallel()
	nodes := clustertest.Start(t, clustertest.Options{Provider: cluster.ProviderAutomanaged, Nodes: 2})
	checkRemoteCalls(t, nodes)

	for _, n := range nodes {
		addr := n.MembershipAddr()
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("membership endpoint bound to %q", addr)
		}
		// Had the endpoint been bound to the wildcard address, this port would be taken
		// on every loopback address.
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", port))
		if err != nil {
			t.Fatalf("membership port %s is bound beyond 127.0.0.1: %v", port, err)
		}
		_ = ln.Close()
	}
}

func TestEtcdNodes(t *testing.T) {
	t.Parallel()
	endpoints := clustertest.StartEtcd(t)
	nodes := clustertest.Start(t, clustertest.Options{
		Provider: cluster.ProviderEtcd, Nodes: 2, EtcdEndpoints: endpoints,
		Configure: func(_ int, cfg *cluster.Config) {
			cfg.WatchdogInterval = 100 * time.Millisecond
			cfg.WatchdogGrace = 500 * time.Millisecond
		},
	})
	checkRemoteCalls(t, nodes)

	// Removing a member's registration is what lease expiry does to a paused node: the
	// node drops out of its own member list and its watchdog must end Run.
	victim := nodes[1]
	runErr := make(chan error, 1)
	go func() { runErr <- victim.Run(t.Context()) }()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(t.Context(), "/kowai", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	deleted := 0
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Key), victim.ID()) {
			if _, err := cli.Delete(t.Context(), string(kv.Key)); err != nil {
				t.Fatal(err)
			}
			deleted++
		}
	}
	if deleted == 0 {
		t.Fatalf("no etcd key names member %s", victim.ID())
	}
	select {
	case err := <-runErr:
		if !errors.Is(err, cluster.ErrNotMember) && !errors.Is(err, cluster.ErrBlocked) {
			t.Fatalf("Run returned %v, want ErrNotMember or ErrBlocked", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watchdog did not end Run within 10s of the node's removal")
	}
	clustertest.WaitMembers(t, 10*time.Second, 1, nodes[0])
}

func TestWatchdogBlocked(t *testing.T) {
	t.Parallel()
	nodes := clustertest.Start(t, clustertest.Options{Configure: func(_ int, cfg *cluster.Config) {
		cfg.WatchdogInterval = 50 * time.Millisecond
		cfg.WatchdogGrace = 200 * time.Millisecond
	}})
	n := nodes[0]
	runErr := make(chan error, 1)
	go func() { runErr <- n.Run(t.Context()) }()
	// Gossip delivers the others' block lists into this one; block directly to stand in.
	n.Cluster().Remote.BlockList().Block(n.ID())
	select {
	case err := <-runErr:
		if !errors.Is(err, cluster.ErrBlocked) {
			t.Fatalf("Run returned %v, want ErrBlocked", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watchdog did not end Run within 5s of the block")
	}
}

func TestGracefulLeave(t *testing.T) {
	t.Parallel()
	var leaveSawDraining, leaveCalled atomic.Bool
	var nodes []*cluster.Node
	nodes = clustertest.Start(t, clustertest.Options{Configure: func(_ int, cfg *cluster.Config) {
		cfg.OnLeave = func(ctx context.Context) {
			leaveCalled.Store(true)
			leaveSawDraining.Store(nodes[0].Draining())
		}
	}})
	n := nodes[0]
	if _, err := echo(t.Context(), t, n.Client(), "idle", &testpb.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	runErr := make(chan error, 1)
	go func() { runErr <- n.Run(ctx) }()

	slow := make(chan error, 1)
	go func() {
		_, err := echo(t.Context(), t, n.Client(), "turn", &testpb.EchoRequest{DelayMs: 600})
		slow <- err
	}()
	testenv.Eventually(t, 2*time.Second, func() error {
		if n.Info().Activations[clustertest.EchoKind] < 2 {
			return errors.New("slow call not started")
		}
		return nil
	})
	cancel()
	if err := <-slow; err != nil {
		t.Fatalf("in-flight call during leave: %v", err)
	}
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("Run after graceful leave: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancellation")
	}
	if !leaveCalled.Load() || !leaveSawDraining.Load() || !n.Draining() {
		t.Fatalf("OnLeave called %v, saw draining %v", leaveCalled.Load(), leaveSawDraining.Load())
	}
	if got := n.Info().Activations[clustertest.EchoKind]; got != 0 {
		t.Fatalf("%d grains still active after leave", got)
	}
}

// During a rolling upgrade from a release on the library's etcd provider, nodes on the
// library's provider and nodes on kowai's agree on who joins and who leaves.
func TestEtcdMixedWithLibraryProvider(t *testing.T) {
	t.Parallel()
	endpoints := clustertest.StartEtcd(t)
	certs := clustertest.NewCerts(t).TLS(t)
	opts := clustertest.Options{Provider: cluster.ProviderEtcd, EtcdEndpoints: endpoints, TLS: certs}
	first := clustertest.Start(t, opts)[0]

	// An old node: the library's provider under the same base key and cluster name.
	lib, err := etcd.NewWithConfig("/kowai", clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return clustertest.Logger(t) }))
	port := clustertest.FreePorts(t, 1)[0]
	rc := remote.Configure("127.0.0.1", port,
		remote.WithServerOptions(grpc.Creds(credentials.NewTLS(certs.ServerConfig()))),
		remote.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(certs.ClientConfig()))))
	old := pcluster.New(sys, pcluster.Configure("kowai-test", lib, disthash.New(), rc,
		pcluster.WithKinds(clustertest.NewEchoKind())))
	old.StartMember()
	oldStopped := false
	t.Cleanup(func() {
		if !oldStopped {
			old.Shutdown(true)
		}
	})
	oldID := "kowai-test@" + sys.ID

	second := clustertest.Start(t, opts)[0] // registers after the old node's watch started
	sees := func(members *pcluster.MemberSet, want ...string) error {
		for _, id := range want {
			if !members.ContainsID(id) {
				return fmt.Errorf("member %s missing from %v", id, members.Members())
			}
		}
		if members.Len() != len(want) {
			return fmt.Errorf("members %v, want %v", members.Members(), want)
		}
		return nil
	}
	all := []string{first.ID(), second.ID(), oldID}
	testenv.Eventually(t, 20*time.Second, func() error {
		return errors.Join(sees(first.Cluster().MemberList.Members(), all...),
			sees(second.Cluster().MemberList.Members(), all...),
			sees(old.MemberList.Members(), all...))
	})

	clustertest.StopAll(t, second)
	testenv.Eventually(t, 20*time.Second, func() error {
		return errors.Join(sees(first.Cluster().MemberList.Members(), first.ID(), oldID),
			sees(old.MemberList.Members(), first.ID(), oldID))
	})
	old.Shutdown(true)
	oldStopped = true
	clustertest.WaitMembers(t, 20*time.Second, 1, first)
}
