package persistence_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

func newSession(t *testing.T, store *persistence.SessionStore, userID, hash string, now time.Time) persistence.AuthSession {
	t.Helper()
	sess, tok, err := store.CreateSession(t.Context(),
		persistence.AuthSession{UserID: userID, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour), UserAgent: "test", IP: "127.0.0.1"},
		persistence.RefreshToken{TokenHash: hash, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if tok.SessionID != sess.ID || tok.ID == "" {
		t.Fatalf("first token %+v not tied to session %s", tok, sess.ID)
	}
	return sess
}

func TestSessionsRotateAndReuse(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		store := persistence.NewSessionStore(db)
		user := seedUser(t, db)
		now := time.Now()
		sess := newSession(t, store, user.ID, "hash-1", now)

		got, next, err := store.Rotate(ctx, "hash-1", persistence.RefreshToken{TokenHash: "hash-2", ExpiresAt: now.Add(time.Hour)}, now)
		if err != nil {
			t.Fatalf("Rotate: %v", err)
		}
		if got.ID != sess.ID || got.UserID != user.ID || next.SessionID != sess.ID {
			t.Fatalf("Rotate = %+v, %+v", got, next)
		}
		first, err := store.FindRefreshToken(ctx, "hash-1")
		if err != nil || first.SpentAt.IsZero() || next.ParentID != first.ID {
			t.Fatalf("spent token = %+v, %v; next parent %q", first, err, next.ParentID)
		}
		if revoked, err := store.IsSessionRevoked(ctx, sess.ID); err != nil || revoked {
			t.Fatalf("IsSessionRevoked before reuse = %v, %v", revoked, err)
		}

		// Presenting the spent token again revokes the whole family.
		if _, _, err := store.Rotate(ctx, "hash-1", persistence.RefreshToken{TokenHash: "hash-x", ExpiresAt: now.Add(time.Hour)}, now); !errors.Is(err, persistence.ErrTokenReused) {
			t.Fatalf("Rotate of a spent token = %v, want ErrTokenReused", err)
		}
		if revoked, err := store.IsSessionRevoked(ctx, sess.ID); err != nil || !revoked {
			t.Fatalf("IsSessionRevoked after reuse = %v, %v; want true", revoked, err)
		}
		if _, _, err := store.Rotate(ctx, "hash-2", persistence.RefreshToken{TokenHash: "hash-3", ExpiresAt: now.Add(time.Hour)}, now); !errors.Is(err, persistence.ErrRevoked) {
			t.Fatalf("Rotate of the live child after reuse = %v, want ErrRevoked", err)
		}
		if _, err := store.FindRefreshToken(ctx, "hash-x"); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("token offered during reuse was stored: %v", err)
		}
	})
}

func TestSessionsRotateErrors(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		store := persistence.NewSessionStore(db)
		user := seedUser(t, db)
		now := time.Now()
		newSession(t, store, user.ID, "expiring", now)
		revoked := newSession(t, store, user.ID, "revoked", now)
		if err := store.RevokeSession(ctx, revoked.ID, now); err != nil {
			t.Fatalf("RevokeSession: %v", err)
		}
		if err := store.RevokeSession(ctx, revoked.ID, now); err != nil {
			t.Fatalf("second RevokeSession: %v", err)
		}
		tests := []struct {
			name string
			hash string
			at   time.Time
			want error
		}{
			{"unknown", "nope", now, persistence.ErrNotFound},
			{"expired", "expiring", now.Add(2 * time.Hour), persistence.ErrExpired},
			{"revoked", "revoked", now, persistence.ErrRevoked},
		}
		for _, tt := range tests {
			_, _, err := store.Rotate(ctx, tt.hash, persistence.RefreshToken{TokenHash: tt.name + "-next", ExpiresAt: now.Add(time.Hour)}, tt.at)
			if !errors.Is(err, tt.want) {
				t.Errorf("%s: Rotate = %v, want %v", tt.name, err, tt.want)
			}
		}
		if r, err := store.IsSessionRevoked(ctx, "missing"); err != nil || !r {
			t.Errorf("IsSessionRevoked(missing) = %v, %v; want true", r, err)
		}
	})
}

func TestSessionsConcurrentRotateHasOneWinner(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		store := persistence.NewSessionStore(db)
		now := time.Now()
		newSession(t, store, seedUser(t, db).ID, "shared", now)
		const n = 6
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				next := persistence.RefreshToken{TokenHash: "next-" + string(rune('a'+i)), ExpiresAt: now.Add(time.Hour)}
				_, _, errs[i] = store.Rotate(t.Context(), "shared", next, now)
			})
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, persistence.ErrTokenReused), errors.Is(err, persistence.ErrRevoked):
			default:
				t.Errorf("Rotate: unexpected error %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d concurrent rotations of one token succeeded, want exactly 1 (errors: %v)", wins, errs)
		}
	})
}
