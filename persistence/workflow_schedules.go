package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/doug-martin/goqu/v9"
)

// Catch-up policies of a schedule for ticks missed while no node could fire them.
const (
	// CatchUpSkip drops every missed tick; the schedule fires at its next tick.
	CatchUpSkip = "skip"
	// CatchUpRunOnce fires one run for all the missed ticks, then continues.
	CatchUpRunOnce = "run_once"
)

// WorkflowSchedule is a cron schedule that triggers runs of a workflow for its owner.
// NextFireAt is the tick not fired yet; DueAt is when a node must look at the
// schedule: NextFireAt, or the end of a node's claim on that tick. Every change is a
// compare-and-swap on Version.
type WorkflowSchedule struct {
	ID         string
	OwnerID    string
	Workflow   string
	Parameters json.RawMessage
	Spec       string
	// Timezone is an IANA name the cron fields are read in ("UTC" by default).
	Timezone string
	// CatchUp is CatchUpSkip or CatchUpRunOnce.
	CatchUp    string
	WebhookURL string
	Enabled    bool
	// NextFireAt and DueAt are zero (NULL) while the schedule is disabled.
	NextFireAt  time.Time
	DueAt       time.Time
	ClaimOwner  string
	Version     int64
	LastFiredAt time.Time
	LastRunID   string
	// LastError says why the last tick started no run (empty when it did).
	LastError string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// WorkflowSchedules stores workflow schedules.
type WorkflowSchedules interface {
	// CreateSchedule stores s (ID, version 1 and times filled in when empty).
	CreateSchedule(ctx context.Context, s WorkflowSchedule) (WorkflowSchedule, error)
	// GetSchedule returns the schedule with this ID, or ErrNotFound.
	GetSchedule(ctx context.Context, id string) (WorkflowSchedule, error)
	// ListSchedules pages the schedules of ownerID (every owner's when empty),
	// newest first.
	ListSchedules(ctx context.Context, ownerID string, req PageRequest) (Page[WorkflowSchedule], error)
	// SaveSchedule replaces the schedule with s if its stored version is still
	// expected (s.Version must be greater); otherwise ErrConflict, or ErrNotFound.
	SaveSchedule(ctx context.Context, s WorkflowSchedule, expected int64) error
	// CountSchedules counts ownerID's schedules.
	CountSchedules(ctx context.Context, ownerID string) (int, error)
	// DeleteSchedule removes the schedule, or answers ErrNotFound.
	DeleteSchedule(ctx context.Context, id string) error
	// ClaimDueSchedules takes up to limit enabled schedules whose DueAt has passed at
	// now, oldest due first, moves their DueAt to now+lease and ClaimOwner to owner
	// (a compare-and-swap on Version, so a schedule goes to one claimer only), and
	// returns them. NextFireAt is the tick the claimer must fire.
	ClaimDueSchedules(ctx context.Context, now time.Time, owner string, lease time.Duration, limit int) ([]WorkflowSchedule, error)
}

// WorkflowScheduleStore implements WorkflowSchedules on a DB.
type WorkflowScheduleStore struct{ db *DB }

var _ WorkflowSchedules = (*WorkflowScheduleStore)(nil)

// NewWorkflowScheduleStore returns the schedule repository of db.
func NewWorkflowScheduleStore(db *DB) *WorkflowScheduleStore { return &WorkflowScheduleStore{db: db} }

var scheduleCols = []any{"id", "owner_id", "workflow", "parameters", "spec", "timezone", "catch_up", "webhook_url",
	"enabled", "next_fire_at", "due_at", "claim_owner", "version", "last_fired_at", "last_run_id", "last_error",
	"created_at", "updated_at"}

// scheduleRecord holds the columns SaveSchedule changes.
func scheduleRecord(s WorkflowSchedule) goqu.Record {
	updated := s.UpdatedAt
	if updated.IsZero() {
		updated = time.Now()
	}
	params := s.Parameters
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	return goqu.Record{
		"workflow": s.Workflow, "parameters": string(params), "spec": s.Spec, "timezone": s.Timezone,
		"catch_up": s.CatchUp, "webhook_url": s.WebhookURL, "enabled": s.Enabled,
		"next_fire_at": nullTime(s.NextFireAt), "due_at": nullTime(s.DueAt), "claim_owner": s.ClaimOwner,
		"version": s.Version, "last_fired_at": nullTime(s.LastFiredAt), "last_run_id": s.LastRunID,
		"last_error": s.LastError, "updated_at": utc(updated),
	}
}

func scanSchedule(sc scanner) (WorkflowSchedule, error) {
	var (
		s                    WorkflowSchedule
		params               []byte
		next, due, lastFired sql.NullTime
	)
	if err := sc.Scan(&s.ID, &s.OwnerID, &s.Workflow, &params, &s.Spec, &s.Timezone, &s.CatchUp, &s.WebhookURL,
		&s.Enabled, &next, &due, &s.ClaimOwner, &s.Version, &lastFired, &s.LastRunID, &s.LastError,
		&s.CreatedAt, &s.UpdatedAt); err != nil {
		return WorkflowSchedule{}, err
	}
	s.Parameters, s.NextFireAt, s.DueAt, s.LastFiredAt = params, next.Time, due.Time, lastFired.Time
	return s, nil
}

// CreateSchedule implements WorkflowSchedules.
func (st *WorkflowScheduleStore) CreateSchedule(ctx context.Context, s WorkflowSchedule) (WorkflowSchedule, error) {
	if s.ID == "" {
		s.ID = newID()
	}
	if s.Version == 0 {
		s.Version = 1
	}
	if s.Timezone == "" {
		s.Timezone = "UTC"
	}
	if s.CatchUp == "" {
		s.CatchUp = CatchUpSkip
	}
	if len(s.Parameters) == 0 {
		s.Parameters = json.RawMessage("{}")
	}
	if s.CreatedAt.IsZero() {
		s.CreatedAt = time.Now()
	}
	s.CreatedAt = utc(s.CreatedAt)
	s.UpdatedAt = s.CreatedAt
	s.NextFireAt, s.DueAt, s.LastFiredAt = utcOrZero(s.NextFireAt), utcOrZero(s.DueAt), utcOrZero(s.LastFiredAt)
	rec := scheduleRecord(s)
	rec["id"], rec["owner_id"], rec["created_at"] = s.ID, s.OwnerID, s.CreatedAt
	if _, err := st.db.Goqu.Insert("workflow_schedules").Prepared(true).Rows(rec).Executor().ExecContext(ctx); err != nil {
		return WorkflowSchedule{}, wrap(err, "create workflow schedule of %s", s.Workflow)
	}
	return s, nil
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return utc(t)
}

// GetSchedule implements WorkflowSchedules.
func (st *WorkflowScheduleStore) GetSchedule(ctx context.Context, id string) (WorkflowSchedule, error) {
	q := st.db.Goqu.From("workflow_schedules").Prepared(true).Select(scheduleCols...).Where(goqu.C("id").Eq(id))
	s, err := first(ctx, q, scanSchedule)
	if err != nil {
		return WorkflowSchedule{}, fmt.Errorf("get workflow schedule %s: %w", id, err)
	}
	return s, nil
}

// ListSchedules implements WorkflowSchedules, on the (owner_id, created_at, id) index.
func (st *WorkflowScheduleStore) ListSchedules(ctx context.Context, ownerID string, req PageRequest) (Page[WorkflowSchedule], error) {
	q := st.db.Goqu.From("workflow_schedules").Prepared(true).Select(scheduleCols...)
	if ownerID != "" {
		q = q.Where(goqu.C("owner_id").Eq(ownerID))
	}
	q, err := keyset(q, req, "created_at", true, timeParser)
	if err != nil {
		return Page[WorkflowSchedule]{}, fmt.Errorf("list workflow schedules: %w", err)
	}
	ss, err := scanAll(ctx, q, scanSchedule)
	if err != nil {
		return Page[WorkflowSchedule]{}, wrap(err, "list workflow schedules")
	}
	return pageOf(ss, req, func(s WorkflowSchedule) (string, string) { return timeKey(s.CreatedAt), s.ID }), nil
}

// SaveSchedule implements WorkflowSchedules.
func (st *WorkflowScheduleStore) SaveSchedule(ctx context.Context, s WorkflowSchedule, expected int64) error {
	return saveVersioned(ctx, st.db.Goqu, "workflow_schedules", "workflow schedule", s.ID, scheduleRecord(s), s.Version, expected)
}

// DeleteSchedule implements WorkflowSchedules.
func (st *WorkflowScheduleStore) DeleteSchedule(ctx context.Context, id string) error {
	n, err := rowsAffected(st.db.Goqu.Delete("workflow_schedules").Prepared(true).Where(goqu.C("id").Eq(id)).Executor().ExecContext(ctx))
	if err != nil {
		return wrap(err, "delete workflow schedule %s", id)
	}
	if n == 0 {
		return fmt.Errorf("delete workflow schedule %s: %w", id, ErrNotFound)
	}
	return nil
}

// ClaimDueSchedules implements WorkflowSchedules. It reads the due_at index only up to
// now, so a tick costs the same with ten or a million schedules.
func (st *WorkflowScheduleStore) ClaimDueSchedules(ctx context.Context, now time.Time, owner string, lease time.Duration, limit int) ([]WorkflowSchedule, error) {
	return claimDue(ctx, st.db, dueClaim[WorkflowSchedule]{
		table: "workflow_schedules", key: "id", due: "due_at", what: "workflow schedule",
		cols: scheduleCols, scan: scanSchedule,
		id:      func(s WorkflowSchedule) string { return s.ID },
		version: func(s WorkflowSchedule) int64 { return s.Version },
		set:     goqu.Record{"claim_owner": owner},
		claimed: func(s *WorkflowSchedule, until, now time.Time) {
			s.DueAt, s.ClaimOwner, s.Version, s.UpdatedAt = until, owner, s.Version+1, now
		},
	}, now, lease, limit)
}

// CountSchedules implements WorkflowSchedules, on the owner index.
func (st *WorkflowScheduleStore) CountSchedules(ctx context.Context, ownerID string) (int, error) {
	var n int
	q := st.db.Goqu.From("workflow_schedules").Prepared(true).Select(goqu.COUNT("*")).Where(goqu.C("owner_id").Eq(ownerID))
	if err := scanOne(ctx, q, &n); err != nil {
		return 0, wrap(err, "count workflow schedules of %s", ownerID)
	}
	return n, nil
}
