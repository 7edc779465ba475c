package gateway

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/auth"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Now().UTC()} }

// Now returns the clock's time.
func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// refresh exchanges a refresh token over HTTP.
func refresh(t *testing.T, env *restEnv, token string) reply {
	t.Helper()
	return call(t, http.MethodPost, env.url+"/api/v1/auth/refresh", "", `{"refresh_token":"`+token+`"}`)
}

// KOWAI_SESSION_MAX_AGE bounds a session however often it is refreshed.
func TestRefreshStopsAtSessionMaxAge(t *testing.T) {
	clk := newTestClock()
	env := startREST(t, restConfig{sessionMaxAge: 3 * time.Hour, clock: clk.Now})
	u := env.newUser(t, "aging@example.com")
	pair := u.pair
	for range 2 {
		clk.Advance(time.Hour)
		r := refresh(t, env, pair.RefreshToken)
		if r.status != http.StatusOK {
			t.Fatalf("refresh within the max age: %d %s", r.status, r.body)
		}
		pair = auth.TokenPair{}
		r.json(t, &pair)
	}
	clk.Advance(time.Hour)
	refresh(t, env, pair.RefreshToken).problem(t, http.StatusUnauthorized)
}
