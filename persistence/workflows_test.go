package persistence_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"sync"
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
			name := "summarize"
			if i == 1 {
				name = "research"
			}
			r, err := store.CreateRun(ctx, persistence.WorkflowRun{Name: name, OwnerID: owner.ID,
				Parameters: json.RawMessage(`{"n":1}`), CreatedAt: base.Add(time.Duration(i) * time.Minute)})
			if err != nil {
				t.Fatalf("CreateRun: %v", err)
			}
			if r.Version != 1 || r.Status != persistence.StatusPending {
				t.Fatalf("CreateRun = %+v", r)
			}
			ids = append(ids, r.ID)
		}
		if _, err := store.CreateRun(ctx, persistence.WorkflowRun{ID: ids[0], Name: "again"}); !errors.Is(err, persistence.ErrDuplicate) {
			t.Fatalf("CreateRun with a taken ID = %v, want ErrDuplicate", err)
		}
		if _, err := store.CreateRun(ctx, persistence.WorkflowRun{Name: "system", ParentID: ids[0]}); err != nil {
			t.Fatalf("CreateRun without owner: %v", err)
		}
		list := func(f persistence.RunFilter) []persistence.WorkflowRun {
			return collectPages(t, 2, func(req persistence.PageRequest) (persistence.Page[persistence.WorkflowRun], error) {
				return store.ListRuns(ctx, f, req)
			})
		}
		if runs := list(persistence.RunFilter{OwnerID: owner.ID}); len(runs) != 3 || runs[0].ID != ids[2] || runs[2].ID != ids[0] {
			t.Fatalf("ListRuns(owner) = %+v, want the 3 runs newest first", runs)
		}
		if runs := list(persistence.RunFilter{OwnerID: owner.ID, Name: "summarize"}); len(runs) != 2 {
			t.Fatalf("ListRuns(name) = %d runs, want 2", len(runs))
		}

		// SaveRun is a compare-and-swap on the version.
		run, err := store.GetRun(ctx, ids[0])
		if err != nil {
			t.Fatal(err)
		}
		started := time.Now()
		next := run
		next.Status, next.Version, next.StartedAt, next.DueAt, next.LeaseOwner = persistence.StatusRunning, 2, started, started.Add(3*time.Second), "node-a"
		next.Waiting, next.Spend = json.RawMessage(`{"seq":2}`), json.RawMessage(`{"calls":1}`)
		if err := store.SaveRun(ctx, next, 1); err != nil {
			t.Fatalf("SaveRun: %v", err)
		}
		stale := run
		stale.Status, stale.Version = persistence.StatusFailed, 2
		if err := store.SaveRun(ctx, stale, 1); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("stale SaveRun = %v, want ErrConflict", err)
		}
		if err := store.SaveRun(ctx, persistence.WorkflowRun{ID: "missing", Version: 2}, 1); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("SaveRun missing = %v, want ErrNotFound", err)
		}
		got, err := store.GetRun(ctx, ids[0])
		if err != nil || got.Status != persistence.StatusRunning || got.Version != 2 || got.LeaseOwner != "node-a" ||
			!got.StartedAt.Equal(started.UTC().Truncate(time.Microsecond)) || string(got.Waiting) == "" || string(got.Spend) == "" {
			t.Fatalf("GetRun = %+v, %v", got, err)
		}
		if runs := list(persistence.RunFilter{OwnerID: owner.ID, Status: persistence.StatusRunning}); len(runs) != 1 || runs[0].ID != ids[0] {
			t.Fatalf("ListRuns(status) = %+v", runs)
		}

		// The journal: unique per (run_id, seq), through the writer too.
		w := persistence.NewWriter(db, persistence.WriterOptions{})
		wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { defer close(done); _ = w.Run(wctx) }()
		t.Cleanup(func() { stop(); <-done })
		step := persistence.WorkflowStep{RunID: ids[0], Seq: 1, Name: "fetch", Kind: "task", Status: persistence.StatusCompleted,
			Output: json.RawMessage(`{"rows":3}`), Attempts: 2, StartedAt: started, FinishedAt: started.Add(time.Second)}
		if err := w.Submit(ctx, persistence.StepInsert(step)); err != nil {
			t.Fatalf("StepInsert: %v", err)
		}
		if err := w.Submit(ctx, persistence.StepInsert(step)); !errors.Is(err, persistence.ErrDuplicate) {
			t.Fatalf("second StepInsert = %v, want ErrDuplicate", err)
		}
		// RunInsert creates a run through the writer, as CreateRun does.
		inserted := persistence.WorkflowRun{ID: "0193a5b0-0000-7000-8000-00000000beef", Name: "summarize", OwnerID: owner.ID,
			Status: persistence.StatusRunning, Parameters: json.RawMessage(`{"n":2}`), Version: 1, CreatedAt: started,
			StartedAt: started, DueAt: started.Add(time.Minute), LeaseOwner: "node-a", WebhookURL: "https://example.com/hook"}
		if err := w.Submit(ctx, persistence.RunInsert(inserted)); err != nil {
			t.Fatalf("RunInsert: %v", err)
		}
		if err := w.Submit(ctx, persistence.RunInsert(inserted)); !errors.Is(err, persistence.ErrDuplicate) {
			t.Fatalf("second RunInsert = %v, want ErrDuplicate", err)
		}
		got, err = store.GetRun(ctx, inserted.ID)
		if err != nil || got.Status != persistence.StatusRunning || got.OwnerID != owner.ID || got.Version != 1 ||
			!got.StartedAt.Equal(inserted.StartedAt.UTC().Truncate(time.Microsecond)) || got.LeaseOwner != "node-a" ||
			got.WebhookURL != inserted.WebhookURL || got.DueAt.IsZero() || got.ParentID != "" {
			t.Fatalf("GetRun after RunInsert = %+v, %v", got, err)
		}

		failed := persistence.WorkflowStep{RunID: ids[0], Seq: 2, Name: "parse", Kind: "agent", Status: persistence.StatusFailed,
			Error: "boom", Attempts: 3, Spend: json.RawMessage(`{"calls":3}`), CacheHit: false, WakeAt: started}
		if err := store.AppendStep(ctx, failed); err != nil {
			t.Fatalf("AppendStep: %v", err)
		}
		if err := store.AppendStep(ctx, persistence.WorkflowStep{RunID: "missing", Seq: 1, Name: "x", Kind: "task", Status: "completed"}); err == nil {
			t.Fatal("AppendStep of a missing run succeeded")
		}
		steps, err := store.Steps(ctx, ids[0])
		if err != nil || len(steps) != 2 || steps[0].Name != "fetch" || string(steps[0].Output) != `{"rows": 3}` && string(steps[0].Output) != `{"rows":3}` ||
			steps[1].Error != "boom" || steps[1].Attempts != 3 || steps[1].WakeAt.IsZero() {
			t.Fatalf("Steps = %+v, %v", steps, err)
		}
		if err := store.DeleteFailedSteps(ctx, ids[0]); err != nil {
			t.Fatal(err)
		}
		if steps, _ := store.Steps(ctx, ids[0]); len(steps) != 1 || steps[0].Seq != 1 {
			t.Fatalf("Steps after DeleteFailedSteps = %+v", steps)
		}

		// Events: ordered, unique per seq, paged after a seq; running events count attempts.
		evs := []persistence.WorkflowEvent{
			{RunID: ids[0], Seq: 1, Status: persistence.StatusRunning, Data: json.RawMessage(`{"status":"running"}`)},
			{RunID: ids[0], Seq: 2, StepSeq: 1, Status: persistence.StatusRunning, Attempt: 1},
			{RunID: ids[0], Seq: 3, StepSeq: 1, Status: persistence.StatusRetrying, Attempt: 1},
			{RunID: ids[0], Seq: 4, StepSeq: 1, Status: persistence.StatusRunning, Attempt: 2},
			{RunID: ids[0], Seq: 5, StepSeq: 2, Status: persistence.StatusRunning, Attempt: 1},
		}
		if err := w.Submit(ctx, persistence.EventInsert(evs...)); err != nil {
			t.Fatalf("EventInsert: %v", err)
		}
		if err := w.Submit(ctx, persistence.EventInsert(evs[0])); !errors.Is(err, persistence.ErrDuplicate) {
			t.Fatalf("duplicate event = %v, want ErrDuplicate", err)
		}
		page, err := store.Events(ctx, ids[0], 2, 2)
		if err != nil || len(page) != 2 || page[0].Seq != 3 || page[1].Seq != 4 {
			t.Fatalf("Events(after 2) = %+v, %v", page, err)
		}
		if last, err := store.LastEventSeq(ctx, ids[0]); err != nil || last != 5 {
			t.Fatalf("LastEventSeq = %d, %v", last, err)
		}
		if last, err := store.LastEventSeq(ctx, ids[1]); err != nil || last != 0 {
			t.Fatalf("LastEventSeq of a run without events = %d, %v", last, err)
		}
		if att, err := store.Attempts(ctx, ids[0]); err != nil || len(att) != 2 || att[1] != 2 || att[2] != 1 {
			t.Fatalf("Attempts = %v, %v", att, err)
		}

		// Events kept in a step's row join the event log in seq order, between rows.
		at := started.Add(time.Minute)
		kept := persistence.WorkflowStep{RunID: ids[0], Seq: 3, Name: "store", Kind: "task", Status: persistence.StatusCompleted,
			Output: json.RawMessage(`1`), Attempts: 1, Events: []persistence.WorkflowEvent{
				{Seq: 6, StepSeq: 3, Status: persistence.StatusRunning, Attempt: 1, Data: json.RawMessage(`{"status":"running"}`), CreatedAt: at},
				{Seq: 7, StepSeq: 3, Status: persistence.StatusCompleted, Attempt: 1, CreatedAt: at},
				{Seq: 8, Status: persistence.StatusPaused, CreatedAt: at}}} // the run's own
		if err := w.Submit(ctx, persistence.Ops{persistence.StepInsert(kept),
			persistence.EventInsert(persistence.WorkflowEvent{RunID: ids[0], Seq: 9, Status: persistence.StatusCompleted})}); err != nil {
			t.Fatalf("StepInsert with events: %v", err)
		}
		page, err = store.Events(ctx, ids[0], 4, 3)
		if err != nil || len(page) != 3 || page[0].Seq != 5 || page[1].Seq != 6 || page[2].Seq != 7 ||
			page[1].StepSeq != 3 || page[1].Attempt != 1 || page[1].Status != persistence.StatusRunning ||
			string(page[1].Data) != `{"status":"running"}` || !page[1].CreatedAt.Equal(at.UTC().Truncate(time.Microsecond)) ||
			page[2].Status != persistence.StatusCompleted || string(page[2].Data) != `{}` {
			t.Fatalf("Events(after 4, 3) = %+v, %v", page, err)
		}
		if page, err = store.Events(ctx, ids[0], 6, 10); err != nil || len(page) != 3 || page[0].Seq != 7 || page[1].Seq != 8 ||
			page[1].StepSeq != 0 || page[1].Status != persistence.StatusPaused || page[2].Seq != 9 {
			t.Fatalf("Events(after 6) = %+v, %v", page, err)
		}
		if last, err := store.LastEventSeq(ctx, ids[0]); err != nil || last != 9 {
			t.Fatalf("LastEventSeq with step events = %d, %v", last, err)
		}
		steps, err = store.Steps(ctx, ids[0])
		if err != nil || len(steps) != 2 || steps[1].Seq != 3 || steps[1].Status != persistence.StatusCompleted {
			t.Fatalf("Steps with step events = %+v, %v", steps, err)
		}
	})
}

