package persistence_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

func TestAPIKeys(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		store := persistence.NewAPIKeyStore(db)
		owner, other := seedUser(t, db), seedUser(t, db)
		now := time.Now().UTC().Truncate(time.Second)
		exp := now.Add(time.Hour)
		k1 := persistence.APIKey{ID: uuid.NewString(), UserID: owner.ID, Name: "ci", Prefix: "kowai_abcdef", Hash: "h1",
			Scopes: []string{"chat", "agents:read"}, CreatedAt: now, ExpiresAt: exp}
		k2 := persistence.APIKey{ID: uuid.NewString(), UserID: owner.ID, Name: "bot", Prefix: "kowai_ghijkl", Hash: "h2",
			Scopes: []string{"workflows"}, CreatedAt: now.Add(time.Second)}
		for _, k := range []persistence.APIKey{k1, k2} {
			if err := store.Create(ctx, k); err != nil {
				t.Fatalf("Create: %v", err)
			}
		}
		dup := k2
		dup.ID = uuid.NewString()
		if err := store.Create(ctx, dup); !errors.Is(err, persistence.ErrDuplicate) {
			t.Fatalf("Create with a taken hash: %v, want ErrDuplicate", err)
		}
		orphan := k2
		orphan.ID, orphan.Hash, orphan.UserID = uuid.NewString(), "h3", uuid.NewString()
		if err := store.Create(ctx, orphan); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("Create for an unknown user: %v, want ErrConflict", err)
		}

		got, err := store.GetByHash(ctx, "h1")
		if err != nil {
			t.Fatalf("GetByHash: %v", err)
		}
		if got.ID != k1.ID || got.UserID != owner.ID || !slices.Equal(got.Scopes, k1.Scopes) || !got.ExpiresAt.Equal(exp) ||
			!got.LastUsedAt.IsZero() || !got.RevokedAt.IsZero() || got.Prefix != k1.Prefix {
			t.Fatalf("GetByHash = %+v, want %+v", got, k1)
		}
		if _, err := store.GetByHash(ctx, "nope"); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("GetByHash of an unknown hash: %v", err)
		}
		list, err := store.ListByUser(ctx, owner.ID)
		if err != nil || len(list) != 2 || list[0].ID != k2.ID || list[1].ID != k1.ID {
			t.Fatalf("ListByUser = %+v, %v; want k2, k1", list, err)
		}

		used := now.Add(time.Minute)
		if err := store.TouchUsed(ctx, map[string]time.Time{k1.ID: used, uuid.NewString(): used}); err != nil {
			t.Fatalf("TouchUsed: %v", err)
		}
		if got, _ := store.GetByHash(ctx, "h1"); !got.LastUsedAt.Equal(used) {
			t.Fatalf("last used %v, want %v", got.LastUsedAt, used)
		}

		if err := store.Revoke(ctx, other.ID, k1.ID, now); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("Revoke by another user: %v, want ErrNotFound", err)
		}
		if err := store.Revoke(ctx, owner.ID, k1.ID, now); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		if err := store.Revoke(ctx, owner.ID, k1.ID, now); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("second Revoke: %v, want ErrNotFound", err)
		}
		if got, _ := store.GetByHash(ctx, "h1"); !got.RevokedAt.Equal(now) {
			t.Fatalf("revoked at %v, want %v", got.RevokedAt, now)
		}
		if list, _ := store.ListByUser(ctx, owner.ID); len(list) != 1 || list[0].ID != k2.ID {
			t.Fatalf("ListByUser after revoke = %+v", list)
		}
	})
}
