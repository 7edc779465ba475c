package persistence_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/kowai/kowai/persistence"
	"github.com/kowai/kowai/persistence/persisttest"
)

func TestWorkflowRunsContract(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		store := persistence.NewWorkflowStore(db)
		owner := seedUser(t, db)
		base := time.Now().Add(-time.Hour)
		var ids []string
		for i := range 3 {
			r, err := store.CreateRun(ctx, persistence.WorkflowRun{Name: "summarize", OwnerID: owner.ID,
				Parameters: json.RawMessage(`{"n":1}`), CreatedAt: base.Add(time.Duration(i) * time.Minute)})
			if err != nil {
				t.Fatalf("CreateRun: %v", err)
			}
			ids = append(ids, r.ID)
		}
		if _, err := store.CreateRun(ctx, persistence.WorkflowRun{Name: "system"}); err != nil {
			t.Fatalf("CreateRun without owner: %v", err)
		}
		runs := collectPages(t, 2, func(req persistence.PageRequest) (persistence.Page[persistence.WorkflowRun], error) {
			return store.ListByOwner(ctx, owner.ID, req)
		})
		if len(runs) != 3 || runs[0].ID != ids[2] || runs[2].ID != ids[0] || runs[0].Status != persistence.StatusPending {
			t.Fatalf("ListByOwner = %+v, want the 3 runs newest first, pending", runs)
		}

		started := time.Now()
		if err := store.UpdateRun(ctx, ids[0], persistence.RunUpdate{Status: persistence.StatusRunning, StartedAt: started}); err != nil {
			t.Fatalf("UpdateRun: %v", err)
		}
		if err := store.UpdateRun(ctx, ids[0], persistence.RunUpdate{Status: persistence.StatusCompleted, Result: json.RawMessage(`"ok"`), FinishedAt: started.Add(time.Second)}); err != nil {
			t.Fatalf("UpdateRun: %v", err)
		}
		run, err := store.GetRun(ctx, ids[0])
		if err != nil || run.Status != persistence.StatusCompleted || string(run.Result) != `"ok"` ||
			!run.StartedAt.Equal(started.UTC().Truncate(time.Microsecond)) || run.FinishedAt.IsZero() {
			t.Fatalf("GetRun = %+v, %v", run, err)
		}
		if err := store.UpdateRun(ctx, "missing", persistence.RunUpdate{Status: persistence.StatusFailed}); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("UpdateRun missing = %v, want ErrNotFound", err)
		}

		task := persistence.TaskRun{RunID: ids[0], Name: "fetch", Status: persistence.StatusRunning, Attempts: 1, StartedAt: started}
		if err := store.UpsertTask(ctx, task); err != nil {
			t.Fatalf("UpsertTask insert: %v", err)
		}
		task.Status, task.Attempts, task.Output, task.FinishedAt = persistence.StatusCompleted, 2, json.RawMessage(`{"rows":3}`), started.Add(time.Second)
		if err := store.UpsertTask(ctx, task); err != nil {
			t.Fatalf("UpsertTask update: %v", err)
		}
		if err := store.UpsertTask(ctx, persistence.TaskRun{RunID: ids[0], Name: "later", Status: persistence.StatusPending}); err != nil {
			t.Fatalf("UpsertTask second task: %v", err)
		}
		tasks, err := store.ListTasks(ctx, ids[0])
		if err != nil || len(tasks) != 2 {
			t.Fatalf("ListTasks = %+v, %v; want 2 tasks", tasks, err)
		}
		if got := tasks[0]; got.Name != "fetch" || got.Status != persistence.StatusCompleted || got.Attempts != 2 || string(got.Output) != `{"rows":3}` {
			t.Fatalf("task after upsert = %+v", got)
		}
		if err := store.UpsertTask(ctx, persistence.TaskRun{RunID: "missing", Name: "x", Status: persistence.StatusPending}); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("UpsertTask for a missing run = %v, want ErrConflict", err)
		}
	})
}

func TestAuditLogContract(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		audit := persistence.NewAuditStore(db)
		base := time.Now()
		for i, action := range []string{"login", "role.change", "user.delete"} {
			_, err := audit.Append(ctx, persistence.AuditEntry{ActorID: "admin", Action: action, TargetType: "user", TargetID: "u1",
				Detail: json.RawMessage(`{"i":1}`), IP: "127.0.0.1", CreatedAt: base.Add(time.Duration(i) * time.Second)})
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
		}
		entries := collectPages(t, 2, func(req persistence.PageRequest) (persistence.Page[persistence.AuditEntry], error) {
			return audit.List(ctx, req)
		})
		if len(entries) != 3 || entries[0].Action != "user.delete" || entries[2].Action != "login" || string(entries[0].Detail) != `{"i":1}` {
			t.Fatalf("List = %+v, want 3 entries newest first", entries)
		}
	})
}
