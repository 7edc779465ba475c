package auth_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/internal/testenv"
)

// TestFailedLoginsAreLogged: a failed login is a security event whether or
// not the account exists; the line names the address, never the email or
// the password tried.
func TestFailedLoginsAreLogged(t *testing.T) {
	logs := &testenv.LogBuffer{}
	e := newEnv(t, func(c *auth.Config) { c.Logger = slog.New(slog.NewJSONHandler(logs, nil)) })
	e.register(t, "known@example.com", "known-account-passphrase")
	for _, tc := range []struct{ name, email, password, want string }{
		{"unknown account", "stranger@example.com", "guess-number-1", `"msg":"login failed","component":"auth","reason":"unknown_account","ip":"192.0.2.1"`},
		{"malformed email", "not an email", "guess-number-2", `"reason":"unknown_account","ip":"192.0.2.1"`},
		{"wrong password", "known@example.com", "guess-number-3", `"msg":"login failed","component":"auth","user_id":`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(logs.String())
			if _, err := e.svc.Login(t.Context(), tc.email, tc.password, "192.0.2.1"); !errors.Is(err, auth.ErrInvalidCredentials) {
				t.Fatalf("login: %v", err)
			}
			got := logs.String()[before:]
			if !strings.Contains(got, tc.want) {
				t.Fatalf("log %q lacks %q", got, tc.want)
			}
			if strings.Contains(got, tc.password) || strings.Contains(got, tc.email) {
				t.Fatalf("the log holds what was tried: %s", got)
			}
		})
	}
}
