package gateway

import (
	"crypto/rand"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kowai/kowai/gateway/ratelimit"

	"github.com/kowai/kowai/internal/testenv"
)

// testRedisLimiter returns a Redis limiter on KOWAI_TEST_REDIS_URL with a
// key prefix of its own. Without the variable the test fails under CI=true
// and is skipped, loudly, elsewhere.
func testRedisLimiter(tb testing.TB) *ratelimit.Redis {
	tb.Helper()
	return testRedisLimiterOn(tb, testRedisClient(tb))
}

// testRedisLimiterOn returns a limiter over client with a key prefix of its own.
func testRedisLimiterOn(tb testing.TB, client *redis.Client) *ratelimit.Redis {
	tb.Helper()
	return ratelimit.NewRedis(client, ratelimit.RedisOptions{Prefix: "kowai-test:gw:" + rand.Text() + ":"})
}

// testRedisClient connects to the test Redis server (see testenv.Redis).
func testRedisClient(tb testing.TB) *redis.Client { return testenv.Redis(tb) }

func TestRateLimits(t *testing.T) {
	for _, backend := range []struct {
		name    string
		limiter func(t *testing.T) ratelimit.Limiter
	}{
		{"in-process", func(*testing.T) ratelimit.Limiter { return ratelimit.NewMemory(ratelimit.MemoryOptions{}) }},
		{"redis", func(t *testing.T) ratelimit.Limiter { return testRedisLimiter(t) }},
	} {
		t.Run(backend.name, func(t *testing.T) {
			env := startREST(t, restConfig{limiter: backend.limiter(t),
				rateLimit: ratelimit.Limit{Rate: 3, Period: time.Hour}, authRateLimit: ratelimit.Limit{Rate: 5, Period: time.Hour}})
			alice := env.newUser(t, "alice@example.com") // one login
			bob := env.newUser(t, "bob@example.com")     // two logins

			me := env.url + "/api/v1/auth/me"
			for i := range 3 {
				r := call(t, http.MethodGet, me, alice.pair.AccessToken, "")
				if r.status != http.StatusOK || r.header.Get("RateLimit-Limit") != "3" || r.header.Get("RateLimit-Remaining") != strconv.Itoa(2-i) {
					t.Fatalf("request %d: %d %v", i, r.status, r.header)
				}
			}
			denied := call(t, http.MethodGet, me, alice.pair.AccessToken, "")
			denied.problem(t, http.StatusTooManyRequests)
			if retry, err := strconv.Atoi(denied.header.Get("Retry-After")); err != nil || retry < 1 {
				t.Fatalf("Retry-After %q", denied.header.Get("Retry-After"))
			}
			if denied.header.Get("RateLimit-Remaining") != "0" || denied.header.Get("RateLimit-Reset") == "" {
				t.Fatalf("429 headers %v", denied.header)
			}
			// Buckets are per user and per route.
			if r := call(t, http.MethodGet, me, bob.pair.AccessToken, ""); r.status != http.StatusOK {
				t.Fatalf("bob limited by alice's bucket: %d", r.status)
			}
			if r := call(t, http.MethodGet, env.url+"/api/v1/chat/conversations", alice.pair.AccessToken, ""); r.status != http.StatusOK {
				t.Fatalf("another route limited by /auth/me's bucket: %d", r.status)
			}

			// Login is limited per address at the auth limit: two logins
			// spent, three left.
			for range 3 {
				env.login(t, alice.email, alice.password)
			}
			r := call(t, http.MethodPost, env.url+"/api/v1/auth/login", "", `{"email":"alice@example.com","password":"correct horse battery"}`)
			r.problem(t, http.StatusTooManyRequests)
			if r.header.Get("RateLimit-Limit") != "5" {
				t.Fatalf("login 429 headers %v", r.header)
			}
		})
	}
}
