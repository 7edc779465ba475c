package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/test"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Provider names a membership provider.
type Provider string

// The membership providers a node can use.
const (
	// ProviderLocal runs a single-node cluster in the process (or several nodes in one
	// process sharing a LocalGroup). It needs no network beyond the remoting listener.
	ProviderLocal Provider = "local"
	// ProviderAutomanaged finds members by polling a static list of membership endpoints
	// (Config.Peers), one HTTP endpoint per node, served on Config.MembershipAddr.
	ProviderAutomanaged Provider = "automanaged"
	// ProviderEtcd registers members as leased keys in etcd (Config.EtcdEndpoints).
	ProviderEtcd Provider = "etcd"
	// ProviderK8s discovers members through the Kubernetes API. It is accepted by the
	// configuration but not built into this binary; see the package documentation.
	ProviderK8s Provider = "k8s"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultName             = "kowai"
	DefaultAddr             = "127.0.0.1:0"
	DefaultMembershipAddr   = "127.0.0.1:6330"
	DefaultRequestTimeout   = 5 * time.Second
	DefaultLeaveTimeout     = 15 * time.Second
	DefaultWatchdogInterval = time.Second
	DefaultWatchdogGrace    = 10 * time.Second
)

// Config configures a Node. Zero fields take the defaults above.
type Config struct {
	// Name is the cluster name; nodes only join members with the same name.
	Name string
	// Provider selects how members find each other; default ProviderLocal.
	Provider Provider
	// Addr is this node's actor-remoting listen address, host:port. The host is also the
	// address other members dial, so it must be reachable from them (never 0.0.0.0).
	Addr string
	// Peers are the membership endpoints (host:port) of every node, this one included
	// (ProviderAutomanaged).
	Peers []string
	// MembershipAddr is where this node serves its membership endpoint
	// (ProviderAutomanaged). It is bound exactly as given.
	MembershipAddr string
	// EtcdEndpoints are the etcd client endpoints, host:port (ProviderEtcd).
	EtcdEndpoints []string
	// Kinds are the grain kinds this node hosts.
	Kinds []*cluster.Kind
	// RequestTimeout bounds each grain call; a shorter caller deadline wins.
	RequestTimeout time.Duration
	// LeaveTimeout bounds a graceful leave when Run's context ends.
	LeaveTimeout time.Duration
	// WatchdogInterval is how often Run checks this node's membership.
	WatchdogInterval time.Duration
	// WatchdogGrace is how long this node may be blocked or missing from its member list
	// before Run gives up. It also covers the wait for the first topology after Start.
	WatchdogGrace time.Duration
	// OnLeave, when set, runs during a graceful leave after in-flight calls have finished
	// (or the leave deadline passed) and before the remaining local grains are poisoned.
	// The actors layer uses it to passivate its grains with final snapshots.
	OnLeave func(ctx context.Context)
	// LocalGroup joins nodes of ProviderLocal into one in-process cluster; nil gives the
	// node a group of its own.
	LocalGroup *LocalGroup
	// Logger receives the node's logs and the actor library's; default slog.Default().
	Logger *slog.Logger
	// Metrics registers the node's collectors; nil leaves them unregistered.
	Metrics prometheus.Registerer
	// Tracing records a client span for every grain call and a server span for every
	// request a grain receives, joined across nodes by the trace context in the
	// message header; nil turns tracing off (no span work at all).
	Tracing trace.TracerProvider
	// TLS, when set, secures actor remoting (gRPC) and the automanaged membership
	// endpoint with mutual TLS against the cluster CA. Every provider but ProviderLocal
	// requires it unless Insecure is set.
	TLS *TLS
	// Insecure lets a multi-node cluster run its remoting and membership endpoint in
	// plaintext and unauthenticated when TLS is nil. Anyone who reaches those ports can
	// then act for any user: development only. New logs a warning.
	Insecure bool
}

// LocalGroup is a set of in-process nodes that see each other as one cluster
// (ProviderLocal). The provider notices only graceful leaves.
type LocalGroup struct {
	agent *test.InMemAgent
}

// NewLocalGroup returns an empty group.
func NewLocalGroup() *LocalGroup {
	return &LocalGroup{agent: test.NewInMemAgent()}
}

// withDefaults returns cfg with zero fields defaulted, or an error naming the first
// invalid field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Provider == "" {
		cfg.Provider = ProviderLocal
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.MembershipAddr == "" {
		cfg.MembershipAddr = DefaultMembershipAddr
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.LeaveTimeout <= 0 {
		cfg.LeaveTimeout = DefaultLeaveTimeout
	}
	if cfg.WatchdogInterval <= 0 {
		cfg.WatchdogInterval = DefaultWatchdogInterval
	}
	if cfg.WatchdogGrace <= 0 {
		cfg.WatchdogGrace = DefaultWatchdogGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LocalGroup == nil {
		cfg.LocalGroup = NewLocalGroup()
	}

	if _, _, err := splitHostPort(cfg.Addr, true); err != nil {
		return cfg, fmt.Errorf("%w: Addr %q: want host:port with a concrete host: %w", ErrConfig, cfg.Addr, err)
	}
	seen := map[string]bool{}
	for _, k := range cfg.Kinds {
		if k == nil || k.Kind == "" || k.Props == nil {
			return cfg, fmt.Errorf("%w: Kinds: every kind needs a name and props", ErrConfig)
		}
		if seen[k.Kind] {
			return cfg, fmt.Errorf("%w: Kinds: kind %q is listed twice", ErrConfig, k.Kind)
		}
		seen[k.Kind] = true
	}
	switch cfg.Provider {
	case ProviderLocal:
	case ProviderAutomanaged:
		if _, _, err := splitHostPort(cfg.MembershipAddr, true); err != nil {
			return cfg, fmt.Errorf("%w: MembershipAddr %q: want host:port with a concrete host: %w", ErrConfig, cfg.MembershipAddr, err)
		}
		if len(cfg.Peers) == 0 {
			return cfg, fmt.Errorf("%w: Peers: automanaged needs every node's membership host:port, this one's included", ErrConfig)
		}
		for _, p := range cfg.Peers {
			if _, _, err := splitHostPort(p, false); err != nil {
				return cfg, fmt.Errorf("%w: Peers: %q: want host:port: %w", ErrConfig, p, err)
			}
		}
	case ProviderEtcd:
		if len(cfg.EtcdEndpoints) == 0 {
			return cfg, fmt.Errorf("%w: EtcdEndpoints: etcd needs at least one host:port", ErrConfig)
		}
	case ProviderK8s:
		if !k8sBuiltIn {
			return cfg, fmt.Errorf("%w: Provider %q needs a binary built with -tags k8s (make build-k8s); this one has local, automanaged and etcd", ErrConfig, cfg.Provider)
		}
	default:
		return cfg, fmt.Errorf("%w: Provider %q: want local, automanaged, etcd or k8s", ErrConfig, cfg.Provider)
	}
	if cfg.Provider != ProviderLocal && cfg.TLS == nil && !cfg.Insecure {
		return cfg, fmt.Errorf("%w (Provider %s)", ErrInsecure, cfg.Provider)
	}
	return cfg, nil
}

// splitHostPort parses host:port. With concrete set, an empty or unspecified host
// (0.0.0.0, ::) is refused: other members must be able to dial what a node advertises,
// and a wildcard bind would expose the endpoint on every interface.
func splitHostPort(addr string, concrete bool) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", portStr)
	}
	if concrete {
		if host == "" {
			return "", 0, fmt.Errorf("empty host")
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			return "", 0, fmt.Errorf("wildcard host %s", host)
		}
	}
	return host, port, nil
}
