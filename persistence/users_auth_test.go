package persistence_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

func TestLinkedUsers(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		users := persistence.NewUserStore(db)
		a, err := users.Create(ctx, persistence.User{Email: "A@Example.com", Roles: []string{"user"}, AppwriteID: "aw-a"})
		if err != nil {
			t.Fatalf("Create linked: %v", err)
		}
		got, err := users.GetByAppwriteID(ctx, "aw-a")
		if err != nil || got.ID != a.ID || got.Email != "a@example.com" || got.AppwriteID != "aw-a" {
			t.Fatalf("GetByAppwriteID = %+v, %v", got, err)
		}
		if _, err := users.Create(ctx, persistence.User{Email: "b@example.com", AppwriteID: "aw-a"}); !errors.Is(err, persistence.ErrDuplicate) {
			t.Fatalf("Create with a taken appwrite id = %v, want ErrDuplicate", err)
		}
		b, err := users.Create(ctx, persistence.User{Email: "b@example.com", Roles: []string{"admin"}, Disabled: true})
		if err != nil {
			t.Fatalf("Create unlinked: %v", err)
		}
		if got, err := users.GetByEmail(ctx, "B@example.com"); err != nil || got.AppwriteID != "" || !got.Disabled {
			t.Fatalf("GetByEmail = %+v, %v", got, err)
		}
		if _, err := users.GetByAppwriteID(ctx, ""); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("GetByAppwriteID(\"\") = %v, want ErrNotFound (NULLs are not a link)", err)
		}
		if err := users.LinkAppwrite(ctx, b.ID, "aw-a"); !errors.Is(err, persistence.ErrDuplicate) {
			t.Fatalf("LinkAppwrite taken = %v, want ErrDuplicate", err)
		}
		if err := users.LinkAppwrite(ctx, "no-such-user", "aw-z"); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("LinkAppwrite unknown user = %v, want ErrNotFound", err)
		}
		if err := users.SetPasswordHash(ctx, b.ID, "new"); err != nil {
			t.Fatal(err)
		}
		if got, _ := users.Get(ctx, b.ID); got.PasswordHash != "new" {
			t.Fatalf("hash = %q after SetPasswordHash", got.PasswordHash)
		}
		for role, want := range map[string]bool{"admin": true, "user": true, "moderator": false, `"admin`: false, "%": false} {
			if has, err := users.HasRole(ctx, role); err != nil || has != want {
				t.Errorf("HasRole(%q) = %v, %v; want %v", role, has, err, want)
			}
		}
	})
}

func TestSpendAndRevokeSessions(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		sessions := persistence.NewSessionStore(db)
		u := seedUser(t, db, "user")
		now := time.Now().UTC().Truncate(time.Second)
		far := now.Add(time.Hour)
		for _, id := range []string{"s-1", "s-2"} {
			if err := sessions.InsertSession(ctx, persistence.AuthSession{ID: id, UserID: u.ID, CreatedAt: now, ExpiresAt: far}); err != nil {
				t.Fatalf("InsertSession: %v", err)
			}
		}
		if err := sessions.InsertSession(ctx, persistence.AuthSession{ID: "s-3", UserID: "no-such-user", CreatedAt: now, ExpiresAt: far}); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("InsertSession for a missing user = %v, want ErrConflict", err)
		}
		if err := sessions.AddRefreshToken(ctx, persistence.RefreshToken{SessionID: "s-1", TokenHash: "h1", ExpiresAt: far}); err != nil {
			t.Fatalf("AddRefreshToken: %v", err)
		}
		if err := sessions.AddRefreshToken(ctx, persistence.RefreshToken{SessionID: "s-2", TokenHash: "h1", ExpiresAt: far}); !errors.Is(err, persistence.ErrDuplicate) {
			t.Fatalf("AddRefreshToken with a taken hash = %v, want ErrDuplicate", err)
		}

		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, spent := 0, 0
		for range 6 {
			wg.Go(func() {
				tok, err := sessions.SpendRefreshToken(ctx, "h1", now)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && tok.SpentAt.IsZero() && tok.SessionID == "s-1":
					wins++
				case errors.Is(err, persistence.ErrTokenSpent) && !tok.SpentAt.IsZero():
					spent++
				default:
					t.Errorf("SpendRefreshToken = %+v, %v", tok, err)
				}
			})
		}
		wg.Wait()
		if wins != 1 || spent != 5 {
			t.Fatalf("%d wins, %d spent; want 1 and 5", wins, spent)
		}
		if _, err := sessions.SpendRefreshToken(ctx, "nope", now); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("spend unknown = %v, want ErrNotFound", err)
		}

		if err := sessions.RevokeSession(ctx, "s-1", now); err != nil {
			t.Fatal(err)
		}
		ids, err := sessions.RevokeUserSessions(ctx, u.ID, now)
		if err != nil || len(ids) != 1 || ids[0] != "s-2" {
			t.Fatalf("RevokeUserSessions = %v, %v; want only the live session s-2", ids, err)
		}
		if revoked, err := sessions.IsSessionRevoked(ctx, "s-2"); err != nil || !revoked {
			t.Fatalf("s-2 revoked = %v, %v", revoked, err)
		}
	})
}

func TestAuthLinksMigrationRoundTrip(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		m := newMigrator(t, db, persistence.MigratorOptions{})
		hasColumn := func() bool {
			_, err := db.SQL.ExecContext(ctx, "SELECT appwrite_id FROM users WHERE 1 = 0")
			return err == nil
		}
		if !hasColumn() {
			t.Fatal("users.appwrite_id missing after migrating up")
		}
		// Revert every migration from the auth links one (0002) on, whatever came later.
		above := len(mustStatus(t, m)) - 1
		if n, err := m.Down(ctx, above); err != nil || n != above {
			t.Fatalf("Down(%d) = %d, %v", above, n, err)
		}
		if hasColumn() {
			t.Fatal("users.appwrite_id still there after reverting the auth links migration")
		}
		if n, err := m.Up(ctx); err != nil || n != above {
			t.Fatalf("Up = %d, %v", n, err)
		}
		if !hasColumn() {
			t.Fatal("users.appwrite_id missing after migrating up again")
		}
	})
}
