package auth_test

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kowai/kowai/gateway/auth"

	"github.com/kowai/kowai/internal/testenv"
)

// countingBackend is a RevocationStore in a map that counts lookups.
type countingBackend struct {
	mu      sync.Mutex
	revoked map[string]bool
	lookups atomic.Int64
	fail    error
}

var _ auth.RevocationStore = (*countingBackend)(nil)

func newCountingBackend() *countingBackend {
	return &countingBackend{revoked: map[string]bool{}}
}

func (b *countingBackend) Revoke(_ context.Context, id string, _ time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.revoked[id] = true
	return nil
}

func (b *countingBackend) IsRevoked(_ context.Context, id string) (bool, error) {
	b.lookups.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return false, b.fail
	}
	return b.revoked[id], nil
}

func TestRevocationCacheStalenessBound(t *testing.T) {
	clk := &clock{now: time.Unix(1_900_000_000, 0)}
	shared := newCountingBackend()
	nodeA := auth.NewRevocationCache(shared, auth.CacheOptions{TTL: time.Second, Clock: clk.Now})
	nodeB := auth.NewRevocationCache(shared, auth.CacheOptions{TTL: time.Second, Clock: clk.Now})
	ctx := t.Context()

	for _, n := range []*auth.RevocationCache{nodeA, nodeB} {
		if r, err := n.IsRevoked(ctx, "s1"); err != nil || r {
			t.Fatalf("fresh session: %v, %v", r, err)
		}
	}
	clk.Advance(400 * time.Millisecond)
	if err := nodeA.Revoke(ctx, "s1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if r, _ := nodeA.IsRevoked(ctx, "s1"); !r {
		t.Fatal("the revoking node must see the revocation at once")
	}
	if r, _ := nodeB.IsRevoked(ctx, "s1"); r {
		t.Fatal("the other node answered from the backend inside its TTL; the cache did nothing")
	}
	clk.Advance(600 * time.Millisecond)
	if r, _ := nodeB.IsRevoked(ctx, "s1"); !r {
		t.Fatal("the other node still accepts the session one TTL after its lookup")
	}
}

func TestRevocationCacheAbsorbsLoad(t *testing.T) {
	clk := &clock{now: time.Unix(1_900_000_000, 0)}
	backend := newCountingBackend()
	c := auth.NewRevocationCache(backend, auth.CacheOptions{TTL: time.Second, Clock: clk.Now})
	for range 1000 {
		if _, err := c.IsRevoked(t.Context(), "s"); err != nil {
			t.Fatal(err)
		}
	}
	if n := backend.lookups.Load(); n != 1 {
		t.Fatalf("%d backend lookups for 1000 checks within the TTL, want 1", n)
	}
}