func TestWorkflowClaimDue(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		store := persistence.NewWorkflowStore(db)
		now := time.Now()
		mk := func(due time.Time) string {
			r, err := store.CreateRun(ctx, persistence.WorkflowRun{Name: "w", DueAt: due})
			if err != nil {
				t.Fatal(err)
			}
			return r.ID
		}
		// A claim is global to the table, so this test's runs are due far in the past
		// (others' are due around now) and claimed with a horizon that reaches only them.
		past := now.Add(-1000 * time.Hour)
		overdue := []string{mk(past.Add(-2 * time.Second)), mk(past.Add(-time.Second)), mk(past)}
		mk(past.Add(time.Hour)) // not due at the horizon
		mk(time.Time{})         // waiting for input: never due
		horizon := past.Add(time.Minute)

		// Two nodes claim at once: every due run goes to exactly one of them.
		var mu sync.Mutex
		got := map[string]string{}
		var wg sync.WaitGroup
		for _, node := range []string{"a", "b"} {
			wg.Go(func() {
				runs, err := store.ClaimDue(ctx, horizon, node, 10*time.Second, 10)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, r := range runs {
					if prev, dup := got[r.ID]; dup {
						t.Errorf("run %s claimed by %s and %s", r.ID, prev, node)
					}
					got[r.ID] = node
				}
			})
		}
		wg.Wait()
		if len(got) != len(overdue) {
			t.Fatalf("claimed %v, want exactly %v", got, overdue)
		}
		for _, id := range overdue {
			r, err := store.GetRun(ctx, id)
			if err != nil || r.LeaseOwner != got[id] || r.Version != 2 || !r.DueAt.After(horizon) {
				t.Fatalf("claimed run = %+v, %v", r, err)
			}
		}
		// Claimed runs are not due again until their lease passes.
		if again, err := store.ClaimDue(ctx, horizon, "c", 10*time.Second, 10); err != nil || len(again) != 0 {
			t.Fatalf("second claim = %d runs, %v", len(again), err)
		}
		if limited, err := store.ClaimDue(ctx, horizon.Add(time.Minute), "c", time.Second, 2); err != nil || len(limited) != 2 || limited[0].ID != overdue[0] {
			t.Fatalf("claim after the lease = %+v, %v", limited, err)
		}
	})
}

