package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/kowai/kowai/gateway/auth"
)

func TestMiddleware(t *testing.T) {
	e := newEnv(t, nil)
	e.register(t, "user@example.com", "password-no-1")
	if _, err := e.svc.CreateUser(t.Context(), auth.NewUser{Email: "admin@example.com", Password: "password-no-1", Roles: []auth.Role{auth.RoleAdmin}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateUser(t.Context(), auth.NewUser{Email: "mod@example.com", Password: "password-no-1", Roles: []auth.Role{auth.RoleModerator}}); err != nil {
		t.Fatal(err)
	}
	userTok := e.login(t, "user@example.com", "password-no-1").AccessToken
	adminTok := e.login(t, "admin@example.com", "password-no-1").AccessToken
	modTok := e.login(t, "mod@example.com", "password-no-1").AccessToken
	revoked := e.login(t, "user@example.com", "password-no-1").AccessToken
	p, _ := e.svc.Authenticate(t.Context(), revoked)
	if err := e.svc.Logout(t.Context(), p); err != nil {
		t.Fatal(err)
	}

	app := fiber.New()
	api := app.Group("/api", auth.RequireAuth(e.svc))
	api.Get("/me", func(c *fiber.Ctx) error {
		p, ok := auth.PrincipalFrom(c)
		fromCtx, ok2 := auth.PrincipalFromContext(c.UserContext())
		if !ok || !ok2 || p.UserID != fromCtx.UserID {
			return errors.New("principal missing")
		}
		if key := auth.RateLimitKey(c); key != string(auth.AppendRateLimitKey(nil, c)) {
			return errors.New("AppendRateLimitKey differs from RateLimitKey")
		}
		return c.SendString(auth.RateLimitKey(c))
	})
	api.Get("/admin", auth.RequireRoles(auth.RoleAdmin), func(c *fiber.Ctx) error { return c.SendString("ok") })
	api.Get("/users", auth.RequirePermission(auth.PermAdminUsersRead), func(c *fiber.Ctx) error { return c.SendString("ok") })
	app.Get("/unguarded", auth.RequireRoles(auth.RoleUser), func(c *fiber.Ctx) error { return c.SendString("ok") })

	tests := []struct {
		name, path, header string
		status             int
		wwwAuth            bool
	}{
		{"no header", "/api/me", "", 401, true},
		{"wrong scheme", "/api/me", "Basic " + userTok, 401, true},
		{"garbage token", "/api/me", "Bearer nonsense", 401, true},
		{"revoked session", "/api/me", "Bearer " + revoked, 401, true},
		{"valid", "/api/me", "Bearer " + userTok, 200, false},
		{"lower-case scheme", "/api/me", "bearer " + userTok, 200, false},
		{"user on admin route", "/api/admin", "Bearer " + userTok, 403, false},
		{"moderator on admin route", "/api/admin", "Bearer " + modTok, 403, false},
		{"admin on admin route", "/api/admin", "Bearer " + adminTok, 200, false},
		{"user lacks permission", "/api/users", "Bearer " + userTok, 403, false},
		{"moderator has permission", "/api/users", "Bearer " + modTok, 200, false},
		{"role check without auth", "/unguarded", "Bearer " + userTok, 401, false},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodGet, tt.path, nil)
		if tt.header != "" {
			req.Header.Set("Authorization", tt.header)
		}
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tt.status || (resp.Header.Get("WWW-Authenticate") != "") != tt.wwwAuth {
			t.Errorf("%s: status %d, WWW-Authenticate %q; want %d, present=%v", tt.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), tt.status, tt.wwwAuth)
		}
	}
}

func TestRequireAuthBackendFailure(t *testing.T) {
	boom := errors.New("redis down")
	var seen error
	app := fiber.New(fiber.Config{ErrorHandler: func(c *fiber.Ctx, err error) error {
		seen = err
		return c.SendStatus(fiber.StatusServiceUnavailable)
	}})
	app.Get("/", auth.RequireAuth(auth.AuthenticatorFunc(func(context.Context, string) (auth.Principal, error) {
		return auth.Principal{}, boom
	})), func(c *fiber.Ctx) error { return c.SendString("must not run") })
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer x")
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != fiber.StatusServiceUnavailable || !errors.Is(seen, boom) {
		t.Fatalf("status %d, error %v; the backend error must reach the error handler", resp.StatusCode, seen)
	}
}

func TestHTTPStatus(t *testing.T) {
	tests := []struct {
		err    error
		status int
	}{
		{auth.ErrInvalidCredentials, 401},
		{auth.ErrTokenReused, 401},
		{&auth.ThrottledError{}, 429},
		{&auth.FieldError{Field: "email"}, 422},
		{auth.ErrEmailTaken, 409},
		{auth.ErrAccountDisabled, 403},
		{auth.ErrAppwriteDisabled, 404},
		{auth.ErrAppwriteUnavailable, 502},
		{errors.New("other"), 0},
	}
	for _, tt := range tests {
		if got, _ := auth.HTTPStatus(tt.err); got != tt.status {
			t.Errorf("HTTPStatus(%v) = %d, want %d", tt.err, got, tt.status)
		}
	}
}

