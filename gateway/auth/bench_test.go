package auth_test

import (
	"testing"
)

// BenchmarkAuthenticate measures the per-request cost of RequireAuth's work:
// HS256 verification, claim checks and a revocation check answered by the
// local cache. It is one part of the goal for GET /auth/me (at least
// 0.6 of a bare Fiber hello world's requests per second), which the gateway
// measures end to end.
func BenchmarkAuthenticate(b *testing.B) {
	e := newEnv(b, nil)
	e.register(b, "bench@example.com", "password-no-1")
	token := e.login(b, "bench@example.com", "password-no-1").AccessToken
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.svc.Authenticate(b.Context(), token); err != nil {
			b.Fatal(err)
		}
	}
}
