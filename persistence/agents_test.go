package persistence_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

func TestAgentsContract(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		agents := persistence.NewAgentStore(db)
		alice, bob := seedUser(t, db), seedUser(t, db)
		create := func(owner, name string) persistence.Agent {
			t.Helper()
			a, err := agents.Create(ctx, persistence.Agent{OwnerID: owner, Name: name, Type: "chat", Signature: "message -> response",
				Config: json.RawMessage(`{"temperature":0.2}`)})
			if err != nil {
				t.Fatalf("Create %s: %v", name, err)
			}
			return a
		}
		builtin := create("", "builtin")
		mine := create(alice.ID, "mine")
		create(bob.ID, "theirs")
		if mine.Version != 1 {
			t.Fatalf("new agent version = %d, want 1", mine.Version)
		}
		visible := collectPages(t, 1, func(req persistence.PageRequest) (persistence.Page[persistence.Agent], error) {
			return agents.ListVisible(ctx, alice.ID, req)
		})
		var names []string
		for _, a := range visible {
			names = append(names, a.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"builtin", "mine"}) {
			t.Fatalf("ListVisible(alice) = %v, want builtin and mine", names)
		}
		got, err := agents.Get(ctx, builtin.ID)
		if err != nil || got.OwnerID != "" || got.Signature != "message -> response" {
			t.Fatalf("Get builtin = %+v, %v", got, err)
		}
		var cfg map[string]float64
		if err := json.Unmarshal(got.Config, &cfg); err != nil || cfg["temperature"] != 0.2 {
			t.Fatalf("config = %s, %v", got.Config, err)
		}

		edit := mine
		edit.Instructions = "be brief"
		updated, err := agents.Update(ctx, edit)
		if err != nil || updated.Version != 2 || updated.Instructions != "be brief" || updated.OwnerID != alice.ID {
			t.Fatalf("Update = %+v, %v; want version 2", updated, err)
		}
		// The same stale version again loses the compare-and-swap.
		if _, err := agents.Update(ctx, edit); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("stale Update = %v, want ErrConflict", err)
		}
		if _, err := agents.Update(ctx, persistence.Agent{ID: "missing", Version: 1}); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("Update missing = %v, want ErrNotFound", err)
		}
		if _, err := agents.Create(ctx, persistence.Agent{Name: "bad", Config: json.RawMessage(`{`)}); err == nil {
			t.Fatal("Create with invalid config JSON succeeded")
		}
		if err := agents.Delete(ctx, mine.ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := agents.Get(ctx, mine.ID); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
		}
	})
}
