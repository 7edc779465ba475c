// Package testenv gives tests the shared services of the test environment.
//
// # Redis
//
// Redis returns a client for KOWAI_TEST_REDIS_URL, closed when the test
// ends. Without the variable the test fails under CI=true (the services are
// required there) and is skipped, loudly, elsewhere. Tests share the server:
// give every key a prefix of your own (Prefix).
//
//	client := testenv.Redis(t)
//	limiter := ratelimit.NewRedis(client, ratelimit.RedisOptions{Prefix: testenv.Prefix("rl")})
//
// # Benchmarks
//
// Throughput drives a closed-loop load from a number of workers for a
// while and returns the calls done and the time taken, for benchmarks that
// compare a measurement with a baseline run in alternation.
package testenv

import (
	"crypto/rand"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisURLVar names the variable with the test Redis server's URL.
const RedisURLVar = "KOWAI_TEST_REDIS_URL"

// Redis connects to the test Redis server and pings it.
func Redis(tb testing.TB) *redis.Client {
	tb.Helper()
	url := os.Getenv(RedisURLVar)
	if url == "" {
		msg := RedisURLVar + " is not set, so this Redis test cannot run; set it, e.g. " + RedisURLVar + "=redis://127.0.0.1:6379/0"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg + " (CI=true: Redis is required)")
		}
		tb.Skip("SKIPPING REDIS TEST: " + msg)
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		tb.Fatalf("%s: %v", RedisURLVar, err)
	}
	client := redis.NewClient(opts)
	tb.Cleanup(func() { _ = client.Close() })
	if err := client.Ping(tb.Context()).Err(); err != nil {
		tb.Fatalf("redis at %s: %v", opts.Addr, err)
	}
	return client
}

// Prefix returns a Redis key prefix no other test run shares: "kowai-test:NAME:RANDOM:".
func Prefix(name string) string { return "kowai-test:" + name + ":" + rand.Text() + ":" }

// Stop, returned by an Eventually condition, gives up at once: the condition can no
// longer become true (a process exited).
type Stop struct{ Err error }

// Error implements error.
func (s Stop) Error() string { return s.Err.Error() }

// Unwrap returns the reason.
func (s Stop) Unwrap() error { return s.Err }

// Eventually polls f until it returns nil, and fails the test with f's last error when
// timeout passes or f returns a Stop. It polls often at first and every 50ms at most.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := f()
		if err == nil {
			return
		}
		var stop Stop
		if errors.As(err, &stop) || time.Now().After(deadline) {
			t.Fatalf("not reached within %s: %v", timeout, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}
