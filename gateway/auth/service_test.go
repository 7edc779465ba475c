package auth_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/gateway/auth/authtest"
	"github.com/kowai/kowai/gateway/ratelimit"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type env struct {
	svc      *auth.Service
	users    *authtest.Users
	sessions *authtest.Sessions
	clock    *clock
}

// newEnv builds a Service over the fakes; tweak may adjust the config.
func newEnv(t testing.TB, tweak func(*auth.Config)) *env {
	t.Helper()
	e := &env{users: authtest.NewUsers(), sessions: authtest.NewSessions(), clock: &clock{now: time.Now().UTC()}}
	tokens, err := auth.NewTokens(auth.TokenConfig{Secret: testSecret, Issuer: "kowai", Audience: "kowai", Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg := auth.Config{
		Users:       e.users,
		Sessions:    e.sessions,
		Tokens:      tokens,
		Hasher:      newHasher(t, auth.TestArgon2Params()),
		Revocations: auth.NewRevocationCache(auth.NewStoreRevocations(e.sessions, e.clock.Now), auth.CacheOptions{Clock: e.clock.Now}),
		Clock:       e.clock.Now,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	e.svc, err = auth.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) register(t testing.TB, email, password string) auth.User {
	t.Helper()
	u, err := e.svc.Register(t.Context(), email, password, "Name")
	if err != nil {
		t.Fatalf("register %s: %v", email, err)
	}
	return u
}

func (e *env) login(t testing.TB, email, password string) auth.TokenPair {
	t.Helper()
	pair, err := e.svc.Login(t.Context(), email, password, "192.0.2.1")
	if err != nil {
		t.Fatalf("login %s: %v", email, err)
	}
	return pair
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got %v, want %v", what, err, target)
	}
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	u := e.register(t, "  Alice@Example.COM ", "s3cret-password")
	if u.Email != "alice@example.com" || len(u.Roles) != 1 || u.Roles[0] != auth.RoleUser || u.ID == "" {
		t.Fatalf("registered %+v", u)
	}
	_, err := e.svc.Register(ctx, "alice@example.com", "another-password", "")
	wantErr(t, "register twice", err, auth.ErrEmailTaken)

	pair := e.login(t, "ALICE@example.com", "s3cret-password")
	if pair.TokenType != "Bearer" || pair.ExpiresIn != 900 || pair.AccessToken == "" || pair.RefreshToken == "" {
		t.Fatalf("pair %+v", pair)
	}
	p, err := e.svc.Authenticate(ctx, pair.AccessToken)
	if err != nil || p.UserID != u.ID {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	me, err := e.svc.Me(ctx, p)
	if err != nil || me.Public().Email != "alice@example.com" {
		t.Fatalf("Me = %+v, %v", me, err)
	}

	next, err := e.svc.Refresh(ctx, pair.RefreshToken)
	if err != nil || next.RefreshToken == pair.RefreshToken {
		t.Fatalf("Refresh = %+v, %v", next, err)
	}
	p2, err := e.svc.Authenticate(ctx, next.AccessToken)
	if err != nil || p2.SessionID != p.SessionID {
		t.Fatalf("refreshed token: %+v, %v; want the same session", p2, err)
	}

	wantErr(t, "logout", e.svc.Logout(ctx, p2), nil)
	for _, tok := range []string{pair.AccessToken, next.AccessToken} {
		_, err := e.svc.Authenticate(ctx, tok)
		wantErr(t, "access token after logout", err, auth.ErrInvalidToken)
	}
	_, err = e.svc.Refresh(ctx, next.RefreshToken)
	wantErr(t, "refresh after logout", err, auth.ErrInvalidToken)

	other := e.login(t, "alice@example.com", "s3cret-password")
	if _, err := e.svc.Authenticate(ctx, other.AccessToken); err != nil {
		t.Fatalf("a new login after logout: %v", err)
	}
}

func TestLoginErrorsAreGeneric(t *testing.T) {
	e := newEnv(t, nil)
	e.register(t, "bob@example.com", "right-password")
	appwriteOnly := auth.User{ID: "aw", Email: "aw@example.com", Roles: []auth.Role{auth.RoleUser}, AppwriteID: "x"}
	if err := e.users.CreateUser(t.Context(), appwriteOnly); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ email, password string }{
		{"bob@example.com", "wrong-password"},
		{"nobody@example.com", "right-password"},
		{"not an email", "right-password"},
		{"", ""},
		{"aw@example.com", ""},
		{"aw@example.com", "anything-at-all"},
		{"bob@example.com", string(make([]byte, 5000))},
	} {
		_, err := e.svc.Login(t.Context(), tt.email, tt.password, "192.0.2.1")
		if err != auth.ErrInvalidCredentials {
			t.Errorf("Login(%q): %v, want exactly ErrInvalidCredentials", tt.email, err)
		}
	}
}

func TestDisabledUser(t *testing.T) {
	e := newEnv(t, nil)
	u := e.register(t, "carol@example.com", "password-no-1")
	pair := e.login(t, "carol@example.com", "password-no-1")
	if err := e.users.SetDisabled(u.ID, true); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Login(t.Context(), "carol@example.com", "wrong-password", "")
	wantErr(t, "disabled, wrong password", err, auth.ErrInvalidCredentials)
	_, err = e.svc.Login(t.Context(), "carol@example.com", "password-no-1", "")
	wantErr(t, "disabled login", err, auth.ErrAccountDisabled)
	_, err = e.svc.Refresh(t.Context(), pair.RefreshToken)
	wantErr(t, "disabled refresh", err, auth.ErrAccountDisabled)
	_, err = e.svc.Authenticate(t.Context(), pair.AccessToken)
	wantErr(t, "access token after a refused refresh", err, auth.ErrInvalidToken)
}

func TestRefreshReuseRevokesSession(t *testing.T) {
	e := newEnv(t, nil)
	e.register(t, "dave@example.com", "password-no-1")
	first := e.login(t, "dave@example.com", "password-no-1")
	second, err := e.svc.Refresh(t.Context(), first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Refresh(t.Context(), first.RefreshToken)
	wantErr(t, "reuse", err, auth.ErrTokenReused)
	_, err = e.svc.Refresh(t.Context(), second.RefreshToken)
	wantErr(t, "the thief's sibling token", err, auth.ErrInvalidToken)
	_, err = e.svc.Authenticate(t.Context(), second.AccessToken)
	wantErr(t, "access token of the family", err, auth.ErrInvalidToken)
}

func TestRefreshRejects(t *testing.T) {
	e := newEnv(t, func(c *auth.Config) { c.RefreshTTL = time.Hour })
	e.register(t, "erin@example.com", "password-no-1")
	pair := e.login(t, "erin@example.com", "password-no-1")
	unknown, _ := auth.NewRefreshToken()
	for _, tok := range []string{"", "short", unknown, pair.RefreshToken + "x", pair.AccessToken} {
		_, err := e.svc.Refresh(t.Context(), tok)
		wantErr(t, "refresh "+tok, err, auth.ErrInvalidToken)
	}
	e.clock.Advance(time.Hour)
	_, err := e.svc.Refresh(t.Context(), pair.RefreshToken)
	wantErr(t, "expired refresh token", err, auth.ErrInvalidToken)
}

func TestDeletedUserTokensFail(t *testing.T) {
	e := newEnv(t, nil)
	u := e.register(t, "fay@example.com", "password-no-1")
	pair := e.login(t, "fay@example.com", "password-no-1")
	p, _ := e.svc.Authenticate(t.Context(), pair.AccessToken)
	e.users.Delete(u.ID)
	_, err := e.svc.Me(t.Context(), p)
	wantErr(t, "me of deleted user", err, auth.ErrInvalidToken)
	_, err = e.svc.Refresh(t.Context(), pair.RefreshToken)
	wantErr(t, "refresh of deleted user", err, auth.ErrInvalidToken)
}

func TestRevokeUserSessions(t *testing.T) {
	e := newEnv(t, nil)
	u := e.register(t, "gus@example.com", "password-no-1")
	a := e.login(t, "gus@example.com", "password-no-1")
	b := e.login(t, "gus@example.com", "password-no-1")
	if err := e.svc.RevokeUserSessions(t.Context(), u.ID); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{a.AccessToken, b.AccessToken} {
		_, err := e.svc.Authenticate(t.Context(), tok)
		wantErr(t, "after RevokeUserSessions", err, auth.ErrInvalidToken)
	}
}

func TestLoginRehashesOldHashes(t *testing.T) {
	e := newEnv(t, nil)
	old := auth.TestArgon2Params()
	old.Time = 2
	hash, _ := newHasher(t, old).Hash(t.Context(), "password-no-1")
	if err := e.users.CreateUser(t.Context(), auth.User{ID: "h", Email: "hal@example.com", PasswordHash: hash, Roles: []auth.Role{auth.RoleUser}}); err != nil {
		t.Fatal(err)
	}
	e.login(t, "hal@example.com", "password-no-1")
	u, _ := e.users.UserByID(t.Context(), "h")
	if u.PasswordHash == hash {
		t.Fatal("the hash was not upgraded to the current parameters")
	}
	e.login(t, "hal@example.com", "password-no-1")
}

// throttledEnv is an env whose login throttle has small limits on a clock
// the test moves.
func throttledEnv(t *testing.T, cfg auth.ThrottleConfig, tweak func(*auth.Config)) (*env, *clock) {
	t.Helper()
	var clk *clock
	e := newEnv(t, func(c *auth.Config) {
		clk = &clock{now: c.Clock()}
		cfg.Limiter = ratelimit.NewMemory(ratelimit.MemoryOptions{Clock: clk.Now})
		th, err := auth.NewThrottle(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Throttle = th
		if tweak != nil {
			tweak(c)
		}
	})
	return e, clk
}

func TestLoginThrottle(t *testing.T) {
	e, clk := throttledEnv(t, auth.ThrottleConfig{
		PerAccountAddress: ratelimit.Limit{Rate: 1, Period: time.Minute, Burst: 3},
		PerAccount:        ratelimit.Limit{Rate: 1, Period: time.Minute, Burst: 5},
		PerIP:             ratelimit.Limit{Rate: 1, Period: time.Minute, Burst: 5},
	}, nil)
	e.register(t, "ivy@example.com", "password-no-1")
	ctx := t.Context()
	for range 3 {
		_, err := e.svc.Login(ctx, "ivy@example.com", "wrong-password", "198.51.100.1")
		wantErr(t, "guess", err, auth.ErrInvalidCredentials)
	}
	_, err := e.svc.Login(ctx, "IVY@example.com", "password-no-1", "198.51.100.1")
	var te *auth.ThrottledError
	if !errors.As(err, &te) || te.RetryAfter != time.Minute {
		t.Fatalf("4th attempt on the account from one address: %v, want ThrottledError after 1m", err)
	}
	// The owner at another address is not locked out by that address.
	e.login(t, "ivy@example.com", "password-no-1") // from 192.0.2.1
	// Two more addresses reach the account's ceiling of 5 (3 + 1 + 1).
	_, err = e.svc.Login(ctx, "ivy@example.com", "wrong-password", "198.51.100.3")
	wantErr(t, "guess from a third address", err, auth.ErrInvalidCredentials)
	_, err = e.svc.Login(ctx, "ivy@example.com", "wrong-password", "198.51.100.4")
	wantErr(t, "guess over the account's ceiling", err, auth.ErrThrottled)
	clk.Advance(time.Minute)
	e.login(t, "ivy@example.com", "password-no-1")

	// Five attempts from one address on other accounts exhaust the address.
	for i := range 5 {
		_, err := e.svc.Login(ctx, "other"+string(rune('a'+i))+"@example.com", "x-password", "203.0.113.9")
		wantErr(t, "spray", err, auth.ErrInvalidCredentials)
	}
	_, err = e.svc.Login(ctx, "zed@example.com", "x-password", "203.0.113.9")
	wantErr(t, "6th attempt from one address", err, auth.ErrThrottled)
}

// accentBlindUsers looks emails up the way MariaDB's utf8mb4_unicode_ci
// collation compares them: accents (here, on i) are ignored.
type accentBlindUsers struct{ *authtest.Users }

func (a accentBlindUsers) UserByEmail(ctx context.Context, email string) (auth.User, error) {
	return a.Users.UserByEmail(ctx, strings.NewReplacer("í", "i", "ì", "i", "î", "i", "ï", "i").Replace(email))
}

// TestLoginThrottleKeysOnTheResolvedAccount: whatever spelling of an
// address a store resolves to an account, the attempts count against that
// account. Keyed on the string, "víctim@" got a fresh budget for guessing
// the password of the account that a lenient lookup found.
func TestLoginThrottleKeysOnTheResolvedAccount(t *testing.T) {
	users := accentBlindUsers{authtest.NewUsers()}
	e, _ := throttledEnv(t, auth.ThrottleConfig{PerAccountAddress: ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 3}},
		func(c *auth.Config) { c.Users = users })
	e.users = users.Users
	e.register(t, "victim@corp.test", "password-no-1")
	ctx := t.Context()
	for _, variant := range []string{"victim@corp.test", "víctim@corp.test", "vìctim@corp.test"} {
		_, err := e.svc.Login(ctx, variant, "wrong-password", "198.51.100.1")
		wantErr(t, "guess as "+variant, err, auth.ErrInvalidCredentials)
	}
	for _, variant := range []string{"vîctim@corp.test", "VICTIM@corp.test", "victim@corp.test"} {
		_, err := e.svc.Login(ctx, variant, "password-no-1", "198.51.100.1")
		wantErr(t, "4th attempt as "+variant, err, auth.ErrThrottled)
	}
}

func TestEnsureAdmin(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	created, err := e.svc.EnsureAdmin(ctx, "root@example.com", "admin-password")
	if err != nil || !created {
		t.Fatalf("first EnsureAdmin = %v, %v", created, err)
	}
	pair := e.login(t, "root@example.com", "admin-password")
	p, _ := e.svc.Authenticate(ctx, pair.AccessToken)
	if !p.HasRole(auth.RoleAdmin) {
		t.Fatalf("admin principal %+v", p)
	}
	created, err = e.svc.EnsureAdmin(ctx, "second@example.com", "admin-password")
	if err != nil || created {
		t.Fatalf("EnsureAdmin with an admin present = %v, %v", created, err)
	}
	_, err = e.svc.EnsureAdmin(context.Background(), "x@example.com", "short")
	if err != nil {
		t.Fatalf("EnsureAdmin must not validate when nothing is created: %v", err)
	}

	e2 := newEnv(t, nil)
	e2.register(t, "taken@example.com", "password-no-1")
	if _, err := e2.svc.EnsureAdmin(ctx, "taken@example.com", "admin-password"); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("EnsureAdmin over a non-admin user's email: %v", err)
	}
	if _, err := e2.svc.EnsureAdmin(ctx, "new@example.com", "short"); !errors.Is(err, auth.ErrInvalidInput) {
		t.Fatalf("EnsureAdmin with a short password: %v", err)
	}
	for _, weak := range []string{"qwerty123456", "new@example.com"} {
		if _, err := e2.svc.EnsureAdmin(ctx, "new@example.com", weak); !errors.Is(err, auth.ErrInvalidInput) {
			t.Fatalf("EnsureAdmin with the password %q: %v", weak, err)
		}
	}
	if created, err := e2.svc.EnsureAdmin(ctx, "  ＮＥＷ@Example.com", "admin-password"); err != nil || !created {
		t.Fatalf("EnsureAdmin = %v, %v", created, err)
	}
	if u, err := e2.users.UserByEmail(ctx, "new@example.com"); err != nil || !slices.Contains(u.Roles, auth.RoleAdmin) {
		t.Fatalf("the first admin is stored as %+v, %v; want new@example.com", u, err)
	}
}

func TestCreateUserValidates(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name  string
		nu    auth.NewUser
		field string
	}{
		{"bad email", auth.NewUser{Email: "nope", Password: "password-no-1"}, "email"},
		{"display name in email", auth.NewUser{Email: "Bob <bob@example.com>", Password: "password-no-1"}, "email"},
		{"short password", auth.NewUser{Email: "a@example.com", Password: "short"}, "password"},
		{"control chars in name", auth.NewUser{Email: "a@example.com", Password: "password-no-1", Name: "a\x00b"}, "name"},
		{"unknown role", auth.NewUser{Email: "a@example.com", Password: "password-no-1", Roles: []auth.Role{"root"}}, "roles"},
	}
	for _, tt := range tests {
		_, err := e.svc.CreateUser(t.Context(), tt.nu)
		var fe *auth.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: %v, want a FieldError on %s", tt.name, err, tt.field)
		}
	}
	u, err := e.svc.CreateUser(t.Context(), auth.NewUser{Email: "m@example.com", Password: "password-no-1", Roles: []auth.Role{auth.RoleModerator, auth.RoleUser, auth.RoleUser}})
	if err != nil || len(u.Roles) != 2 || u.Roles[0] != auth.RoleUser || u.Roles[1] != auth.RoleModerator {
		t.Fatalf("CreateUser with roles = %+v, %v", u, err)
	}
}