func TestWorkflowNodeHeartbeats(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		store := persistence.NewWorkflowStore(db)
		now := time.Now()
		// Node names of this test only: a reclaim is global to the table.
		dead, live, gone := "dead-"+now.Format("150405.000000"), "live-"+now.Format("150405.000000"), "gone-"+now.Format("150405.000000")
		for _, hb := range []struct {
			node  string
			epoch int64
			until time.Time
		}{
			{dead, 1, now.Add(-time.Minute)}, {dead, 2, now.Add(time.Hour)}, {live, 1, now.Add(time.Minute)},
			{live, 1, now.Add(time.Hour)}, // a renewal
			{gone, 1, now.Add(-2 * persistence.NodeRetention)},
		} {
			if err := store.Heartbeat(ctx, hb.node, hb.epoch, hb.until); err != nil {
				t.Fatalf("Heartbeat(%s, %d): %v", hb.node, hb.epoch, err)
			}
		}
		mk := func(owner string, epoch int64, status string) persistence.WorkflowRun {
			r, err := store.CreateRun(ctx, persistence.WorkflowRun{Name: "w", Status: status, LeaseOwner: owner, LeaseEpoch: epoch})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		lost := mk(dead, 1, persistence.StatusRunning)
		retrying := mk(dead, 1, persistence.StatusRetrying)
		paused := mk(dead, 1, persistence.StatusPaused) // waits for input: nothing to resume
		newer := mk(dead, 2, persistence.StatusRunning) // the node's live process
		kept := mk(live, 1, persistence.StatusRunning)

		if _, err := store.ReclaimLapsed(ctx, now, 1000); err != nil {
			t.Fatalf("ReclaimLapsed: %v", err)
		}
		for _, r := range []persistence.WorkflowRun{lost, retrying} {
			got, err := store.GetRun(ctx, r.ID)
			if err != nil || got.Version != r.Version+1 || got.DueAt.IsZero() || got.DueAt.After(now.Add(time.Second)) {
				t.Fatalf("run of a lapsed node = %+v, %v; want due now at the next version", got, err)
			}
		}
		for _, r := range []persistence.WorkflowRun{paused, newer, kept} {
			if got, err := store.GetRun(ctx, r.ID); err != nil || got.Version != r.Version || !got.DueAt.IsZero() {
				t.Fatalf("run %s/%d %s was reclaimed: %+v, %v", r.LeaseOwner, r.LeaseEpoch, r.Status, got, err)
			}
		}
		owned, err := store.OwnedRuns(ctx, dead, 2)
		if err != nil || len(owned) != 1 || owned[newer.ID] != newer.Version {
			t.Fatalf("OwnedRuns(dead, 2) = %v, %v", owned, err)
		}
		if owned, err := store.OwnedRuns(ctx, dead, 1); err != nil || len(owned) != 0 {
			t.Fatalf("OwnedRuns of a reclaimed node = %v, %v", owned, err)
		}
		// A lapsed node's row stays for NodeRetention: a run its process writes
		// after coming back from a pause is still found. One lapsed for longer,
		// owning nothing, is forgotten.
		late := mk(dead, 1, persistence.StatusRunning)
		orphan := mk(gone, 1, persistence.StatusRunning)
		if _, err := store.ReclaimLapsed(ctx, now, 1000); err != nil {
			t.Fatal(err)
		}
		if got, err := store.GetRun(ctx, late.ID); err != nil || got.Version != late.Version+1 {
			t.Fatalf("late run of a lapsed node = %+v, %v; want reclaimed", got, err)
		}
		if got, err := store.GetRun(ctx, orphan.ID); err != nil || got.Version != orphan.Version {
			t.Fatalf("run of a node forgotten after NodeRetention = %+v, %v; want untouched (its row is gone)", got, err)
		}
	})
}

