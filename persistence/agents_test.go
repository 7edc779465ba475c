package persistence_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

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

// An agent's compiled program and its canary variant are stored and read back;
// UpdateAudited stores the change and its audit entry together, and neither
// when the compare-and-swap loses.
func TestAgentProgramsContract(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		agents := persistence.NewAgentStore(db)
		audit := persistence.NewAuditStore(db)
		alice := seedUser(t, db)
		a, err := agents.Create(ctx, persistence.Agent{OwnerID: alice.ID, Name: "p", Type: "chat", Program: json.RawMessage(`{"format":1}`)})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := agents.Get(ctx, a.ID); err != nil || string(got.Program) != `{"format":1}` {
			t.Fatalf("Get program = %s, %v", got.Program, err)
		}
		deployed := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		next := a
		next.Variants = []persistence.Variant{{Name: "canary-1", Weight: 10, Program: json.RawMessage(`{"format":1,"version":"v2"}`),
			Canary: &persistence.Canary{Percent: 10, MinTurns: 5, MinRatings: 1, MaxErrorRateIncrease: 0.05, MaxFeedbackDrop: 0.2,
				Version: "v2", DeployedAt: deployed, DeployedBy: alice.ID}}}
		stored, err := agents.UpdateAudited(ctx, next, persistence.AuditEntry{ActorID: alice.ID, Action: "agent.program.deploy", TargetType: "agent", TargetID: a.ID})
		if err != nil || stored.Version != 2 {
			t.Fatalf("UpdateAudited = %+v, %v", stored, err)
		}
		got, err := agents.Get(ctx, a.ID)
		if err != nil || len(got.Variants) != 1 || got.Variants[0].Canary == nil || !got.Variants[0].Canary.DeployedAt.Equal(deployed) ||
			got.Variants[0].Canary.MinTurns != 5 || string(got.Variants[0].Program) != `{"format":1,"version":"v2"}` {
			t.Fatalf("canary read back = %+v, %v", got.Variants, err)
		}
		// The stale version loses, and its audit entry is not stored.
		next.Program = nil
		if _, err := agents.UpdateAudited(ctx, next, persistence.AuditEntry{Action: "agent.program.promote", TargetType: "agent", TargetID: a.ID}); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("stale UpdateAudited: %v, want ErrConflict", err)
		}
		page, err := audit.List(ctx, persistence.PageRequest{Limit: 200})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range page.Items {
			if e.TargetID == a.ID {
				actions = append(actions, e.Action)
			}
		}
		if !slices.Equal(actions, []string{"agent.program.deploy"}) {
			t.Fatalf("audit of the agent = %v, want the deploy only", actions)
		}
	})
}
