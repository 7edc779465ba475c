package etcdprovider_test

import (
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/kowai/kowai/cluster/clustertest"
	"github.com/kowai/kowai/cluster/etcdprovider"
	"github.com/kowai/kowai/internal/testenv"
)

// settle bounds the waits for a change in etcd to reach a provider's member list.
const settle = 15 * time.Second

// recorder keeps every member list a provider published.
type recorder struct {
	mu    sync.Mutex
	views []cluster.Members
}

func (r *recorder) publish(ms cluster.Members) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.views = append(r.views, ms)
}

// last returns the latest member list, nil before the first.
func (r *recorder) last() cluster.Members {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.views) == 0 {
		return nil
	}
	return r.views[len(r.views)-1]
}

// history returns the member IDs of every published list, oldest first.
func (r *recorder) history() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]string, len(r.views))
	for i, v := range r.views {
		out[i] = ids(v)
	}
	return out
}

func ids(ms cluster.Members) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Id)
	}
	slices.Sort(out)
	return out
}

// waitFor waits until the latest member list has exactly the members want.
func (r *recorder) waitFor(t *testing.T, want ...string) {
	t.Helper()
	slices.Sort(want)
	testenv.Eventually(t, settle, func() error {
		if got := ids(r.last()); !slices.Equal(got, want) {
			return fmt.Errorf("members %v, want %v", got, want)
		}
		return nil
	})
}

// env is one etcd server, a raw client to it and a cluster name no other test uses.
type env struct {
	endpoints []string
	raw       *clientv3.Client
	name      string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	endpoints := clustertest.StartEtcd(t)
	raw, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := raw.Close(); err != nil {
			t.Errorf("close etcd client: %v", err)
		}
	})
	return &env{endpoints: endpoints, raw: raw, name: "c" + strings.ToLower(rand.Text()[:8])}
}

// member is one provider under test with what it published.
type member struct {
	p   *etcdprovider.Provider
	rec *recorder
	id  string // member ID
	sys string // actor system ID
}

// newMember returns an unstarted provider, shut down at the end of the test.
func (e *env) newMember(t *testing.T, sys string, leaseTTL time.Duration) *member {
	t.Helper()
	p, err := etcdprovider.New(etcdprovider.Config{
		Etcd:     clientv3.Config{Endpoints: e.endpoints, DialTimeout: 5 * time.Second},
		LeaseTTL: leaseTTL,
		Logger:   clustertest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Shutdown(true); err != nil {
			t.Errorf("shutdown %s: %v", sys, err)
		}
	})
	return &member{p: p, rec: &recorder{}, id: etcdprovider.MemberID(e.name, sys), sys: sys}
}

// start starts m as a member of e's cluster.
func (e *env) start(m *member) error {
	return etcdprovider.StartForTest(m.p, e.name, m.sys, "127.0.0.1", 7000, []string{"echo"}, m.rec.publish)
}

func (e *env) startMember(t *testing.T, sys string) *member {
	t.Helper()
	m := e.newMember(t, sys, 0)
	if err := e.start(m); err != nil {
		t.Fatal(err)
	}
	return m
}

// key returns the etcd key of member ID id.
func (e *env) key(id string) string { return "/kowai/" + e.name + "/" + id }

// The library's provider misses a member that registers after its read of the members
// and before its watch starts. Here the second member registers exactly there.
func TestMemberRegisteringBetweenReadAndWatchIsSeen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.newMember(t, "a", 0), e.newMember(t, "b", 0)
	var once sync.Once
	joined := make(chan error, 1)
	etcdprovider.SetAfterFetch(a.p, func() { once.Do(func() { joined <- e.start(b) }) })
	if err := e.start(a); err != nil {
		t.Fatal(err)
	}
	if err := <-joined; err != nil {
		t.Fatal(err)
	}
	if got := a.rec.history()[0]; !slices.Equal(got, []string{a.id}) {
		t.Fatalf("a's first member list %v, want only itself (b must register after a's read)", got)
	}
	a.rec.waitFor(t, a.id, b.id)
	b.rec.waitFor(t, a.id, b.id)
}

