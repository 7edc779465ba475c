// Package etcdprovider is kowai's etcd membership provider for the protoactor-go
// cluster (cluster.ClusterProvider).
//
// Each member registers one key, BaseKey/<cluster name>/<member ID>, under a lease that
// it keeps alive while it runs. A member learns the others by reading every key under
// BaseKey/<cluster name>/ and then watching that prefix from the revision of the read
// onwards, so no registration can fall between the read and the watch. When the watch
// ends (compaction, a lost etcd leader, a broken connection) it reads the keys again and
// watches from the new revision. Every change is published to the cluster's member list.
// A member whose lease expired (it was paused, or cut off from etcd, for longer than the
// TTL) is not registered again under the same ID: see keepAlive.
//
// The keys and their JSON values are those of the library's own etcd provider
// (cluster/clusterproviders/etcd), so nodes running either provider read each other's
// registrations and agree on the members during a rolling upgrade. That provider starts
// its watch without a start revision, so a member registering between its read and its
// watch is never seen by it (a lease keep-alive produces no watch event); this package
// exists to close that gap.
package etcdprovider

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Defaults for the zero fields of Config.
const (
	DefaultBaseKey       = "/kowai"
	DefaultLeaseTTL      = 3 * time.Second
	DefaultRetryInterval = time.Second
)

// requestTimeout bounds each single etcd request the provider makes.
const requestTimeout = 5 * time.Second

// stillAlivePause is the pause before keeping alive again a lease that etcd still holds
// after its keep-alive stream ended, so that a stream that keeps ending cannot spin.
const stillAlivePause = 100 * time.Millisecond

// Config configures a Provider.
type Config struct {
	// Etcd is the etcd client configuration: endpoints, dial timeout, TLS.
	Etcd clientv3.Config
	// BaseKey is the root of the membership keys (DefaultBaseKey when empty): the members
	// of cluster NAME are the keys under BaseKey/NAME/.
	BaseKey string
	// LeaseTTL is the lease of a member's key, whole seconds (DefaultLeaseTTL when zero):
	// how long a member that stopped without leaving (kill -9) stays listed.
	LeaseTTL time.Duration
	// RetryInterval is the pause after a failed etcd request before the next attempt
	// (DefaultRetryInterval when zero).
	RetryInterval time.Duration
	// Logger receives the provider's warnings; nil discards them.
	Logger *slog.Logger
}

// MemberID returns the member ID of the actor system systemID in cluster clusterName:
// "clusterName@systemID", as the library's etcd provider names its members.
func MemberID(clusterName, systemID string) string {
	return clusterName + "@" + systemID
}

// record is a member's value in etcd. Its JSON is the library's etcd provider's Node (in
// which the ID is also the name, and Host and Address are the same), so that nodes
// running that provider and nodes running this one read each other's registrations.
type record struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Host    string   `json:"host"`
	Address string   `json:"address"`
	Port    int      `json:"port"`
	Kinds   []string `json:"kinds"`
	Alive   bool     `json:"alive"`
}

// member returns the cluster member the record describes.
func (r *record) member() *cluster.Member {
	host := r.Host
	if host == "" {
		host = r.Address
	}
	kinds := r.Kinds
	if kinds == nil {
		kinds = []string{}
	}
	return &cluster.Member{Id: r.ID, Host: host, Port: int32(r.Port), Kinds: kinds}
}

// Provider is the etcd membership provider. Use one Provider for one cluster member;
// Shutdown deregisters it and closes its etcd client.
type Provider struct {
	cfg    Config
	client *clientv3.Client
	log    *slog.Logger

	ctx     context.Context // ends at Shutdown
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the watch and keep-alive goroutines
	started atomic.Bool
	stop    sync.Once
	stopErr error

	// Set by start before the goroutines begin, read-only afterwards.
	prefix  string // BaseKey/NAME/
	selfKey string // "" when started as a client
	selfVal string
	publish func(cluster.Members)

	leaseMu sync.Mutex
	lease   clientv3.LeaseID // of selfKey; 0 when not registered

	// afterFetch, when set (tests), runs after every read of the members and before the
	// watch from that read's revision starts.
	afterFetch func()
	// leaseLost, when set (tests), runs when keepAlive finds the lease expired.
	leaseLost func()
}

var _ cluster.ClusterProvider = (*Provider)(nil)