func TestProfileStore(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		t.Parallel()
		ctx := t.Context()
		store := persistence.NewProfileStore(db)
		u := seedUser(t, db)
		if doc, err := store.Profile(ctx, u.ID); err != nil || doc != nil {
			t.Fatalf("Profile before any = %s, %v", doc, err)
		}
		for _, doc := range []string{`{"messages":1}`, `{"messages":2}`} {
			if err := store.SaveProfile(ctx, u.ID, json.RawMessage(doc)); err != nil {
				t.Fatal(err)
			}
		}
		var got struct{ Messages int }
		if doc, err := store.Profile(ctx, u.ID); err != nil || json.Unmarshal(doc, &got) != nil || got.Messages != 2 {
			t.Fatalf("Profile = %s, %v", doc, err)
		}
		if err := store.SaveProfile(ctx, "missing-user", json.RawMessage(`{}`)); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("SaveProfile of a missing user = %v, want ErrConflict", err)
		}
	})
}

// TestFencedJournalWriteHoldsItsRun checks, on MariaDB, what RunFenced promises now
// that the journal has no foreign key to its run (migration 0016): while a fenced
// journal write's transaction is open, a compare-and-swap of the run (another
// activation's claim) waits for it, so it either commits first or sees the journal
// row's commit, never moves the run between the fence's read and its commit.
func TestFencedJournalWriteHoldsItsRun(t *testing.T) {
	db := persisttest.MySQL(t)
	ctx := t.Context()
	store := persistence.NewWorkflowStore(db)
	run := seedRun(t, store)
	tx, err := db.Goqu.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	step := persistence.WorkflowStep{RunID: run.ID, Seq: 1, Name: "t", Kind: "task", Status: persistence.StatusCompleted}
	if err := persistence.StepInsertAt(run.ID, run.Version, step).Apply(ctx, tx); err != nil {
		t.Fatalf("fenced journal write: %v", err)
	}
	claimed := make(chan error, 1)
	go func() {
		next := run
		next.Version++
		claimed <- store.SaveRun(context.Background(), next, run.Version)
	}()
	// The claim must be seen waiting for the fenced write, not done: its UPDATE
	// still executing after 200 ms (a free row takes well under a millisecond).
	// InnoDB lists an autocommit statement's lock wait in INNODB_TRX only at
	// times, the process list always.
	for deadline := time.Now().Add(10 * time.Second); ; {
		select {
		case err := <-claimed:
			t.Fatalf("the run was moved on (%v) while a write fenced by its version was open", err)
		default:
		}
		var waits int
		if err := db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST "+
			"WHERE DB = DATABASE() AND COMMAND = 'Query' AND INFO LIKE 'UPDATE `workflow_runs`%' AND TIME_MS >= 200").Scan(&waits); err != nil {
			t.Fatal(err)
		}
		if waits > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the claim neither waited for the fenced write nor finished; connections: %s", connections(t, db))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-claimed; err != nil {
		t.Fatalf("claim after the fenced write's commit: %v", err)
	}
	steps, err := store.Steps(ctx, run.ID)
	if err != nil || len(steps) != 1 {
		t.Fatalf("Steps = %+v, %v; want the fenced row", steps, err)
	}
}