func TestJoinAndLeave(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b, c := e.startMember(t, "a"), e.startMember(t, "b"), e.startMember(t, "c")
	for _, m := range []*member{a, b, c} {
		m.rec.waitFor(t, a.id, b.id, c.id)
	}
	if err := c.p.Shutdown(true); err != nil {
		t.Fatal(err)
	}
	// Leaving deletes the key at once rather than letting its lease run out.
	resp, err := e.raw.Get(t.Context(), e.key(c.id))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Fatalf("key %s still there after Shutdown returned", e.key(c.id))
	}
	a.rec.waitFor(t, a.id, b.id)
	b.rec.waitFor(t, a.id, b.id)
	if err := c.p.Shutdown(true); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// A member that dies without leaving (kill -9) is dropped once its lease expires.
func TestKilledMemberLeavesWhenItsLeaseExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.startMember(t, "a")
	victim := e.newMember(t, "victim", time.Second)
	if err := e.start(victim); err != nil {
		t.Fatal(err)
	}
	a.rec.waitFor(t, a.id, victim.id)
	if err := etcdprovider.Abandon(victim.p); err != nil {
		t.Fatal(err)
	}
	a.rec.waitFor(t, a.id)
}

// When etcd drops a member's lease while the member runs (here revoked by hand, as an
// expiry while the member was paused would), every member sees it go, itself included,
// and it does not come back under the same ID: the others have blocked that ID, and the
// node's watchdog must see it missing to restart it with a new one.
func TestExpiredLeaseIsNotRenewed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.startMember(t, "a")
	b := e.newMember(t, "b", time.Second)
	lost := make(chan struct{})
	etcdprovider.SetLeaseLost(b.p, func() { close(lost) })
	if err := e.start(b); err != nil {
		t.Fatal(err)
	}
	a.rec.waitFor(t, a.id, b.id)
	if _, err := e.raw.Revoke(t.Context(), etcdprovider.Lease(b.p)); err != nil {
		t.Fatal(err)
	}
	a.rec.waitFor(t, a.id)
	b.rec.waitFor(t, a.id)
	select {
	case <-lost:
	case <-time.After(settle):
		t.Fatal("b did not find its lease expired")
	}
	resp, err := e.raw.Get(t.Context(), e.key(b.id))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Fatalf("%s registered again after its lease expired", b.id)
	}
	if got := ids(b.rec.last()); !slices.Equal(got, []string{a.id}) {
		t.Fatalf("b lists %v after losing its lease, want only %s", got, a.id)
	}
	// Leaving after that has nothing to revoke and is no error.
	if err := b.p.Shutdown(true); err != nil {
		t.Fatal(err)
	}
}

// When the keep-alive stream of a member's lease ends while etcd still holds the lease
// (here cut on the client's side; in production no answer within a TTL does it), the
// member keeps the same lease alive again: its key outlives the lease's TTL, it is
// neither granted a new lease nor taken for lost, and the other members never see it go.
func TestKeepAliveEndingWhileLeaseHeldKeepsItAlive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.startMember(t, "a")
	b := e.newMember(t, "b", time.Second)
	keepAlives := etcdprovider.InterceptKeepAlives(b.p)
	lost := make(chan struct{})
	etcdprovider.SetLeaseLost(b.p, func() { close(lost) })
	if err := e.start(b); err != nil {
		t.Fatal(err)
	}
	a.rec.waitFor(t, a.id, b.id)
	lease := etcdprovider.Lease(b.p)
	ttl, err := e.raw.TimeToLive(t.Context(), lease)
	if err != nil {
		t.Fatal(err)
	}
	granted := time.Duration(ttl.GrantedTTL) * time.Second // etcd may raise the TTL asked for

	keepAlives.Cut()
	// Without a new keep-alive the key goes within granted; hold on past twice that.
	for end := time.Now().Add(2*granted + time.Second); time.Now().Before(end); {
		resp, err := e.raw.Get(t.Context(), e.key(b.id))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count != 1 || clientv3.LeaseID(resp.Kvs[0].Lease) != lease {
			t.Fatalf("%d keys %s after the keep-alive stream ended (want 1, under lease %x)", resp.Count, e.key(b.id), int64(lease))
		}
		select {
		case <-lost:
			t.Fatal("b took its lease for lost while etcd held it")
		case <-time.After(100 * time.Millisecond):
		}
	}
	if got := keepAlives.Calls(); len(got) < 2 || slices.ContainsFunc(got, func(l clientv3.LeaseID) bool { return l != lease }) {
		t.Fatalf("keep-alive calls for leases %x, want two or more, all for %x", got, int64(lease))
	}
	if ttl, err = e.raw.TimeToLive(t.Context(), lease); err != nil {
		t.Fatal(err)
	}
	if ttl.TTL <= 0 {
		t.Fatalf("lease %x expired after the hold (TTL %d)", int64(lease), ttl.TTL)
	}
	views := a.rec.history()
	for i, view := range views {
		if i > 0 && slices.Contains(views[i-1], b.id) && !slices.Contains(view, b.id) {
			t.Fatalf("a saw b leave: members %v", view)
		}
	}
}

