package ratelimit_test

import (
	"context"
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

// testRing returns a one-shard ring over the test server: a client that
// may shard keys, so the limiter sends one script call per check.
func testRing(tb testing.TB) *redis.Ring {
	tb.Helper()
	opts := testRedis(tb).Options()
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"only": opts.Addr}, DB: opts.DB, Password: opts.Password})
	tb.Cleanup(func() { _ = ring.Close() })
	return ring
}

func TestRedisContractShardedClient(t *testing.T) {
	ring := testRing(t)
	runContract(t, func(t *testing.T, clock func() time.Time) ratelimit.Limiter {
		return ratelimit.NewRedis(ring, ratelimit.RedisOptions{Prefix: testPrefix(), Clock: clock})
	})
}

// Checks sent in one batch see each other in order, whatever mix of keys,
// limits and denials the batch holds, and every key's TAT is written once
// with its TTL. The limiter's batches are formed by timing, so this test
// forms them for certain by holding the first round trip until every other
// check has queued behind it.
func TestRedisBatchDecidesInOrder(t *testing.T) {
	client := testRedis(t)
	prefix := testPrefix()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := ratelimit.NewRedis(client, ratelimit.RedisOptions{Prefix: prefix, Clock: func() time.Time { return now }})
	three := ratelimit.Limit{Rate: 3, Period: time.Minute}
	one := ratelimit.Limit{Rate: 1, Period: time.Hour}
	if _, err := l.Allow(t.Context(), "load", one); err != nil { // loads the script
		t.Fatal(err)
	}
	gate := make(chan struct{})
	var trips atomic.Int64
	client.AddHook(holdFirstPipeline{gate: gate, trips: &trips})

	first := make(chan error, 1)
	go func() {
		_, err := l.Allow(t.Context(), "warm", one)
		first <- err
	}()
	waitFor(t, func() bool { return trips.Load() == 1 }) // the first round trip is held
	const callers = 10
	results := make([]ratelimit.Result, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			key, limit := "a", three
			if i%2 == 1 {
				key, limit = "b", one
			}
			r, err := l.Allow(t.Context(), key, limit)
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		})
	}
	// Every check queues behind the held round trip (a fixed sleep was not
	// enough for 600 goroutines under the race detector on a loaded machine).
	waitFor(t, func() bool { return ratelimit.Queued(l) == callers })
	close(gate)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := trips.Load(); got != 2 {
		t.Fatalf("%d round trips, want 2: the held one and one batch of %d checks", got, callers)
	}
	var allowedA, allowedB int
	for i, r := range results {
		switch {
		case i%2 == 0 && r.Allowed:
			allowedA++
		case i%2 == 1 && r.Allowed:
			allowedB++
		case i%2 == 1 && r.RetryAfter != time.Hour:
			t.Errorf("denied check on b: RetryAfter %s, want 1h", r.RetryAfter)
		}
	}
	if allowedA != 3 || allowedB != 1 {
		t.Fatalf("allowed %d on a (limit 3) and %d on b (limit 1), want 3 and 1", allowedA, allowedB)
	}
	for key, want := range map[string]time.Duration{"a": time.Minute, "b": time.Hour} {
		ttl, err := client.PTTL(t.Context(), prefix+key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= want-time.Second || ttl > want {
			t.Errorf("TTL of %s = %s, want %s", key, ttl, want)
		}
	}
}

// A large batch goes out as several script calls of bounded size, in one
// round trip, and still decides every check once.
func TestRedisLargeBatchIsSplit(t *testing.T) {
	client := testRedis(t)
	l := ratelimit.NewRedis(client, ratelimit.RedisOptions{Prefix: testPrefix()})
	limit := ratelimit.Limit{Rate: 300, Period: time.Hour}
	if _, err := l.Allow(t.Context(), "load", limit); err != nil { // loads the script
		t.Fatal(err)
	}
	gate := make(chan struct{})
	var trips atomic.Int64
	var sizes []int
	client.AddHook(holdFirstPipeline{gate: gate, trips: &trips, sizes: &sizes})
	first := make(chan error, 1)
	go func() {
		_, err := l.Allow(t.Context(), "warm", limit)
		first <- err
	}()
	waitFor(t, func() bool { return trips.Load() == 1 })
	const callers = 600
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			r, err := l.Allow(t.Context(), "k", limit)
			if err != nil {
				t.Error(err)
			}
			if r.Allowed {
				allowed.Add(1)
			}
		})
	}
	// Every check queues behind the held round trip (a fixed sleep was not
	// enough for 600 goroutines under the race detector on a loaded machine).
	waitFor(t, func() bool { return ratelimit.Queued(l) == callers })
	close(gate)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := allowed.Load(); got != 300 {
		t.Fatalf("%d of %d checks allowed, want 300", got, callers)
	}
	if len(sizes) != 2 || sizes[1] != 3 {
		t.Fatalf("pipelines of %v commands, want the held one and one of 3 script calls for %d checks", sizes, callers)
	}
}

// A caller whose context ends stops waiting for its round trip; the
// checks sharing it are not disturbed.
func TestRedisCallerGivesUp(t *testing.T) {
	client := testRedis(t)
	l := ratelimit.NewRedis(client, ratelimit.RedisOptions{Prefix: testPrefix()})
	limit := ratelimit.Limit{Rate: 10, Period: time.Hour}
	if _, err := l.Allow(t.Context(), "load", limit); err != nil { // loads the script
		t.Fatal(err)
	}
	gate := make(chan struct{})
	var trips atomic.Int64
	client.AddHook(holdFirstPipeline{gate: gate, trips: &trips})
	patient := make(chan error, 1)
	go func() {
		_, err := l.Allow(t.Context(), "k", limit)
		patient <- err
	}()
	waitFor(t, func() bool { return trips.Load() == 1 })
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.Allow(ctx, "k", limit); !errors.Is(err, ratelimit.ErrLimiter) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Allow with a cancelled context: %v, want ErrLimiter and context.Canceled", err)
	}
	close(gate)
	if err := <-patient; err != nil {
		t.Fatalf("the check sharing the round trip: %v", err)
	}
}

// holdFirstPipeline holds the first pipeline until gate closes and counts
// round trips.
type holdFirstPipeline struct {
	gate  chan struct{}
	trips *atomic.Int64
	sizes *[]int // when set, gets the number of commands of each pipeline
}

func (h holdFirstPipeline) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h holdFirstPipeline) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h holdFirstPipeline) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.sizes != nil {
			*h.sizes = append(*h.sizes, len(cmds))
		}
		if h.trips.Add(1) == 1 {
			<-h.gate
		}
		return next(ctx, cmds)
	}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
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
