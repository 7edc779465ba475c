package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/test"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kowai/kowai/cluster/etcdprovider"
	"github.com/kowai/kowai/internal/logging"
	"github.com/kowai/kowai/internal/tracing"
)

// automanagedRefresh is how often automanaged polls its peers' membership endpoints.
const automanagedRefresh = time.Second

// Node is one member of a kowai cluster: an actor system with remoting, a membership
// provider and the grain kinds it hosts.
//
// Lifecycle: New validates the configuration and allocates nothing on the network.
// Start binds the listeners and joins the cluster; it may be called once, and Run calls
// it when it was not called. Run watches membership until ctx ends, then leaves
// gracefully and returns nil, or returns ErrBlocked / ErrNotMember at once (after a
// hard shutdown) when the cluster has dropped this node. Stop leaves gracefully; it is
// idempotent, safe after a failed or missing Start, and safe to call concurrently with Run.
type Node struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	acts    *activations
	client  *Client
	kinds   []*cluster.Kind
	// tracer is nil when tracing is off.
	tracer trace.Tracer

	c          atomic.Pointer[cluster.Cluster]
	memberID   string // set before c is stored
	membership net.Addr
	draining   atomic.Bool
	startOnce  sync.Once
	startErr   error
	stopOnce   sync.Once
	stopErr    error
}

// New returns a node for cfg, or an error wrapping ErrConfig.
func New(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "cluster"),
		metrics: m,
		tracer:  tracing.Tracer(cfg.Tracing, "github.com/kowai/kowai/cluster"),
	}
	n.acts = newActivations(func(kind string) { m.activations.WithLabelValues(kind).Inc() })
	n.acts.tracer, n.acts.nodeID = n.tracer, n.ID
	for _, k := range cfg.Kinds {
		n.kinds = append(n.kinds, n.acts.instrument(k))
		m.activations.WithLabelValues(k.Kind)
	}
	n.client = &Client{node: n}
	if cfg.Provider != ProviderLocal && cfg.TLS == nil {
		n.log.Warn("INSECURE: cluster remoting and membership are plaintext and unauthenticated; anyone who reaches them can act for any user",
			"provider", string(cfg.Provider), "addr", cfg.Addr)
	}
	return n, nil
}

// Client returns the node's grain client. Calls fail with ErrUnavailable until Start.
func (n *Node) Client() *Client { return n.client }

// Draining reports whether the node has begun a graceful leave. Readiness checks and the
// gateway use it to stop taking new work; grain calls already under way continue.
func (n *Node) Draining() bool { return n.draining.Load() }

// cluster returns the started cluster, or nil.
func (n *Node) cluster() *cluster.Cluster { return n.c.Load() }

// Cluster returns the library's cluster once started, else nil. It exists for tests
// and diagnostics; kowai code goes through Client.
func (n *Node) Cluster() *cluster.Cluster { return n.cluster() }

// ID returns the node's member ID, "" before Start. A new ID is drawn on every start.
func (n *Node) ID() string {
	if n.cluster() == nil {
		return ""
	}
	return n.memberID
}

// Address returns the actor-remoting address other members dial, "" before Start.
func (n *Node) Address() string {
	if c := n.cluster(); c != nil {
		return c.ActorSystem.Address()
	}
	return ""
}

// MembershipAddr returns the bound automanaged membership endpoint, "" otherwise.
func (n *Node) MembershipAddr() string {
	if n.membership == nil {
		return ""
	}
	return n.membership.String()
}

// Start binds the node's listeners and joins the cluster. It blocks about a second while
// the library settles. ctx bounds nothing the library does; it is checked before starting.
func (n *Node) Start(ctx context.Context) error {
	n.startOnce.Do(func() { n.startErr = n.start(ctx) })
	return n.startErr
}