// New returns a provider with its etcd client. It does not wait for etcd to answer:
// StartMember does.
func New(cfg Config) (*Provider, error) {
	if cfg.BaseKey == "" {
		cfg.BaseKey = DefaultBaseKey
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.LeaseTTL < time.Second || cfg.LeaseTTL%time.Second != 0 {
		return nil, fmt.Errorf("etcd lease TTL %s: want whole seconds, at least one", cfg.LeaseTTL)
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client, err := clientv3.New(cfg.Etcd)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", cfg.Etcd.Endpoints, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Provider{cfg: cfg, client: client, log: log.With("provider", "etcd"), ctx: ctx, cancel: cancel}, nil
}

// StartMember registers this member under a new lease, publishes the members found in
// etcd (this one included) to c's member list, and keeps the lease alive and the member
// list current until Shutdown.
func (p *Provider) StartMember(c *cluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return fmt.Errorf("etcd provider: address of this member: %w", err)
	}
	id := MemberID(c.Config.Name, c.ActorSystem.ID)
	kinds := c.GetClusterKinds()
	slices.Sort(kinds)
	self := &record{ID: id, Name: id, Host: host, Address: host, Port: port, Kinds: kinds, Alive: true}
	return p.start(c.Config.Name, self, c.MemberList.UpdateClusterTopology)
}

// StartClient publishes the members found in etcd to c's member list and keeps it
// current until Shutdown, without registering. (kowai nodes are all members.)
func (p *Provider) StartClient(c *cluster.Cluster) error {
	return p.start(c.Config.Name, nil, c.MemberList.UpdateClusterTopology)
}

// start registers self (unless nil), reads the members of cluster name, publishes them
// and starts following etcd.
func (p *Provider) start(name string, self *record, publish func(cluster.Members)) (err error) {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("etcd provider: already started")
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Shutdown(false))
		}
	}()
	p.prefix = p.cfg.BaseKey + "/" + name + "/"
	p.publish = publish
	if self != nil {
		val, err := json.Marshal(self)
		if err != nil {
			return fmt.Errorf("etcd provider: encode member: %w", err)
		}
		p.selfKey, p.selfVal = p.prefix+self.ID, string(val)
		if err := p.register(); err != nil {
			return err
		}
		// At once: the read below may take longer than the lease on a loaded machine.
		p.wg.Add(1)
		go p.keepAlive()
	}
	members, rev, err := p.fetch()
	if err != nil {
		return err
	}
	p.publishMembers(members)
	p.wg.Add(1)
	go p.watch(members, rev)
	return nil
}

// Shutdown stops following etcd, revokes this member's lease (which deletes its key at
// once, so the others see it leave without waiting for the lease to expire) and closes
// the etcd client. It is idempotent; graceful makes no difference.
func (p *Provider) Shutdown(bool) error {
	p.stop.Do(func() {
		p.cancel()
		p.wg.Wait()
		var errs []error
		if lease := p.leaseID(); lease != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			_, err := p.client.Revoke(ctx, lease)
			cancel()
			// An expired lease took the key with it.
			if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
				// The library ignores a provider's error on a graceful leave: say it here too.
				p.log.Warn("etcd provider: deregistering failed; the key goes when its lease expires",
					"key", p.selfKey, "error", err)
				errs = append(errs, fmt.Errorf("etcd provider: deregister %s: %w", p.selfKey, err))
			}
			p.setLease(0)
		}
		if err := p.client.Close(); err != nil {
			errs = append(errs, fmt.Errorf("etcd provider: close client: %w", err))
		}
		p.stopErr = errors.Join(errs...)
	})
	return p.stopErr
}

func (p *Provider) leaseID() clientv3.LeaseID {
	p.leaseMu.Lock()
	defer p.leaseMu.Unlock()
	return p.lease
}

func (p *Provider) setLease(id clientv3.LeaseID) {
	p.leaseMu.Lock()
	p.lease = id
	p.leaseMu.Unlock()
}

// register writes this member's key under a new lease.
func (p *Provider) register() error {
	ctx, cancel := context.WithTimeout(p.ctx, requestTimeout)
	defer cancel()
	grant, err := p.client.Grant(ctx, int64(p.cfg.LeaseTTL/time.Second))
	if err != nil {
		return fmt.Errorf("etcd provider: grant lease: %w", err)
	}
	if _, err := p.client.Put(ctx, p.selfKey, p.selfVal, clientv3.WithLease(grant.ID)); err != nil {
		// The lease expires on its own; revoking it would need etcd, which just failed.
		return fmt.Errorf("etcd provider: register %s: %w", p.selfKey, err)
	}
	p.setLease(grant.ID)
	return nil
}

// fetch reads the members and the revision of the read.
func (p *Provider) fetch() (map[string]*cluster.Member, int64, error) {
	ctx, cancel := context.WithTimeout(p.ctx, requestTimeout)
	defer cancel()
	resp, err := p.client.Get(ctx, p.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("etcd provider: read members under %s: %w", p.prefix, err)
	}
	members := make(map[string]*cluster.Member, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if m := p.decode(kv.Key, kv.Value); m != nil {
			members[string(kv.Key)] = m
		}
	}
	return members, resp.Header.Revision, nil
}

