package persistence_test

import (
	"errors"
	"testing"
	"time"

	"github.com/doug-martin/goqu/v9"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

// TestEmailsCompareExactly: an accented variant of an address is another
// address. Under MariaDB's accent-insensitive collation it found the other
// account's row, while the login throttle counted it as a new account.
func TestEmailsCompareExactly(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		users := persistence.NewUserStore(db)
		victim, err := users.Create(ctx, persistence.User{Email: "victim@corp.test", Roles: []string{"user"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, variant := range []string{"víctim@corp.test", "vìctim@corp.test", "victim@córp.test"} {
			if got, err := users.GetByEmail(ctx, variant); !errors.Is(err, persistence.ErrNotFound) {
				t.Errorf("GetByEmail(%q) = %s, %v; want ErrNotFound, not the account of victim@corp.test", variant, got.Email, err)
			}
		}
		for _, same := range []string{"VICTIM@corp.test", "ｖｉｃｔｉｍ@corp.test", " Victim@Corp.Test "} {
			if got, err := users.GetByEmail(ctx, same); err != nil || got.ID != victim.ID {
				t.Errorf("GetByEmail(%q) = %+v, %v; want the account of victim@corp.test", same, got, err)
			}
		}
		if _, err := users.Create(ctx, persistence.User{Email: "víctim@corp.test", Roles: []string{"user"}}); err != nil {
			t.Fatalf("Create of a distinct accented address: %v", err)
		}
	})
}

// TestNormalizeEmails: rows written before the canonical form are rewritten
// into it; a row whose canonical form is taken is left alone and reported.
func TestNormalizeEmails(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		users := persistence.NewUserStore(db)
		now := time.Now().UTC()
		raw := func(id, email string) {
			t.Helper()
			_, err := db.Goqu.Insert("users").Rows(goqu.Record{"id": id, "email": email, "name": "", "password_hash": "",
				"roles": `["user"]`, "disabled": false, "created_at": now, "updated_at": now}).Executor().ExecContext(ctx)
			if err != nil {
				t.Fatal(err)
			}
		}
		raw("00000000-0000-7000-8000-000000000001", "straße@corp.test")
		raw("00000000-0000-7000-8000-000000000002", "plain@corp.test")
		if _, err := users.Create(ctx, persistence.User{Email: "grosse@corp.test", Roles: []string{"user"}}); err != nil {
			t.Fatal(err)
		}
		raw("00000000-0000-7000-8000-000000000003", "große@corp.test")

		n, err := users.NormalizeEmails(ctx)
		if n != 1 || !errors.Is(err, persistence.ErrDuplicate) {
			t.Fatalf("NormalizeEmails = %d, %v; want 1 and ErrDuplicate for große@", n, err)
		}
		if got, err := users.GetByEmail(ctx, "STRASSE@corp.test"); err != nil || got.ID != "00000000-0000-7000-8000-000000000001" {
			t.Fatalf("GetByEmail(strasse) after NormalizeEmails = %+v, %v", got, err)
		}
		if got, _ := users.Get(ctx, "00000000-0000-7000-8000-000000000003"); got.Email != "große@corp.test" {
			t.Fatalf("the clashing row became %q; want it left alone", got.Email)
		}
		if n, err := users.NormalizeEmails(ctx); n != 0 || !errors.Is(err, persistence.ErrDuplicate) {
			t.Fatalf("second NormalizeEmails = %d, %v; want 0 and the clash again", n, err)
		}
	})
}

// TestEmailMigrationRoundTrip: migration 0003 (and those after it) revert
// and apply again, and emails still compare exactly.
func TestEmailMigrationRoundTrip(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		m := newMigrator(t, db, persistence.MigratorOptions{})
		users := persistence.NewUserStore(db)
		if _, err := users.Create(ctx, persistence.User{Email: "round@trip.test", Roles: []string{"user"}}); err != nil {
			t.Fatal(err)
		}
		// Revert every migration from 0003 on, whatever came later.
		from3 := 0
		for _, st := range mustStatus(t, m) {
			if st.Version >= 3 && st.Applied {
				from3++
			}
		}
		if n, err := m.Down(ctx, from3); err != nil || n != from3 {
			t.Fatalf("Down(%d) = %d, %v", from3, n, err)
		}
		if n, err := m.Up(ctx); err != nil || n != from3 {
			t.Fatalf("Up = %d, %v; want %d", n, err, from3)
		}
		if _, err := users.GetByEmail(ctx, "ROUND@trip.test"); err != nil {
			t.Fatalf("GetByEmail after the round trip: %v", err)
		}
		if _, err := users.GetByEmail(ctx, "róund@trip.test"); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("an accented variant after the round trip: %v, want ErrNotFound", err)
		}
	})
}

// TestEmailMigrationNormalizesOnce: applying migration 0003 also rewrites the
// rows its SQL cannot (NFKC), in the process that applies it, so serving
// nodes never scan the users table for it at start.
func TestEmailMigrationNormalizesOnce(t *testing.T) {
	persisttest.EachEmpty(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		m, err := persistence.NewMigrator(db, persistence.MigratorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Down(ctx, int(m.Latest())-2); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		_, err = db.Goqu.Insert("users").Rows(goqu.Record{"id": "00000000-0000-7000-8000-000000000009", "email": "ｆｕｌｌ@corp.test",
			"name": "", "password_hash": "", "roles": `["user"]`, "disabled": false, "created_at": now, "updated_at": now}).Executor().ExecContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := persistence.NewUserStore(db).Get(ctx, "00000000-0000-7000-8000-000000000009")
		if err != nil || got.Email != "full@corp.test" {
			t.Fatalf("after migrating up: %q, %v; want full@corp.test", got.Email, err)
		}
	})
}