func (n *Node) start(ctx context.Context) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start cluster node: %w", err)
	}
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(sys *actor.ActorSystem) *slog.Logger {
		return logging.Quiet(n.cfg.Logger).With("component", "protoactor", "node_id", sys.ID)
	}))
	provider, err := n.provider(sys)
	if err != nil {
		return err
	}
	c := cluster.New(sys, cluster.Configure(n.cfg.Name, provider, disthash.New(), n.remoteConfig(),
		cluster.WithKinds(n.kinds...), cluster.WithRequestTimeout(n.cfg.RequestTimeout)))

	// The library panics on listen and provider failures.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("start cluster node: %v", r)
		}
	}()
	// The etcd provider names members after the cluster as well as the actor system.
	n.memberID = sys.ID
	if n.cfg.Provider == ProviderEtcd {
		n.memberID = etcdprovider.MemberID(n.cfg.Name, sys.ID)
	}
	c.StartMember()
	sys.EventStream.Subscribe(func(evt any) {
		if t, ok := evt.(*cluster.ClusterTopology); ok {
			for _, m := range t.Left {
				n.client.memberLeft(m.Address())
			}
		}
	})
	n.c.Store(c)
	n.log.Info("cluster node started", "node_id", n.memberID, "address", sys.Address(),
		"provider", string(n.cfg.Provider), "membership_addr", n.MembershipAddr())
	return nil
}

func (n *Node) provider(sys *actor.ActorSystem) (cluster.ClusterProvider, error) {
	switch n.cfg.Provider {
	case ProviderAutomanaged:
		return n.automanaged()
	case ProviderEtcd:
		p, err := etcdprovider.New(etcdprovider.Config{
			Etcd:   clientv3.Config{Endpoints: n.cfg.EtcdEndpoints, DialTimeout: 5 * time.Second},
			Logger: n.log,
		})
		if err != nil {
			return nil, fmt.Errorf("connect to etcd %v: %w", n.cfg.EtcdEndpoints, err)
		}
		return p, nil
	case ProviderK8s:
		return k8sProvider()
	default:
		return test.NewTestProvider(n.cfg.LocalGroup.agent), nil
	}
}

// automanaged builds the membership provider around a listener bound to exactly
// MembershipAddr (the library's own provider would bind 0.0.0.0 and speak plaintext).
func (n *Node) automanaged() (cluster.ClusterProvider, error) {
	ln, err := net.Listen("tcp", n.cfg.MembershipAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on membership address: %w", err)
	}
	n.membership = ln.Addr()
	return newMembership(n.cfg.Name, ln, n.cfg.Peers, automanagedRefresh, n.cfg.TLS, n.log), nil
}

// remoteConfig returns the actor-remoting configuration: gRPC over mutual TLS when the
// node has TLS, plaintext (the library's default) otherwise.
func (n *Node) remoteConfig() *remote.Config {
	host, port, _ := splitHostPort(n.cfg.Addr, true)
	if n.cfg.TLS == nil {
		return remote.Configure(host, port)
	}
	server := loggedCreds{credentials.NewTLS(n.cfg.TLS.ServerConfig()), n.log}
	return remote.Configure(host, port,
		remote.WithServerOptions(grpc.Creds(server)),
		remote.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(n.cfg.TLS.ClientConfig()))))
}

// loggedCreds logs the connections the remoting server refuses at the handshake: a
// stranger without a certificate from the cluster CA, or a node with an expired one.
type loggedCreds struct {
	credentials.TransportCredentials
	log *slog.Logger
}

// ServerHandshake runs the TLS handshake and logs its failure.
func (c loggedCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil && !errors.Is(err, io.EOF) {
		c.log.Warn("cluster remoting refused a connection", "remote_addr", conn.RemoteAddr().String(), "error", err)
	}
	return out, info, err
}

// Clone keeps the logging in the copy.
func (c loggedCreds) Clone() credentials.TransportCredentials {
	return loggedCreds{c.TransportCredentials.Clone(), c.log}
}

// Run starts the node if needed and watches its membership until ctx ends; then it
// leaves gracefully within Config.LeaveTimeout and returns nil (or the leave's error).
// When the node is blocked or missing from its member list beyond the grace period it
// logs why, shuts down without the graceful steps, and returns ErrBlocked or ErrNotMember:
// the process should exit non-zero and be restarted, which gives it a new member ID.
func (n *Node) Run(ctx context.Context) error {
	if err := n.Start(ctx); err != nil {
		return err
	}
	if err := n.watch(ctx); err != nil {
		n.log.Error("cluster membership lost, exiting so that this node restarts with a new member ID",
			"node_id", n.ID(), "address", n.Address(), "error", err)
		n.stopOnce.Do(func() {
			c := n.cluster()
			c.Shutdown(false)
			n.stopErr = c.Config.ClusterProvider.Shutdown(false)
		})
		return err
	}
	leaveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.LeaveTimeout)
	defer cancel()
	return n.Stop(leaveCtx)
}

