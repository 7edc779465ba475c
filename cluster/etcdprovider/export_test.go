package etcdprovider

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/asynkron/protoactor-go/cluster"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// StartForTest starts p as member systemID of cluster name at host:port without an actor
// system: the members it finds are handed to publish.
func StartForTest(p *Provider, name, systemID, host string, port int, kinds []string, publish func(cluster.Members)) error {
	id := MemberID(name, systemID)
	return p.start(name, &record{ID: id, Name: id, Host: host, Address: host, Port: port, Kinds: kinds, Alive: true}, publish)
}

// SetAfterFetch makes p run f after every read of the members, before the watch from
// that read's revision starts. Call it before starting p.
func SetAfterFetch(p *Provider, f func()) { p.afterFetch = f }

// SetLeaseLost makes p run f when it finds its lease expired. Call it before starting p.
func SetLeaseLost(p *Provider, f func()) { p.leaseLost = f }

// Lease returns the lease p's key is registered under.
func Lease(p *Provider) clientv3.LeaseID { return p.leaseID() }

// Abandon stops p the way a killed process stops: its lease is neither kept alive nor
// revoked, so its key stays until the lease expires.
func Abandon(p *Provider) error {
	p.stop.Do(func() {
		p.cancel()
		p.wg.Wait()
		p.stopErr = p.client.Close()
	})
	if p.stopErr != nil {
		return fmt.Errorf("abandon: %w", p.stopErr)
	}
	return nil
}

// Record returns the value p would register for member systemID of cluster name.
func Record(name, systemID, host string, port int, kinds []string) ([]byte, error) {
	id := MemberID(name, systemID)
	return json.Marshal(&record{ID: id, Name: id, Host: host, Address: host, Port: port, Kinds: kinds, Alive: true})
}

// KeepAlives stands between a provider and its etcd client's Lease: every KeepAlive
// call goes to the client under a context of its own, which Cut cancels.
type KeepAlives struct {
	clientv3.Lease
	mu     sync.Mutex
	leases []clientv3.LeaseID // the lease of each KeepAlive call, in order
	cut    context.CancelFunc // of the latest call
}

// InterceptKeepAlives routes p's KeepAlive calls through the returned KeepAlives. Call
// it before starting p.
func InterceptKeepAlives(p *Provider) *KeepAlives {
	k := &KeepAlives{Lease: p.client.Lease}
	p.client.Lease = k
	return k
}

// KeepAlive implements clientv3.Lease.
func (k *KeepAlives) KeepAlive(ctx context.Context, id clientv3.LeaseID) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	k.mu.Lock()
	k.leases = append(k.leases, id)
	k.cut = cancel
	k.mu.Unlock()
	return k.Lease.KeepAlive(ctx, id)
}

// Cut ends the latest keep-alive stream from the client's side: the client closes its
// channel and sends no more keep-alives for it, while etcd keeps the lease until its TTL
// runs out.
func (k *KeepAlives) Cut() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cut != nil {
		k.cut()
	}
}

// Calls returns the lease of each KeepAlive call so far, in order.
func (k *KeepAlives) Calls() []clientv3.LeaseID {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.leases)
}