// connections describes the connections to db's database and their transactions.
func connections(t *testing.T, db *persistence.DB) string {
	t.Helper()
	rows, err := db.SQL.QueryContext(t.Context(), "SELECT COALESCE(t.trx_state, '-'), CONCAT(p.COMMAND, ' ', COALESCE(p.STATE, ''), ' ', COALESCE(p.INFO, '')) FROM information_schema.PROCESSLIST p "+
		"LEFT JOIN information_schema.INNODB_TRX t ON p.ID = t.trx_mysql_thread_id WHERE p.DB = DATABASE()")
	if err != nil {
		return err.Error()
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var state, query string
		if err := rows.Scan(&state, &query); err != nil {
			return err.Error()
		}
		out = append(out, state+": "+query)
	}
	return strings.Join(out, "; ")
}

// TestFoldedEventsReadBackAsWritten writes events folded into journal rows (the
// compact form, which leaves out what the row says: data's run_id member among
// them) and reads them back through Events exactly as they were given, data byte
// for byte; a row in the earlier form (an object per event) still reads.
func TestFoldedEventsReadBackAsWritten(t *testing.T) {
	persisttest.Each(t, func(t *testing.T, db *persistence.DB) {
		ctx := t.Context()
		store := persistence.NewWorkflowStore(db)
		run := seedRun(t, store)
		at := time.Date(2026, 12, 8, 0, 20, 55, 43887000, time.UTC)
		id := run.ID
		want := []persistence.WorkflowEvent{
			{RunID: id, Seq: 1, Status: persistence.StatusRunning, Data: json.RawMessage(`{"run_id":"` + id + `","status":"running","time":"2026-12-08T00:20:55.043887626Z"}`), CreatedAt: at},
			{RunID: id, Seq: 2, StepSeq: 1, Status: persistence.StatusRunning, Attempt: 1, CreatedAt: at.Add(time.Millisecond),
				Data: json.RawMessage(`{"run_id":"` + id + `","seq":1,"name":"a","kind":"task","status":"running","attempt":1,"time":"2026-12-08T00:20:55.044887626Z"}`)},
			{RunID: id, Seq: 3, StepSeq: 1, Status: persistence.StatusCompleted, Attempt: 1, Data: json.RawMessage(`{"run_id":"` + id + `"}`), CreatedAt: at},
			{RunID: id, Seq: 4, StepSeq: 1, Status: "noted", Data: json.RawMessage(`{"run_id":"another","x":"<&>"}`), CreatedAt: at},
			{RunID: id, Seq: 5, StepSeq: 1, Status: "noted", Data: json.RawMessage(`{"run_id":"` + id + `x","y":1}`), CreatedAt: at},
			{RunID: id, Seq: 6, StepSeq: 1, Status: "noted", Data: json.RawMessage(`[1,"two"]`), CreatedAt: at},
			{RunID: id, Seq: 7, StepSeq: 1, Status: "noted", Data: json.RawMessage(`{}`), CreatedAt: at},
		}
		h := newHarness(t, db, persistence.WriterOptions{})
		h.run(ctx)
		if err := h.w.Submit(ctx, persistence.StepInsertAt(id, run.Version, persistence.WorkflowStep{RunID: id, Seq: 1, Name: "a",
			Kind: "task", Status: persistence.StatusCompleted, Events: want})); err != nil {
			t.Fatal(err)
		}
		// The row does not repeat the run's ID inside its events' data.
		var column string
		if err := db.SQL.QueryRowContext(ctx, "SELECT events FROM workflow_steps WHERE run_id = ? AND seq = 1", id).Scan(&column); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(column, `"run_id":"`+id+`"`); n != 0 {
			t.Errorf("the stored events name the run %d times: %s", n, column)
		}
		// A row of the earlier form, as kowai wrote it before.
		old := `[{"seq":8,"step_seq":2,"status":"completed","attempt":2,"data":{"run_id":"` + id + `","seq":2},"created_at":"2026-12-08T00:20:55.043887Z"}]`
		if _, err := db.SQL.ExecContext(ctx, "INSERT INTO workflow_steps (run_id, seq, name, kind, status, error, attempts, events, last_event_seq) "+
			"VALUES (?, 2, 'b', 'task', 'completed', '', 2, ?, 8)", id, old); err != nil {
			t.Fatal(err)
		}
		want = append(want, persistence.WorkflowEvent{RunID: id, Seq: 8, StepSeq: 2, Status: persistence.StatusCompleted, Attempt: 2,
			Data: json.RawMessage(`{"run_id":"` + id + `","seq":2}`), CreatedAt: at})
		got, err := store.Events(ctx, id, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("Events = %d events, want %d: %+v", len(got), len(want), got)
		}
		for i, g := range got {
			w := want[i]
			if g.RunID != w.RunID || g.Seq != w.Seq || g.StepSeq != w.StepSeq || g.Status != w.Status || g.Attempt != w.Attempt ||
				string(g.Data) != string(w.Data) || !g.CreatedAt.Equal(w.CreatedAt) {
				t.Errorf("event %d = %+v (data %s), want %+v (data %s)", i, g, g.Data, w, w.Data)
			}
		}
		if last, err := store.LastEventSeq(ctx, id); err != nil || last != 8 {
			t.Fatalf("LastEventSeq = %d, %v; want 8", last, err)
		}
	})
}

