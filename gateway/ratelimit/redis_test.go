package ratelimit_test

import (
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kowai/kowai/gateway/ratelimit"

	"github.com/kowai/kowai/internal/testenv"
)

// testRedis connects to the test Redis server (see testenv.Redis).
func testRedis(tb testing.TB) *redis.Client { return testenv.Redis(tb) }

// testPrefix returns a key prefix no other test run shares.
func testPrefix() string {
	return "kowai-test:rl:" + rand.Text() + ":"
}

func TestRedisContract(t *testing.T) {
	client := testRedis(t)
	runContract(t, func(t *testing.T, clock func() time.Time) ratelimit.Limiter {
		return ratelimit.NewRedis(client, ratelimit.RedisOptions{Prefix: testPrefix(), Clock: clock})
	})
}

func TestRedisServerClock(t *testing.T) {
	client := testRedis(t)
	l := ratelimit.NewRedis(client, ratelimit.RedisOptions{Prefix: testPrefix()})
	limit := ratelimit.Limit{Rate: 3, Period: time.Hour}
	for i := range 3 {
		r, err := l.Allow(t.Context(), "k", limit)
		if err != nil || !r.Allowed || r.Remaining != 2-i {
			t.Fatalf("request %d: %+v, %v", i, r, err)
		}
	}
	r, err := l.Allow(t.Context(), "k", limit)
	if err != nil || r.Allowed {
		t.Fatalf("4th request: %+v, %v", r, err)
	}
	// The server clock moves on between calls, so only bound the wait.
	if r.RetryAfter <= 19*time.Minute || r.RetryAfter > 20*time.Minute {
		t.Fatalf("RetryAfter = %s, want just under 20m", r.RetryAfter)
	}
}

func TestRedisKeyExpires(t *testing.T) {
	client := testRedis(t)
	prefix := testPrefix()
	l := ratelimit.NewRedis(client, ratelimit.RedisOptions{Prefix: prefix})
	if _, err := l.Allow(t.Context(), "k", ratelimit.Limit{Rate: 1, Period: time.Minute, Burst: 5}); err != nil {
		t.Fatal(err)
	}
	ttl, err := client.PTTL(t.Context(), prefix+"k").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 59*time.Second || ttl > time.Minute {
		t.Fatalf("key TTL = %s, want the time until the bucket is full again (1m)", ttl)
	}
}

func TestRedisFailure(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = client.Close() })
	l := ratelimit.NewRedis(client, ratelimit.RedisOptions{})
	_, err := l.Allow(t.Context(), "k", ratelimit.PerSecond(1))
	if err == nil || !errors.Is(err, ratelimit.ErrLimiter) {
		t.Fatalf("Allow against a closed port: %v, want ErrLimiter", err)
	}
}

// Concurrent checks share round trips; each must still count exactly once.
func TestRedisConcurrentChecks(t *testing.T) {
	client := testRedis(t)
	l := ratelimit.NewRedis(client, ratelimit.RedisOptions{Prefix: testPrefix()})
	limit := ratelimit.Limit{Rate: 25, Period: time.Hour}
	const callers = 200
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			key := "shared"
			if i%2 == 1 {
				key = "other"
			}
			r, err := l.Allow(t.Context(), key, limit)
			if err != nil {
				t.Error(err)
				return
			}
			if r.Allowed {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 2*25 {
		t.Fatalf("%d of %d checks on two keys allowed, want 50", got, callers)
	}
}

// A Redis that lost its scripts (restart, SCRIPT FLUSH) is answered by
// loading the script again, for single and concurrent checks alike.
func TestRedisReloadsFlushedScript(t *testing.T) {
	client := testRedis(t)
	l := ratelimit.NewRedis(client, ratelimit.RedisOptions{Prefix: testPrefix()})
	limit := ratelimit.Limit{Rate: 100, Period: time.Hour}
	for round := range 3 {
		if err := client.ScriptFlush(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 1 + round*10 {
			wg.Go(func() {
				if r, err := l.Allow(t.Context(), "k", limit); err != nil || !r.Allowed {
					t.Errorf("round %d: %+v, %v", round, r, err)
				}
			})
		}
		wg.Wait()
	}
}
