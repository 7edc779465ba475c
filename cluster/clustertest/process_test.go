package clustertest_test

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/cluster"
	"github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/cluster/clustertest/testpb"
	"github.com/kowai/kowai/internal/testenv"
)

// Two node processes and one in-process node on automanaged: a grain owned by a process
// answers; after kill -9 of that process it answers again from a survivor; SIGTERM makes
// the other process leave and exit 0.
func TestProcessesKillAndLeave(t *testing.T) {
	t.Parallel()
	bin := clustertest.BuildBinary(t, "./testdata/node")
	ports := clustertest.FreePorts(t, 5)
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	peers := []string{addr(ports[0]), addr(ports[1]), addr(ports[2])}
	certs := clustertest.NewCerts(t)
	procs := make([]*clustertest.Process, 2)
	for i := range procs {
		procs[i] = clustertest.StartProcess(t, bin, append(certs.Env(),
			"KOWAI_CLUSTER_PROVIDER=automanaged",
			"KOWAI_CLUSTER_ADDR="+addr(ports[3+i]),
			"KOWAI_CLUSTER_PEERS="+strings.Join(peers, ","),
			"KOWAI_CLUSTER_MEMBERSHIP_ADDR="+peers[i],
		))
	}
	n := clustertest.Start(t, clustertest.Options{Provider: cluster.ProviderAutomanaged, TLS: certs.TLS(t), Configure: func(_ int, cfg *cluster.Config) {
		cfg.Peers, cfg.MembershipAddr = peers, peers[2]
		cfg.RequestTimeout = time.Second
	}})[0]
	// Start waited for the in-process node only; wait for the processes too.
	clustertest.WaitMembers(t, 20*time.Second, 3, n)

	victimAddr := addr(ports[3])
	var grain string
	for i := 0; grain == ""; i++ {
		id := fmt.Sprintf("g-%d", i)
		r, err := echo(t.Context(), t, n.Client(), id, &testpb.EchoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if r.NodeAddress == victimAddr {
			grain = id
		}
	}

	procs[0].Kill()
	killed := time.Now()
	testenv.Eventually(t, 20*time.Second, func() error {
		r, err := echo(t.Context(), t, n.Client(), grain, &testpb.EchoRequest{})
		if err != nil {
			return err
		}
		if r.NodeAddress == victimAddr {
			return fmt.Errorf("answered by the killed node")
		}
		return nil
	})
	t.Logf("grain answered again %s after kill -9 of its node", time.Since(killed).Round(time.Millisecond))

	if code := procs[1].Terminate(20 * time.Second); code != 0 {
		t.Fatalf("node process exited %d after SIGTERM, want 0", code)
	}
	clustertest.WaitMembers(t, 20*time.Second, 1, n)
}

// A call in flight to a grain whose node is killed fails with ErrUnavailable as soon as
// the cluster drops the node, instead of waiting out its timeout: a reply from a dead
// node never comes, and a session waiting on one would hold its conversation.
func TestCallFailsWhenOwnerDies(t *testing.T) {
	t.Parallel()
	bin := clustertest.BuildBinary(t, "./testdata/node")
	ports := clustertest.FreePorts(t, 3)
	addr := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	peers := []string{addr(ports[0]), addr(ports[1])}
	certs := clustertest.NewCerts(t)
	proc := clustertest.StartProcess(t, bin, append(certs.Env(),
		"KOWAI_CLUSTER_PROVIDER=automanaged",
		"KOWAI_CLUSTER_ADDR="+addr(ports[2]),
		"KOWAI_CLUSTER_PEERS="+strings.Join(peers, ","),
		"KOWAI_CLUSTER_MEMBERSHIP_ADDR="+peers[0],
	))
	n := clustertest.Start(t, clustertest.Options{Provider: cluster.ProviderAutomanaged, TLS: certs.TLS(t), Configure: func(_ int, cfg *cluster.Config) {
		cfg.Peers, cfg.MembershipAddr = peers, peers[1]
		cfg.RequestTimeout = time.Minute
	}})[0]
	clustertest.WaitMembers(t, 20*time.Second, 2, n)

	var grain string
	var served int64
	for i := 0; grain == ""; i++ {
		id := fmt.Sprintf("g-%d", i)
		r, err := echo(t.Context(), t, n.Client(), id, &testpb.EchoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if r.NodeAddress == addr(ports[2]) {
			grain, served = id, r.Served
		}
	}
	slow := make(chan error, 1)
	go func() {
		_, err := echo(t.Context(), t, n.Client(), grain, &testpb.EchoRequest{DelayMs: time.Minute.Milliseconds()})
		slow <- err
	}()
	// The grain counts every request it received, the slow one included.
	testenv.Eventually(t, 10*time.Second, func() error {
		r, err := echo(t.Context(), t, n.Client(), grain, &testpb.EchoRequest{})
		if err != nil {
			return err
		}
		if r.Served < served+2 {
			served = r.Served
			return fmt.Errorf("the slow request has not reached the grain")
		}
		return nil
	})

	proc.Kill()
	select {
	case err := <-slow:
		if !errors.Is(err, cluster.ErrUnavailable) {
			t.Fatalf("call to a killed node: err = %v, want ErrUnavailable", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("call to a killed node still waiting 30s after the kill")
	}
}
