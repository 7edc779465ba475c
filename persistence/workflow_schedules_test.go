package persistence_test

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

func TestWorkflowSchedulesContract(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		store := persistence.NewWorkflowScheduleStore(db)
		owner, other := seedUser(t, db), seedUser(t, db)
		now := time.Now().UTC().Truncate(time.Second)
		var ids []string
		for i := range 3 {
			s, err := store.CreateSchedule(ctx, persistence.WorkflowSchedule{OwnerID: owner.ID, Workflow: "greet",
				Parameters: json.RawMessage(`{"name":"x"}`), Spec: "@every 1s", Enabled: true,
				NextFireAt: now.Add(-time.Second), DueAt: now.Add(-time.Second), CreatedAt: now.Add(time.Duration(i) * time.Minute)})
			if err != nil {
				t.Fatalf("CreateSchedule: %v", err)
			}
			if s.Version != 1 || s.CatchUp != persistence.CatchUpSkip || s.Timezone != "UTC" {
				t.Fatalf("CreateSchedule = %+v", s)
			}
			ids = append(ids, s.ID)
		}
		if _, err := store.CreateSchedule(ctx, persistence.WorkflowSchedule{OwnerID: other.ID, Workflow: "greet", Spec: "@hourly"}); err != nil {
			t.Fatalf("CreateSchedule (disabled): %v", err)
		}
		mine := collectPages(t, 2, func(req persistence.PageRequest) (persistence.Page[persistence.WorkflowSchedule], error) {
			return store.ListSchedules(ctx, owner.ID, req)
		})
		if len(mine) != 3 || mine[0].ID != ids[2] || mine[2].ID != ids[0] {
			t.Fatalf("ListSchedules(owner) = %+v, want the 3 schedules newest first", mine)
		}

		got, err := store.GetSchedule(ctx, ids[0])
		if err != nil || got.Spec != "@every 1s" || !got.Enabled || !got.NextFireAt.Equal(now.Add(-time.Second)) || string(got.Parameters) == "" {
			t.Fatalf("GetSchedule = %+v, %v", got, err)
		}
		if _, err := store.GetSchedule(ctx, "00000000-0000-0000-0000-000000000000"); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("GetSchedule(unknown) = %v, want ErrNotFound", err)
		}

		// Two claimers at once: each due schedule goes to exactly one of them.
		var mu sync.Mutex
		claims := map[string]int{}
		var wg sync.WaitGroup
		for _, node := range []string{"a", "b"} {
			wg.Go(func() {
				got, err := store.ClaimDueSchedules(ctx, now, node, 5*time.Second, 10)
				if err != nil {
					t.Errorf("ClaimDueSchedules(%s): %v", node, err)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, s := range got {
					claims[s.ID]++
				}
			})
		}
		wg.Wait()
		if len(claims) != 3 {
			t.Fatalf("claims = %v, want the 3 due schedules (the disabled one has no due_at)", claims)
		}
		for id, n := range claims {
			if n != 1 {
				t.Fatalf("schedule %s claimed %d times", id, n)
			}
		}
		if again, err := store.ClaimDueSchedules(ctx, now, "c", time.Second, 10); err != nil || len(again) != 0 {
			t.Fatalf("claim while claimed = %d, %v; want none", len(again), err)
		}
		// The claim lapses: the tick is due again for another node.
		lapsed, err := store.ClaimDueSchedules(ctx, now.Add(6*time.Second), "c", time.Second, 10)
		if err != nil || len(lapsed) != 3 || lapsed[0].ClaimOwner != "c" {
			t.Fatalf("claim after the lease = %+v, %v", lapsed, err)
		}

		// SaveSchedule is a compare-and-swap on the version.
		s, err := store.GetSchedule(ctx, ids[0])
		if err != nil {
			t.Fatal(err)
		}
		stale := s.Version
		s.Version++
		s.LastRunID, s.NextFireAt, s.DueAt, s.ClaimOwner = "run-1", now.Add(time.Second), now.Add(time.Second), ""
		if err := store.SaveSchedule(ctx, s, stale); err != nil {
			t.Fatalf("SaveSchedule: %v", err)
		}
		s.Version++
		if err := store.SaveSchedule(ctx, s, stale); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("SaveSchedule with a stale version = %v, want ErrConflict", err)
		}
		if err := store.DeleteSchedule(ctx, ids[0]); err != nil {
			t.Fatalf("DeleteSchedule: %v", err)
		}
		if err := store.DeleteSchedule(ctx, ids[0]); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("DeleteSchedule twice = %v, want ErrNotFound", err)
		}
		if err := store.SaveSchedule(ctx, s, s.Version-1); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("SaveSchedule of a deleted schedule = %v, want ErrNotFound", err)
		}
	})
}

// TestEraseUserDeletesSchedules: an erased user's schedules go with them, so nothing
// fires in their name afterwards.
func TestEraseUserDeletesSchedules(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		store := persistence.NewWorkflowScheduleStore(db)
		gone, kept := seedUser(t, db), seedUser(t, db)
		var ids []string
		for _, u := range []persistence.User{gone, kept} {
			s, err := store.CreateSchedule(ctx, persistence.WorkflowSchedule{OwnerID: u.ID, Workflow: "greet", Spec: "@hourly", Enabled: true,
				NextFireAt: time.Now(), DueAt: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, s.ID)
		}
		if _, err := persistence.NewUserStore(db).Erase(ctx, gone.ID, func(persistence.Erasure) persistence.AuditEntry {
			return persistence.AuditEntry{ActorID: gone.ID, Action: "user.erase", TargetType: "user", TargetID: gone.ID}
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.GetSchedule(ctx, ids[0]); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("erased user's schedule: %v, want ErrNotFound", err)
		}
		if _, err := store.GetSchedule(ctx, ids[1]); err != nil {
			t.Fatalf("another user's schedule: %v", err)
		}
	})
}