// A watch that cannot start because etcd compacted the revision after the read ends
// with an error; the provider reads the members again.
func TestCompactedWatchReadsAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.newMember(t, "a", 0)
	var once sync.Once
	compacted := make(chan error, 1)
	etcdprovider.SetAfterFetch(a.p, func() {
		once.Do(func() {
			var rev int64
			for _, sys := range []string{"x", "y"} {
				val, err := etcdprovider.Record(e.name, sys, "127.0.0.1", 7001, nil)
				if err != nil {
					compacted <- err
					return
				}
				resp, err := e.raw.Put(t.Context(), e.key(etcdprovider.MemberID(e.name, sys)), string(val))
				if err != nil {
					compacted <- err
					return
				}
				rev = resp.Header.Revision
			}
			_, err := e.raw.Compact(t.Context(), rev)
			compacted <- err
		})
	})
	if err := e.start(a); err != nil {
		t.Fatal(err)
	}
	if err := <-compacted; err != nil {
		t.Fatal(err)
	}
	a.rec.waitFor(t, a.id, etcdprovider.MemberID(e.name, "x"), etcdprovider.MemberID(e.name, "y"))
}

// Nodes running the library's etcd provider and nodes running this one must read each
// other's registrations during a rolling upgrade.
func TestKeysCompatibleWithLibraryProvider(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.startMember(t, "a")

	// This provider's key and value, as the library's provider reads them.
	resp, err := e.raw.Get(t.Context(), "/kowai/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Key) != "/kowai/"+e.name+"/"+e.name+"@a" {
		t.Fatalf("keys %v, want exactly /kowai/%s/%s@a", resp.Kvs, e.name, e.name)
	}
	node, err := etcd.NewNodeFromBytes(resp.Kvs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if !node.IsAlive() {
		t.Fatal("registered as not alive: the library's provider would drop the member")
	}
	want := &cluster.Member{Id: a.id, Host: "127.0.0.1", Port: 7000, Kinds: []string{"echo"}}
	if got := node.MemberStatus(); !proto.Equal(got, want) {
		t.Fatalf("library reads %v, want %v", got, want)
	}

	// A member of a cluster whose name extends this one's is not a member here. It is
	// written first, so it would be seen before the next one if the prefix took it in.
	other := e.name + "2"
	val, err := etcd.NewNode(other+"@o", "127.0.0.3", 7003, []string{"echo"}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.raw.Put(t.Context(), "/kowai/"+other+"/"+other+"@o", string(val)); err != nil {
		t.Fatal(err)
	}
	// The library's provider registers NAME@ID under /kowai/NAME/.
	lib := etcd.NewNode(e.name+"@lib", "127.0.0.2", 7002, []string{"echo", "session"})
	if val, err = lib.Serialize(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.raw.Put(t.Context(), e.key(lib.ID), string(val)); err != nil {
		t.Fatal(err)
	}
	a.rec.waitFor(t, a.id, lib.ID)
	for _, m := range a.rec.last() {
		if m.Id == lib.ID {
			if want := lib.MemberStatus(); !proto.Equal(m, want) {
				t.Fatalf("read the library's member as %v, want %v", m, want)
			}
		}
	}
}

func TestStartFailsWithoutEtcd(t *testing.T) {
	t.Parallel()
	port := clustertest.FreePorts(t, 1)[0]
	p, err := etcdprovider.New(etcdprovider.Config{
		Etcd: clientv3.Config{Endpoints: []string{fmt.Sprintf("127.0.0.1:%d", port)}, DialTimeout: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = etcdprovider.StartForTest(p, "c", "a", "127.0.0.1", 7000, nil, func(cluster.Members) {
		t.Error("published members without etcd")
	})
	if err == nil {
		t.Fatal("started without etcd")
	}
	if !strings.Contains(err.Error(), "grant lease") {
		t.Fatalf("error %v does not say what failed", err)
	}
	// The failed start shut the provider down; it stays shut.
	if err := p.Shutdown(false); err != nil {
		t.Fatal(err)
	}
}
