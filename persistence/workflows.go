package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// Run and task states.
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusRetrying  = "retrying"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// WorkflowRun is one execution of a named workflow.
type WorkflowRun struct {
	ID string
	// Name is the registered workflow's name.
	Name string
	// OwnerID is empty for runs started by the system.
	OwnerID    string
	Status     string
	Parameters json.RawMessage
	Result     json.RawMessage
	Error      string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
}

// RunUpdate changes a run's state. Zero fields (nil Result, zero times, empty Error)
// leave the stored value as it is.
type RunUpdate struct {
	Status     string
	Result     json.RawMessage
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
}

// TaskRun is the journal entry of one task of a run, unique by (RunID, Name): a resumed
// run reads it to skip finished tasks.
type TaskRun struct {
	RunID      string
	Name       string
	Status     string
	Attempts   int
	Input      json.RawMessage
	Output     json.RawMessage
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
	UpdatedAt  time.Time
}

// WorkflowRuns stores workflow runs and their task journal.
type WorkflowRuns interface {
	// CreateRun stores r (ID, status pending and times filled in when empty).
	CreateRun(ctx context.Context, r WorkflowRun) (WorkflowRun, error)
	// GetRun returns the run with this ID, or ErrNotFound.
	GetRun(ctx context.Context, id string) (WorkflowRun, error)
	// ListByOwner pages a user's runs, newest first.
	ListByOwner(ctx context.Context, ownerID string, req PageRequest) (Page[WorkflowRun], error)
	// UpdateRun applies u to the run, or returns ErrNotFound.
	UpdateRun(ctx context.Context, id string, u RunUpdate) error
	// UpsertTask creates or replaces the journal entry of (t.RunID, t.Name).
	UpsertTask(ctx context.Context, t TaskRun) error
	// ListTasks returns the journal of a run in the order its tasks first started.
	ListTasks(ctx context.Context, runID string) ([]TaskRun, error)
}

// WorkflowStore implements WorkflowRuns on a DB.
type WorkflowStore struct{ db *DB }

var _ WorkflowRuns = (*WorkflowStore)(nil)

// NewWorkflowStore returns the workflow repository of db.
func NewWorkflowStore(db *DB) *WorkflowStore { return &WorkflowStore{db: db} }

var (
	runCols  = []any{"id", "name", "owner_id", "status", "parameters", "result", "error", "created_at", "updated_at", "started_at", "finished_at"}
	taskCols = []any{"run_id", "name", "status", "attempts", "input", "output", "error", "started_at", "finished_at", "updated_at"}
)