func (n *Node) watch(ctx context.Context) error {
	w := watchdog{grace: n.cfg.WatchdogGrace}
	tick := time.NewTicker(n.cfg.WatchdogInterval)
	defer tick.Stop()
	c := n.cluster()
	for {
		members := c.MemberList.Members()
		n.metrics.members.Set(float64(members.Len()))
		bl := c.Remote.BlockList()
		blocked := bl.IsBlocked(n.memberID) || bl.IsBlocked(c.ActorSystem.ID)
		if err := w.observe(time.Now(), blocked, members.ContainsID(n.memberID)); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Stop leaves the cluster gracefully: it marks the node draining, waits for in-flight
// grain calls made through its client, runs Config.OnLeave, poisons the local grains that
// remain and waits for them to stop, then leaves the cluster (which takes about 3 s).
// ctx bounds the waits, not the final leave.
func (n *Node) Stop(ctx context.Context) error {
	n.stopOnce.Do(func() { n.stopErr = n.leave(ctx) })
	return n.stopErr
}

func (n *Node) leave(ctx context.Context) error {
	c := n.cluster()
	if c == nil {
		return nil
	}
	n.draining.Store(true)
	start := time.Now()
	n.log.Info("cluster leave started", "node_id", n.memberID, "in_flight", n.client.inflight.count())
	var errs []error
	if err := n.client.inflight.wait(ctx); err != nil {
		n.log.Warn("cluster leave deadline passed with grain calls in flight", "error", err)
		errs = append(errs, err)
	}
	if n.cfg.OnLeave != nil {
		n.cfg.OnLeave(ctx)
	}
	poisoned := n.acts.poisonAll(ctx, c.ActorSystem.Root)
	if err := ctx.Err(); err != nil {
		n.log.Warn("cluster leave deadline passed before local grains stopped", "grains", poisoned, "error", err)
		errs = append(errs, fmt.Errorf("passivate local grains: %w", err))
	}
	c.Shutdown(true)
	n.log.Info("cluster leave finished", "node_id", n.memberID, "grains_passivated", poisoned,
		"duration", time.Since(start))
	return errors.Join(errs...)
}

// Member describes one cluster member.
type Member struct {
	ID      string   `json:"id"`
	Address string   `json:"address"`
	Kinds   []string `json:"kinds"`
}

// Info is the node's view of the cluster, as served by GET /api/v1/admin/cluster.
type Info struct {
	Name     string   `json:"name"`
	Provider string   `json:"provider"`
	Self     Member   `json:"self"`
	Members  []Member `json:"members"`
	// Activations counts the grains alive on this node, per hosted kind.
	Activations map[string]int `json:"activations"`
	Draining    bool           `json:"draining"`
}

// Info returns the node's current view of the cluster. Members are sorted by address;
// the library's internal kinds are left out.
func (n *Node) Info() Info {
	info := Info{
		Name:        n.cfg.Name,
		Provider:    string(n.cfg.Provider),
		Activations: n.acts.counts(),
		Draining:    n.Draining(),
		Members:     []Member{},
	}
	for _, k := range n.kinds {
		info.Self.Kinds = append(info.Self.Kinds, k.Kind)
	}
	slices.Sort(info.Self.Kinds)
	c := n.cluster()
	if c == nil {
		return info
	}
	info.Self.ID, info.Self.Address = n.memberID, c.ActorSystem.Address()
	for _, m := range c.MemberList.Members().Members() {
		info.Members = append(info.Members, Member{ID: m.Id, Address: m.Address(), Kinds: publicKinds(m.Kinds)})
	}
	slices.SortFunc(info.Members, func(a, b Member) int { return cmp.Compare(a.Address, b.Address) })
	return info
}

func publicKinds(kinds []string) []string {
	out := make([]string, 0, len(kinds))
	for _, k := range kinds {
		if k != cluster.TopicActorKind {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
