package durability

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kowai/kowai/agents"
	"github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/internal/testenv"
	"github.com/kowai/kowai/persistence/persisttest"
)

// Bounds of a scenario's phases; each ends as soon as its condition holds.
const (
	// warmTurns is how many turns the load acknowledges before the kill or join.
	warmTurns = 3 * conversations
	// loadTimeout bounds the warm-up and each wait for the load to move on.
	loadTimeout = 90 * time.Second
	// leaveTimeout bounds the survivors' detection of a killed member.
	leaveTimeout = 60 * time.Second
)

// Three, then four, `kowai serve` processes on loopback sharing one MariaDB database,
// driven by fifty simulated chat clients through the gateways, while a node is killed
// with SIGKILL or a node joins. No acknowledged turn may be lost or duplicated.
func TestProcesses(t *testing.T) {
	persisttest.MySQLDSN(t) // skip or fail before the build when MariaDB is not configured
	bin := clustertest.BuildBinary(t, "github.com/kowai/kowai/cmd/kowai")
	// One scenario at a time: each runs four or five nodes and MariaDB on two cores.
	t.Run("automanaged-kill", func(t *testing.T) { killScenario(t, bin, "automanaged") })
	t.Run("automanaged-join", func(t *testing.T) { joinScenario(t, bin) })
	t.Run("etcd-kill", func(t *testing.T) { killScenario(t, bin, "etcd") })
}

// killScenario kills the node that hosts the built-in chat agent (so every
// conversation's next reply must find the agent again) while the load runs.
func killScenario(t *testing.T, bin, provider string) {
	c := newCluster(t, bin, provider, 3)
	c.start(c.nodes...)
	l := newLoad(c, "kill-"+provider)
	l.start()
	t.Cleanup(l.halt)
	waitAcked(t, l, warmTurns)

	addrs := c.memberAddresses()
	victim := c.nodeAt(owner(agents.DefaultAgentID(), addrs))
	c.logPlacement(l, addrs)
	var moved []*conversation
	for _, conv := range l.convs {
		if owner(conv.id, addrs) == victim.clusterAddr {
			moved = append(moved, conv)
		}
	}
	killed := time.Now()
	c.kill(victim)
	t.Logf("killed node %d (%s, hosting the chat agent and %d sessions) with SIGKILL after %d acknowledged turns",
		victim.index, victim.clusterAddr, len(moved), l.acked.Load())
	testenv.Eventually(t, loadTimeout, func() error { return l.ackedSince(killed) })
	// Keep driving until the survivors have dropped the dead member and every
	// conversation has answered on the settled cluster.
	c.waitMembers(leaveTimeout)
	settled := time.Now()
	testenv.Eventually(t, loadTimeout, func() error { return l.ackedSince(settled) })
	l.halt()
	l.answerAgain()
	acked, unacked, messages := l.verify()

	first, last := recovery(l, moved, killed)
	t.Logf("time from kill -9 to the first successful turn on a conversation of the killed node: %s (all %d moved conversations answered within %s)",
		first, len(moved), last)
	report(t, l.summary(t.Name(), acked, unacked, messages,
		fmt.Sprintf("time-to-recover after kill -9: first moved conversation %s, all %d moved %s; dead member dropped within %s; fenced activations=%.0f",
			first, len(moved), last, settled.Sub(killed).Round(time.Millisecond), c.metric("kowai_actor_fenced_total"))))
}

// joinScenario starts a fourth node while the load runs: the sessions whose owner
// becomes the new node move to it, and an old activation still finishing a turn
// overlaps the new one, which fencing must make harmless.
func joinScenario(t *testing.T, bin string) {
	c := newCluster(t, bin, "automanaged", 4)
	c.start(c.nodes[:3]...)
	l := newLoad(c, "join")
	l.start()
	t.Cleanup(l.halt)
	waitAcked(t, l, warmTurns)

	before := c.memberAddresses()
	c.logPlacement(l, before)
	joining := time.Now()
	c.start(c.nodes[3])
	joined := time.Now()
	after := c.memberAddresses()
	var moved []*conversation
	for _, conv := range l.convs {
		if owner(conv.id, before) != owner(conv.id, after) {
			moved = append(moved, conv)
		}
	}
	t.Logf("node 3 joined (every node sees 4 members) %s after its start; %d sessions move to it",
		joined.Sub(joining).Round(time.Millisecond), len(moved))
	testenv.Eventually(t, loadTimeout, func() error { return l.ackedSince(joined) })
	l.halt()
	l.answerAgain()
	acked, unacked, messages := l.verify()

	first, last := recovery(l, moved, joined)
	report(t, l.summary(t.Name(), acked, unacked, messages,
		fmt.Sprintf("join took %s, %d sessions moved, their first turn after the join answered within %s (first %s); fenced activations=%.0f",
			joined.Sub(joining).Round(time.Millisecond), len(moved), last, first, c.metric("kowai_actor_fenced_total"))))
}

func waitAcked(t *testing.T, l *load, n int64) {
	t.Helper()
	testenv.Eventually(t, loadTimeout, func() error {
		if got := l.acked.Load(); got < n {
			return fmt.Errorf("%d turns acknowledged, want %d", got, n)
		}
		return nil
	})
}

// recovery returns how long after since the first of convs, and the last, acknowledged
// a turn sent after since.
func recovery(l *load, convs []*conversation, since time.Time) (first, last time.Duration) {
	var ds []time.Duration
	for _, conv := range convs {
		if at := l.firstAckAfter(conv, since); !at.IsZero() {
			ds = append(ds, at.Sub(since).Round(time.Millisecond))
		}
	}
	if len(ds) == 0 {
		return 0, 0
	}
	return slices.Min(ds), slices.Max(ds)
}

// memberAddresses returns the members' remoting addresses as the first live node sees
// them.
func (c *kowaiCluster) memberAddresses() []string {
	c.t.Helper()
	info, err := c.info(c.live()[0])
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, m := range info.Members {
		out = append(out, m.Address)
	}
	return out
}

func (c *kowaiCluster) nodeAt(clusterAddr string) *kowaiNode {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.clusterAddr == clusterAddr {
			return n
		}
	}
	c.t.Fatalf("no node has the cluster address %q", clusterAddr)
	return nil
}

// logPlacement logs, per node, how many sessions the rendezvous hash places there and
// how many the node reports alive, so a reader can trust the "moved" figures.
func (c *kowaiCluster) logPlacement(l *load, addrs []string) {
	c.t.Helper()
	predicted := map[string]int{}
	for _, conv := range l.convs {
		predicted[owner(conv.id, addrs)]++
	}
	for _, n := range c.live() {
		info, err := c.info(n)
		if err != nil {
			c.t.Fatal(err)
		}
		c.t.Logf("node %d (%s): %d sessions placed by hash, %d session activations reported",
			n.index, n.clusterAddr, predicted[n.clusterAddr], info.Activations["session"])
	}
}
