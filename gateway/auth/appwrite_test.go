package auth_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/auth"
)

// fakeAppwrite behaves like Appwrite's GET /v1/account: it knows JWTs by
// value and answers like the real server, or misbehaves on request.
func fakeAppwrite(t *testing.T, accounts map[string]auth.AppwriteUser) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/account" || r.Header.Get("X-Appwrite-Project") != "proj" {
			http.Error(w, `{"message":"bad request","code":400}`, http.StatusBadRequest)
			return
		}
		switch jwt := r.Header.Get("X-Appwrite-JWT"); jwt {
		case "jwt-500":
			http.Error(w, `{"message":"server error","code":500}`, http.StatusInternalServerError)
		case "jwt-slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		case "jwt-malformed":
			_, _ = w.Write([]byte(`{"$id": "x", "email": `))
		case "jwt-huge":
			_, _ = w.Write([]byte(`{"$id":"x","status":true,"name":"` + strings.Repeat("a", 100_000) + `"}`))
		case "jwt-wrongtype":
			_, _ = w.Write([]byte(`{"$id": 42, "status": true}`))
		default:
			acct, ok := accounts[jwt]
			if !ok {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"message":"Invalid token passed in the request.","code":401,"type":"user_jwt_invalid"}`))
				return
			}
			_ = json.NewEncoder(w).Encode(acct)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newVerifier(t *testing.T, endpoint string, labels map[string]auth.Role) *auth.AppwriteVerifier {
	t.Helper()
	v, err := auth.NewAppwriteVerifier(auth.AppwriteConfig{Endpoint: endpoint + "/v1", ProjectID: "proj", LabelRoles: labels, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAppwriteVerify(t *testing.T) {
	srv := fakeAppwrite(t, map[string]auth.AppwriteUser{
		"jwt-ok":      {ID: "aw1", Email: "x@example.com", Name: "X", Status: true},
		"jwt-blocked": {ID: "aw2", Email: "y@example.com", Status: false},
		"jwt-noid":    {Email: "z@example.com", Status: true},
	})
	v := newVerifier(t, srv.URL, nil)
	if u, err := v.Verify(t.Context(), "jwt-ok"); err != nil || u.ID != "aw1" || u.Email != "x@example.com" {
		t.Fatalf("Verify(jwt-ok) = %+v, %v", u, err)
	}
	tests := []struct {
		jwt  string
		want error
	}{
		{"jwt-unknown", auth.ErrInvalidToken},
		{"jwt-blocked", auth.ErrInvalidToken},
		{"", auth.ErrInvalidToken},
		{"has space", auth.ErrInvalidToken},
		{strings.Repeat("j", 9000), auth.ErrInvalidToken},
		{"jwt-500", auth.ErrAppwriteUnavailable},
		{"jwt-slow", auth.ErrAppwriteUnavailable},
		{"jwt-malformed", auth.ErrAppwriteUnavailable},
		{"jwt-huge", auth.ErrAppwriteUnavailable},
		{"jwt-wrongtype", auth.ErrAppwriteUnavailable},
		{"jwt-noid", auth.ErrAppwriteUnavailable},
	}
	for _, tt := range tests {
		start := time.Now()
		_, err := v.Verify(t.Context(), tt.jwt)
		if !errors.Is(err, tt.want) {
			t.Errorf("Verify(%.20q) = %v, want %v", tt.jwt, err, tt.want)
		}
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("Verify(%.20q) took %s despite the 200 ms timeout", tt.jwt, elapsed)
		}
	}
	down := newVerifier(t, "http://127.0.0.1:1", nil)
	if _, err := down.Verify(t.Context(), "jwt-ok"); !errors.Is(err, auth.ErrAppwriteUnavailable) {
		t.Fatalf("unreachable endpoint: %v", err)
	}
}

func TestAppwriteConfig(t *testing.T) {
	for _, cfg := range []auth.AppwriteConfig{
		{Endpoint: "", ProjectID: "p"},
		{Endpoint: "ftp://x/v1", ProjectID: "p"},
		{Endpoint: "https://x/v1"},
		{Endpoint: "https://x/v1", ProjectID: "p", LabelRoles: map[string]auth.Role{"boss": "root"}},
	} {
		if _, err := auth.NewAppwriteVerifier(cfg); !errors.Is(err, auth.ErrConfig) {
			t.Errorf("NewAppwriteVerifier(%+v): %v, want ErrConfig", cfg, err)
		}
	}
}

func TestAppwriteLabelRoles(t *testing.T) {
	u := auth.AppwriteUser{Labels: []string{"admin", "premium", "moderator", "other"}}
	tests := []struct {
		name   string
		labels map[string]auth.Role
		want   string
	}{
		{"default mapping never grants admin", nil, "user,premium,moderator"},
		{"explicit admin", map[string]auth.Role{"admin": auth.RoleAdmin}, "user,admin"},
		{"empty mapping", map[string]auth.Role{}, "user"},
	}
	for _, tt := range tests {
		roles := newVerifier(t, "http://127.0.0.1:1", tt.labels).Roles(u)
		var names []string
		for _, r := range roles {
			names = append(names, string(r))
		}
		if got := strings.Join(names, ","); got != tt.want {
			t.Errorf("%s: roles %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestSignInWithAppwrite(t *testing.T) {
	srv := fakeAppwrite(t, map[string]auth.AppwriteUser{
		"jwt-new":        {ID: "aw-new", Email: "New@Example.com", Name: "New", Labels: []string{"premium", "admin"}, Status: true, EmailVerification: true},
		"jwt-unverified": {ID: "aw-u", Email: "fresh@example.com", Status: true},
		"jwt-noemail":    {ID: "aw-p", Status: true, EmailVerification: true},
		"jwt-linked":     {ID: "aw-l", Email: "other-address@example.com", Status: true},
	})
	e := newEnv(t, func(c *auth.Config) { c.Appwrite = newVerifier(t, srv.URL, nil) })
	ctx := t.Context()

	pair, err := e.svc.SignInWithAppwrite(ctx, "jwt-new")
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.svc.Authenticate(ctx, pair.AccessToken)
	if err != nil || p.HasRole(auth.RoleAdmin) || !p.HasRole(auth.RolePremium) {
		t.Fatalf("new appwrite user: %+v, %v; want premium and never admin", p, err)
	}
	u, _ := e.svc.Me(ctx, p)
	if u.Email != "new@example.com" || u.AppwriteID != "aw-new" || u.PasswordHash != "" {
		t.Fatalf("created user %+v", u)
	}
	again, err := e.svc.SignInWithAppwrite(ctx, "jwt-new")
	if err != nil {
		t.Fatal(err)
	}
	if p2, _ := e.svc.Authenticate(ctx, again.AccessToken); p2.UserID != p.UserID {
		t.Fatalf("second sign-in made another user %s", p2.UserID)
	}
	_, err = e.svc.Login(ctx, "new@example.com", "", "")
	wantErr(t, "password login of an appwrite-only user", err, auth.ErrInvalidCredentials)

	_, err = e.svc.SignInWithAppwrite(ctx, "jwt-unverified")
	wantErr(t, "a new account from an unverified email", err, auth.ErrAppwriteEmailUnverified)
	if _, err := e.users.UserByEmail(ctx, "fresh@example.com"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("an unverified email made an account: %v", err)
	}
	_, err = e.svc.SignInWithAppwrite(ctx, "jwt-noemail")
	wantErr(t, "account without email", err, auth.ErrInvalidToken)
	_, err = e.svc.SignInWithAppwrite(ctx, "jwt-unknown")
	wantErr(t, "refused jwt", err, auth.ErrInvalidToken)

	// An account linked explicitly signs in whatever its email.
	owner := e.register(t, "owner@example.com", "password-no-1")
	op, _ := e.svc.Authenticate(ctx, e.login(t, "owner@example.com", "password-no-1").AccessToken)
	if _, err := e.svc.LinkAppwrite(ctx, op, "jwt-linked"); err != nil {
		t.Fatal(err)
	}
	pair, err = e.svc.SignInWithAppwrite(ctx, "jwt-linked")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := e.svc.Authenticate(ctx, pair.AccessToken); p.UserID != owner.ID {
		t.Fatalf("linked sign-in as %s, want %s", p.UserID, owner.ID)
	}
	if err := e.users.SetDisabled(owner.ID, true); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.SignInWithAppwrite(ctx, "jwt-linked")
	wantErr(t, "disabled user", err, auth.ErrAccountDisabled)

	off := newEnv(t, nil)
	_, err = off.svc.SignInWithAppwrite(ctx, "jwt-new")
	wantErr(t, "not configured", err, auth.ErrAppwriteDisabled)
	_, err = off.svc.LinkAppwrite(ctx, op, "jwt-new")
	wantErr(t, "link when not configured", err, auth.ErrAppwriteDisabled)
}

// TestAppwriteNeverTakesOverALocalAccount is the pre-hijacking attack: an
// attacker registers the victim's email locally, without proving it; the
// victim later signs in through Appwrite with that email verified. kowai
// used to link the Appwrite identity to the attacker's account, where the
// attacker, who still knows its password, reads what the victim does there.
func TestAppwriteNeverTakesOverALocalAccount(t *testing.T) {
	srv := fakeAppwrite(t, map[string]auth.AppwriteUser{
		"jwt-victim":     {ID: "aw-victim", Email: "Victim@Corp.test", Status: true, EmailVerification: true},
		"jwt-unverified": {ID: "aw-u", Email: "victim@corp.test", Status: true},
	})
	e := newEnv(t, func(c *auth.Config) { c.Appwrite = newVerifier(t, srv.URL, nil) })
	ctx := t.Context()
	planted := e.register(t, "victim@corp.test", "attacker-knows-this")

	for _, jwt := range []string{"jwt-victim", "jwt-unverified"} {
		_, err := e.svc.SignInWithAppwrite(ctx, jwt)
		if err == nil {
			t.Fatalf("%s: signed in to the planted account", jwt)
		}
	}
	_, err := e.svc.SignInWithAppwrite(ctx, "jwt-victim")
	wantErr(t, "verified email of an unlinked local account", err, auth.ErrAppwriteLinkRequired)
	_, err = e.svc.SignInWithAppwrite(ctx, "jwt-unverified")
	wantErr(t, "unverified email of a local account", err, auth.ErrAppwriteEmailUnverified)
	if u, _ := e.users.UserByID(ctx, planted.ID); u.AppwriteID != "" {
		t.Fatalf("the planted account got linked to %s", u.AppwriteID)
	}
}

func TestLinkAppwrite(t *testing.T) {
	srv := fakeAppwrite(t, map[string]auth.AppwriteUser{
		"jwt-a": {ID: "aw-a", Email: "a@example.com", Status: true},
		"jwt-b": {ID: "aw-b", Email: "b@example.com", Status: true, EmailVerification: true},
	})
	e := newEnv(t, func(c *auth.Config) { c.Appwrite = newVerifier(t, srv.URL, nil) })
	ctx := t.Context()
	session := func(email string) auth.Principal {
		t.Helper()
		e.register(t, email, "password-no-1")
		p, err := e.svc.Authenticate(ctx, e.login(t, email, "password-no-1").AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	alice, bob := session("alice@example.com"), session("bob@example.com")

	u, err := e.svc.LinkAppwrite(ctx, alice, "jwt-a")
	if err != nil || u.ID != alice.UserID || u.AppwriteID != "aw-a" {
		t.Fatalf("LinkAppwrite = %+v, %v", u, err)
	}
	if u, err := e.svc.LinkAppwrite(ctx, alice, "jwt-a"); err != nil || u.AppwriteID != "aw-a" {
		t.Fatalf("linking the same pair again = %+v, %v", u, err)
	}
	_, err = e.svc.LinkAppwrite(ctx, bob, "jwt-a")
	wantErr(t, "an appwrite account linked to another user", err, auth.ErrAppwriteAlreadyLinked)
	_, err = e.svc.LinkAppwrite(ctx, alice, "jwt-b")
	wantErr(t, "a user linked to another appwrite account", err, auth.ErrAppwriteAlreadyLinked)
	_, err = e.svc.LinkAppwrite(ctx, bob, "jwt-forged")
	wantErr(t, "a jwt appwrite refuses", err, auth.ErrInvalidToken)
	if me, _ := e.svc.Me(ctx, alice); me.AppwriteID != "aw-a" {
		t.Fatalf("Me after linking shows %q", me.AppwriteID)
	}
}