// decode returns the member a key describes, or nil (logged) when its value is not a
// member.
func (p *Provider) decode(key, value []byte) *cluster.Member {
	var r record
	if err := json.Unmarshal(value, &r); err != nil || r.ID == "" {
		p.log.Warn("etcd provider: ignoring a key that does not describe a member", "key", string(key), "error", err)
		return nil
	}
	return r.member()
}

// publishMembers hands the members to the cluster's member list, sorted by ID.
func (p *Provider) publishMembers(members map[string]*cluster.Member) {
	list := make(cluster.Members, 0, len(members))
	for _, m := range members {
		list = append(list, m)
	}
	slices.SortFunc(list, func(a, b *cluster.Member) int { return cmp.Compare(a.Id, b.Id) })
	p.publish(list)
}

// watch follows the member keys from revision rev+1, applying each change to members
// and publishing it. When a watch ends it reads the members again and follows from the
// new revision, until Shutdown.
func (p *Provider) watch(members map[string]*cluster.Member, rev int64) {
	defer p.wg.Done()
	for {
		if p.afterFetch != nil {
			p.afterFetch()
		}
		err := p.follow(members, rev)
		if p.ctx.Err() != nil {
			return
		}
		p.log.Warn("etcd provider: membership watch ended; reading the members again", "error", err)
		for failed := false; ; failed = true {
			members, rev, err = p.fetch()
			if err == nil {
				break
			}
			if p.ctx.Err() != nil {
				return
			}
			if !failed {
				p.log.Warn("etcd provider: reading the members failed; retrying", "error", err)
			}
			if !p.sleep(p.cfg.RetryInterval) {
				return
			}
		}
		p.publishMembers(members)
	}
}

// follow applies the events after revision rev to members, publishing each batch, until
// the watch ends. It returns why it ended.
func (p *Provider) follow(members map[string]*cluster.Member, rev int64) error {
	// Without a leader the etcd member this client talks to may be partitioned away and
	// its events stale: end the watch and read again once there is a leader.
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(p.ctx))
	defer cancel()
	for resp := range p.client.Watch(ctx, p.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			return err
		}
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key)
			switch ev.Type {
			case clientv3.EventTypePut:
				if m := p.decode(ev.Kv.Key, ev.Kv.Value); m != nil {
					members[key] = m
				} else {
					delete(members, key)
				}
			case clientv3.EventTypeDelete:
				delete(members, key)
			}
		}
		if len(resp.Events) > 0 {
			p.publishMembers(members)
		}
	}
	return errors.New("watch channel closed")
}

// keepAlive keeps this member's lease alive until Shutdown. When the keep-alive stream
// ends while etcd still holds the lease (no answer within a TTL), it keeps it alive again.
// When etcd no longer holds it, the lease expired and took the key with it: the other
// members have seen this member leave and blocked its ID for good (the library blocks
// every member that leaves). Registering the same ID again would only list in etcd a
// member the others refuse, and put it back in this node's own member list, hiding the
// loss from the node's watchdog; so the key stays gone, the node drops out of its own
// member list, and the watchdog stops it to restart with a new member ID.
func (p *Provider) keepAlive() {
	defer p.wg.Done()
	for {
		lease := p.leaseID()
		ch, err := p.client.KeepAlive(p.ctx, lease)
		if err == nil {
			for range ch { // closed when the lease is gone, unanswered for a TTL, or at Shutdown
			}
		}
		if p.ctx.Err() != nil {
			return
		}
		alive, err := p.leaseAlive(lease)
		switch {
		case err != nil:
			p.log.Warn("etcd provider: keeping this member's lease alive failed; retrying", "key", p.selfKey, "error", err)
			if !p.sleep(p.cfg.RetryInterval) {
				return
			}
		case alive:
			if !p.sleep(stillAlivePause) {
				return
			}
		default:
			p.setLease(0)
			p.log.Error("etcd provider: this member's lease expired and etcd deleted its key; the other members "+
				"have blocked its ID, so it is not registered again and the node's watchdog will stop it", "key", p.selfKey)
			if p.leaseLost != nil {
				p.leaseLost()
			}
			return
		}
	}
}

// leaseAlive reports whether etcd still holds lease.
func (p *Provider) leaseAlive(lease clientv3.LeaseID) (bool, error) {
	ctx, cancel := context.WithTimeout(p.ctx, requestTimeout)
	defer cancel()
	ttl, err := p.client.TimeToLive(ctx, lease)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check lease %x: %w", int64(lease), err)
	}
	return ttl.TTL > 0, nil
}

// sleep waits d, or until Shutdown; it reports whether d passed.
func (p *Provider) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