// TestRequireAuthRefusedHook: the hook sees every refusal with its reason,
// never a success or a backend failure, and its error replaces the 401.
func TestRequireAuthRefusedHook(t *testing.T) {
	var reasons []error
	a := auth.AuthenticatorFunc(func(_ context.Context, token string) (auth.Principal, error) {
		switch token {
		case "good":
			return auth.Principal{UserID: "u1"}, nil
		case "broken-backend":
			return auth.Principal{}, errors.New("database down")
		}
		return auth.Principal{}, auth.ErrInvalidToken
	})
	app := fiber.New()
	app.Get("/", auth.RequireAuthWith(a, auth.RequireAuthOptions{Refused: func(c *fiber.Ctx, reason error) error {
		reasons = append(reasons, reason)
		if c.Get("X-Over-Limit") != "" {
			return fiber.NewError(fiber.StatusTooManyRequests, "slow down")
		}
		return nil
	}}), func(c *fiber.Ctx) error { return c.SendString("ok") })
	for _, tc := range []struct {
		name, token string
		overLimit   bool
		status      int
		reason      error
	}{
		{"valid", "good", false, 200, nil},
		{"missing", "", false, 401, auth.ErrMissingToken},
		{"invalid", "bad", false, 401, auth.ErrInvalidToken},
		{"invalid over the limit", "bad", true, 429, auth.ErrInvalidToken},
		{"backend failure", "broken-backend", false, 500, nil},
	} {
		reasons = nil
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		if tc.overLimit {
			req.Header.Set("X-Over-Limit", "1")
		}
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		switch {
		case tc.reason == nil && len(reasons) != 0:
			t.Errorf("%s: hook called with %v", tc.name, reasons)
		case tc.reason != nil && (len(reasons) != 1 || !errors.Is(reasons[0], tc.reason)):
			t.Errorf("%s: hook reasons %v, want %v", tc.name, reasons, tc.reason)
		}
	}
}

// lookupFunc adapts a function to auth.UserLookup.
type lookupFunc func(ctx context.Context, p auth.Principal) (auth.User, error)

func (f lookupFunc) Me(ctx context.Context, p auth.Principal) (auth.User, error) { return f(ctx, p) }

func TestCurrent(t *testing.T) {
	boom := errors.New("revocation store down")
	authn := auth.AuthenticatorFunc(func(_ context.Context, token string) (auth.Principal, error) {
		switch token {
		case "good":
			return auth.Principal{UserID: "u1", SessionID: "s1", Roles: []auth.Role{auth.RoleAdmin}}, nil
		case "down":
			return auth.Principal{}, boom
		}
		return auth.Principal{}, auth.ErrInvalidToken
	})
	record := func(u auth.User, err error) auth.UserLookup {
		return lookupFunc(func(_ context.Context, p auth.Principal) (auth.User, error) {
			if p.UserID != "u1" {
				t.Errorf("lookup of %q", p.UserID)
			}
			return u, err
		})
	}
	demoted := record(auth.User{ID: "u1", Roles: []auth.Role{auth.RoleUser}}, nil)
	tests := []struct {
		name  string
		token string
		users auth.UserLookup
		roles []auth.Role
		err   error
	}{
		{"token roles without a lookup", "good", nil, []auth.Role{auth.RoleAdmin}, nil},
		{"roles of the current record", "good", demoted, []auth.Role{auth.RoleUser}, nil},
		{"refused token", "evil", demoted, nil, auth.ErrInvalidToken},
		{"authenticator failure", "down", demoted, nil, boom},
		{"disabled account", "good", record(auth.User{ID: "u1", Roles: []auth.Role{auth.RoleAdmin}, Disabled: true}, nil), nil, auth.ErrAccountDisabled},
		{"deleted user", "good", record(auth.User{}, auth.ErrInvalidToken), nil, auth.ErrInvalidToken},
		{"user store failure", "good", record(auth.User{}, boom), nil, boom},
	}
	for _, tt := range tests {
		p, err := auth.Current(t.Context(), authn, tt.users, tt.token)
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.err)
			continue
		}
		if tt.err == nil && (p.UserID != "u1" || p.SessionID != "s1" || !slices.Equal(p.Roles, tt.roles)) {
			t.Errorf("%s: principal %+v, want roles %v", tt.name, p, tt.roles)
		}
	}
}

// TestWithPrincipalAllocations: the principal and the context that carries
// it are one allocation (RequireAuth makes one on every authenticated
// request), and the principal reads back from the context and from parents'
// values still.
func TestWithPrincipalAllocations(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "parent value")
	p := auth.Principal{UserID: "u1", Roles: []auth.Role{auth.RoleUser}}
	var ctx context.Context
	if n := testing.AllocsPerRun(100, func() { ctx = auth.WithPrincipal(parent, p) }); n != 1 {
		t.Errorf("WithPrincipal allocated %v times, want 1", n)
	}
	got, ok := auth.PrincipalFromContext(ctx)
	if !ok || got.UserID != "u1" || !slices.Equal(got.Roles, p.Roles) {
		t.Errorf("PrincipalFromContext = %+v, %v", got, ok)
	}
	if v := ctx.Value(key{}); v != "parent value" {
		t.Errorf("a parent's value reads %v", v)
	}
	if _, ok := auth.PrincipalFromContext(parent); ok {
		t.Error("the parent carries a principal")
	}
}
