package auth_test

import (
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/auth"
)

// Refreshing renews the refresh token but never the session: once the
// session is SessionMaxAge old, refresh fails, however recently it was
// refreshed.
func TestSessionMaxAge(t *testing.T) {
	e := newEnv(t, func(c *auth.Config) { c.RefreshTTL, c.SessionMaxAge = time.Hour, 2*time.Hour })
	e.register(t, "old@example.com", "password-no-1")
	pair := e.login(t, "old@example.com", "password-no-1")
	for range 2 {
		e.clock.Advance(50 * time.Minute)
		next, err := e.svc.Refresh(t.Context(), pair.RefreshToken)
		if err != nil {
			t.Fatalf("refresh within the max age: %v", err)
		}
		pair = next
	}
	e.clock.Advance(20*time.Minute + time.Second) // 2 h and 1 s after login
	_, err := e.svc.Refresh(t.Context(), pair.RefreshToken)
	wantErr(t, "refresh past the max age", err, auth.ErrInvalidToken)

	// A session started under a longer max age ends at the shorter one set
	// since (a restart with a lower KOWAI_SESSION_MAX_AGE).
	long := newEnv(t, func(c *auth.Config) { c.SessionMaxAge = 720 * time.Hour })
	long.register(t, "long@example.com", "password-no-1")
	pair = long.login(t, "long@example.com", "password-no-1")
	short := newEnv(t, func(c *auth.Config) {
		c.Users, c.Sessions, c.Clock, c.SessionMaxAge = long.users, long.sessions, long.clock.Now, time.Hour
	})
	long.clock.Advance(time.Hour)
	_, err = short.svc.Refresh(t.Context(), pair.RefreshToken)
	wantErr(t, "refresh past the lowered max age", err, auth.ErrInvalidToken)
}
