package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/kowai/kowai/actors/actorpb"
	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/cluster/clusterpb"
	"github.com/kowai/kowai/cluster/clustertest/testpb"
	"github.com/kowai/kowai/internal/testenv"
)

// EchoKind is the name of the echo grain kind.
const EchoKind = "echo"

// NewEchoKind returns the echo grain kind: it answers a testpb.EchoRequest with a
// testpb.EchoReply describing where and how it ran, or with the requested
// actorpb.ErrorReply.
func NewEchoKind() *pcluster.Kind {
	return pcluster.NewKind(EchoKind, actor.PropsFromProducer(func() actor.Actor { return &echoGrain{} }))
}

type echoGrain struct {
	identity string
	served   int64
}

func (g *echoGrain) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *pcluster.ClusterInit:
		g.identity = m.Identity.Identity
	case *testpb.EchoRequest:
		g.served++
		h := ctx.MessageHeader()
		if m.FailCode != actorpb.Code_CODE_UNSPECIFIED {
			ctx.Respond(actorpb.NewError(m.FailCode, h.Get(clusterpb.HeaderCorrelationID), m.FailMessage))
			return
		}
		reply := &testpb.EchoReply{
			Text:           m.Text,
			NodeAddress:    ctx.ActorSystem().Address(),
			Identity:       g.identity,
			CorrelationId:  h.Get(clusterpb.HeaderCorrelationID),
			IdempotencyKey: h.Get(clusterpb.HeaderIdempotencyKey),
			Served:         g.served,
		}
		if m.DelayMs <= 0 {
			ctx.Respond(reply)
			return
		}
		// Answer later without holding the mailbox, as a grain waiting on a model would.
		sender, root := ctx.Sender(), ctx.ActorSystem().Root
		time.AfterFunc(time.Duration(m.DelayMs)*time.Millisecond, func() { root.Send(sender, reply) })
	}
}

// Options describe a test cluster.
type Options struct {
	// Provider is the membership provider; default cluster.ProviderLocal (one LocalGroup).
	Provider cluster.Provider
	// Nodes is the number of nodes; default 1.
	Nodes int
	// Kinds returns the kinds every node hosts; default the echo kind alone.
	Kinds func() []*pcluster.Kind
	// EtcdEndpoints of a running etcd (ProviderEtcd); empty starts one with StartEtcd.
	EtcdEndpoints []string
	// TLS secures the nodes' remoting and membership. When nil, every provider but
	// ProviderLocal gets a CA and node certificate made for this Start (NewCerts).
	TLS *cluster.TLS
	// Configure, when set, adjusts node i's configuration before New.
	Configure func(i int, cfg *cluster.Config)
}

// Start starts a cluster of in-process nodes on loopback and waits until every node sees
// all of them. The nodes are stopped gracefully in t.Cleanup. Node i's Run is not
// started: call it where a test needs the watchdog.
func Start(t testing.TB, opts Options) []*cluster.Node {
	t.Helper()
	if opts.Nodes <= 0 {
		opts.Nodes = 1
	}
	if opts.Provider == "" {
		opts.Provider = cluster.ProviderLocal
	}
	if opts.Kinds == nil {
		opts.Kinds = func() []*pcluster.Kind { return []*pcluster.Kind{NewEchoKind()} }
	}
	if opts.TLS == nil && opts.Provider != cluster.ProviderLocal {
		opts.TLS = NewCerts(t).TLS(t)
	}
	group := cluster.NewLocalGroup()
	var peers []string
	switch opts.Provider {
	case cluster.ProviderAutomanaged:
		for _, p := range FreePorts(t, opts.Nodes) {
			peers = append(peers, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		}
	case cluster.ProviderEtcd:
		if len(opts.EtcdEndpoints) == 0 {
			opts.EtcdEndpoints = StartEtcd(t)
		}
	}
	nodes := make([]*cluster.Node, opts.Nodes)
	for i := range nodes {
		cfg := cluster.Config{
			Name:           "kowai-test",
			Provider:       opts.Provider,
			Peers:          peers,
			EtcdEndpoints:  opts.EtcdEndpoints,
			Kinds:          opts.Kinds(),
			LocalGroup:     group,
			RequestTimeout: 3 * time.Second,
			LeaveTimeout:   5 * time.Second,
			Logger:         Logger(t),
			TLS:            opts.TLS,
		}
		if peers != nil {
			cfg.MembershipAddr = peers[i]
		}
		if opts.Configure != nil {
			opts.Configure(i, &cfg)
		}
		n, err := cluster.New(cfg)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		nodes[i] = n
	}
	// Each start blocks about a second and each leave about three: do them side by side.
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.Start(t.Context()) })
	}
	wg.Wait()
	t.Cleanup(func() { StopAll(t, nodes...) })
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	// Members outside this set (Configure may add peers) may or may not be up yet.
	testenv.Eventually(t, 20*time.Second, func() error {
		for _, n := range nodes {
			seen := map[string]bool{}
			for _, m := range n.Info().Members {
				seen[m.ID] = true
			}
			for _, other := range nodes {
				if !seen[other.ID()] {
					return fmt.Errorf("node %s does not see node %s yet", n.ID(), other.ID())
				}
			}
		}
		return nil
	})
	return nodes
}

// StopAll stops the nodes gracefully, side by side, and reports leave errors.
func StopAll(t testing.TB, nodes ...*cluster.Node) {
	t.Helper()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := n.Stop(ctx); err != nil {
				t.Errorf("stop node %s: %v", n.ID(), err)
			}
		})
	}
	wg.Wait()
}

// WaitMembers waits until every node's member list has want members.
func WaitMembers(t testing.TB, timeout time.Duration, want int, nodes ...*cluster.Node) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		for _, n := range nodes {
			if got := len(n.Info().Members); got != want {
				return fmt.Errorf("node %s sees %d members, want %d", n.ID(), got, want)
			}
		}
		return nil
	})
}

// FreePorts returns n TCP ports that were free on 127.0.0.1 a moment ago.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	lns := make([]net.Listener, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("reserve port: %v", err)
		}
		lns[i] = ln
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		_ = ln.Close() // only the port number is wanted
	}
	return ports
}

// StartEtcd starts an etcd server on random loopback ports with a temporary data
// directory, stops it in t.Cleanup, and returns its client endpoint. Without an etcd
// binary on PATH the test fails when CI=true and is skipped otherwise.
func StartEtcd(t testing.TB) []string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("etcd binary not found (CI=true): install the etcd-server package: %v", err)
		}
		t.Skip("SKIPPED: etcd binary not found on PATH; install the etcd-server package to run etcd cluster tests")
	}
	ports := FreePorts(t, 2)
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	cmd := exec.Command(bin,
		"--name", "kowai-test",
		"--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "kowai-test="+peer,
		"--log-level", "error")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // the data directory is thrown away
		_ = cmd.Wait()
	})
	testenv.Eventually(t, 15*time.Second, func() error {
		resp, err := http.Get(client + "/health")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("etcd health: %s", resp.Status)
		}
		return nil
	})
	return []string{fmt.Sprintf("127.0.0.1:%d", ports[0])}
}

// Logger returns a logger that writes warnings and errors to the test log, and
// everything from debug up when KOWAI_TEST_CLUSTER_LOG=debug.
func Logger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("KOWAI_TEST_CLUSTER_LOG") == "debug" {
		level = slog.LevelDebug
	}
	w := &testWriter{t: t}
	// The library's goroutines may still log after the test; testing panics on that.
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(string(p))
	}
	return len(p), nil
}