func TestRevocationCacheBoundsAndErrors(t *testing.T) {
	clk := &clock{now: time.Unix(1_900_000_000, 0)}
	backend := newCountingBackend()
	c := auth.NewRevocationCache(backend, auth.CacheOptions{TTL: time.Second, MaxEntries: 10, Clock: clk.Now})
	for i := range 100 {
		if _, err := c.IsRevoked(t.Context(), string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() > 10 {
		t.Fatalf("cache holds %d entries, want at most 10", c.Len())
	}
	boom := errors.New("backend down")
	backend.fail = boom
	clk.Advance(time.Second)
	if _, err := c.IsRevoked(t.Context(), "a"); !errors.Is(err, boom) {
		t.Fatalf("backend failure: %v", err)
	}
}

// A "not revoked" answer read before a Revoke on the same node, and
// arriving after it, must not replace the revocation in the cache.
func TestRevocationCacheKeepsRevocationOverRacingRead(t *testing.T) {
	backend := &slowBackend{countingBackend: newCountingBackend(), reading: make(chan struct{}), release: make(chan struct{})}
	c := auth.NewRevocationCache(backend, auth.CacheOptions{TTL: time.Hour})
	read := make(chan bool, 1)
	go func() {
		r, err := c.IsRevoked(t.Context(), "s1")
		if err != nil {
			t.Error(err)
		}
		read <- r
	}()
	<-backend.reading // the backend has answered "not revoked", not yet returned
	if err := c.Revoke(t.Context(), "s1", time.Hour); err != nil {
		t.Fatal(err)
	}
	close(backend.release)
	if r := <-read; r {
		t.Fatal("the racing read saw the revocation; the test did not race")
	}
	if r, err := c.IsRevoked(t.Context(), "s1"); err != nil || !r {
		t.Fatalf("after Revoke: revoked=%v, %v; the stale read replaced the revocation", r, err)
	}
}

// slowBackend answers IsRevoked, then signals reading and holds the answer
// until release closes.
type slowBackend struct {
	*countingBackend
	reading, release chan struct{}
	once             sync.Once
}

func (b *slowBackend) IsRevoked(ctx context.Context, id string) (bool, error) {
	r, err := b.countingBackend.IsRevoked(ctx, id)
	b.once.Do(func() { close(b.reading) })
	<-b.release
	return r, err
}

func TestStoreRevocations(t *testing.T) {
	e := newEnv(t, nil)
	e.register(t, "r@example.com", "password-no-1")
	pair := e.login(t, "r@example.com", "password-no-1")
	p, _ := e.svc.Authenticate(t.Context(), pair.AccessToken)
	s := auth.NewStoreRevocations(e.sessions, nil)
	for _, tt := range []struct {
		id   string
		want bool
	}{{p.SessionID, false}, {"no-such-session", true}} {
		if got, err := s.IsRevoked(t.Context(), tt.id); err != nil || got != tt.want {
			t.Fatalf("IsRevoked(%s) = %v, %v; want %v", tt.id, got, err, tt.want)
		}
	}
	if err := s.Revoke(t.Context(), p.SessionID, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.IsRevoked(t.Context(), p.SessionID); !got {
		t.Fatal("revoked session reported live")
	}
}

func testRedis(t *testing.T) *redis.Client { return testenv.Redis(t) }

func TestRedisRevocationsAcrossNodes(t *testing.T) {
	client := testRedis(t)
	prefix := "kowai-test:revoked:" + rand.Text() + ":"
	// Two services sharing users, sessions and Redis stand for two nodes.
	var nodes []*env
	var shared *env
	for range 2 {
		nodes = append(nodes, newEnv(t, func(c *auth.Config) {
			if shared != nil {
				c.Users, c.Sessions, c.Clock = shared.users, shared.sessions, shared.clock.Now
			}
			revs, err := auth.NewRevocations(c.Sessions, auth.RevocationsOptions{Redis: client, RedisPrefix: prefix, Local: auth.CacheOptions{TTL: time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			c.Revocations = revs
		}))
		if shared == nil {
			shared = nodes[0]
		}
	}
	nodes[0].register(t, "n@example.com", "password-no-1")
	pair := nodes[0].login(t, "n@example.com", "password-no-1")
	p, err := nodes[1].svc.Authenticate(t.Context(), pair.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].svc.Logout(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	ttl, err := client.PTTL(t.Context(), prefix+p.SessionID).Result()
	if err != nil || ttl <= 15*time.Minute || ttl > 15*time.Minute+30*time.Second {
		t.Fatalf("revocation key TTL = %s, %v; want access TTL plus leeway", ttl, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := nodes[1].svc.Authenticate(t.Context(), pair.AccessToken)
		if errors.Is(err, auth.ErrInvalidToken) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 2 still accepts the token 5 s after logout on node 1: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deleteKeys removes every key under prefix, as a Redis restart (it keeps
// nothing on disk) or a FLUSHDB would, without touching the keys of other
// tests sharing the server.
func deleteKeys(t *testing.T, client *redis.Client, prefix string) {
	t.Helper()
	keys, err := client.Keys(t.Context(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		if err := client.Del(t.Context(), keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// Redis is a cache in front of the database: losing its keys must not bring
// a revoked session back, and a session the database does not know is
// refused. Each check uses a fresh node (no local cache), as after a restart.
func TestRedisRevocationsFallBackToTheDatabase(t *testing.T) {
	client := testRedis(t)
	prefix := testenv.Prefix("revocations")
	e := newEnv(t, nil)
	node := func() *auth.RevocationCache {
		t.Helper()
		c, err := auth.NewRevocations(e.sessions, auth.RevocationsOptions{Redis: client, RedisPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	e.register(t, "lost@example.com", "password-no-1")
	p, err := e.svc.Authenticate(t.Context(), e.login(t, "lost@example.com", "password-no-1").AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	live, err := e.svc.Authenticate(t.Context(), e.login(t, "lost@example.com", "password-no-1").AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Logout(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if err := node().Revoke(t.Context(), p.SessionID, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, sessionID string
		want            bool
	}{
		{"logged out", p.SessionID, true},
		{"live", live.SessionID, false},
		{"unknown", "0198c3f0-0000-7000-8000-000000000000", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deleteKeys(t, client, prefix)
			for _, round := range []string{"from the database", "from redis"} {
				got, err := node().IsRevoked(t.Context(), tc.sessionID)
				if err != nil || got != tc.want {
					t.Fatalf("%s: IsRevoked = %v, %v; want %v", round, got, err, tc.want)
				}
			}
		})
	}

	// A revocation published to Redis reaches every node at once, before any
	// of them asks the database again.
	deleteKeys(t, client, prefix)
	if err := node().Revoke(t.Context(), live.SessionID, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := node().IsRevoked(t.Context(), live.SessionID); err != nil || !got {
		t.Fatalf("after Revoke: IsRevoked = %v, %v; want true from the key", got, err)
	}
}
