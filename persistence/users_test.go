package persistence_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

func TestUsersContract(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		users := persistence.NewUserStore(db)
		created, err := users.Create(ctx, persistence.User{Email: "  Ada@Example.COM ", Name: "Ada", PasswordHash: "h", Roles: []string{"user", "admin"}})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if created.Email != "ada@example.com" || created.ID == "" {
			t.Fatalf("Create returned %+v, want a lower-cased email and an ID", created)
		}
		got, err := users.GetByEmail(ctx, "ADA@example.com")
		if err != nil {
			t.Fatalf("GetByEmail: %v", err)
		}
		if got.ID != created.ID || !slices.Equal(got.Roles, []string{"user", "admin"}) || !got.CreatedAt.Equal(created.CreatedAt) {
			t.Fatalf("GetByEmail = %+v, want %+v", got, created)
		}
		if _, err := users.Create(ctx, persistence.User{Email: "ada@EXAMPLE.com"}); !errors.Is(err, persistence.ErrDuplicate) {
			t.Fatalf("Create with a taken email = %v, want ErrDuplicate", err)
		}
		if _, err := users.Get(ctx, "no-such-id"); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("Get missing = %v, want ErrNotFound", err)
		}

		if n, err := users.CountWithRole(ctx, "admin"); err != nil || n != 1 {
			t.Fatalf("CountWithRole(admin) = %d, %v; want 1", n, err)
		}
		if err := users.UpdateRoles(ctx, created.ID, []string{"user"}); err != nil {
			t.Fatalf("UpdateRoles: %v", err)
		}
		if n, err := users.CountWithRole(ctx, "admin"); err != nil || n != 0 {
			t.Fatalf("CountWithRole(admin) after demotion = %d, %v; want 0", n, err)
		}
		if err := users.UpdateRoles(ctx, "no-such-id", nil); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("UpdateRoles missing = %v, want ErrNotFound", err)
		}
		if err := users.SetDisabled(ctx, created.ID, true); err != nil {
			t.Fatalf("SetDisabled: %v", err)
		}
		if got, err := users.Get(ctx, created.ID); err != nil || !got.Disabled || !slices.Equal(got.Roles, []string{"user"}) {
			t.Fatalf("Get after updates = %+v, %v", got, err)
		}
		if err := users.Delete(ctx, created.ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if err := users.Delete(ctx, created.ID); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("second Delete = %v, want ErrNotFound", err)
		}
	})
}

func TestUsersCountWithRoleMatchesWholeRoles(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		seedUser(t, db, "superadmin")
		seedUser(t, db, "admin_")
		seedUser(t, db, "admin")
		for role, want := range map[string]int{"admin": 1, "admin_": 1, "adm%": 0, "superadmin": 1} {
			if n, err := persistence.NewUserStore(db).CountWithRole(t.Context(), role); err != nil || n != want {
				t.Errorf("CountWithRole(%q) = %d, %v; want %d", role, n, err, want)
			}
		}
	})
}

func TestUsersListPages(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		var want []string
		for range 7 {
			want = append(want, seedUser(t, db).ID)
		}
		slices.Sort(want)
		users := persistence.NewUserStore(db)
		all := collectPages(t, 3, func(req persistence.PageRequest) (persistence.Page[persistence.User], error) {
			return users.List(t.Context(), req)
		})
		var got []string
		for _, u := range all {
			got = append(got, u.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("paged IDs = %v, want %v", got, want)
		}
		if _, err := users.List(t.Context(), persistence.PageRequest{Cursor: "not a cursor"}); !errors.Is(err, persistence.ErrInvalidCursor) {
			t.Fatalf("List with a bad cursor = %v, want ErrInvalidCursor", err)
		}
	})
}
