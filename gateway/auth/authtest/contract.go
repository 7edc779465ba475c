package authtest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kowai/kowai/gateway/auth"
)

// NewStoresFunc returns a fresh, empty pair of stores for one subtest.
type NewStoresFunc func(t *testing.T) (auth.UserStore, auth.SessionStore)

// TestStores runs the contract of auth.UserStore and auth.SessionStore
// against the stores newStores returns. Times are compared at one-second
// precision so SQL column types may truncate.
func TestStores(t *testing.T, newStores NewStoresFunc) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	newID := func() string { return uuid.Must(uuid.NewV7()).String() }
	user := func(email string) auth.User {
		return auth.User{ID: newID(), Email: email, Name: "N", PasswordHash: "$argon2id$x", Roles: []auth.Role{auth.RoleUser}, CreatedAt: now}
	}

	t.Run("users", func(t *testing.T) {
		users, _ := newStores(t)
		ctx := t.Context()
		a := user("a@example.com")
		a.Roles = []auth.Role{auth.RoleUser, auth.RolePremium}
		mustNil(t, "create a", users.CreateUser(ctx, a))
		got, err := users.UserByID(ctx, a.ID)
		mustNil(t, "by id", err)
		if got.Email != a.Email || got.Name != a.Name || got.PasswordHash != a.PasswordHash || !slices.Equal(got.Roles, a.Roles) || got.Disabled || got.AppwriteID != "" {
			t.Fatalf("UserByID = %+v, want %+v", got, a)
		}
		got, err = users.UserByEmail(ctx, "a@example.com")
		mustNil(t, "by email", err)
		if got.ID != a.ID {
			t.Fatalf("UserByEmail returned %s, want %s", got.ID, a.ID)
		}
		mustIs(t, "duplicate email", users.CreateUser(ctx, user("a@example.com")), auth.ErrConflict)
		_, err = users.UserByID(ctx, newID())
		mustIs(t, "unknown id", err, auth.ErrNotFound)
		_, err = users.UserByEmail(ctx, "nobody@example.com")
		mustIs(t, "unknown email", err, auth.ErrNotFound)
		// Emails arrive normalized and compare exactly: an accented variant
		// is another address, whatever a database collation would say.
		_, err = users.UserByEmail(ctx, "á@example.com")
		mustIs(t, "accented variant of an email", err, auth.ErrNotFound)
		mustNil(t, "create the accented variant", users.CreateUser(ctx, user("á@example.com")))
		_, err = users.UserByAppwriteID(ctx, "aw-1")
		mustIs(t, "unknown appwrite id", err, auth.ErrNotFound)

		mustNil(t, "set hash", users.SetPasswordHash(ctx, a.ID, "$argon2id$y"))
		got, _ = users.UserByID(ctx, a.ID)
		if got.PasswordHash != "$argon2id$y" {
			t.Fatalf("hash after SetPasswordHash = %q", got.PasswordHash)
		}
		mustIs(t, "set hash of unknown", users.SetPasswordHash(ctx, newID(), "h"), auth.ErrNotFound)

		mustNil(t, "link", users.LinkAppwrite(ctx, a.ID, "aw-1"))
		got, err = users.UserByAppwriteID(ctx, "aw-1")
		mustNil(t, "by appwrite id", err)
		if got.ID != a.ID {
			t.Fatalf("UserByAppwriteID returned %s, want %s", got.ID, a.ID)
		}
		b := user("b@example.com")
		mustNil(t, "create b", users.CreateUser(ctx, b))
		mustIs(t, "link taken appwrite id", users.LinkAppwrite(ctx, b.ID, "aw-1"), auth.ErrConflict)
		mustIs(t, "link unknown user", users.LinkAppwrite(ctx, newID(), "aw-2"), auth.ErrNotFound)
		c := user("c@example.com")
		c.AppwriteID = "aw-1"
		mustIs(t, "create with taken appwrite id", users.CreateUser(ctx, c), auth.ErrConflict)

		has, err := users.HasUserWithRole(ctx, auth.RoleAdmin)
		mustNil(t, "has admin", err)
		if has {
			t.Fatal("HasUserWithRole(admin) = true with no admin")
		}
		admin := user("admin@example.com")
		admin.Roles = []auth.Role{auth.RoleAdmin}
		admin.Disabled = true
		mustNil(t, "create admin", users.CreateUser(ctx, admin))
		if has, err = users.HasUserWithRole(ctx, auth.RoleAdmin); err != nil || !has {
			t.Fatalf("HasUserWithRole(admin) = %v, %v with a (disabled) admin", has, err)
		}
		got, _ = users.UserByID(ctx, admin.ID)
		if !got.Disabled {
			t.Fatal("Disabled was not stored")
		}
	})

	t.Run("sessions", func(t *testing.T) {
		users, sessions := newStores(t)
		ctx := t.Context()
		u := user("s@example.com")
		mustNil(t, "create user", users.CreateUser(ctx, u))
		s1 := auth.Session{ID: newID(), UserID: u.ID, CreatedAt: now}
		s2 := auth.Session{ID: newID(), UserID: u.ID, CreatedAt: now}
		mustNil(t, "create s1", sessions.CreateSession(ctx, s1))
		mustNil(t, "create s2", sessions.CreateSession(ctx, s2))
		mustIs(t, "duplicate session", sessions.CreateSession(ctx, s1), auth.ErrConflict)
		got, err := sessions.SessionByID(ctx, s1.ID)
		mustNil(t, "get s1", err)
		if got.UserID != u.ID || !got.CreatedAt.Equal(now) || got.RevokedAt != nil {
			t.Fatalf("SessionByID = %+v", got)
		}
		_, err = sessions.SessionByID(ctx, newID())
		mustIs(t, "unknown session", err, auth.ErrNotFound)

		mustNil(t, "revoke s1", sessions.RevokeSession(ctx, s1.ID, now))
		mustNil(t, "revoke s1 again", sessions.RevokeSession(ctx, s1.ID, now.Add(time.Hour)))
		got, _ = sessions.SessionByID(ctx, s1.ID)
		if got.RevokedAt == nil || !got.RevokedAt.Equal(now) {
			t.Fatalf("RevokedAt = %v, want the first revocation time %v", got.RevokedAt, now)
		}
		mustIs(t, "revoke unknown", sessions.RevokeSession(ctx, newID(), now), auth.ErrNotFound)

		ids, err := sessions.RevokeUserSessions(ctx, u.ID, now)
		mustNil(t, "revoke user sessions", err)
		if !slices.Equal(ids, []string{s2.ID}) {
			t.Fatalf("RevokeUserSessions = %v, want only the live session %s", ids, s2.ID)
		}
		if ids, err = sessions.RevokeUserSessions(ctx, u.ID, now); err != nil || len(ids) != 0 {
			t.Fatalf("second RevokeUserSessions = %v, %v; want none", ids, err)
		}
	})

	t.Run("listing and revoking the other sessions", func(t *testing.T) {
		users, sessions := newStores(t)
		ctx := t.Context()
		u, v := user("l@example.com"), user("m@example.com")
		mustNil(t, "create u", users.CreateUser(ctx, u))
		mustNil(t, "create v", users.CreateUser(ctx, v))
		older := auth.Session{ID: newID(), UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour), UserAgent: "curl/8", IP: "192.0.2.7"}
		newer := auth.Session{ID: newID(), UserID: u.ID, CreatedAt: now.Add(time.Minute), ExpiresAt: now.Add(24 * time.Hour)}
		third := auth.Session{ID: newID(), UserID: u.ID, CreatedAt: now.Add(2 * time.Minute)}
		others := auth.Session{ID: newID(), UserID: v.ID, CreatedAt: now}
		for _, s := range []auth.Session{older, newer, third, others} {
			mustNil(t, "create session", sessions.CreateSession(ctx, s))
		}
		got, err := sessions.SessionByID(ctx, older.ID)
		mustNil(t, "get older", err)
		if got.UserAgent != "curl/8" || got.IP != "192.0.2.7" || !got.ExpiresAt.Equal(older.ExpiresAt) {
			t.Fatalf("SessionByID = %+v, want the client and end it was created with", got)
		}
		_, spent := auth.NewRefreshToken()
		_, current := auth.NewRefreshToken()
		mustNil(t, "add spent", sessions.AddRefreshToken(ctx, auth.RefreshToken{Hash: spent, SessionID: older.ID, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
		_, err = sessions.SpendRefreshToken(ctx, spent, now)
		mustNil(t, "spend", err)
		mustNil(t, "add current", sessions.AddRefreshToken(ctx, auth.RefreshToken{Hash: current, SessionID: older.ID, UserID: u.ID, CreatedAt: now.Add(time.Hour), ExpiresAt: now.Add(2 * time.Hour)}))
		mustNil(t, "revoke third", sessions.RevokeSession(ctx, third.ID, now))

		list, err := sessions.ListSessions(ctx, u.ID)
		mustNil(t, "list", err)
		if len(list) != 2 || list[0].ID != newer.ID || list[1].ID != older.ID {
			t.Fatalf("ListSessions = %+v, want the live sessions newest first", list)
		}
		if !list[1].RefreshedAt.Equal(now.Add(time.Hour)) || !list[1].RefreshExpiresAt.Equal(now.Add(2*time.Hour)) || list[1].UserAgent != "curl/8" {
			t.Fatalf("listed %+v, want the current token's times and the client", list[1])
		}
		if !list[0].RefreshedAt.IsZero() {
			t.Fatalf("listed %+v, want no refresh time for a session without tokens", list[0])
		}

		ids, err := sessions.RevokeOtherSessions(ctx, u.ID, newer.ID, now)
		mustNil(t, "revoke others", err)
		if !slices.Equal(ids, []string{older.ID}) {
			t.Fatalf("RevokeOtherSessions = %v, want only %s", ids, older.ID)
		}
		if list, _ = sessions.ListSessions(ctx, u.ID); len(list) != 1 || list[0].ID != newer.ID {
			t.Fatalf("after RevokeOtherSessions: %+v, want the kept session only", list)
		}
		if list, _ = sessions.ListSessions(ctx, v.ID); len(list) != 1 || list[0].ID != others.ID {
			t.Fatalf("the other user's sessions: %+v", list)
		}
	})

	t.Run("refresh tokens", func(t *testing.T) {
		users, sessions := newStores(t)
		ctx := t.Context()
		u := user("r@example.com")
		mustNil(t, "create user", users.CreateUser(ctx, u))
		sess := auth.Session{ID: newID(), UserID: u.ID, CreatedAt: now}
		mustNil(t, "create session", sessions.CreateSession(ctx, sess))
		_, hash := auth.NewRefreshToken()
		rt := auth.RefreshToken{Hash: hash, SessionID: sess.ID, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		mustNil(t, "add", sessions.AddRefreshToken(ctx, rt))
		mustIs(t, "add duplicate", sessions.AddRefreshToken(ctx, rt), auth.ErrConflict)

		got, err := sessions.SpendRefreshToken(ctx, hash, now)
		mustNil(t, "spend", err)
		if got.SessionID != sess.ID || got.UserID != u.ID || !got.ExpiresAt.Equal(rt.ExpiresAt) || got.SpentAt != nil {
			t.Fatalf("SpendRefreshToken = %+v, want the unspent record", got)
		}
		got, err = sessions.SpendRefreshToken(ctx, hash, now)
		mustIs(t, "spend again", err, auth.ErrTokenSpent)
		if got.SessionID != sess.ID || got.UserID != u.ID {
			t.Fatalf("SpendRefreshToken of a spent token = %+v, want its record", got)
		}
		_, unknown := auth.NewRefreshToken()
		_, err = sessions.SpendRefreshToken(ctx, unknown, now)
		mustIs(t, "spend unknown", err, auth.ErrNotFound)
	})

	t.Run("concurrent spends have one winner", func(t *testing.T) {
		users, sessions := newStores(t)
		ctx := t.Context()
		u := user("c@example.com")
		mustNil(t, "create user", users.CreateUser(ctx, u))
		sess := auth.Session{ID: newID(), UserID: u.ID, CreatedAt: now}
		mustNil(t, "create session", sessions.CreateSession(ctx, sess))
		_, hash := auth.NewRefreshToken()
		mustNil(t, "add", sessions.AddRefreshToken(ctx, auth.RefreshToken{Hash: hash, SessionID: sess.ID, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
		var mu sync.Mutex
		wins, spent := 0, 0
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				_, err := sessions.SpendRefreshToken(ctx, hash, now)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, auth.ErrTokenSpent):
					spent++
				default:
					t.Errorf("concurrent spend: %v", err)
				}
			})
		}
		wg.Wait()
		if wins != 1 || spent != 7 {
			t.Fatalf("%d wins and %d ErrTokenSpent, want 1 and 7", wins, spent)
		}
	})
}

func mustNil(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func mustIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got %v, want %v", what, err, target)
	}
}