// TestRunFenceAndMergedSaveLockByPrimaryKey checks the MariaDB plans of the two
// locking statements that find runs by a list of IDs, the fence's subquery and the
// merged compare-and-swap, on a small table, where the optimizer otherwise scans a
// whole index and locks every row it passes (concurrent batches then deadlocked):
// both must look the runs up by the primary key.
func TestRunFenceAndMergedSaveLockByPrimaryKey(t *testing.T) {
	db := persisttest.MySQL(t)
	ctx := t.Context()
	store := persistence.NewWorkflowStore(db)
	var ids []string
	for range 40 {
		r := seedRun(t, store)
		ids = append(ids, r.ID)
	}
	if _, err := db.SQL.ExecContext(ctx, "ANALYZE TABLE workflow_runs"); err != nil {
		t.Fatal(err)
	}
	fence, fenceArgs, err := persistence.RunFenceSQL(ids[:30])
	if err != nil {
		t.Fatal(err)
	}
	save, saveArgs, err := persistence.MergedRunSaveSQL(ids[:30])
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		name  string
		query string
		args  []any
	}{{"fence", fence, fenceArgs}, {"merged save", save, saveArgs}} {
		rows, err := db.SQL.QueryContext(ctx, "EXPLAIN "+q.query, q.args...)
		if err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		seen := false
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			plan := map[string]string{}
			for i, c := range cols {
				plan[c] = vals[i].String
			}
			if plan["table"] != "workflow_runs" {
				continue
			}
			seen = true
			if plan["key"] != "PRIMARY" || plan["type"] == "index" || plan["type"] == "ALL" {
				t.Errorf("%s reads workflow_runs with %v, want lookups on PRIMARY", q.name, plan)
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			t.Fatal(err)
		}
		if !seen {
			t.Errorf("%s: no plan row for workflow_runs", q.name)
		}
	}
}