// blockingUsers holds one UserByID, once armed, after reading and until
// release is closed, to put a change in the middle of a read.
type blockingUsers struct {
	*authtest.Users
	armed   atomic.Bool
	read    chan struct{}
	release chan struct{}
}

func (b *blockingUsers) UserByID(ctx context.Context, id string) (auth.User, error) {
	u, err := b.Users.UserByID(ctx, id)
	if b.armed.CompareAndSwap(true, false) {
		close(b.read)
		<-b.release
	}
	return u, err
}

func TestMeCacheStaleness(t *testing.T) {
	e := newEnv(t, nil)
	u := e.register(t, "hal@example.com", "password-no-1")
	p, err := e.svc.Authenticate(t.Context(), e.login(t, "hal@example.com", "password-no-1").AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Me(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	// Another node deletes the user: this node's answer may be stale for
	// at most the TTL.
	e.users.Delete(u.ID)
	if me, err := e.svc.Me(t.Context(), p); err != nil || me.ID != u.ID {
		t.Fatalf("Me within the TTL = %+v, %v; want the cached user", me, err)
	}
	e.clock.Advance(auth.DefaultUserCacheTTL)
	_, err = e.svc.Me(t.Context(), p)
	wantErr(t, "me after the TTL", err, auth.ErrInvalidToken)
}

func TestMeCacheForgetsChangesMadeHere(t *testing.T) {
	e := newEnv(t, nil)
	u := e.register(t, "ida@example.com", "password-no-1")
	p, err := e.svc.Authenticate(t.Context(), e.login(t, "ida@example.com", "password-no-1").AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Me(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	e.users.Delete(u.ID) // as the admin route does, around RevokeUserSessions
	if err := e.svc.RevokeUserSessions(t.Context(), u.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Me(t.Context(), p)
	wantErr(t, "me right after the change", err, auth.ErrInvalidToken)
}

func TestMeCacheDropsReadsInFlightDuringAChange(t *testing.T) {
	users := &blockingUsers{Users: authtest.NewUsers(), read: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, func(c *auth.Config) { c.Users = users })
	e.users = users.Users
	u := e.register(t, "jon@example.com", "password-no-1")
	p, err := e.svc.Authenticate(t.Context(), e.login(t, "jon@example.com", "password-no-1").AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	users.armed.Store(true)
	go func() {
		_, err := e.svc.Me(context.Background(), p)
		done <- err
	}()
	<-users.read // the read has returned the user as it was
	e.users.Delete(u.ID)
	if err := e.svc.RevokeUserSessions(t.Context(), u.ID); err != nil {
		t.Fatal(err)
	}
	close(users.release)
	if err := <-done; err != nil {
		t.Fatalf("the read in flight: %v", err)
	}
	_, err = e.svc.Me(t.Context(), p)
	wantErr(t, "me after the read in flight", err, auth.ErrInvalidToken)
}

func TestMeCacheDisabled(t *testing.T) {
	e := newEnv(t, func(c *auth.Config) { c.UserCacheTTL = -1 })
	u := e.register(t, "kim@example.com", "password-no-1")
	p, err := e.svc.Authenticate(t.Context(), e.login(t, "kim@example.com", "password-no-1").AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Me(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	e.users.Delete(u.ID)
	_, err = e.svc.Me(t.Context(), p)
	wantErr(t, "uncached me after a delete", err, auth.ErrInvalidToken)
}

// TestThrottleAttemptSharesTheLoginBuckets: a password confirmation that
// spends Attempt(AccountKey(id)) draws from the same buckets as the user's
// logins.
func TestThrottleAttemptSharesTheLoginBuckets(t *testing.T) {
	th, err := auth.NewThrottle(auth.ThrottleConfig{Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{}),
		PerAccountAddress: ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 2}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *auth.Config) { c.Throttle = th })
	u := e.register(t, "jay@example.com", "password-no-1")
	for range 2 {
		if err := th.Attempt(t.Context(), auth.AccountKey(u.ID), "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	_, err = e.svc.Login(t.Context(), "jay@example.com", "password-no-1", "192.0.2.1")
	wantErr(t, "login after two confirmations from the same address", err, auth.ErrThrottled)
}

// TestAuditFailureDoesNotRefuseTheUser: an audit log that cannot write is
// logged; the login it describes still succeeds. An event of a cancelled
// request is still recorded, with the client address of the context.
func TestAuditFailureDoesNotRefuseTheUser(t *testing.T) {
	var mu sync.Mutex
	var got []auth.AuditEvent
	failing := true
	e := newEnv(t, func(c *auth.Config) {
		c.Audit = auth.AuditFunc(func(ctx context.Context, ev auth.AuditEvent) error {
			mu.Lock()
			defer mu.Unlock()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			got = append(got, ev)
			if failing {
				return errors.New("audit store down")
			}
			return nil
		})
	})
	e.register(t, "kai@example.com", "password-no-1")
	e.login(t, "kai@example.com", "password-no-1")
	mu.Lock()
	failing = false
	mu.Unlock()
	ctx, cancel := context.WithCancel(auth.WithClient(t.Context(), auth.ClientInfo{IP: "198.51.100.7"}))
	cancel()
	e.svc.Audit(ctx, auth.AuditEvent{Action: auth.AuditLogout, UserID: "u1"})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || got[1].Action != auth.AuditLogin || got[2].Action != auth.AuditLogout || got[2].IP != "198.51.100.7" {
		t.Fatalf("audit events %+v; want user.create, auth.login and auth.logout from 198.51.100.7", got)
	}
}

// TestLoginThrottleKeyOfAnInvalidEmailIsBounded: a login whose "email" is
// not an address is throttled on a key of bounded length, shared by its
// spellings. The key was the string itself, so one request could store up
// to a body's worth of key in the limiter (Redis), twice.
func TestLoginThrottleKeyOfAnInvalidEmailIsBounded(t *testing.T) {
	var (
		mu   sync.Mutex
		keys []string
	)
	mem := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	limiter := ratelimit.LimiterFunc(func(ctx context.Context, key string, limit ratelimit.Limit) (ratelimit.Result, error) {
		mu.Lock()
		keys = append(keys, key)
		mu.Unlock()
		return mem.Allow(ctx, key, limit)
	})
	th, err := auth.NewThrottle(auth.ThrottleConfig{Limiter: limiter,
		PerAccountAddress: ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 2}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *auth.Config) { c.Throttle = th })
	huge := strings.Repeat("X", 64<<10)
	for _, spelling := range []string{huge, strings.ToLower(huge)} {
		_, err := e.svc.Login(t.Context(), spelling, "password-no-1", "192.0.2.1")
		wantErr(t, "login with a 64 KiB non-address", err, auth.ErrInvalidCredentials)
	}
	_, err = e.svc.Login(t.Context(), " "+huge, "password-no-1", "192.0.2.1")
	wantErr(t, "third spelling of one non-address from one address", err, auth.ErrThrottled)
	mu.Lock()
	defer mu.Unlock()
	for _, k := range keys {
		if len(k) > 256 {
			t.Fatalf("throttle key of %d bytes, want at most 256", len(k))
		}
	}
}

// failingUsers fails every read by ID, as a database that is down would.
type failingUsers struct{ *authtest.Users }

func (failingUsers) UserByID(context.Context, string) (auth.User, error) {
	return auth.User{}, errors.New("injected: database down")
}

// UserCan answers from the user's current roles (through Me's cache): a demotion
// made on another node shows within the TTL, one made here at once; a disabled or
// missing user may do nothing; a failing store is an error, never an answer.
func TestUserCan(t *testing.T) {
	e := newEnv(t, nil)
	create := func(email string, roles ...auth.Role) auth.User {
		t.Helper()
		u, err := e.svc.CreateUser(t.Context(), auth.NewUser{Email: email, Password: "password-no-1", Roles: roles})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	plain, premium, admin, off := create("pat@example.com", auth.RoleUser), create("pia@example.com", auth.RolePremium),
		create("ann@example.com", auth.RoleAdmin), create("oz@example.com", auth.RolePremium)
	if err := e.users.SetDisabled(off.ID, true); err != nil {
		t.Fatal(err)
	}
	can := func(id string) bool {
		t.Helper()
		ok, err := e.svc.UserCan(t.Context(), id, auth.PermPremiumModels)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, tc := range []struct {
		name, id string
		want     bool
	}{
		{"user", plain.ID, false},
		{"premium", premium.ID, true},
		{"admin", admin.ID, true},
		{"disabled premium", off.ID, false},
		{"unknown", "0195f3c4-8d2a-7b6e-9c1d-2f3a4b5c6d7e", false},
	} {
		if got := can(tc.id); got != tc.want {
			t.Errorf("%s: UserCan = %v, want %v", tc.name, got, tc.want)
		}
	}

	// Demoted on another node: the cached answer stands for at most the TTL.
	if err := e.users.SetRoles(premium.ID, auth.RoleUser); err != nil {
		t.Fatal(err)
	}
	if !can(premium.ID) {
		t.Fatal("a cached answer was not reused within the TTL")
	}
	e.clock.Advance(auth.DefaultUserCacheTTL)
	if can(premium.ID) {
		t.Fatal("a demotion was not seen after the TTL")
	}
	// Promoted and demoted here: each change applies at once.
	if err := e.users.SetRoles(premium.ID, auth.RolePremium); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RevokeUserSessions(t.Context(), premium.ID); err != nil {
		t.Fatal(err)
	}
	if !can(premium.ID) {
		t.Fatal("a promotion made here was not seen at once")
	}
	if err := e.users.SetRoles(premium.ID, auth.RoleUser); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RevokeUserSessions(t.Context(), premium.ID); err != nil {
		t.Fatal(err)
	}
	if can(premium.ID) {
		t.Fatal("a demotion made here was not seen at once")
	}

	down := newEnv(t, func(c *auth.Config) { c.Users = failingUsers{authtest.NewUsers()} })
	if ok, err := down.svc.UserCan(t.Context(), premium.ID, auth.PermPremiumModels); err == nil || ok {
		t.Fatalf("with the store down: %v, %v; want an error", ok, err)
	}
}
