package gateway

import (
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/internal/testenv"
)

// dropRedisKeys deletes every key under prefix: what a Redis restart (it
// keeps nothing on disk) or a FLUSHDB does to kowai's keys, without
// disturbing other tests that share the server.
func dropRedisKeys(t *testing.T, client *redis.Client, prefix string) {
	t.Helper()
	keys, err := client.Keys(t.Context(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatalf("no key under %s: the server did not use Redis", prefix)
	}
	if err := client.Del(t.Context(), keys...).Err(); err != nil {
		t.Fatal(err)
	}
}

// forgeToken signs an access token for userID in a session that was never
// created, as someone holding the signing key could.
func forgeToken(t *testing.T, userID string) string {
	t.Helper()
	toks, err := auth.NewTokens(auth.TokenConfig{Secret: testJWTSecret, Issuer: "kowai", Audience: "kowai"})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := toks.Issue(userID, uuid.Must(uuid.NewV7()).String(), []auth.Role{auth.RoleUser})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// The database is the truth about sessions; Redis only caches it. A token
// logged out on one node stays refused on another after Redis lost its keys,
// and a token whose session does not exist is refused, with Redis and
// without.
func TestRevocationOutlivesRedis(t *testing.T) {
	for _, tc := range []struct {
		name  string
		redis bool
	}{{"redis", true}, {"database only", false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := restConfig{}
			if tc.redis {
				cfg.redis, cfg.redisPrefix = testenv.Redis(t), testenv.Prefix("sessions")
			}
			nodeA := startREST(t, cfg)
			u := nodeA.newUser(t, "gone@example.com")
			other := nodeA.login(t, u.email, u.password)
			if r := call(t, http.MethodPost, nodeA.url+"/api/v1/auth/logout", u.pair.AccessToken, ""); r.status != http.StatusNoContent {
				t.Fatalf("logout: %d %s", r.status, r.body)
			}
			if tc.redis {
				dropRedisKeys(t, cfg.redis, cfg.redisPrefix)
			}
			cfg.db = nodeA.db
			nodeB := startREST(t, cfg)
			for _, node := range []*restEnv{nodeB, nodeA} {
				call(t, http.MethodGet, node.url+"/api/v1/auth/me", u.pair.AccessToken, "").problem(t, http.StatusUnauthorized)
				call(t, http.MethodGet, node.url+"/api/v1/auth/me", forgeToken(t, u.id), "").problem(t, http.StatusUnauthorized)
				if r := call(t, http.MethodGet, node.url+"/api/v1/auth/me", other.AccessToken, ""); r.status != http.StatusOK {
					t.Fatalf("the session that did not log out: %d %s", r.status, r.body)
				}
			}
		})
	}
}