// nullJSON is the stored form of optional JSON: NULL when empty.
func nullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateRun implements WorkflowRuns.
func (s *WorkflowStore) CreateRun(ctx context.Context, r WorkflowRun) (WorkflowRun, error) {
	if r.ID == "" {
		r.ID = newID()
	}
	if r.Status == "" {
		r.Status = StatusPending
	}
	if len(r.Parameters) == 0 {
		r.Parameters = json.RawMessage("{}")
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	r.CreatedAt = utc(r.CreatedAt)
	r.UpdatedAt = r.CreatedAt
	q := s.db.Goqu.Insert("workflow_runs").Prepared(true).Rows(goqu.Record{
		"id": r.ID, "name": r.Name, "owner_id": nullString(r.OwnerID), "status": r.Status,
		"parameters": string(r.Parameters), "result": nullJSON(r.Result), "error": r.Error,
		"created_at": r.CreatedAt, "updated_at": r.UpdatedAt,
		"started_at": nullTime(r.StartedAt), "finished_at": nullTime(r.FinishedAt),
	})
	if _, err := q.Executor().ExecContext(ctx); err != nil {
		return WorkflowRun{}, wrap(err, "create workflow run %s", r.Name)
	}
	return r, nil
}

func scanRun(sc scanner) (WorkflowRun, error) {
	var (
		r                 WorkflowRun
		owner             sql.NullString
		params, result    []byte
		started, finished sql.NullTime
	)
	if err := sc.Scan(&r.ID, &r.Name, &owner, &r.Status, &params, &result, &r.Error, &r.CreatedAt, &r.UpdatedAt, &started, &finished); err != nil {
		return WorkflowRun{}, err
	}
	r.OwnerID, r.Parameters, r.StartedAt, r.FinishedAt = owner.String, params, started.Time, finished.Time
	if len(result) > 0 {
		r.Result = result
	}
	return r, nil
}

// GetRun implements WorkflowRuns.
func (s *WorkflowStore) GetRun(ctx context.Context, id string) (WorkflowRun, error) {
	q := s.db.Goqu.From("workflow_runs").Prepared(true).Select(runCols...).Where(goqu.C("id").Eq(id))
	r, err := first(ctx, q, scanRun)
	if err != nil {
		return WorkflowRun{}, fmt.Errorf("get workflow run %s: %w", id, err)
	}
	return r, nil
}

// ListByOwner implements WorkflowRuns.
func (s *WorkflowStore) ListByOwner(ctx context.Context, ownerID string, req PageRequest) (Page[WorkflowRun], error) {
	q := s.db.Goqu.From("workflow_runs").Prepared(true).Select(runCols...).Where(goqu.C("owner_id").Eq(ownerID))
	q, err := keyset(q, req, "created_at", true, timeParser)
	if err != nil {
		return Page[WorkflowRun]{}, fmt.Errorf("list workflow runs of %s: %w", ownerID, err)
	}
	rs, err := scanAll(ctx, q, scanRun)
	if err != nil {
		return Page[WorkflowRun]{}, wrap(err, "list workflow runs of %s", ownerID)
	}
	return pageOf(rs, req, func(r WorkflowRun) (string, string) { return timeKey(r.CreatedAt), r.ID }), nil
}

// UpdateRun implements WorkflowRuns.
func (s *WorkflowStore) UpdateRun(ctx context.Context, id string, u RunUpdate) error {
	set := goqu.Record{"updated_at": utc(time.Now())}
	if u.Status != "" {
		set["status"] = u.Status
	}
	if len(u.Result) > 0 {
		set["result"] = string(u.Result)
	}
	if u.Error != "" {
		set["error"] = u.Error
	}
	if !u.StartedAt.IsZero() {
		set["started_at"] = utc(u.StartedAt)
	}
	if !u.FinishedAt.IsZero() {
		set["finished_at"] = utc(u.FinishedAt)
	}
	res, err := s.db.Goqu.Update("workflow_runs").Prepared(true).Set(set).Where(goqu.C("id").Eq(id)).Executor().ExecContext(ctx)
	return expectRow(res, err, "update workflow run "+id)
}

// UpsertTask implements WorkflowRuns. A run that does not exist is ErrConflict.
//
// It updates first and inserts when nothing matched, because goqu renders its
// on-conflict upsert as INSERT IGNORE on MariaDB, which would silence foreign-key errors.
// A run's tasks are written by its single workflow actor, so the two steps do not race.
func (s *WorkflowStore) UpsertTask(ctx context.Context, t TaskRun) error {
	if t.UpdatedAt.IsZero() {
		t.UpdatedAt = time.Now()
	}
	set := goqu.Record{
		"status": t.Status, "attempts": t.Attempts, "input": nullJSON(t.Input), "output": nullJSON(t.Output),
		"error": t.Error, "started_at": nullTime(t.StartedAt), "finished_at": nullTime(t.FinishedAt),
		"updated_at": utc(t.UpdatedAt),
	}
	err := s.db.inTx(ctx, func(tx *goqu.TxDatabase) error {
		upd := tx.Update("task_runs").Prepared(true).Set(set).
			Where(goqu.C("run_id").Eq(t.RunID), goqu.C("name").Eq(t.Name))
		n, err := rowsAffected(upd.Executor().ExecContext(ctx))
		if err != nil || n > 0 {
			return classify(err)
		}
		set["run_id"], set["name"] = t.RunID, t.Name
		_, err = tx.Insert("task_runs").Prepared(true).Rows(set).Executor().ExecContext(ctx)
		return classify(err)
	})
	if err != nil {
		return fmt.Errorf("upsert task %s of run %s: %w", t.Name, t.RunID, err)
	}
	return nil
}

// ListTasks implements WorkflowRuns. Tasks not started yet come last, by name.
func (s *WorkflowStore) ListTasks(ctx context.Context, runID string) ([]TaskRun, error) {
	q := s.db.Goqu.From("task_runs").Prepared(true).Select(taskCols...).Where(goqu.C("run_id").Eq(runID)).
		Order(goqu.L("CASE WHEN started_at IS NULL THEN 1 ELSE 0 END").Asc(), goqu.C("started_at").Asc(), goqu.C("name").Asc())
	ts, err := scanAll(ctx, q, func(sc scanner) (TaskRun, error) {
		var (
			t                 TaskRun
			input, output     []byte
			started, finished sql.NullTime
		)
		if err := sc.Scan(&t.RunID, &t.Name, &t.Status, &t.Attempts, &input, &output, &t.Error, &started, &finished, &t.UpdatedAt); err != nil {
			return TaskRun{}, err
		}
		t.StartedAt, t.FinishedAt = started.Time, finished.Time
		if len(input) > 0 {
			t.Input = input
		}
		if len(output) > 0 {
			t.Output = output
		}
		return t, nil
	})
	if err != nil {
		return nil, wrap(err, "list tasks of run %s", runID)
	}
	return ts, nil
}
